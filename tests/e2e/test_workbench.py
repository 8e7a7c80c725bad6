"""The workbench end to end: the services as processes on PostgreSQL and Kafka, the workbench as a
process in front of them, and Debian's Chromium driving it as people would (tests/e2e/browser.py).

* A nurse signs in, claims the next task, requests information; the provider's answer arrives
  through intake and the task reopens with the new facts; the nurse refers it; a physician signs in
  and denies it with a criterion picked from the explanation.
* A supervisor reassigns a held task; a case manager opens a member and adds (and amends) a note.
* An adjuster opens a workers' comp claim and sees both of its requests and their authorizations.
* Keyboard alone: sign in and claim a task without the mouse.
* Every page passes axe-core's WCAG 2.1 A/AA rules with no serious or critical violation, and each
  test saves screenshots under var/test-artifacts/workbench/.
* Security over plain HTTP: nothing without a session, CSRF refused, a nurse's forged deny refused by
  review, one reviewer cannot act on another's task.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import grpc
import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from ur.authorization.v1 import authorization_pb2
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.cli.platform import Platform
from services.workbench.adapters.access_log import member_reference
from tests.e2e.browser import check_accessible, launch, screenshot
from tests.e2e.conftest import Clients
from tests.e2e.test_reviewer_flow import NURSE, PHYSICIAN, SUPERVISOR, line_of, submit_referred
from tests.factories import fact, lumbar_mri
from tests.polling import wait_until

Metadata = tuple[tuple[str, str | bytes], ...]

pytestmark = pytest.mark.e2e

TOKENS = {"nurse": "dev-only-token-rn-alvarez", "other-nurse": "dev-only-token-rn-okafor",
          "physician": "dev-only-token-md-patel", "supervisor": "dev-only-token-sup-kim",
          "case-manager": "dev-only-token-cm-ross", "adjuster": "dev-only-token-adj-chen"}
CASE_MANAGER: Metadata = (("authorization", "Bearer dev-only-token-cm-ross"),)
ACCESS_LOG_KEY = "e2e-access-log-key"


@pytest.fixture(scope="module")
def workbench(platform: Platform) -> str:
    """The workbench's URL; it stops with the platform."""
    return platform.start_workbench(port=0, extra_env={"UR_WORKBENCH_ACCESS_LOG_KEY": ACCESS_LOG_KEY})


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch(playwright)
    yield chromium
    chromium.close()


