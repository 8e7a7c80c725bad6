"""Hand-written Kafka doubles with the shape of kafka-python's clients (unit tests only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeFuture:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_with = fail_with

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: Sequence[tuple[str, bytes]] | None = None) -> FakeFuture:
        if self.fail_with is None:
            self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers or [])})
        return FakeFuture(self.fail_with)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class FakeConsumer:
    """Hands out scripted poll results; records seeks and commits. ``commit_failures`` are raised,
    one per commit call, before commits succeed again."""

    def __init__(self, polls: list[list[Record]], commit_failures: Sequence[Exception] = (),
                 *, redeliver: bool = False) -> None:
        self.polls = polls
        self.redeliver = redeliver  # a seek hands the records from that offset on out again, next poll
        self.last: dict[TopicPartition, list[Record]] = {}
        self.again: list[Record] = []
        self.when_drained: Any = None  # called once every scripted poll was handed out
        self.commits: list[dict[TopicPartition, Any]] = []
        self.commit_timeouts: list[int | None] = []
        self.commit_failures = list(commit_failures)
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.assigned: set[TopicPartition] = {TopicPartition(r.topic, r.partition) for p in polls for r in p}

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        if self.again:
            records, self.again = self.again, []
        elif self.polls:
            records = self.polls.pop(0)
        else:
            if self.when_drained is not None:
                self.when_drained()
            return {}
        grouped: dict[TopicPartition, list[Record]] = {}
        for r in records:
            grouped.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        self.last = grouped
        return grouped

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        if self.redeliver:
            self.again.extend(r for r in self.last.get(tp, []) if r.offset >= offset)

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int | None = None) -> None:
        self.commit_timeouts.append(timeout_ms)
        if self.commit_failures:
            raise self.commit_failures.pop(0)
        self.commits.append(offsets)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        pass
