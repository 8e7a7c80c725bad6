"""Health that follows a service's real dependencies: a monitor that checks them in the background
and sets the gRPC health statuses, with hysteresis.

Each :class:`Check` is a pluggable probe (database reachable, broker reachable, consumer assigned and
not stalled; a service may add its own). Every ``interval_s`` the monitor runs each probe on its own
thread and gives it ``timeout_s``: a probe that raises, says what is wrong, or does not answer in
time has failed (a probe still stuck from an earlier round is not started again, and keeps failing).
A dependency turns unhealthy after ``failures`` consecutive failed checks and healthy again after
``successes`` consecutive passed ones, so one slow answer does not flap the status; each turn is
logged once, with the reason.

Statuses: each health name (``""`` for the whole service, a service's full name for its API) lists
the checks it depends on and is SERVING while all of them are healthy. The runtime
(services/common/runtime.py) gives ``""`` every check and the API names the checks the API needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from services.common.kafka_io import Consumer, Record

logger = logging.getLogger(__name__)

#: A probe: None when the dependency is fine, else one line saying what is wrong. Raising counts as
#: failing, with the exception as the reason.
Probe = Callable[[], str | None]


@dataclass(frozen=True)
class Check:
    """One dependency of a service and how to probe it."""

    name: str
    probe: Probe


@dataclass
class _State:
    healthy: bool = True
    failures: int = 0
    successes: int = 0
    reason: str = ""
    running: futures.Future[str | None] | None = None
    pool: futures.ThreadPoolExecutor = field(default_factory=lambda: futures.ThreadPoolExecutor(max_workers=1))


class HealthMonitor:
    """Runs ``checks`` and calls ``publish(name, serving)`` when a health name's status changes.
    Every dependency starts healthy (the runtime starts the monitor once it has connected to them)."""

    def __init__(self, checks: Sequence[Check], names: Mapping[str, Sequence[str]],
                 publish: Callable[[str, bool], None], *, interval_s: float = 1.0, timeout_s: float = 2.0,
                 failures: int = 2, successes: int = 2) -> None:
        known = {c.name for c in checks}
        for name, needs in names.items():
            missing = set(needs) - known
            if missing:
                raise ValueError(f"health name {name!r} needs unknown checks {sorted(missing)}")
        self._checks = list(checks)
        self._names = {name: tuple(needs) for name, needs in names.items()}
        self._publish = publish
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._failures = failures
        self._successes = successes
        self._states = {c.name: _State() for c in checks}
        self._published = {name: True for name in self._names}

    def healthy(self, check: str) -> bool:
        return self._states[check].healthy

    def serving(self, name: str) -> bool:
        return self._published[name]

    def check_once(self) -> None:
        """One round: run every probe that is not still running, wait at most ``timeout_s`` for
        them, update the dependencies' states and publish the statuses that changed."""
        for check in self._checks:
            state = self._states[check.name]
            if state.running is None or state.running.done():
                state.running = state.pool.submit(check.probe)
        deadline = time.monotonic() + self._timeout_s
        for check in self._checks:
            self._record(check.name, self._outcome(self._states[check.name], deadline))
        self._publish_changes()

    def _outcome(self, state: _State, deadline: float) -> str | None:
        running = state.running
        if running is None:
            return "not checked"
        try:
            return running.result(timeout=max(0.0, deadline - time.monotonic()))
        except futures.TimeoutError:
            return f"no answer within {self._timeout_s:g} s"
        except Exception as exc:
            logger.debug("health probe raised", exc_info=True)  # the reason is logged when the state turns
            lines = str(exc).strip().splitlines()
            return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

    def _record(self, name: str, problem: str | None) -> None:
        state = self._states[name]
        if problem is None:
            state.failures, state.successes = 0, state.successes + 1
            if not state.healthy and state.successes >= self._successes:
                state.healthy = True
                logger.info("health: %s is healthy again (after: %s)", name, state.reason)
            return
        state.successes, state.failures, state.reason = 0, state.failures + 1, problem
        if state.healthy and state.failures >= self._failures:
            state.healthy = False
            logger.warning("health: %s failed %d checks in a row: %s", name, state.failures, problem)

    def _publish_changes(self) -> None:
        changed: dict[str, bool] = {}
        for name, needs in self._names.items():
            serving = all(self._states[n].healthy for n in needs)
            if serving != self._published[name]:
                self._published[name] = changed[name] = serving
        if not changed:
            return
        failing = sorted(n for n, s in self._states.items() if not s.healthy)
        turned = "; ".join(f"{name!r} {'SERVING' if serving else 'NOT_SERVING'}" for name, serving in changed.items())
        logger.log(logging.WARNING if failing else logging.INFO, "health: %s%s", turned,
                   f" ({', '.join(failing)} unhealthy)" if failing else "")
        for name, serving in changed.items():
            self._publish(name, serving)

    def run(self, stop: threading.Event) -> None:
        """Check every ``interval_s`` until ``stop`` is set."""
        while not stop.wait(self._interval_s):
            self.check_once()
        self.close()

    def close(self) -> None:
        for state in self._states.values():
            state.pool.shutdown(wait=False, cancel_futures=True)


class ConsumerWatch:
    """Wraps the Kafka consumer a consumer loop polls, noting when each poll returned and when the
    consumer last held partitions: :meth:`probe` is the 'consumer assigned and not stalled' check.
    Everything else passes through to the consumer (it is used on the loop's thread only)."""

    def __init__(self, consumer: Consumer, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._consumer = consumer
        self._stall_s = stall_s
        self._clock = clock
        now = clock()
        self.last_poll = now
        self.last_assigned = now

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Mapping[TopicPartition, Sequence[Record]]:
        records = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        now = self._clock()
        self.last_poll = now
        if self._consumer.assignment():
            self.last_assigned = now
        return records

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(partition, offset)

    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment()

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int | None = None) -> None:
        self._consumer.commit(offsets, timeout_ms=timeout_ms)

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        self._consumer.close(autocommit=autocommit, timeout_ms=timeout_ms)

    def probe(self) -> str | None:
        now = self._clock()
        if now - self.last_poll > self._stall_s:
            return f"the consumer has not polled for {now - self.last_poll:.0f} s"
        if now - self.last_assigned > self._stall_s:
            return f"the consumer has held no partition for {now - self.last_assigned:.0f} s"
        return None