def signed_in(browser: Browser, workbench: str, who: str) -> Page:
    """A fresh browser (its own cookies) signed in as ``who``, on the page sign-in led to."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{workbench}/signin")
    check_accessible(page)
    page.fill("#token", TOKENS[who])
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r"127\.0\.0\.1:\d+/(queue|supervisor|members)$"))
    return page


def claim(clients: Clients, who: Metadata, request_id: str) -> review_pb2.TaskView:
    """Claim the task of ``request_id`` over gRPC: tasks claimed on the way (more urgent ones other
    tests left open) are held until it comes, then given back."""
    passed: list[str] = []

    def attempt() -> review_pb2.TaskView | None:
        try:
            view = clients.review.ClaimNextTask(review_pb2.ClaimNextTaskRequest(), metadata=who, timeout=10).task
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise
        if view.task.request_id == request_id:
            return view
        passed.append(view.task.task_id)
        return None

    found = wait_until(attempt, 60, what=f"a claimable task for request {request_id}", until=lambda v: v is not None,
                       interval_s=0.1)
    for task_id in passed:
        clients.review.ReleaseTask(review_pb2.ReleaseTaskRequest(task_id=task_id), metadata=who, timeout=10)
    assert found is not None
    return found


def task_id_of(page: Page) -> str:
    match = re.search(r"/tasks/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


# -- the browser flows (first in the module: the nurse's queue holds only this test's task) --------

def test_nurse_requests_information_refers_and_a_physician_denies(browser: Browser, workbench: str,
                                                                   clients: Clients) -> None:
    request_id = submit_referred(clients)
    nurse = signed_in(browser, workbench, "nurse")
    check_accessible(nurse)
    screenshot(nurse, "01-nurse-queue")
    nurse.click("#claim-next")
    nurse.wait_for_url(re.compile(r"/tasks/"))
    task_id = task_id_of(nurse)
    assert request_id in nurse.inner_text("#main")
    assert nurse.locator("text=You now hold this task").is_visible()
    # A nurse is never offered an adverse decision.
    assert nurse.locator("input[name=decision][value=deny]").count() == 0
    assert nurse.locator("button:has-text('Record adverse decision')").count() == 0
    check_accessible(nurse)
    screenshot(nurse, "02-nurse-task-claimed")

    nurse.check("input[name=fact][value=conservative_therapy_weeks]")
    nurse.fill("#ri-note", "Please send the physical therapy notes.")
    nurse.click("button:has-text('Request information')")
    nurse.wait_for_selector("text=Information requested from the provider.")
    assert "Waiting for the provider's answer" in nurse.inner_text("aside")
    screenshot(nurse, "03-nurse-information-requested")

    # The provider answers through intake; review re-runs the criteria and reopens the task.
    clients.intake.SubmitAdditionalInformation(intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key=f"info-{uuid.uuid4()}", note="PT notes attached",
        clinical_facts=[fact("conservative_therapy_weeks", 3, "weeks")]), timeout=10)

    def reopened() -> str:
        nurse.goto(f"{workbench}/tasks/{task_id}")
        return nurse.inner_text("#main")
    text = wait_until(reopened, 60, what="the task page to show the task reopened with the new facts",
                      until=lambda t: "Information received since" in t and "Open" in t, interval_s=0.5)
    assert "conservative_therapy_weeks=3 weeks" in text  # the criteria saw the new fact
    assert "PT notes attached" in text
    assert "information received" in text
    check_accessible(nurse)
    screenshot(nurse, "04-task-reopened-with-new-facts")

    nurse.goto(f"{workbench}/queue")
    nurse.click("#claim-next")
    nurse.wait_for_url(re.compile(rf"/tasks/{task_id}"))
    nurse.fill("#refer-note", "Three weeks of therapy, symptoms for two: a physician should decide.")
    nurse.click("button:has-text('Refer to a physician')")
    nurse.wait_for_selector("text=Referred to a physician.")
    assert "for a physician" in nurse.inner_text("aside")

    physician = signed_in(browser, workbench, "physician")
    physician.click("#claim-next")
    physician.wait_for_url(re.compile(rf"/tasks/{task_id}"))
    check_accessible(physician)
    screenshot(physician, "05-physician-task")
    criterion = "imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks"
    physician.select_option("#adv-criterion", criterion)
    physician.fill("#adv-reason", "An MRI is not needed yet: low back pain without warning signs usually improves "
                                  "with six weeks of physical therapy; three have been tried.")
    physician.click("button:has-text('Record adverse decision')")
    physician.wait_for_selector("text=Denied.")
    assert "Decided" in physician.inner_text(".head-tags")
    check_accessible(physician)
    screenshot(physician, "06-physician-denied")

    line = wait_until(lambda: line_of(clients, request_id), 60, what="intake to record the denial",
                      until=lambda ln: ln.determination.action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED)
    assert line.determination.decided_by.id == "md-patel"
    assert line.determination.criterion == criterion
    history = clients.review.GetTask(review_pb2.GetTaskRequest(task_id=task_id), metadata=PHYSICIAN, timeout=10)
    assert [h.action for h in history.history if h.actor != "system"] == [
        "claimed", "request_information", "claimed", "refer_to_physician", "claimed", "deny"]


def test_a_supervisor_reassigns_a_held_task(browser: Browser, workbench: str, clients: Clients) -> None:
    request_id = submit_referred(clients)
    task_id = claim(clients, NURSE, request_id).task.task_id
    supervisor = signed_in(browser, workbench, "supervisor")
    assert supervisor.url.endswith("/supervisor")
    check_accessible(supervisor)
    screenshot(supervisor, "07-supervisor-overview")
    link = supervisor.locator(f"a[href='/tasks/{task_id}']")
    row = supervisor.locator("section[aria-labelledby=h-held] tr", has=link)
    row.locator("select[name=reviewer_id]").select_option("rn-okafor")
    row.locator("button:has-text('Reassign')").click()
    supervisor.wait_for_selector("text=reassigned to rn-okafor")
    check_accessible(supervisor)
    screenshot(supervisor, "08-supervisor-reassigned")
    view = clients.review.GetTask(review_pb2.GetTaskRequest(task_id=task_id), metadata=SUPERVISOR, timeout=10)
    assert view.task.assigned_to == "rn-okafor"
    assert view.history[-1].action == "reassigned"


def test_a_case_manager_opens_a_member_and_adds_and_amends_a_note(browser: Browser, workbench: str,
                                                                   clients: Clients) -> None:
    manager = signed_in(browser, workbench, "case-manager")
    assert manager.url.endswith("/members")
    check_accessible(manager)
    manager.fill("#member-id", "T-MA-0001")
    manager.click("button:has-text('Open member')")
    manager.wait_for_url(re.compile(r"/members/T-MA-0001"))
    check_accessible(manager)
    first = f"Called the member: PT starts Monday, transport arranged ({uuid.uuid4().hex[:6]})."
    manager.fill("#note-text", first)
    manager.click("button:has-text('Add note')")  # htmx swaps the notes section in place
    manager.wait_for_selector(f"text={first}")
    manager.select_option("#note-amends", index=1)
    manager.fill("#note-text", "Correction: PT starts Tuesday.")
    manager.click("button:has-text('Add note')")
    manager.wait_for_selector("text=Correction: PT starts Tuesday.")
    assert "Amends the note of" in manager.inner_text("#notes")
    check_accessible(manager)
    screenshot(manager, "09-case-manager-member")
    notes = clients.review.ListCaseNotes(review_pb2.ListCaseNotesRequest(member_id="T-MA-0001"),
                                         metadata=CASE_MANAGER, timeout=10).notes
    mine = [n for n in notes if n.author_id == "cm-ross"]
    assert mine[-2].text == first
    assert mine[-1].amends == mine[-2].note_id


def under_claim(claim_number: str) -> intake_pb2.SubmitRequestRequest:
    """An approvable lumbar MRI for the sample injured worker, under ``claim_number``."""
    message = lumbar_mri(meets=True, member_id="T-WC-0004", lob=types_pb2.LINE_OF_BUSINESS_WORKERS_COMP, state="CA")
    wc = message.workers_comp
    wc.claim_number, wc.employer = claim_number, "Harbor Freight Lines"
    wc.date_of_injury.CopyFrom(types_pb2.Date(year=2026, month=11, day=3))
    wc.adjuster.name, wc.adjuster.email = "J. Chen", "jchen@example.com"
    wc.attorney.name = "L. Park, Esq."
    message.member_contact.name = "Dana Reyes"
    return message


def test_an_adjuster_opens_a_claim_and_sees_its_requests_and_authorizations(
        browser: Browser, workbench: str, platform: Platform, clients: Clients) -> None:
    claim_number = f"WC-{uuid.uuid4().hex[:10].upper()}"
    ids = [clients.intake.SubmitRequest(under_claim(claim_number), timeout=10).request.request_id for _ in range(2)]
    for request_id in ids:
        assert clients.settle(request_id).status == intake_pb2.REQUEST_STATUS_COMPLETE
    issued = wait_until(lambda: [a for a in clients.authorization.ListMemberAuthorizations(
        authorization_pb2.ListMemberAuthorizationsRequest(member_id="T-WC-0004"), timeout=10).authorizations
        if a.request_id in ids], 60, what="both authorizations", until=lambda found: len(found) == 2)
    adjuster = signed_in(browser, workbench, "adjuster")
    adjuster.click("a:has-text('Claims')")
    adjuster.wait_for_url(re.compile(r"/claims$"))
    check_accessible(adjuster)
    adjuster.fill("#claim-number", claim_number)
    adjuster.click("button:has-text('Open claim')")
    adjuster.wait_for_url(re.compile(f"/claims/{claim_number}$"))
    text = adjuster.inner_text("main")
    for shown in (claim_number, "Harbor Freight Lines", "2026-11-03", "Dana Reyes", "T-WC-0004", "J. Chen",
                  "L. Park, Esq.", *(r[:8] for r in ids), *(a.authorization_number for a in issued)):
        assert shown in text, shown
    assert "Requests under the claim 2" in " ".join(adjuster.inner_text("#h-requests").split())
    assert "Authorizations 2" in " ".join(adjuster.inner_text("#h-auths").split())
    check_accessible(adjuster)
    screenshot(adjuster, "13-adjuster-claim")
    line = wait_until(lambda: [ln for ln in platform.log_path("workbench").read_text().splitlines()
                               if '"page":"claim"' in ln and ids[0] in ln], 10,
                      what="the access log line of the claim page", until=bool)[0]
    assert '"reviewer":"adj-chen"' in line
    assert ids[1] in line


def test_keyboard_alone_signs_in_and_claims_from_the_queue(browser: Browser, workbench: str,
                                                           clients: Clients) -> None:
    submit_referred(clients)
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{workbench}/queue")  # → sign in, the token field focused
    page.keyboard.type(TOKENS["nurse"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{workbench}/queue")
    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")
        stops.append(focused)
        if focused == "claim-next":
            break
    assert stops[0] == "Skip to main content", stops
    assert stops[-1] == "claim-next", f"Claim next task is not reachable by Tab: {stops}"
    screenshot(page, "10-keyboard-focus-on-claim")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tasks/"))
    assert page.locator("text=You now hold this task").is_visible()
    # The first task of the queue table is reachable by Tab too, and its link opens with Enter.
    page.goto(f"{workbench}/queue")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => (document.activeElement.getAttribute('href') || '').startsWith('/tasks/')"):
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tasks/"))
    check_accessible(page)


def test_error_and_sign_in_pages_are_accessible(browser: Browser, workbench: str) -> None:
    page = signed_in(browser, workbench, "nurse")
    page.goto(f"{workbench}/tasks/{uuid.uuid4()}")
    assert "Not found" in page.inner_text("h1")
    check_accessible(page)
    screenshot(page, "11-not-found")
    page.click("button:has-text('Sign out')")
    page.wait_for_url(re.compile(r"/signin"))
    assert "You have signed out" in page.inner_text("#main")
    check_accessible(page)
    screenshot(page, "12-signed-out")
    page.goto(f"{workbench}/queue")
    page.wait_for_url(re.compile(r"/signin\?next=/queue"))


# -- security, over plain HTTP ------------------------------------------------------------------

class Reviewer:
    """An HTTP client signed in to the workbench as one reviewer."""

    def __init__(self, workbench: str, token: str) -> None:
        self.http = httpx.Client(base_url=workbench, headers={"origin": workbench}, timeout=30)
        form = self.http.get("/signin")
        signin_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert signin_csrf
        done = self.http.post("/signin", data={"csrf_token": signin_csrf.group(1), "token": token})
        assert done.status_code == 303, done.text
        page = self.http.get("/members")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        self.csrf = csrf.group(1)

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.csrf, **data})

    def __enter__(self) -> Reviewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()


PAGES = ["/queue", "/supervisor", "/members", "/members/T-MA-0001", f"/tasks/{uuid.uuid4()}", "/claims",
         "/claims/WC-CLAIM-88812"]
ACTIONS = ["/queue/claim", f"/tasks/{uuid.uuid4()}/decide", f"/tasks/{uuid.uuid4()}/release",
           f"/tasks/{uuid.uuid4()}/peer-to-peer", f"/tasks/{uuid.uuid4()}/extend", "/supervisor/reassign",
           "/supervisor/release", "/members/T-MA-0001/notes", "/signout"]


def test_no_page_and_no_action_without_a_session(workbench: str) -> None:
    with httpx.Client(base_url=workbench, headers={"origin": workbench}, timeout=30) as anonymous:
        for path in PAGES:
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/signin"), path
        for path in ACTIONS:
            response = anonymous.post(path, data={"decision": "approve"})
            assert response.status_code in (401, 303), path
            assert "T-MA-0001" not in response.text
    with httpx.Client(base_url=workbench, cookies={"ur-workbench": "made-up-session-id"}, timeout=30) as forged:
        assert forged.get("/queue").status_code == 303


def test_a_forged_or_missing_csrf_token_is_refused_and_nothing_happens(workbench: str, clients: Clients) -> None:
    request_id = submit_referred(clients)
    with Reviewer(workbench, TOKENS["other-nurse"]) as nurse:
        for data, headers in (({}, {}), ({"csrf_token": "forged"}, {}), ({"csrf_token": nurse.csrf},
                                                                         {"origin": "https://evil.example"})):
            response = nurse.http.post("/queue/claim", data=data, headers=headers)
            assert response.status_code == 403, response.text
    held = clients.review.ListMyTasks(review_pb2.ListMyTasksRequest(),
                                      metadata=(("authorization", f"Bearer {TOKENS['other-nurse']}"),), timeout=10)
    assert request_id not in [v.task.request_id for v in held.held]
    with httpx.Client(base_url=workbench, timeout=30) as stranger:  # sign-in without its form's token
        signin = stranger.post("/signin", data={"token": TOKENS["nurse"]})
    assert signin.status_code == 403
    assert "ur-workbench=" not in signin.headers.get("set-cookie", "")


def test_a_nurses_forged_deny_is_refused_by_review(workbench: str, clients: Clients) -> None:
    request_id = submit_referred(clients)
    task_id = claim(clients, NURSE, request_id).task.task_id
    with Reviewer(workbench, TOKENS["nurse"]) as nurse:
        for decision in ("deny", "modify", "approve_partial"):
            refused = nurse.post(f"/tasks/{task_id}/decide", decision=decision, reason="not necessary",
                                 criterion="imaging-mri-lumbar-spine@2026.1: symptoms_six_weeks", approved_units="1")
            assert refused.status_code == 403, refused.text
            assert "only a physician" in refused.text, refused.text
    view = clients.review.GetTask(review_pb2.GetTaskRequest(task_id=task_id), metadata=NURSE, timeout=10)
    assert view.task.status == "claimed"
    assert view.task.assigned_to == "rn-alvarez"
    assert "deny" not in [h.action for h in view.history]


def test_one_reviewer_cannot_act_on_a_task_another_holds(workbench: str, clients: Clients) -> None:
    request_id = submit_referred(clients)
    task_id = claim(clients, NURSE, request_id).task.task_id
    with Reviewer(workbench, TOKENS["other-nurse"]) as other:
        approve = other.post(f"/tasks/{task_id}/decide", decision="approve")
        assert approve.status_code == 409
        assert "held by another reviewer" in approve.text
        release = other.post(f"/tasks/{task_id}/release")
        assert release.status_code == 403
        assert "only the holder or a supervisor" in release.text
        reassign = other.post("/supervisor/reassign", task_id=task_id, reviewer_id="rn-okafor")
        assert reassign.status_code == 403
    view = clients.review.GetTask(review_pb2.GetTaskRequest(task_id=task_id), metadata=NURSE, timeout=10)
    assert view.task.assigned_to == "rn-alvarez"
    assert [h.action for h in view.history][-1] == "claimed"
    with pytest.raises(grpc.RpcError):  # and review itself says the same to a direct caller
        clients.review.DecideTask(review_pb2.DecideTaskRequest(
            task_id=task_id, approve=review_pb2.DecideTaskRequest.Approve()),
            metadata=(("authorization", f"Bearer {TOKENS['other-nurse']}"),), timeout=10)


def test_pages_showing_patient_data_are_access_logged(workbench: str, platform: Platform, clients: Clients) -> None:
    request_id = submit_referred(clients)
    task_id = claim(clients, NURSE, request_id).task.task_id
    with Reviewer(workbench, TOKENS["nurse"]) as nurse:
        assert nurse.http.get(f"/tasks/{task_id}").status_code == 200
    line = wait_until(lambda: [ln for ln in platform.log_path("workbench").read_text().splitlines()
                               if '"page":"task"' in ln and task_id in ln], 10,
                      what="the access log line of the task page", until=bool)[0]
    assert '"reviewer":"rn-alvarez"' in line
    assert request_id in line
    # The member as an opaque reference an auditor with the key can match, never the member id itself.
    assert json.loads(line)["member_refs"] == [member_reference(ACCESS_LOG_KEY.encode(), "T-MA-0001")]
    assert "T-MA-0001" not in line
