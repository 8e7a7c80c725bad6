"""Acceptance: kill -9 of the review service in the middle of a stream of
requests, then a restart: every request has exactly one determination and every
approved line exactly one authorization."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text
from ur.intake.v1 import intake_pb2

from services.cli.platform import Platform
from tests.e2e.conftest import Clients, start_platform
from tests.factories import lumbar_mri

pytestmark = pytest.mark.e2e

TOTAL = 150
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


@pytest.fixture
def own_platform(tmp_path: Path, make_database: Callable[[str], str], kafka_bootstrap: str) -> Iterator[Platform]:
    running = start_platform(tmp_path, make_database, kafka_bootstrap, f"urt{uuid.uuid4().hex[:10]}")
    yield running
    running.stop()


def _count(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


def _submit_with_retries(clients: Clients, request: intake_pb2.SubmitRequestRequest) -> intake_pb2.RequestView:
    """What a prior-authorization queue does: resend the same request (same idempotency key)
    until intake answers; a request recorded before the crash comes back as a replay."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return clients.intake.SubmitRequest(request, timeout=10).request
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("victim", ["review", "authorization", "intake"])
def test_kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(own_platform: Platform,
                                                                            victim: str) -> None:
    clients = Clients(own_platform)
    request_ids: list[str] = []
    lock = threading.Lock()
    submitted = threading.Event()

    def submit(batch: range) -> None:
        for i in batch:
            # Alternate approvals and referrals so both paths cross the crash.
            request = lumbar_mri(meets=i % 4 != 0)
            view = _submit_with_retries(clients, request)
            with lock:
                request_ids.append(view.request_id)
                if len(request_ids) >= TOTAL // 3:
                    submitted.set()

    workers = [threading.Thread(target=submit, args=(range(k, TOTAL, 4),)) for k in range(4)]
    for w in workers:
        w.start()
    assert submitted.wait(60)
    own_platform.kill(victim, signal.SIGKILL)
    time.sleep(1.0)
    own_platform.start(victim)
    own_platform.wait_healthy(victim, timeout_s=120)
    for w in workers:
        w.join()
    assert len(request_ids) == TOTAL and len(set(request_ids)) == TOTAL
    views = [clients.settle(rid, timeout_s=120) for rid in request_ids]
    clients.close()

    complete = [v for v in views if v.status == intake_pb2.REQUEST_STATUS_COMPLETE]
    pended = [v for v in views if v.status == intake_pb2.REQUEST_STATUS_PENDED]
    assert len(complete) + len(pended) == TOTAL
    assert len(pended) == sum(1 for i in range(TOTAL) if i % 4 == 0)

    review_url = own_platform.database_urls["review"]
    cases = _count(review_url, "SELECT request_id, count(*) FROM cases GROUP BY request_id")
    assert len(cases) == TOTAL and all(n == 1 for _rid, n in cases)
    assert {rid for rid, _n in cases} == set(request_ids)

    auth_url = own_platform.database_urls["authorization"]
    auths = _count(auth_url, "SELECT request_id, line_number, count(*) FROM authorizations "
                             "GROUP BY request_id, line_number")
    assert all(n == 1 for _r, _l, n in auths)
    assert {r for r, _l, _n in auths} == {v.request_id for v in complete}
    numbers = _count(auth_url, "SELECT count(DISTINCT authorization_number), count(*) FROM authorizations")
    assert numbers[0][0] == numbers[0][1] == len(complete)
    intake_rows = _count(own_platform.database_urls["intake"],
                         "SELECT count(*), count(DISTINCT idempotency_key) FROM requests")
    assert intake_rows[0] == (TOTAL, TOTAL)
    # Intake tells the same story: every complete request shows its one authorization number.
    shown = {v.lines[0].authorization.authorization_number for v in complete}
    assert len(shown) == len(complete) and "" not in shown


def test_sigterm_stops_each_service_gracefully(own_platform: Platform) -> None:
    clients = Clients(own_platform)
    request = lumbar_mri(meets=True)
    request.wait_ms = 15000
    assert clients.intake.SubmitRequest(request, timeout=30).request.status == intake_pb2.REQUEST_STATUS_COMPLETE
    # A call in flight when SIGTERM arrives still gets its answer.
    slow = lumbar_mri(meets=False)
    slow.wait_ms = 2000
    answer: list[intake_pb2.SubmitRequestResponse] = []
    caller = threading.Thread(target=lambda: answer.append(clients.intake.SubmitRequest(slow, timeout=30)))
    caller.start()
    time.sleep(0.3)
    procs = dict(own_platform.procs)
    for service in ("intake", "review", "authorization"):
        own_platform.kill(service, signal.SIGTERM)
    caller.join(30)
    clients.close()
    assert answer and answer[0].request.request_id
    for service, proc in procs.items():
        assert proc.returncode == 0, f"{service} exited with {proc.returncode}"
        log = own_platform.log_path(service).read_text()
        assert f"{service} stopped" in log
        # kafka-python 3 may log a socket race of its own while closing; ours must be clean.
        ours = [line for line in log.splitlines()
                if " services." in line and (" ERROR " in line or " WARNING " in line)]
        assert not ours, ours
