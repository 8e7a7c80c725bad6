"""The fault-injection tier: the platform as processes on infrastructure the tests break on purpose.

Each test breaks something (the broker killed or paused, PostgreSQL killed, a record delivered
twice) while a stream of requests crosses the fault, then checks that nothing was lost or
duplicated (one determination per request, one authorization per approved line) and how soon
decisions resumed. The broker and PostgreSQL they break are their own (``infra.py``); the shared
ones are only used where nothing is broken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text
from ur.intake.v1 import intake_pb2

from services.cli.platform import Platform
from tests.e2e.conftest import Clients
from tests.factories import lumbar_mri
from tests.faults.infra import ThrowawayBroker
from tests.polling import wait_until

#: How soon after the broker (or database) is back a new request must be decided.
RECOVERY_BUDGET_S = 15.0
#: How soon health must follow a dependency going away and coming back.
HEALTH_BUDGET_S = 5.0
SERVICES = ("intake", "review", "authorization")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayBroker]:
    """A broker of the fault tier's own, for the whole session (started once: about 4 s)."""
    running = ThrowawayBroker(tmp_path_factory.mktemp("kafka"))
    running.start()
    yield running
    running.stop()


@dataclass
class Submitted:
    request_id: str
    meets: bool
    key: str


@dataclass
class Stream:
    """Requests submitted in the background at a steady rate, each resent (same idempotency key) until
    intake takes it, as a prior-authorization gateway does; alternately approvable and not."""

    clients: Clients
    per_second: float = 10.0
    retryable: Sequence[grpc.StatusCode] = RETRYABLE
    submitted: list[Submitted] = field(default_factory=list)
    refused: int = 0
    #: Codes outside ``retryable`` that a background submitter met (it stops at the first).
    unexpected: list[grpc.StatusCode] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _counter: int = 0

    def submit(self, meets: bool) -> Submitted:
        request = lumbar_mri(meets=meets)
        while True:
            try:
                view = self.clients.intake.SubmitRequest(request, timeout=10).request
            except grpc.RpcError as exc:
                if exc.code() not in self.retryable:
                    raise
                with self._lock:
                    self.refused += 1
                time.sleep(0.2)
                continue
            done = Submitted(view.request_id, meets, request.idempotency_key)
            with self._lock:
                self.submitted.append(done)
            return done

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._counter += 1
                meets = self._counter % 4 != 0
            started = time.monotonic()
            try:
                self.submit(meets)
            except grpc.RpcError as exc:
                with self._lock:
                    self.unexpected.append(exc.code())
                return
            self._stop.wait(max(0.0, interval_s - (time.monotonic() - started)))

    def start(self, threads: int = 2) -> None:
        for _ in range(threads):
            thread = threading.Thread(target=self._run, args=(threads / self.per_second,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> list[Submitted]:
        """Stop submitting (idempotent); returns every request submitted."""
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), "a submitter is stuck"
        with self._lock:
            return list(self.submitted)

    def count(self) -> int:
        with self._lock:
            return len(self.submitted)


def rows(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def decided(platform: Platform, request_id: str) -> bool:
    """Whether review has recorded its determination of the request."""
    return bool(rows(platform.database_urls["review"], "SELECT 1 FROM cases WHERE request_id = :id", id=request_id))


def time_to_decision(platform: Platform, stream: Stream, since: float, what: str) -> float:
    """Submit a new request now and return how long after ``since`` (a ``time.monotonic()``) review
    decided it; fails when that exceeds :data:`RECOVERY_BUDGET_S`."""
    probe = stream.submit(meets=False)
    left = RECOVERY_BUDGET_S - (time.monotonic() - since)
    wait_until(lambda: decided(platform, probe.request_id), max(left, 0.1), interval_s=0.1,
               what=f"a request submitted after {what} to be decided within {RECOVERY_BUDGET_S:g} s of it")
    elapsed = time.monotonic() - since
    print(f"\n[faults] decisions resumed {elapsed:.1f} s after {what}")  # the bench quotes these lines
    return elapsed


@contextmanager
def streaming(clients: Clients, *, warmup: int = 20,
              retryable: Sequence[grpc.StatusCode] = RETRYABLE) -> Iterator[Stream]:
    """A :class:`Stream` running from ``warmup`` submissions in until the block ends (also on failure)."""
    stream = Stream(clients, retryable=retryable)
    stream.start()
    try:
        wait_until(stream.count, 60, what=f"{warmup} submissions before the fault",
                   until=lambda count: count >= warmup)
        yield stream
    finally:
        stream.stop()


def recovers(platform: Platform, clients: Clients, stream: Stream, back: float, what: str) -> None:
    """What every fault test ends with, ``back`` being the ``time.monotonic()`` of the return to
    health: a new request is decided within :data:`RECOVERY_BUDGET_S`, the stream runs two more
    seconds, and then every request it sent settles exactly once."""
    recovered = time_to_decision(platform, stream, back, what)
    time.sleep(2)
    requests = stream.stop()
    assert recovered <= RECOVERY_BUDGET_S
    assert stream.unexpected == [], f"submissions met {stream.unexpected}, not only {list(stream.retryable)}"
    assert_exactly_once(platform, clients, requests)


def assert_exactly_once(platform: Platform, clients: Clients, requests: Sequence[Submitted]) -> None:
    """Every request settles with one determination; every approved line has one authorization."""
    ids = [r.request_id for r in requests]
    assert len(set(ids)) == len(ids), "intake handed out a request id twice"
    views = {rid: clients.settle(rid, timeout_s=90) for rid in ids}
    approvable = {r.request_id for r in requests if r.meets}
    complete = {rid for rid, v in views.items() if v.status == intake_pb2.REQUEST_STATUS_COMPLETE}
    pended = {rid for rid, v in views.items() if v.status == intake_pb2.REQUEST_STATUS_PENDED}
    assert complete == approvable
    assert pended == set(ids) - approvable

    cases = {rid: n for rid, n in rows(platform.database_urls["review"],
                                          "SELECT request_id, count(*) FROM cases WHERE request_id = ANY(:ids) "
                                          "GROUP BY request_id", ids=ids)}
    assert set(cases) == set(ids), f"{len(set(ids) - set(cases))} requests have no determination"
    assert all(n == 1 for n in cases.values())
    # One record per decided line (issue 12): the approved ones usable, the pended ones waiting.
    auths = rows(platform.database_urls["authorization"],
                 "SELECT request_id, line_number, count(*), min(status) FROM authorizations "
                 "WHERE request_id = ANY(:ids) GROUP BY request_id, line_number", ids=ids)
    assert all(n == 1 for _r, _l, n, _s in auths), "a line was authorized twice"
    assert {r for r, _l, _n, status in auths if status == "approved"} == approvable
    keys = [r.key for r in requests]
    stored = rows(platform.database_urls["intake"],
                  "SELECT count(*), count(DISTINCT idempotency_key) FROM requests WHERE idempotency_key = ANY(:keys)",
                  keys=keys)
    assert stored == [(len(keys), len(keys))]
    shown = {views[rid].lines[0].authorization.authorization_number for rid in complete}
    assert len(shown) == len(complete)
    assert "" not in shown


def health(platform: Platform, service: str, name: str = "") -> str:
    """The service's gRPC health status of ``name`` ("" = the whole service), or why there was none."""
    with platform.channel(service) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name),
                                                              timeout=1.0)
        except grpc.RpcError as exc:
            return f"no answer ({exc.code().name})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def health_turns(platform: Platform, status: str, since: float, what: str,
                 services: Sequence[str] = SERVICES, name: str = "", budget_s: float = HEALTH_BUDGET_S) -> float:
    """Wait until every one of ``services`` reports ``status`` for health ``name``; fails when that
    takes more than ``budget_s`` from ``since`` (a ``time.monotonic()``). Returns the seconds it took."""
    left = budget_s - (time.monotonic() - since)
    wait_until(lambda: {s: health(platform, s, name) for s in services}, max(left, 0.1),
               what=f"health {name or '(service)'} {status} within {budget_s:g} s of {what}",
               until=lambda statuses: all(v == status for v in statuses.values()))
    elapsed = time.monotonic() - since
    print(f"\n[faults] health {status} {elapsed:.1f} s after {what}")
    return elapsed


def log_of(platform: Platform, service: str) -> str:
    return Path(platform.log_path(service)).read_text(errors="replace")
