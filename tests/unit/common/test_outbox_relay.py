from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import MetaData, select
from ur.events.v1 import events_pb2

from services.common.db import make_engine, outbox_table
from services.common.events import OutgoingEvent
from services.common.outbox import OutboxRelay, add_events
from tests.unit.common.fakes import FakeProducer


def _setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    metadata = MetaData()
    outbox = outbox_table(metadata)
    metadata.create_all(engine)
    return engine, outbox


def _stage(engine, outbox, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    events = [OutgoingEvent(topic="t", key=f"r{i}", message=events_pb2.RequestSubmitted(request_id=f"r{i}"))
              for i in range(n)]
    with engine.begin() as conn:
        add_events(conn, outbox, events)
    return [e.event_id for e in events]


def test_relay_publishes_in_order_with_headers_and_marks_sent(tmp_path: Path) -> None:
    engine, outbox = _setup(tmp_path)
    ids = _stage(engine, outbox, 3)
    producer = FakeProducer()
    relay = OutboxRelay(engine, outbox, producer, "intake")
    assert relay.publish_pending() == 3
    assert [m["headers"]["event-id"].decode() for m in producer.sent] == ids
    assert producer.sent[0]["headers"]["event-type"] == b"ur.events.v1.RequestSubmitted"
    assert producer.sent[0]["headers"]["schema-version"] == b"1"
    assert producer.sent[0]["key"] == b"r0"
    assert relay.publish_pending() == 0
    with engine.connect() as conn:
        assert all(r.published_at is not None for r in conn.execute(select(outbox)))


def test_a_broker_failure_marks_nothing_so_the_next_round_retries(tmp_path: Path) -> None:
    engine, outbox = _setup(tmp_path)
    _stage(engine, outbox, 2)
    failing = OutboxRelay(engine, outbox, FakeProducer(fail_with=RuntimeError("not enough replicas")), "x")
    with pytest.raises(RuntimeError):
        failing.publish_pending()
    healthy_producer = FakeProducer()
    assert OutboxRelay(engine, outbox, healthy_producer, "x").publish_pending() == 2
    assert len(healthy_producer.sent) == 2


def test_events_of_a_rolled_back_transaction_never_exist(tmp_path: Path) -> None:
    engine, outbox = _setup(tmp_path)
    with engine.connect() as conn:
        conn.begin()
        add_events(conn, outbox, [OutgoingEvent(topic="t", key="k", message=events_pb2.RequestSubmitted())])
        conn.rollback()
    producer = FakeProducer()
    assert OutboxRelay(engine, outbox, producer, "x").publish_pending() == 0


def test_a_read_only_unit_of_work_refuses_to_commit(tmp_path: Path) -> None:
    from services.common.db import processed_events_table
    from services.common.uow import SqlUnitOfWork

    engine = make_engine(f"sqlite:///{tmp_path / 'ro.db'}")
    metadata = MetaData()
    outbox, processed = outbox_table(metadata), processed_events_table(metadata)
    metadata.create_all(engine)
    with SqlUnitOfWork(engine, outbox, processed).read_only() as uow:
        assert uow.already_processed("c", ["e1"]) == set()
        with pytest.raises(RuntimeError, match="read-only"):
            uow.commit()
