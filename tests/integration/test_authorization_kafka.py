"""Authorization's consumer on the real broker and PostgreSQL: a determination
delivered twice yields one authorization per approved line; a poison record
lands on the dead-letter topic and the loop goes on."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable

import pytest
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import func, select, update
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization import bootstrap
from services.authorization.adapters import tables
from services.common import kafka_io
from services.common.consumer import ConsumerLoop
from services.common.events import OutgoingEvent
from services.common.outbox import OutboxRelay, add_events
from services.common.settings import AuthorizationSettings
from tests.polling import wait_until

pytestmark = pytest.mark.integration


def _determination(request_id: str) -> events_pb2.DeterminationMade:
    det = types_pb2.Determination(request_id=request_id, determination_id=str(uuid.uuid4()))
    for n, action in ((1, types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL), (2, types_pb2.ACTION_CODE_PENDED)):
        det.lines.add(line_number=n, procedure_code="72148", action_code=action, approved_units=1 if n == 1 else 0,
                      approved_start=types_pb2.Date(year=2027, month=1, day=4),
                      approved_end=types_pb2.Date(year=2027, month=1, day=31))
    return events_pb2.DeterminationMade(determination=det, member_id="T-MA-0001")


def test_redelivered_determinations_authorize_once_and_poison_is_parked(
        make_database: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str,
        make_topics: Callable[[Iterable[str], int], None]) -> None:
    app = bootstrap.build(AuthorizationSettings(database_url=make_database("authorization"), topic_prefix=topic_prefix,
                                                kafka_bootstrap_servers=kafka_bootstrap))
    engine, topics = app.runtime.engine, app.runtime.settings.topics
    make_topics(topics.all(), 3)
    producer = kafka_io.make_producer(kafka_bootstrap, client_id="test")

    # Publish 20 determinations through a real outbox relay, then publish them all again
    # (what a relay crash between send and mark would do).
    request_ids = [f"req-{i}" for i in range(20)]
    with engine.begin() as conn:
        add_events(conn, tables.outbox, [OutgoingEvent(topic=topics.determination_made, key=r,
                                                       message=_determination(r)) for r in request_ids])
    relay = OutboxRelay(engine, tables.outbox, producer, "review")
    assert relay.publish_pending() == 20
    with engine.begin() as conn:
        conn.execute(update(tables.outbox).values(published_at=None))
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    raw.send(topics.determination_made, key=b"poison", value=b"\x08\x96\x01 nonsense",
             headers=[("event-type", b"ur.events.v1.DeterminationMade"), ("event-id", b"poison-1")])
    raw.flush()
    raw.close()
    assert relay.publish_pending() == 20

    # The service's handler as wired, under a consumer loop this test drives.
    loop = ConsumerLoop(
        kafka_io.make_consumer(kafka_bootstrap, group_id=f"{topic_prefix}-auth", client_id="t",
                               topics=[topics.determination_made]),
        app.handlers,
        {"ur.events.v1.DeterminationMade": events_pb2.DeterminationMade.FromString},
        name="authorization", dlq_producer=producer, dlq_topic=topics.dead_letter("authorization"))
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    try:
        # Copies in one poll are dropped by the loop, copies in later polls by the handler.
        wait_until(lambda: loop.applied_total + loop.duplicates_skipped_total + loop.dead_lettered_total, 60,
                   what="the consumer to apply or park all 41 records", until=lambda handled: handled >= 41)
    finally:
        stop.set()
        thread.join()
        loop.close()

    with engine.connect() as conn:
        per_line = conn.execute(select(tables.authorizations.c.request_id, tables.authorizations.c.line_number,
                                       tables.authorizations.c.status, func.count())
                                .group_by(tables.authorizations.c.request_id, tables.authorizations.c.line_number,
                                          tables.authorizations.c.status)).all()
        issued_events = conn.execute(select(func.count()).select_from(tables.outbox)
                                     .where(tables.outbox.c.topic == topics.authorizations_issued)).scalar()
    # One record per line and determination, however often it was delivered: line 1 approved, line 2
    # pended (a record with a reference number since issue 12, nothing to draw on).
    assert sorted((r, line, status) for r, line, status, _ in per_line) == sorted(
        (r, line, status) for r in request_ids for line, status in ((1, "approved"), (2, "pended")))
    assert all(n == 1 for *_, n in per_line)
    assert issued_events == 20
    assert loop.dead_lettered_total == 1

    dlq = KafkaConsumer(topics.dead_letter("authorization"), bootstrap_servers=kafka_bootstrap,
                        auto_offset_reset="earliest", consumer_timeout_ms=1000)
    parked: list[dict[str, bytes]] = []

    def read_parked() -> list[dict[str, bytes]]:
        parked.extend(dict(r.headers) for r in dlq)  # until a second passes without a record
        return parked

    wait_until(read_parked, 30, what="the poison record on the dead-letter topic", interval_s=0)
    dlq.close()
    producer.close()
    engine.dispose()
    assert len(parked) == 1
    assert b"not a valid ur.events.v1.DeterminationMade" in parked[0]["dlq-reason"]
    assert parked[0]["dlq-consumer"] == b"authorization"
