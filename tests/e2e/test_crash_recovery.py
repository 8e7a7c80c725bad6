"""Acceptance: kill -9 of the review service in the middle of a stream of
requests, then a restart: every request has exactly one determination and every
approved line exactly one authorization."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text
from ur.intake.v1 import intake_pb2

from services.cli.platform import Platform
from tests.e2e.conftest import Clients, start_platform
from tests.factories import lumbar_mri
from tests.polling import wait_until
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e

TOTAL = 150
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


@pytest.fixture
def own_platform(tmp_path: Path, make_database: Callable[[str], str], kafka_bootstrap: str) -> Iterator[Platform]:
    running = start_platform(tmp_path, make_database, kafka_bootstrap, new_topic_prefix())
    yield running
    running.stop()


def _count(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql), params)]
    engine.dispose()
    return rows


def _submit_with_retries(clients: Clients, request: intake_pb2.SubmitRequestRequest,
                         on_refused: Callable[[], None]) -> intake_pb2.RequestView:
    """What a prior-authorization queue does: resend the same request (same idempotency key)
    until intake answers; a request recorded before the crash comes back as a replay."""
    def attempt() -> intake_pb2.RequestView | None:
        try:
            return clients.intake.SubmitRequest(request, timeout=10).request
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE:
                raise
            on_refused()
            return None

    view = wait_until(attempt, 120, what=f"intake to take request {request.idempotency_key}",
                      until=lambda v: v is not None, interval_s=0.2)
    assert view is not None
    return view


@pytest.mark.parametrize("victim", ["review", "authorization", "intake"])
def test_kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(own_platform: Platform,
                                                                            victim: str) -> None:
    clients = Clients(own_platform)
    request_ids: list[str] = []
    refused: list[int] = [0]  # SubmitRequest attempts intake did not answer
    lock = threading.Lock()
    submitted = threading.Event()
    killed = threading.Event()

    def count_refusal() -> None:
        with lock:
            refused[0] += 1

    def submit(batch: range) -> None:
        for i in batch:
            if i >= TOTAL // 2:
                killed.wait()  # the second half comes after the kill: the stream crosses the crash, however fast
            # Alternate approvals and referrals so both paths cross the crash.
            request = lumbar_mri(meets=i % 4 != 0)
            view = _submit_with_retries(clients, request, count_refusal)
            with lock:
                request_ids.append(view.request_id)
                if len(request_ids) >= TOTAL // 3:
                    submitted.set()

    workers = [threading.Thread(target=submit, args=(range(k, TOTAL, 4),)) for k in range(4)]
    for w in workers:
        w.start()
    try:
        assert submitted.wait(60)
        own_platform.kill(victim, signal.SIGKILL)
        before, refused_before = len(request_ids), refused[0]
    finally:
        killed.set()
    # Restart only once the stream has run into the outage: intake's clients were refused, or
    # (the victim being downstream) intake went on taking requests without it.
    if victim == "intake":
        wait_until(lambda: refused[0] - refused_before, 60, what="a submission refused while intake is down")
    else:
        wait_until(lambda: len(request_ids) - before, 60, what=f"4 more submissions while {victim} is down",
                   until=lambda more: more >= 4)
    own_platform.start(victim)
    own_platform.wait_healthy(victim, timeout_s=120)
    for w in workers:
        w.join()
    assert len(request_ids) == TOTAL
    assert len(set(request_ids)) == TOTAL
    views = [clients.settle(rid, timeout_s=120) for rid in request_ids]
    clients.close()

    complete = [v for v in views if v.status == intake_pb2.REQUEST_STATUS_COMPLETE]
    pended = [v for v in views if v.status == intake_pb2.REQUEST_STATUS_PENDED]
    assert len(complete) + len(pended) == TOTAL
    assert len(pended) == sum(1 for i in range(TOTAL) if i % 4 == 0)

    review_url = own_platform.database_urls["review"]
    cases = _count(review_url, "SELECT request_id, count(*) FROM cases GROUP BY request_id")
    assert len(cases) == TOTAL
    assert all(n == 1 for _rid, n in cases)
    assert {rid for rid, _n in cases} == set(request_ids)

    auth_url = own_platform.database_urls["authorization"]
    # One record per decided line (issue 12): the approved ones usable, the pended ones waiting.
    auths = _count(auth_url, "SELECT request_id, line_number, count(*) FROM authorizations "
                             "GROUP BY request_id, line_number")
    assert all(n == 1 for _r, _l, n in auths)
    assert {r for r, _l, _n in auths} == set(request_ids)
    approved = _count(auth_url, "SELECT request_id FROM authorizations WHERE status = 'approved'")
    assert {r for (r,) in approved} == {v.request_id for v in complete}
    numbers = _count(auth_url, "SELECT count(DISTINCT authorization_number), count(*) FROM authorizations")
    assert numbers[0][0] == numbers[0][1] == TOTAL
    intake_rows = _count(own_platform.database_urls["intake"],
                         "SELECT count(*), count(DISTINCT idempotency_key) FROM requests")
    assert intake_rows[0] == (TOTAL, TOTAL)
    # Intake tells the same story: every complete request shows its one authorization number.
    shown = {v.lines[0].authorization.authorization_number for v in complete}
    assert len(shown) == len(complete)
    assert "" not in shown


def test_sigterm_stops_each_service_gracefully(own_platform: Platform) -> None:
    clients = Clients(own_platform)
    request = lumbar_mri(meets=True)
    request.wait_ms = 15000
    assert clients.intake.SubmitRequest(request, timeout=30).request.status == intake_pb2.REQUEST_STATUS_COMPLETE
    procs = dict(own_platform.procs)
    # A call in flight when SIGTERM arrives still gets its answer. With review stopped first nothing
    # can settle the slow request, so its call stays in intake for all of its wait_ms (well inside
    # intake's 10 s shutdown grace); SIGTERM goes out as soon as intake has recorded the request,
    # i.e. once the call is provably inside the server.
    own_platform.kill("review", signal.SIGTERM)
    slow = lumbar_mri(meets=False)
    slow.wait_ms = 5000
    answer: list[intake_pb2.SubmitRequestResponse] = []
    caller = threading.Thread(target=lambda: answer.append(clients.intake.SubmitRequest(slow, timeout=30)))
    caller.start()
    wait_until(lambda: _count(own_platform.database_urls["intake"],
                              "SELECT count(*) FROM requests WHERE idempotency_key = :key", key=slow.idempotency_key),
               30, what="intake to record the slow request", until=lambda rows: rows == [(1,)])
    for service in ("intake", "authorization"):
        own_platform.kill(service, signal.SIGTERM)
    caller.join(30)
    clients.close()
    assert answer
    assert answer[0].request.request_id
    assert answer[0].request.status == intake_pb2.REQUEST_STATUS_IN_REVIEW  # it waited in intake, unsettled
    for service, proc in procs.items():
        assert proc.returncode == 0, f"{service} exited with {proc.returncode}"
        log = own_platform.log_path(service).read_text()
        assert f"{service} stopped" in log
        # kafka-python 3 may log a socket race of its own while closing; ours must be clean.
        ours = [line for line in log.splitlines()
                if " services." in line and (" ERROR " in line or " WARNING " in line)]
        assert not ours, ours
