"""Kafka clients (kafka-python) configured the same way in every service."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

logger = logging.getLogger(__name__)


#: How fast every client finds the broker again after an outage. kafka-python backs off reconnects
#: exponentially up to 30 s (the Java client: 1 s), so a broker back after a 10 s outage could go
#: unnoticed for another half minute; capped at 1 s, clients are back within about a second of it.
RECONNECT: dict[str, int] = {"reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 1000}


# What the platform uses of kafka-python's clients (which carry no type information), so that the
# consumer loop and the outbox relay are typed against them and run against test doubles alike.

class Record(Protocol):
    """A consumed record (kafka-python's ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class SendFuture(Protocol):
    def get(self, timeout: float | None = ...) -> object:
        """Block until the broker acknowledged the record; raise if it did not."""


class Producer(Protocol):
    def send(self, topic: str, *, key: bytes | None = ..., value: bytes | None = ...,
             headers: Sequence[tuple[str, bytes]] | None = ...) -> SendFuture: ...

    def flush(self, timeout: float | None = ...) -> None: ...

    def close(self, timeout: float | None = ...) -> None: ...


class Consumer(Protocol):
    def poll(self, timeout_ms: int = ..., max_records: int | None = ...) -> Mapping[TopicPartition, Sequence[Record]]:
        ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], timeout_ms: int | None = ...) -> None: ...

    def close(self, autocommit: bool = ..., timeout_ms: int | None = ...) -> None: ...


def _servers(bootstrap: str) -> list[str]:
    return [s.strip() for s in bootstrap.split(",") if s.strip()]


def make_producer(bootstrap: str, client_id: str, **overrides: object) -> Producer:
    """acks=all with idempotence: a record is acknowledged only once the broker has it durably."""
    config: dict[str, object] = {
        "bootstrap_servers": _servers(bootstrap),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "batch_size": 64 * 1024,
        "retries": 10,
        "request_timeout_ms": 15000,
        "max_block_ms": 15000,
        **RECONNECT,
    }
    config.update(overrides)
    producer: Producer = KafkaProducer(**config)
    return producer


def make_consumer(bootstrap: str, group_id: str, client_id: str, topics: Iterable[str],
                  **overrides: object) -> Consumer:
    """Manual offset commits only: offsets move after the database transaction commits."""
    config: dict[str, object] = {
        "bootstrap_servers": _servers(bootstrap),
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 100,
        "max_poll_records": 500,
        "max_poll_interval_ms": 300000,
        "session_timeout_ms": 10000,
        "heartbeat_interval_ms": 3000,
        # Notice new topics/partitions within seconds, not the default five minutes.
        "metadata_max_age_ms": 10000,
        **RECONNECT,
    }
    config.update(overrides)
    consumer = KafkaConsumer(**config)  # kafka-python's own class: partitions_for_topic, subscribe
    names = list(topics)
    # Joining the group before the topics' partitions are known gets an empty assignment
    # that is only corrected at the next metadata refresh; wait until they are visible.
    deadline = time.monotonic() + 60
    while not all(consumer.partitions_for_topic(t) for t in names):
        if time.monotonic() > deadline:
            consumer.close()
            raise RuntimeError(f"topics {names} have no partitions visible on {bootstrap} after 60s")
        time.sleep(0.2)
    consumer.subscribe(names)
    subscribed: Consumer = consumer
    return subscribed


def wait_for_broker(bootstrap: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=_servers(bootstrap), client_id="ur-probe",
                                     request_timeout_ms=5000, bootstrap_timeout_ms=5000, **RECONNECT)
            admin.list_topics()
            admin.close()
        except (KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {exc}") from exc
            time.sleep(0.5)
        else:
            return


def topic_retention_ms(bootstrap: str, names: Iterable[str]) -> dict[str, int | None]:
    """Each topic's ``retention.ms`` as the broker reports it (``None`` when it reports none)."""
    admin = KafkaAdminClient(bootstrap_servers=_servers(bootstrap), client_id="ur-topic-admin", **RECONNECT)
    try:
        described = admin.describe_configs([ConfigResource("TOPIC", name, ["retention.ms"]) for name in names],
                                           config_filter="all")
    finally:
        admin.close()
    found: dict[str, int | None] = {}
    for name, configs in described.get("topic", {}).items():
        value = configs.get("retention.ms", {}).get("value")
        found[name] = int(value) if value is not None else None
    return found


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    """Create the topics that don't exist yet (idempotent; safe to race with another service)."""
    admin = KafkaAdminClient(bootstrap_servers=_servers(bootstrap), client_id="ur-topic-admin", **RECONNECT)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return
        try:
            admin.create_topics([NewTopic(name=n, num_partitions=partitions, replication_factor=1)
                                 for n in missing])
            logger.info("created topics %s", missing)
        except TopicAlreadyExistsError:
            pass
    finally:
        admin.close()


def consumer_lag(consumer: object, timeout_ms: int = 1000) -> dict[TopicPartition, int]:
    """Records not yet consumed on each partition ``consumer`` (kafka-python's) holds: the end offsets
    the broker reports minus the consumer's positions. Bounded by ``timeout_ms``; raises KafkaError
    when the broker does not answer. Call it on the consumer's own thread."""
    client: Any = consumer
    assigned = list(client.assignment())
    if not assigned:
        return {}
    ends = client.end_offsets(assigned, timeout_ms=timeout_ms)
    lags: dict[TopicPartition, int] = {}
    for tp in assigned:
        position = client.position(tp, timeout_ms=timeout_ms)
        if tp in ends and position is not None:
            lags[TopicPartition(tp.topic, tp.partition)] = max(0, int(ends[tp]) - int(position))
    return lags
