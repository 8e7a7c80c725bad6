"""Several replicas' outbox relays over one outbox: only the lease holder publishes, another takes
over after the expiry (or at once after a graceful stop), a holder that stalled past its expiry has
its marks refused, and whatever the interleaving each key's events first reach the topic in the order
they were written (services/common/outbox.py)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, select
from ur.events.v1 import events_pb2

from services.common.db import make_engine, outbox_table, relay_lease_table
from services.common.events import OutgoingEvent
from services.common.metrics import Metrics
from services.common.outbox import OutboxRelay, RelayLease, add_events, relay_identity
from tests.unit.common.fakes import FakeFuture

LEASE_S = 10.0
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Topic:
    """What reached the broker, in order: (producer, key, event id)."""

    records: list[tuple[str, str, str]] = field(default_factory=list)

    def first_copies(self) -> list[tuple[str, str]]:
        seen: set[str] = set()
        firsts = []
        for _producer, key, event_id in self.records:
            if event_id not in seen:
                seen.add(event_id)
                firsts.append((key, event_id))
        return firsts


class SharedProducer:
    """One replica's producer writing to the shared :class:`Topic`. Where a replica may stall in the
    middle of a round: ``on_send`` runs at the round's first record, before it is sent (the batch read,
    nothing of it out); ``on_flush`` after the sends and before the marks."""

    def __init__(self, name: str, topic: Topic) -> None:
        self.name = name
        self.topic = topic
        self.on_send: Callable[[], None] | None = None
        self.on_flush: Callable[[], None] | None = None

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: Sequence[tuple[str, bytes]] | None = None) -> FakeFuture:
        hook, self.on_send = self.on_send, None
        if hook is not None:
            hook()
        found = dict(headers or [])
        self.topic.records.append((self.name, (key or b"").decode(), found["event-id"].decode()))
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        hook, self.on_flush = self.on_flush, None
        if hook is not None:
            hook()

    def close(self, timeout: float | None = None) -> None:
        pass


@dataclass
class Outbox:
    engine: Engine
    outbox: Table
    lease_table: Table
    clock: Clock
    topic: Topic = field(default_factory=Topic)
    #: key -> its event ids in the order they were written
    written: dict[str, list[str]] = field(default_factory=dict)

    def replica(self, name: str, metrics: Metrics | None = None) -> tuple[OutboxRelay, SharedProducer]:
        producer = SharedProducer(name, self.topic)
        lease = RelayLease(self.lease_table, "svc", f"svc@{name}", LEASE_S, clock=self.clock)
        return OutboxRelay(self.engine, self.outbox, producer, "svc", batch_size=7, lease=lease, metrics=metrics,
                           clock=self.clock), producer

    def write(self, keys: Sequence[str]) -> None:
        """One transaction writing the next event of each of ``keys``."""
        events = [OutgoingEvent(topic="t", key=k, message=events_pb2.RequestSubmitted(request_id=k)) for k in keys]
        with self.engine.begin() as conn:
            add_events(conn, self.outbox, events)
        for e in events:
            self.written.setdefault(e.key, []).append(e.event_id)

    def unpublished(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(self.outbox.c.id).where(self.outbox.c.published_at.is_(None))).all())

    def holder(self) -> tuple[str, int]:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.lease_table.c.holder, self.lease_table.c.epoch)).one()
        return str(row.holder), int(row.epoch)

    def assert_in_order_and_complete(self) -> None:
        """Every written event reached the topic, and each key's first copies are in written order."""
        by_key: dict[str, list[str]] = {}
        for key, event_id in self.topic.first_copies():
            by_key.setdefault(key, []).append(event_id)
        assert by_key == self.written


def make_outbox(url: str) -> Outbox:
    """An outbox and its lease table on a fresh database at ``url``."""
    engine = make_engine(url)
    metadata = MetaData()
    outbox, lease = outbox_table(metadata), relay_lease_table(metadata)
    metadata.create_all(engine)
    return Outbox(engine, outbox, lease, Clock())


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    """The outbox on SQLite (tests/integration/test_relay_lease_postgres.py runs these tests again on
    PostgreSQL)."""
    made = make_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    yield made
    made.engine.dispose()


def test_only_the_holder_publishes(box: Outbox) -> None:
    metrics_a, metrics_b = Metrics(process_collectors=False), Metrics(process_collectors=False)
    a, _ = box.replica("a", metrics_a)
    b, _ = box.replica("b", metrics_b)
    box.write(["k1", "k2"])
    assert a.publish_pending() == 2
    box.write(["k1"])
    assert b.publish_pending() == 0
    assert (a.active, b.active) == (True, False)
    assert (metrics_a.value("ur_outbox_relay_active"), metrics_b.value("ur_outbox_relay_active")) == (1, 0)
    box.clock.advance(LEASE_S - 1)  # renewed past half its life...
    assert a.publish_pending() == 1
    box.clock.advance(LEASE_S - 1)  # ...so still the holder's, though first taken longer ago than the lease
    assert b.publish_pending() == 0
    assert box.holder() == ("svc@a", 1)
    assert [r[0] for r in box.topic.records] == ["a", "a", "a"]


