"""Kafka clients (kafka-python) configured the same way in every service, over PLAINTEXT, SSL or
SASL_SSL (:class:`KafkaSecurity`, from the settings): every producer, consumer and admin client is
made here, so the security options are added in this one place."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from services.common.settings import PlatformSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients reach the brokers. PLAINTEXT (the default); SSL: TLS, the brokers' certificates
    checked against ``cafile`` (else the system's CAs) and their host names, and a client certificate
    when ``certfile``/``keyfile`` are given; SASL_SSL: the same TLS and a SCRAM login whose password
    is read from ``password_file`` each time a client is made (a rotated secret needs no restart)."""

    protocol: str = "PLAINTEXT"
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password_file: Path | None = None

    @classmethod
    def of(cls, settings: PlatformSettings) -> KafkaSecurity:
        return cls(protocol=settings.kafka_security_protocol, cafile=settings.kafka_ssl_cafile,
                   certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile,
                   sasl_mechanism=settings.kafka_sasl_mechanism, username=settings.kafka_sasl_username,
                   password_file=settings.kafka_sasl_password_file)

    def options(self) -> dict[str, object]:
        """kafka-python configuration for this security (the same keys for every kind of client)."""
        if self.protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        options: dict[str, object] = {"security_protocol": self.protocol, "ssl_check_hostname": True}
        if self.cafile is not None:
            options["ssl_cafile"] = str(self.cafile)
        if self.certfile is not None:
            options["ssl_certfile"] = str(self.certfile)
            options["ssl_keyfile"] = str(self.keyfile) if self.keyfile is not None else None
        if self.protocol == "SASL_SSL":
            if not self.username or self.password_file is None:
                raise ValueError("SASL_SSL needs a username and a password file")
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password_file.read_text(encoding="utf-8").strip())
        return options


PLAINTEXT = KafkaSecurity()


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


