"""Three replicas' outbox relays over one outbox on PostgreSQL, publishing to the real broker: while
events of many requests are written, the lease holder stalls in the middle of a round (its batch read,
none of it sent) and stays away past its lease, another replica takes over, then the stalled one wakes
up and sends its old batch.
Read back, the topic holds every event, and each request's events first appear in the order they were
written (later copies are the at-least-once contract's duplicates; consumers drop them by event id)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, func, select
from ur.events.v1 import events_pb2

from services.authorization.adapters import tables
from services.common import kafka_io, migrations
from services.common.clock import utcnow
from services.common.db import make_engine
from services.common.events import OutgoingEvent
from services.common.kafka_io import Producer, SendFuture
from services.common.outbox import OutboxRelay, RelayLease, add_events
from tests.polling import wait_until

pytestmark = pytest.mark.integration

LEASE_S = 5.0
KEYS_PER_WRITER = 40
EVENTS_PER_KEY = 8
WRITERS = 3


@dataclass
class MovableClock:
    """The real clock plus an offset the test moves forward: the holder's lease runs out when the test
    says so, not after a sleep."""

    offset: timedelta = timedelta()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        with self.lock:
            return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += timedelta(seconds=seconds)


class StallingProducer:
    """A real producer that, once :meth:`stall_next_round` is called, stops at the next record it is
    given (the holder has read its batch and sent none of it: the spot where a relay that skipped the
    rows another one holds would publish a request's later event first) until :meth:`resume`."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner
        self.armed = threading.Event()
        self.stalled = threading.Event()
        self.released = threading.Event()

    def send(self, topic: str, *, key: bytes | None = None, value: bytes | None = None,
             headers: Sequence[tuple[str, bytes]] | None = None) -> SendFuture:
        if self.armed.is_set():
            self.armed.clear()
            self.stalled.set()
            self.released.wait(120)
        return self.inner.send(topic, key=key, value=value, headers=headers)

    def flush(self, timeout: float | None = None) -> None:
        self.inner.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        self.inner.close(timeout=timeout)

    def stall_next_round(self) -> None:
        self.armed.set()

    def resume(self) -> None:
        self.released.set()


def _count(engine: Engine, *, published: bool) -> int:
    t = tables.outbox
    condition = t.c.published_at.is_not(None) if published else t.c.published_at.is_(None)
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t).where(condition)).scalar_one())


