"""The workbench's HTTP layer on fakes (tests/fakes/workbench.py) through Starlette's test client:
sessions (cookie flags, fixation, sign-out, idle timeout, maximum age), CSRF and origin checks,
security headers, redirects that stay on the site, the access log, and forms shaped into the
requests review receives. What review refuses is tested against the real service in
tests/e2e/test_workbench.py."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator

import httpx2
import pytest
from starlette.datastructures import FormData
from starlette.testclient import TestClient
from ur.review.v1 import review_pb2

from services.common.logs import FIELDS
from services.common.settings import WorkbenchSettings
from services.workbench.adapters.access_log import LogAccessLog, member_reference
from services.workbench.adapters.sessions import MemorySessionStore
from services.workbench.bootstrap import build
from services.workbench.entrypoints.web import decision_from_form
from tests.fakes.review import FixedClock
from tests.fakes.workbench import REQUEST_ID, TASK_ID, FakeAccessLog, FakePlatform, a_task

T0 = dt.datetime(2027, 2, 1, 9, 0, tzinfo=dt.UTC)
NURSE, PHYSICIAN = "token-nurse-0000001", "token-physician-001"
BASE = "http://testserver"


class Workbench:
    def __init__(self, *, secure: bool = False) -> None:
        self.clock = FixedClock(T0)
        self.platform = FakePlatform()
        self.access = FakeAccessLog()
        settings = WorkbenchSettings(cookie_secure=secure, idle_timeout_s=900.0, session_max_s=3600.0)
        self.built = build(settings, platform=self.platform, access=self.access, clock=self.clock)
        self.base = "https://testserver" if secure else BASE
        self.client = TestClient(self.built.app, base_url=self.base, follow_redirects=False)

    def sign_in(self, token: str = NURSE, next_: str = "") -> str:
        form = self.client.get("/signin" + (f"?next={next_}" if next_ else ""))
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf
        done = self.client.post("/signin", data={"csrf_token": csrf.group(1), "token": token, "next": next_},
                                headers={"origin": BASE})
        assert done.status_code == 303, done.text
        return str(done.headers["location"])

    def csrf(self) -> str:
        page = self.client.get("/members")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    def post(self, path: str, **data: str) -> httpx2.Response:
        return self.client.post(path, data={"csrf_token": self.csrf(), **data}, headers={"origin": BASE})


@pytest.fixture
def wb() -> Iterator[Workbench]:
    workbench = Workbench()
    with workbench.client:
        yield workbench


def test_signing_in_sets_a_session_cookie_and_lands_on_the_roles_page(wb: Workbench) -> None:
    assert wb.sign_in() == "/queue"
    cookie = wb.client.cookies.get("ur-workbench")
    assert cookie
    assert len(cookie) >= 40
    assert wb.client.get("/queue").status_code == 200
    assert wb.sign_in("token-supervisor-01") == "/supervisor"


def test_the_secure_cookie_is_host_prefixed_httponly_and_same_site() -> None:
    wb = Workbench(secure=True)  # over HTTPS: a Secure cookie is not sent over plain HTTP
    form = wb.client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    assert "secure" in form.headers["set-cookie"].lower()
    done = wb.client.post("/signin", data={"csrf_token": csrf.group(1), "token": NURSE},
                          headers={"origin": wb.base})
    assert done.status_code == 303, done.text
    assert wb.client.get("/queue").status_code == 200
    set_cookie = [v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("__Host-")]
    assert len(set_cookie) == 1
    attributes = {a.strip().split("=")[0].lower() for a in set_cookie[0].split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "domain" not in attributes
    assert "samesite=lax" in set_cookie[0].lower()
    assert "path=/" in set_cookie[0].lower()


def test_an_unknown_token_signs_nobody_in(wb: Workbench) -> None:
    form = wb.client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    refused = wb.client.post("/signin", data={"csrf_token": csrf.group(1), "token": "not-a-token-at-all"},
                             headers={"origin": BASE})
    assert refused.status_code == 401
    assert "not recognised" in refused.text
    assert wb.client.cookies.get("ur-workbench") is None


def test_signing_in_again_replaces_the_session_and_signing_out_ends_it(wb: Workbench) -> None:
    wb.sign_in()
    first = wb.client.cookies.get("ur-workbench")
    wb.sign_in()
    second = wb.client.cookies.get("ur-workbench")
    store = wb.built.sessions
    assert first != second
    assert isinstance(store, MemorySessionStore)
    assert len(store) == 1
    assert wb.post("/signout").status_code == 303
    wb.client.cookies.set("ur-workbench", str(second))
    assert wb.client.get("/queue").status_code == 303


def test_the_session_ends_after_the_idle_timeout_and_its_maximum_age(wb: Workbench) -> None:
    wb.sign_in()
    wb.clock.advance(dt.timedelta(seconds=899))
    assert wb.client.get("/queue").status_code == 200  # activity restarts the idle clock
    wb.clock.advance(dt.timedelta(seconds=899))
    assert wb.client.get("/queue").status_code == 200
    wb.clock.advance(dt.timedelta(seconds=901))
    gone = wb.client.get("/queue")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/signin?next=/queue"
    wb.sign_in()
    for _ in range(5):  # active all along, but an hour is this session's most
        wb.clock.advance(dt.timedelta(seconds=850))
        wb.client.get("/members")
    assert wb.client.get("/queue").status_code == 303


@pytest.mark.parametrize("path", ["/queue/claim", f"/tasks/{TASK_ID}/decide", "/signout", "/members/M-1/notes"])
def test_a_post_without_the_sessions_csrf_token_or_from_another_site_is_refused(wb: Workbench, path: str) -> None:
    wb.sign_in()
    csrf = wb.csrf()
    for data, headers in (({"decision": "approve"}, {"origin": BASE}),
                          ({"csrf_token": "x" * 43, "decision": "approve"}, {"origin": BASE}),
                          ({"csrf_token": csrf, "decision": "approve"}, {"origin": "https://evil.example"}),
                          ({"csrf_token": csrf, "decision": "approve"}, {"origin": "null"})):
        assert wb.client.post(path, data=data, headers=headers).status_code == 403
    assert wb.platform.decisions == []
    assert ("claim_next", "rn-1") not in wb.platform.calls


def test_htmx_requests_carry_the_token_in_a_header(wb: Workbench) -> None:
    wb.sign_in()
    done = wb.client.post(f"/tasks/{TASK_ID}/decide", data={"decision": "approve"},
                          headers={"origin": BASE, "x-csrf-token": wb.csrf()})
    assert done.status_code == 303
    assert [d.WhichOneof("decision") for _, d in wb.platform.decisions] == ["approve"]


def test_pages_without_a_session_send_to_sign_in_and_actions_are_refused(wb: Workbench) -> None:
    for path in ("/queue", "/supervisor", "/members", f"/tasks/{TASK_ID}", "/members/M-1", "/"):
        response = wb.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin"), path
    for path in ("/queue/claim", f"/tasks/{TASK_ID}/decide", "/supervisor/reassign"):
        assert wb.client.post(path, data={"decision": "approve"}).status_code == 401
        assert wb.client.post(path, headers={"hx-request": "true"}).headers["hx-redirect"] == "/signin"
    assert wb.platform.calls == []


def test_every_response_carries_the_security_headers(wb: Workbench) -> None:
    wb.sign_in()
    for path in ("/signin", "/queue", f"/tasks/{TASK_ID}"):
        headers = wb.client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["x-content-type-options"] == "nosniff"
    assert wb.client.get("/static/htmx.min.js").headers["cache-control"].startswith("public")


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "queue"])
def test_sign_in_never_redirects_off_the_site(wb: Workbench, target: str) -> None:
    assert wb.sign_in(next_=target) == "/"


def test_the_task_page_is_access_logged_and_offers_a_nurse_no_adverse_decision(wb: Workbench) -> None:
    wb.sign_in()
    page = wb.client.get(f"/tasks/{TASK_ID}")
    assert page.status_code == 200
    assert "Request information" in page.text
    assert 'value="deny"' not in page.text
    assert "Record adverse decision" not in page.text
    [entry] = [e for e in wb.access.entries if e.page == "task"]
    assert (entry.reviewer_id, entry.request_ids, entry.member_ids, entry.task_ids, entry.at) == (
        "rn-1", (REQUEST_ID,), ("M-1",), (TASK_ID,), T0)
    wb.client.get("/queue")
    assert [e.request_ids for e in wb.access.entries if e.page == "queue"] == [(REQUEST_ID,)]


def test_a_physician_is_offered_the_adverse_decisions(wb: Workbench) -> None:
    wb.platform.tasks[TASK_ID] = a_task(assigned_to="md-1")
    wb.sign_in(PHYSICIAN)
    page = wb.client.get(f"/tasks/{TASK_ID}")
    assert 'value="deny"' in page.text
    assert "imaging-mri-lumbar-spine@2026.1: symptoms_six_weeks" in page.text  # the criteria to pick from


def test_a_refusal_is_shown_with_reviews_words_and_status(wb: Workbench) -> None:
    wb.sign_in()
    refused = wb.post(f"/tasks/{TASK_ID}/decide", decision="deny", reason="r", criterion="c")
    assert refused.status_code == 403
    assert "only a physician" in refused.text
    missing = wb.client.get("/tasks/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert "Not found" in missing.text


def test_decision_forms_become_the_requests_review_receives() -> None:
    request_info = decision_from_form("t", FormData([
        ("decision", "request_information"), ("fact", "conservative_therapy_weeks"), ("fact", " "),
        ("other_facts", "pt_notes, imaging_report,pt_notes"), ("needed_by", "2027-03-01"), ("note", " send ")]))
    ri = request_info.request_information
    assert list(ri.facts) == ["conservative_therapy_weeks", "pt_notes", "imaging_report"]
    assert ri.note == "send"
    assert (ri.needed_by.year, ri.needed_by.month, ri.needed_by.day) == (2027, 3, 1)
    partial = decision_from_form("t", FormData([("decision", "approve_partial"), ("approved_units", "2"),
                                                ("reason", "two"), ("criterion", "c"), ("approved_end", "bad")]))
    assert partial.approve_partial.approved_units == 2
    assert not partial.approve_partial.HasField("approved_end")
    deny = decision_from_form("t", FormData([("decision", "deny"), ("reason", "why"), ("criterion", "c")]))
    assert (deny.deny.reason, deny.deny.criterion) == ("why", "c")
    unknown = decision_from_form("t", FormData([("decision", "rubber-stamp")]))
    assert unknown.WhichOneof("decision") is None
    assert unknown == review_pb2.DecideTaskRequest(task_id="t")


def test_requests_are_counted_by_route_template_never_by_path(wb: Workbench) -> None:
    wb.sign_in()
    assert wb.client.get(f"/tasks/{TASK_ID}").status_code == 200
    wb.client.get("/members/M-1")
    wb.client.get("/no/such/page")
    metrics = wb.built.metrics

    def count(route: str, status: str) -> float:
        return metrics.value("ur_workbench_http_requests_total", {"route": route, "method": "GET",
                                                                  "status": status}) or 0.0

    assert count("/tasks/{task_id}", "200") == 1
    assert count("/members/{member_id}", "200") + count("/members/{member_id}", "404") == 1
    assert count("unmatched", "404") == 1
    samples = [s for family in metrics.registry.collect() for s in family.samples]
    assert not [s for s in samples if any(TASK_ID in v or "M-1" in v for v in s.labels.values())]


def test_the_access_log_names_members_by_an_opaque_reference(caplog: pytest.LogCaptureFixture) -> None:
    log = LogAccessLog("audit-key")
    with caplog.at_level(logging.INFO, logger="ur.workbench.access"):
        log.viewed(reviewer_id="rn-1", page="member", at=T0, request_ids=[REQUEST_ID], member_ids=["M-1", "M-1"],
                   task_ids=[TASK_ID])
        LogAccessLog("another-key").viewed(reviewer_id="rn-1", page="member", at=T0, member_ids=["M-1"])
    first, second = (getattr(r, FIELDS) for r in caplog.records)
    assert first["member_refs"] == [member_reference(b"audit-key", "M-1")]
    assert first["member_refs"][0].startswith("m-")
    assert (first["request_ids"], first["task_ids"], first["reviewer"]) == ([REQUEST_ID], [TASK_ID], "rn-1")
    assert "M-1" not in str(first)
    assert second["member_refs"] != first["member_refs"]  # another key, another reference
