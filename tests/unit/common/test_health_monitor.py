"""The health monitor (services/common/health.py): dependencies checked in rounds, with hysteresis,
statuses published per health name only when they change; the consumer watch's stall check."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from services.common.health import Check, ConsumerWatch, HealthMonitor
from services.common.kafka_io import Record


class Dependency:
    """A probe whose answer the test sets: None (fine) or what is wrong."""

    def __init__(self) -> None:
        self.problem: str | None = None

    def probe(self) -> str | None:
        return self.problem


class Published:
    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []

    def __call__(self, name: str, serving: bool) -> None:
        self.changes.append((name, serving))


@pytest.fixture
def parts() -> Iterator[tuple[Dependency, Dependency, Published, HealthMonitor]]:
    database, broker, published = Dependency(), Dependency(), Published()
    monitor = HealthMonitor([Check("database", database.probe), Check("broker", broker.probe)],
                            {"": ["database", "broker"], "ur.x.v1.X": ["database"]}, published,
                            timeout_s=5.0, failures=2, successes=3)
    yield database, broker, published, monitor
    monitor.close()


def test_a_dependency_turns_unhealthy_after_n_failures_and_healthy_after_m_successes(
        parts: tuple[Dependency, Dependency, Published, HealthMonitor], caplog: pytest.LogCaptureFixture) -> None:
    database, _broker, published, monitor = parts
    monitor.check_once()
    assert published.changes == []  # everything starts healthy; nothing changed
    database.problem = "connection refused"
    monitor.check_once()
    assert published.changes == []
    assert monitor.healthy("database")
    with caplog.at_level(logging.INFO):
        monitor.check_once()
    assert published.changes == [("", False), ("ur.x.v1.X", False)]
    database.problem = None
    monitor.check_once()
    monitor.check_once()
    assert len(published.changes) == 2  # two successes of three: still NOT_SERVING
    with caplog.at_level(logging.INFO):
        monitor.check_once()
    assert published.changes[2:] == [("", True), ("ur.x.v1.X", True)]
    turns = [r.getMessage() for r in caplog.records]
    assert any("database failed 2 checks in a row: connection refused" in m for m in turns)
    assert any("database is healthy again" in m for m in turns)


def test_a_flapping_dependency_does_not_flap_the_status(
        parts: tuple[Dependency, Dependency, Published, HealthMonitor]) -> None:
    database, _broker, published, monitor = parts
    for problem in ("slow", None, "slow", None, "slow", None):
        database.problem = problem
        monitor.check_once()
    assert published.changes == []


def test_each_name_follows_only_the_checks_it_needs(
        parts: tuple[Dependency, Dependency, Published, HealthMonitor]) -> None:
    _database, broker, published, monitor = parts
    broker.problem = "no answer"
    monitor.check_once()
    monitor.check_once()
    assert published.changes == [("", False)]
    assert monitor.serving("ur.x.v1.X")
    assert not monitor.serving("")


def test_a_probe_that_raises_or_hangs_fails() -> None:
    released = threading.Event()

    def hangs() -> str | None:
        released.wait()
        return None

    def raises() -> str | None:
        raise OSError("connection reset")

    published = Published()
    monitor = HealthMonitor([Check("stuck", hangs), Check("broken", raises)], {"": ["stuck"], "b": ["broken"]},
                            published, timeout_s=0.01, failures=2, successes=1)
    try:
        monitor.check_once()
        monitor.check_once()  # the stuck probe is not started again while it hangs: it keeps failing
        assert published.changes == [("", False), ("b", False)]
    finally:
        released.set()
        monitor.close()


def test_an_unknown_check_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown checks"):
        HealthMonitor([Check("database", lambda: None)], {"": ["database", "broker"]}, Published())


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.closed = False

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Mapping[TopicPartition, Sequence[Record]]:
        return {}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        raise NotImplementedError

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int | None = None) -> None:
        raise NotImplementedError

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        self.closed = True


def test_the_consumer_watch_reports_a_stall_and_a_missing_assignment() -> None:
    now = [100.0]
    consumer = FakeConsumer()
    watch = ConsumerWatch(consumer, stall_s=60, clock=lambda: now[0])
    assert watch.probe() is None  # just started: not stalled yet
    now[0] = 150.0
    watch.poll(timeout_ms=200)  # polls, but holds no partition
    now[0] = 161.0
    assert watch.probe() == "the consumer has held no partition for 61 s"
    consumer.assigned = {TopicPartition("t", 0)}
    watch.poll(timeout_ms=200)
    assert watch.probe() is None
    now[0] = 222.0  # the loop stopped polling (a handler or a commit hangs)
    assert watch.probe() == "the consumer has not polled for 61 s"
    watch.close()  # passed through to the consumer
    assert consumer.closed