def test_another_replica_takes_over_after_the_expiry(box: Outbox) -> None:
    a, _ = box.replica("a")
    b, _ = box.replica("b")
    box.write(["k1"])
    assert a.publish_pending() == 1
    box.write(["k1", "k2"])  # a dies with these unpublished
    box.clock.advance(LEASE_S - 0.1)
    assert b.publish_pending() == 0
    box.clock.advance(0.2)
    assert b.publish_pending() == 2
    assert box.holder() == ("svc@b", 2)
    assert a.publish_pending() == 0  # a, back from the dead, is a standby now
    assert not a.active
    box.assert_in_order_and_complete()


def test_a_graceful_stop_hands_the_lease_over_at_once(box: Outbox) -> None:
    a, _ = box.replica("a")
    b, _ = box.replica("b")
    box.write(["k1"])
    stop = threading.Event()
    stop.set()
    a.run(stop)  # stopped before its first round: it drains (taking the lease) and releases it
    assert box.unpublished() == 0
    box.write(["k1"])
    assert b.publish_pending() == 1  # no expiry to wait for
    assert box.holder() == ("svc@b", 2)
    box.assert_in_order_and_complete()


def test_a_holder_stalled_past_its_expiry_has_its_marks_refused_and_never_overtakes(box: Outbox) -> None:
    a, producer_a = box.replica("a")
    b, _ = box.replica("b")
    box.write(["k1", "k2"])
    box.write(["k1"])
    published_by_b: list[int] = []

    def stall() -> None:
        # a has sent its batch and sits before marking it; its lease runs out, b takes over, and more
        # events of the same keys are written and published meanwhile.
        box.clock.advance(LEASE_S + 1)
        box.write(["k1", "k2"])
        published_by_b.append(b.publish_pending())

    producer_a.on_flush = stall
    assert a.publish_pending() == 3
    assert published_by_b == [5]
    assert box.unpublished() == 0  # b marked everything; a's marks were refused
    assert box.holder() == ("svc@b", 2)
    assert [p for p, _k, _e in box.topic.records] == ["a"] * 3 + ["b"] * 5
    box.assert_in_order_and_complete()


def test_a_holder_stalled_before_sending_its_batch_sends_only_copies_when_it_wakes(box: Outbox) -> None:
    a, producer_a = box.replica("a")
    b, _ = box.replica("b")
    box.write(["k1", "k2"])

    def stall() -> None:
        box.clock.advance(LEASE_S + 1)
        box.write(["k1"])
        assert b.publish_pending() == 3  # a's batch and the later event, in order

    producer_a.on_send = stall
    assert a.publish_pending() == 2  # a wakes up and sends its old batch: copies, after their first copies
    assert [p for p, _k, _e in box.topic.records] == ["b"] * 3 + ["a"] * 2
    box.assert_in_order_and_complete()


def test_any_interleaving_of_replicas_keeps_each_keys_order(box: Outbox) -> None:
    """Three replicas; writes, rounds, deaths (the clock jumps past the lease) and stalls mid-round at
    random: each key's first copies arrive in written order, and nothing is lost."""
    rng = random.Random(17)
    replicas = [box.replica(name) for name in ("a", "b", "c")]
    keys = [f"k{i}" for i in range(12)]

    def round_of(index: int) -> None:
        relay, producer = replicas[index]
        if rng.random() < 0.2:  # stall mid-round while another replica carries on
            other = replicas[(index + 1) % len(replicas)][0]

            def stall() -> None:
                box.clock.advance(LEASE_S + 1)
                box.write(rng.sample(keys, 3))
                other.publish_pending()

            if rng.random() < 0.5:
                producer.on_flush = stall
            else:
                producer.on_send = stall
        relay.publish_pending()

    for _ in range(300):
        action = rng.random()
        if action < 0.45:
            box.write(rng.sample(keys, rng.randint(1, 4)))
        elif action < 0.9:
            round_of(rng.randrange(len(replicas)))
        else:
            box.clock.advance(rng.choice((1.0, LEASE_S / 2, LEASE_S + 1)))
    box.clock.advance(LEASE_S + 1)
    while box.unpublished():
        for relay, _ in replicas:
            relay.publish_pending()
    box.assert_in_order_and_complete()
    assert sum(len(ids) for ids in box.written.values()) > 200
    producers = {p for p, _k, _e in box.topic.records}
    assert producers == {"a", "b", "c"}, producers


def test_a_replica_restarted_takes_its_lease_back_at_once(box: Outbox) -> None:
    crashed, _ = box.replica("a")
    box.write(["k1"])
    assert crashed.publish_pending() == 1
    box.write(["k1"])  # then it dies (kill -9): the lease stays its own until it expires
    other, _ = box.replica("b")
    assert other.publish_pending() == 0
    restarted, _ = box.replica("a")  # the same replica (host and port) started again
    assert restarted.publish_pending() == 1
    assert box.holder() == ("svc@a", 2)
    assert other.publish_pending() == 0
    box.assert_in_order_and_complete()


def test_relay_identity_is_the_replica_where_its_port_is_fixed() -> None:
    assert relay_identity("review", 50052) == relay_identity("review", 50052)
    assert relay_identity("review", 50052) != relay_identity("review", 50062)
    assert relay_identity("review") != relay_identity("review")  # port 0: each process its own


def test_two_relays_creating_the_lease_row_agree_on_one_holder(box: Outbox) -> None:
    a, _ = box.replica("a")
    b, _ = box.replica("b")
    leases: list[Any] = [a, b]
    assert [relay.publish_pending() for relay in leases] == [0, 0]
    assert (a.active, b.active) == (True, False)
