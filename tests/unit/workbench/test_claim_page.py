"""The adjuster's page of a workers' comp claim (services/workbench/service_layer/pages.py ``claim``
and the /claims routes) on fakes: the claim as its newest request states it, every request under
it with its lines' determinations and authorizations (units remaining), the open tasks of those
requests only, the access log entry, and the order of the calls: review first, with the reviewer's
own token, before the workbench reads intake and authorization."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import NotFound, Unauthenticated
from services.common.settings import WorkbenchSettings
from services.workbench.bootstrap import build
from services.workbench.service_layer.pages import Pages
from services.workbench.service_layer.ports import Session
from tests.fakes.review import FixedClock
from tests.fakes.workbench import ADJUSTER, TASK_ID, WORKBENCH, FakeAccessLog, FakePlatform, a_task

NOW = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
CLAIM = "WC-2027/00042"
ADJUSTER_TOKEN = "token-adjuster-0001"
FIRST, SECOND, ELSEWHERE = (f"11111111-2222-4333-8444-{n:012d}" for n in (1, 2, 3))
BASE = "http://testserver"


def wc_request(request_id: str, received: dt.datetime, code: str, *, claim: str = CLAIM,
               name: str = "Dana Reyes") -> intake_pb2.RequestView:
    view = intake_pb2.RequestView(request_id=request_id, member_id="T-WC-0009",
                                  line_of_business=types_pb2.LINE_OF_BUSINESS_WORKERS_COMP,
                                  status=intake_pb2.REQUEST_STATUS_COMPLETE)
    view.received_at.FromDatetime(received)
    view.member_contact.name = name
    line = view.lines.add()
    line.line.CopyFrom(types_pb2.ServiceLine(line_number=1, procedure_code=code, units=12))
    line.determination.action_code = types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    wc = view.workers_comp
    wc.claim_number, wc.employer = claim, "Harbor Freight Lines"
    wc.date_of_injury.CopyFrom(types_pb2.Date(year=2026, month=11, day=3))
    wc.adjuster.name, wc.adjuster.phone = "Sam Ortiz", "555-0100"
    wc.attorney.name = "L. Chen, Esq."
    return view


def authorization(number: str, request_id: str, code: str, remaining: int) -> types_pb2.Authorization:
    return types_pb2.Authorization(authorization_number=number, request_id=request_id, line_number=1,
                                   member_id="T-WC-0009", procedure_code=code, units=12, units_used=12 - remaining,
                                   units_remaining=remaining, unit="visits",
                                   status=types_pb2.AUTHORIZATION_STATUS_APPROVED)


def claim_platform() -> FakePlatform:
    """A claim with two requests (newest first), a third request of the same worker under another
    claim, their authorizations, and an open task of the first request and one of the third."""
    older, newer = NOW - dt.timedelta(days=20), NOW - dt.timedelta(days=2)
    ours, theirs = a_task(), a_task("bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    ours.task.request_id, theirs.task.request_id = FIRST, ELSEWHERE
    return FakePlatform(
        tasks={TASK_ID: ours, theirs.task.task_id: theirs},
        claims=[wc_request(SECOND, newer, "97110", name="Dana M. Reyes"), wc_request(FIRST, older, "72148"),
                wc_request(ELSEWHERE, older, "97140", claim="WC-OTHER-1")],
        authorizations=[authorization("UR27-AAAA-BBBB", SECOND, "97110", 9),
                        authorization("UR27-CCCC-DDDD", FIRST, "72148", 12),
                        authorization("UR27-EEEE-FFFF", ELSEWHERE, "97140", 3)])


def adjuster(token: str = ADJUSTER_TOKEN) -> Session:
    return Session(session_id="s", reviewer_id=ADJUSTER.reviewer_id, name=ADJUSTER.name, role=ADJUSTER.role,
                   credential=ADJUSTER.credential, token=token, csrf="c", created_at=NOW, last_seen=NOW)


def test_the_claim_shows_every_request_under_it_their_authorizations_and_open_tasks_only() -> None:
    platform, access = claim_platform(), FakeAccessLog()
    page = asyncio.run(Pages(platform, access, clock=lambda: NOW).claim(adjuster(), f" {CLAIM} "))
    assert page.claim_number == CLAIM
    assert [r.request_id for r in page.requests] == [SECOND, FIRST]
    assert [a.authorization_number for a in page.authorizations] == ["UR27-AAAA-BBBB", "UR27-CCCC-DDDD"]
    assert [t.task_id for t in page.tasks] == [TASK_ID]
    assert page.workers == [("T-WC-0009", "Dana M. Reyes")]  # the newest request's name
    assert (page.claim.employer, page.claim.adjuster.name, page.claim.attorney.name) == (
        "Harbor Freight Lines", "Sam Ortiz", "L. Chen, Esq.")
    found = page.authorization_of(SECOND, 1)
    assert found is not None
    assert found.units_remaining == 9
    assert page.authorization_of(SECOND, 2) is None
    [entry] = access.entries
    assert (entry.reviewer_id, entry.page, entry.at) == ("adj-1", "claim", NOW)
    assert (entry.request_ids, entry.member_ids, entry.task_ids) == ((SECOND, FIRST), ("T-WC-0009",), (TASK_ID,))


def test_review_answers_first_and_a_token_it_refuses_reads_nothing_from_intake() -> None:
    platform = claim_platform()
    pages = Pages(platform, FakeAccessLog(), clock=lambda: NOW)
    with pytest.raises(Unauthenticated):
        asyncio.run(pages.claim(adjuster("a-revoked-token-0001"), CLAIM))
    assert platform.calls == []
    asyncio.run(pages.claim(adjuster(), CLAIM))
    assert [m for m, _ in platform.calls] == ["whoami", "claim_requests", "member_tasks", "member_authorizations"]
    assert [who for m, who in platform.calls if m in ("claim_requests", "member_authorizations")] == [WORKBENCH] * 2
    assert [who for m, who in platform.calls if m in ("whoami", "member_tasks")] == ["adj-1"] * 2


def test_a_claim_with_no_request_is_not_found_and_logs_nothing() -> None:
    access = FakeAccessLog()
    with pytest.raises(NotFound):
        asyncio.run(Pages(claim_platform(), access, clock=lambda: NOW).claim(adjuster(), "WC-NOTHING"))
    assert access.entries == []


@pytest.fixture
def client() -> Iterator[tuple[TestClient, FakePlatform, FakeAccessLog]]:
    platform, access = claim_platform(), FakeAccessLog()
    settings = WorkbenchSettings(cookie_secure=False, idle_timeout_s=900.0, session_max_s=3600.0)
    built = build(settings, platform=platform, access=access, clock=FixedClock(NOW))
    with TestClient(built.app, base_url=BASE, follow_redirects=False) as c:
        yield c, platform, access


def sign_in(c: TestClient, token: str) -> None:
    form = c.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    assert c.post("/signin", data={"csrf_token": csrf.group(1), "token": token},
                  headers={"origin": BASE}).status_code == 303


def test_an_adjuster_finds_a_claim_and_reads_it(client: tuple[TestClient, FakePlatform, FakeAccessLog]) -> None:
    c, _, access = client
    assert c.get(f"/claims/{CLAIM}").headers["location"].startswith("/signin?next=")  # no session, no claim
    sign_in(c, ADJUSTER_TOKEN)
    found = c.get("/claims", params={"claim_number": f" {CLAIM} "})
    assert (found.status_code, found.headers["location"]) == (303, "/claims/WC-2027%2F00042")
    page = c.get(found.headers["location"])
    assert page.status_code == 200, page.text
    for shown in ("Harbor Freight Lines", "2026-11-03", "Dana M. Reyes", "T-WC-0009", "Sam Ortiz", "L. Chen, Esq.",
                  "UR27-AAAA-BBBB", "9 of 12 visits remaining", "UR27-CCCC-DDDD", "Approved (A1)",
                  f"/tasks/{TASK_ID}"):
        assert shown in page.text, shown
    assert "UR27-EEEE-FFFF" not in page.text  # the worker's other claim
    assert [e.page for e in access.entries] == ["claim"]
    assert c.get("/claims/WC-NOTHING").status_code == 404


def test_a_workers_comp_tasks_page_links_to_its_claim(client: tuple[TestClient, FakePlatform, FakeAccessLog]) -> None:
    c, _, _ = client
    sign_in(c, "token-nurse-0000001")
    page = c.get(f"/tasks/{TASK_ID}")
    assert page.status_code == 200, page.text
    assert 'href="/claims/WC-2027/00042"' in page.text
    # Any reviewer review accepts opens it, as a member's page: the link is not a dead end.
    assert c.get("/claims/WC-2027/00042").status_code == 200
