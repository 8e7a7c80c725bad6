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
    """Hands out scripted poll results; records seeks and commits."""

    def __init__(self, polls: list[list[Record]]) -> None:
        self.polls = polls
        self.when_drained: Any = None  # called once every scripted poll was handed out
        self.commits: list[dict[TopicPartition, Any]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        if not self.polls:
            if self.when_drained is not None:
                self.when_drained()
            return {}
        records = self.polls.pop(0)
        grouped: dict[TopicPartition, list[Record]] = {}
        for r in records:
            grouped.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return grouped

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(r.topic, r.partition) for poll in self.polls for r in poll}

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append(offsets)

    def close(self, autocommit: bool = False) -> None:
        pass