def _read_topic(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    """(key, event id) of every record on ``topic``, each partition in its order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[tuple[str, str]] = []

        def drained() -> bool:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                found.extend(((r.key or b"").decode(), dict(r.headers)["event-id"].decode()) for r in records)
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)

        wait_until(drained, 60, what=f"reading {topic} to its end", interval_s=0)
        return found
    finally:
        consumer.close()


@dataclass
class Replicas:
    """``count`` relays, each with its own producer and lease holder name, over one outbox."""

    engine: Engine
    bootstrap: str
    clock: MovableClock
    count: int = 3
    producers: list[StallingProducer] = field(default_factory=list)
    relays: list[OutboxRelay] = field(default_factory=list)
    stops: list[threading.Event] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        for n in range(self.count):
            producer = StallingProducer(kafka_io.make_producer(self.bootstrap, client_id=f"relay-{n}"))
            lease = RelayLease(tables.relay_lease, "authorization", f"replica-{n}", LEASE_S, clock=self.clock)
            self.producers.append(producer)
            self.relays.append(OutboxRelay(self.engine, tables.outbox, producer, "replica", batch_size=25,
                                           idle_s=0.05, clock=self.clock, lease=lease, standby_s=0.1))
            self.stops.append(threading.Event())

    def start(self, n: int) -> None:
        thread = threading.Thread(target=self.relays[n].run, args=(self.stops[n],), name=f"relay-{n}")
        thread.start()
        self.threads.append(thread)

    def active(self) -> list[int]:
        return [n for n, relay in enumerate(self.relays) if relay.active]

    def stop(self) -> None:
        for producer in self.producers:
            producer.resume()
        for stop in self.stops:
            stop.set()
        for thread in self.threads:
            thread.join(60)
        for producer in self.producers:
            producer.close(timeout=10)


def _write(engine: Engine, topic: str, writer: int, written: dict[str, list[str]]) -> None:
    """Each writer owns its keys and writes their events in rounds: every transaction carries the next
    event of a few keys, so one key's rows are spread through the outbox among others' (and among the
    other writers')."""
    keys = [f"req-{writer}-{k}" for k in range(KEYS_PER_WRITER)]
    for _round in range(EVENTS_PER_KEY):
        for start in range(0, len(keys), 5):
            events = [OutgoingEvent(topic=topic, key=key, message=events_pb2.RequestSubmitted(request_id=key))
                      for key in keys[start:start + 5]]
            with engine.begin() as conn:
                add_events(conn, tables.outbox, events)
            for e in events:
                written.setdefault(e.key, []).append(e.event_id)


def _first_copies(records: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """key -> its event ids in the order their first copies were read."""
    first: dict[str, list[str]] = {}
    seen: set[str] = set()
    for key, event_id in records:
        if event_id not in seen:
            seen.add(event_id)
            first.setdefault(key, []).append(event_id)
    return first


def test_replicas_relays_keep_each_keys_order_across_a_stall_and_a_takeover(
        make_database: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str,
        make_topics: Callable[[Iterable[str], int], None]) -> None:
    engine = make_engine(make_database("relays"))
    migrations.upgrade("authorization", engine)
    topic = f"{topic_prefix}.relay-order.v1"
    make_topics([topic], 3)
    clock = MovableClock()
    replicas = Replicas(engine, kafka_bootstrap, clock)
    written: dict[str, list[str]] = {}
    writers = [threading.Thread(target=_write, args=(engine, topic, w, written)) for w in range(WRITERS)]
    total = WRITERS * KEYS_PER_WRITER * EVENTS_PER_KEY
    try:
        replicas.start(0)
        wait_until(replicas.active, 30, what="the first relay to take the lease")
        for n in range(1, replicas.count):
            replicas.start(n)
        for w in writers:
            w.start()
        wait_until(lambda: _count(engine, published=True), 60, what="a fifth of the events published",
                   until=lambda n: n >= total // 5)
        # The holder stalls mid-round: its batch read, nothing of it sent, and it stays away.
        [holder] = replicas.active()
        replicas.producers[holder].stall_next_round()
        wait_until(replicas.producers[holder].stalled.is_set, 30, what="the holder to stall mid-round")
        published_before = _count(engine, published=True)
        clock.advance(LEASE_S + 1)  # its lease runs out
        wait_until(lambda: [n for n in replicas.active() if n != holder], 30,
                   what="another replica to take the lease over")
        wait_until(lambda: _count(engine, published=True), 60, what="the new holder to publish",
                   until=lambda n: n > published_before)
        replicas.producers[holder].resume()  # the stalled one wakes up: its marks are refused, it stands by
        for w in writers:
            w.join(120)
        wait_until(lambda: _count(engine, published=False), 120, what="every event published",
                   until=lambda n: n == 0)
        assert holder not in replicas.active()
    finally:
        replicas.stop()
        engine.dispose()

    records = _read_topic(kafka_bootstrap, topic)
    first = _first_copies(records)
    assert sum(len(ids) for ids in written.values()) == total
    assert first.keys() == written.keys(), "a request's events are missing"
    out_of_order = [key for key in written if first[key] != written[key]]
    assert not out_of_order, f"{len(out_of_order)} requests' events arrived out of order, e.g. {out_of_order[:3]}"
    duplicates = len(records) - total
    # The stalled holder's one round is all that may repeat.
    assert 0 <= duplicates <= 25, f"{duplicates} copies"
    print(f"\n[relays] {total} events of {len(written)} requests over {replicas.count} relays; "
          f"{duplicates} copies from the stalled holder's round")