def make_producer(bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT,
                  **overrides: object) -> Producer:
    """acks=all with idempotence: a record is acknowledged only once the broker has it durably."""
    config: dict[str, object] = {
        **security.options(),
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
                  security: KafkaSecurity = PLAINTEXT, **overrides: object) -> Consumer:
    """Manual offset commits only: offsets move after the database transaction commits."""
    config: dict[str, object] = {
        **security.options(),
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
    names = list(topics)
    wait_for_topics(bootstrap, names, security=security)
    consumer = KafkaConsumer(**config)  # kafka-python's own class: subscribe
    consumer.subscribe(names)
    # Joining the group (at the first poll) before the consumer's own metadata holds the topics'
    # partitions gets an empty assignment, which a rejoin may or may not correct. Subscribing asked the
    # broker for these topics' metadata (kafka-python's network thread fetches it): wait until its
    # cache holds them. Read from kafka-python 3.0's cluster metadata (pinned in pyproject): the public
    # partitions_for_topic would fetch the metadata of every topic in the cluster instead.
    cluster: Any = getattr(consumer, "_cluster", None)
    started = time.monotonic()
    asked = started
    while cluster is not None and not all(cluster.partitions_for_topic(t) for t in names):
        now = time.monotonic()
        if now - started > 60:
            consumer.close()
            raise RuntimeError(f"topics {names} have no partitions known to the consumer after 60s")
        if now - asked > 1:  # the answer to the subscription's request is overdue: ask again
            cluster.request_update()
            asked = now
        time.sleep(0.02)
    subscribed: Consumer = consumer
    return subscribed


def make_admin(bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT,
               **overrides: object) -> KafkaAdminClient:
    """An admin client with the security options and the reconnect backoff every client has."""
    return KafkaAdminClient(**{**security.options(), "bootstrap_servers": _servers(bootstrap), "client_id": client_id,
                               **RECONNECT, **overrides})


# Every metadata request here names its topics (or asks for none): the answer about the whole
# cluster grows with every topic on it, and a broker shared with other applications may carry
# thousands (issue 17: 'indifferent to the cluster').

def wait_for_broker(bootstrap: str, timeout_s: float = 60.0, security: KafkaSecurity = PLAINTEXT) -> None:
    """Wait until the broker describes the cluster (its brokers and controller; no topics)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = make_admin(bootstrap, "ur-probe", security, request_timeout_ms=5000, bootstrap_timeout_ms=5000)
            admin.describe_cluster()
            admin.close()
        except (KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {exc}") from exc
            time.sleep(0.5)
        else:
            return


def topic_retention_ms(bootstrap: str, names: Iterable[str],
                       security: KafkaSecurity = PLAINTEXT) -> dict[str, int | None]:
    """Each topic's ``retention.ms`` as the broker reports it (``None`` when it reports none)."""
    admin = make_admin(bootstrap, "ur-topic-admin", security)
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


def existing_topics(admin: KafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    """Of ``names``, the topics the broker has: name → partition count (asking about these only)."""
    wanted = list(names)
    if not wanted:
        return {}
    return {str(t["name"]): len(t.get("partitions") or ()) for t in admin.describe_topics(wanted)
            if t.get("error_code", 0) == 0}


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int,
                  security: KafkaSecurity = PLAINTEXT) -> None:
    """Create the topics that don't exist yet (idempotent; safe to race with another service)."""
    admin = make_admin(bootstrap, "ur-topic-admin", security)
    try:
        wanted = list(names)
        existing = existing_topics(admin, wanted)
        missing = [n for n in wanted if n not in existing]
        if not missing:
            return
        try:
            admin.create_topics({n: {"num_partitions": partitions, "replication_factor": 1} for n in missing})
            logger.info("created topics %s", missing)
        except TopicAlreadyExistsError:
            pass
    finally:
        admin.close()


def wait_for_topics(bootstrap: str, names: Sequence[str], timeout_s: float = 60.0,
                    security: KafkaSecurity = PLAINTEXT) -> None:
    """Wait until every one of ``names`` exists with its partitions; RuntimeError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    admin = make_admin(bootstrap, "ur-topic-admin", security)
    try:
        while True:
            found = existing_topics(admin, names)
            if all(found.get(n) for n in names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {list(names)} have no partitions visible on {bootstrap} after "
                                   f"{timeout_s:.0f}s")
            time.sleep(0.2)
    finally:
        admin.close()


def create_partitions(bootstrap: str, prefix: str, partitions: int, per_topic: int = 100,
                      security: KafkaSecurity = PLAINTEXT) -> list[str]:
    """Topics ``<prefix>.unrelated.<n>`` carrying ``partitions`` partitions in all (at most ``per_topic``
    each): a broker that also serves other applications. Returns the topic names."""
    sizes = [min(per_topic, partitions - start) for start in range(0, partitions, per_topic)]
    names = [f"{prefix}.unrelated.{n}" for n in range(len(sizes))]
    admin = make_admin(bootstrap, "ur-topic-admin", security)
    try:
        admin.create_topics({name: {"num_partitions": size, "replication_factor": 1}
                             for name, size in zip(names, sizes, strict=True)})
        admin.wait_for_topics(names, timeout_ms=120000)
    finally:
        admin.close()
    return names


def delete_topics(bootstrap: str, names: Iterable[str], security: KafkaSecurity = PLAINTEXT) -> list[str]:
    """Delete those of ``names`` that exist (a platform's topics when it is thrown away: the bench's,
    the tests'); returns the names deleted."""
    admin = make_admin(bootstrap, "ur-topic-admin", security, request_timeout_ms=10000, bootstrap_timeout_ms=10000)
    try:
        present = list(existing_topics(admin, names))
        if present:
            admin.delete_topics(present, raise_errors=False)
            logger.info("deleted topics %s", present)
        return present
    finally:
        admin.close()


def delete_topics_under(bootstrap: str, prefixes: Iterable[str], security: KafkaSecurity = PLAINTEXT) -> list[str]:
    """Delete every topic named ``<prefix>.*`` for one of ``prefixes`` (a throw-away platform's topics
    when their full list is not known: a test run's, the FHIR bench's); returns the names deleted.
    Lists the cluster's topics once: for clean-up only, never on a service's path."""
    heads = tuple(f"{p}." for p in prefixes)
    if not heads:
        return []
    admin = make_admin(bootstrap, "ur-topic-admin", security, request_timeout_ms=30000)
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(heads)]
        for start in range(0, len(doomed), 200):
            admin.delete_topics(doomed[start:start + 200], timeout_ms=30000)
        return doomed
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
