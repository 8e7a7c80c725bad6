"""Traces across the outbox and the consumer loop, the consumer's and the relay's counters, and the
JSON log lines: with spans recorded by an in-memory exporter and the Kafka doubles of fakes.py."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, MetaData, Table, select
from ur.events.v1 import events_pb2

from services.common import tracing
from services.common.consumer import ConsumerLoop
from services.common.db import make_engine, outbox_table
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.logs import FIELDS, JsonFormatter
from services.common.metrics import Metrics
from services.common.outbox import OutboxRelay, add_events, backlog
from tests.unit.common.fakes import FakeConsumer, FakeProducer, Record

TYPE = "ur.events.v1.RequestSubmitted"
DECODERS = {TYPE: events_pb2.RequestSubmitted.FromString}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, every span kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.reset()


@pytest.fixture
def outbox(tmp_path: Path) -> tuple[Engine, Table]:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    metadata = MetaData()
    table = outbox_table(metadata)
    metadata.create_all(engine)
    return engine, table


def record(offset: int, request_id: str, headers: Sequence[tuple[str, bytes]] = ()) -> Record:
    payload = events_pb2.RequestSubmitted(request_id=request_id).SerializeToString()
    return Record("submitted", 0, offset, request_id.encode(), payload,
                  [("event-type", TYPE.encode()), ("event-id", f"e-{request_id}".encode()), *headers])


class Forwarding:
    """A handler that, like review's, writes one event per consumed one (same key) to the outbox in
    the batch's transaction."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self.engine, self.table = engine, table

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        with self.engine.begin() as conn:
            add_events(conn, self.table, [OutgoingEvent(topic="decided", key=e.key, message=e.message)
                                          for e in events])


def run(consumer: FakeConsumer, handler: object, producer: FakeProducer | None = None,
        metrics: Metrics | None = None, lag: object = None) -> ConsumerLoop:
    loop = ConsumerLoop(consumer, handler, DECODERS, name="review", dlq_producer=producer or FakeProducer(),  # type: ignore[arg-type]
                        dlq_topic="dlq", metrics=metrics, lag=lag, lag_interval_s=0.0)  # type: ignore[arg-type]
    stop = threading.Event()
    consumer.when_drained = stop.set
    loop.run(stop)
    return loop


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def test_tracing_off_writes_no_traceparent_and_sends_no_header(outbox: tuple[Engine, Table]) -> None:
    engine, table = outbox
    with engine.begin() as conn:
        add_events(conn, table, [OutgoingEvent(topic="t", key="r1", message=events_pb2.RequestSubmitted())])
    producer = FakeProducer()
    OutboxRelay(engine, table, producer, "intake").publish_pending()
    assert "traceparent" not in producer.sent[0]["headers"]
    with engine.connect() as conn:
        assert conn.execute(select(table.c.traceparent)).scalar_one() is None


def test_an_event_written_in_a_span_carries_it_through_the_outbox_to_the_record(
        spans: InMemorySpanExporter, outbox: tuple[Engine, Table]) -> None:
    engine, table = outbox
    with tracing.tracer().start_as_current_span("SubmitRequest") as call, engine.begin() as conn:
        add_events(conn, table, [OutgoingEvent(topic="submitted", key="r1", message=events_pb2.RequestSubmitted())])
    producer = FakeProducer()
    OutboxRelay(engine, table, producer, "intake").publish_pending()
    created = by_name(spans)["create submitted"][0]
    assert created.kind is SpanKind.PRODUCER
    assert created.parent is not None
    assert created.parent.span_id == call.get_span_context().span_id
    header = producer.sent[0]["headers"]["traceparent"].decode()
    assert header.split("-")[:3] == ["00", f"{created.context.trace_id:032x}", f"{created.context.span_id:016x}"]


def test_the_consumer_continues_each_records_trace_and_the_events_it_publishes_follow_their_key(
        spans: InMemorySpanExporter, outbox: tuple[Engine, Table]) -> None:
    engine, table = outbox
    first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    second = "00-1bf7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
    consumer = FakeConsumer([[record(0, "r1", [("traceparent", first.encode())]),
                              record(1, "r2", [("traceparent", second.encode())])]])
    run(consumer, Forwarding(engine, table))
    found = by_name(spans)
    processed = {s.attributes["messaging.message.id"]: s for s in found["process submitted"]}  # type: ignore[index]
    assert processed["e-r1"].kind is SpanKind.CONSUMER
    assert processed["e-r1"].parent is not None
    assert (processed["e-r1"].context.trace_id, processed["e-r1"].parent.span_id) == (
        0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331)
    assert processed["e-r2"].context.trace_id == 0x1bf7651916cd43dd8448eb211c80319c
    # Two records: the handler ran in a batch span linked to both.
    batch = found["process batch"][0]
    assert {link.context.span_id for link in batch.links} == {s.context.span_id for s in processed.values()}
    # Each event the batch wrote is the child of the record of its key, in that record's trace.
    with engine.connect() as conn:
        stored = {row.message_key: row.traceparent
                  for row in conn.execute(select(table.c.message_key, table.c.traceparent))}
    created = {s.parent.span_id: s for s in found["create decided"] if s.parent is not None}
    for key, event_id in (("r1", "e-r1"), ("r2", "e-r2")):
        span = created[processed[event_id].context.span_id]
        assert span.context.trace_id == processed[event_id].context.trace_id
        assert stored[key].split("-")[1:3] == [f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]


def test_a_lone_record_is_the_current_span_while_its_batch_is_applied(spans: InMemorySpanExporter) -> None:
    seen: list[tuple[str, str] | None] = []

    class Noting:
        def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
            seen.append(tracing.current_ids())

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    run(FakeConsumer([[record(0, "r1", [("traceparent", parent.encode())])]]), Noting())
    (span,) = by_name(spans)["process submitted"]
    assert seen == [(f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")]


def test_a_failed_batch_ends_its_spans_in_error(spans: InMemorySpanExporter) -> None:
    class Failing:
        calls = 0

        def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
            Failing.calls += 1
            if Failing.calls == 1:
                raise KafkaTimeoutError("broker away")

    consumer = FakeConsumer([[record(0, "r1")]], redeliver=True)
    run(consumer, Failing())
    statuses = [s.status.is_ok for s in by_name(spans)["process submitted"]]
    assert statuses == [False, True]


def test_the_consumer_counts_what_it_settles_and_measures_its_lag() -> None:
    metrics = Metrics(process_collectors=False)
    bad = Record("submitted", 0, 2, b"x", b"\xff garbage", [("event-type", TYPE.encode()), ("event-id", b"e-x")])
    consumer = FakeConsumer([[record(0, "r1"), record(1, "r1"), bad, record(3, "r2")]])

    class Applying:
        def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
            return None

    lags = iter([{TopicPartition("submitted", 0): 7, TopicPartition("submitted", 1): 2},
                 {TopicPartition("submitted", 0): 0}])
    run(consumer, Applying(), metrics=metrics, lag=lambda: next(lags, {TopicPartition("submitted", 0): 0}))
    assert metrics.value("ur_consumer_records_total", {"topic": "submitted", "result": "applied"}) == 2
    assert metrics.value("ur_consumer_records_total", {"topic": "submitted", "result": "duplicate"}) == 1
    assert metrics.value("ur_consumer_records_total", {"topic": "submitted", "result": "dead_lettered"}) == 1
    assert metrics.value("ur_consumer_dead_lettered_total", {"topic": "submitted"}) == 1
    assert metrics.value("ur_consumer_lag", {"topic": "submitted", "partition": "0"}) == 0
    # A partition no longer held is no longer shown.
    assert metrics.value("ur_consumer_lag", {"topic": "submitted", "partition": "1"}) is None


def test_a_lag_the_broker_cannot_tell_leaves_the_last_one_and_the_loop_goes_on() -> None:
    metrics = Metrics(process_collectors=False)

    def unknown() -> dict[TopicPartition, int]:
        raise KafkaTimeoutError("no answer")

    class Applying:
        applied = 0

        def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
            Applying.applied += len(events)

    run(FakeConsumer([[record(0, "r1")]]), Applying(), metrics=metrics, lag=unknown)
    assert Applying.applied == 1
    assert metrics.value("ur_consumer_lag", {"topic": "submitted", "partition": "0"}) is None


def test_the_relay_counts_what_it_publishes_and_the_backlog_what_it_has_not(outbox: tuple[Engine, Table]) -> None:
    engine, table = outbox
    with engine.begin() as conn:
        add_events(conn, table, [OutgoingEvent(topic=t, key="r", message=events_pb2.RequestSubmitted())
                                 for t in ("a", "a", "b")])
    now = OutgoingEvent(topic="x", key="r", message=events_pb2.RequestSubmitted()).created_at
    count, oldest_s = backlog(engine, table, now)
    assert count == 3
    assert oldest_s >= 0
    metrics = Metrics(process_collectors=False)
    OutboxRelay(engine, table, FakeProducer(), "intake", metrics=metrics).publish_pending()
    assert metrics.value("ur_outbox_published_total", {"topic": "a"}) == 2
    assert metrics.value("ur_outbox_published_total", {"topic": "b"}) == 1
    assert backlog(engine, table, now) == (0, 0.0)


# -- logs ------------------------------------------------------------------------------------------

def log_line(formatter: JsonFormatter, message: str, *args: object, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.telemetry")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, *args, extra=extra or None)
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert line.count("\n") == 1
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_log_line_is_one_json_object_with_the_trace_of_its_span(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter("review")
    outside = log_line(formatter, "decided %d requests", 3)
    assert outside["message"] == "decided 3 requests"
    assert (outside["level"], outside["service"], outside["logger"]) == ("WARNING", "review", "tests.telemetry")
    assert "trace_id" not in outside
    with tracing.tracer().start_as_current_span("work") as span:
        inside = log_line(formatter, "with fields", **{FIELDS: {"page": "task", "message": "not replaced"}})
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert inside["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert (inside["page"], inside["message"]) == ("task", "with fields")


def _fail() -> None:
    raise ValueError("bad\nthing")


def test_a_log_line_keeps_its_traceback_on_the_same_line() -> None:
    formatter = JsonFormatter("intake")
    try:
        _fail()
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed → %s", ("é",), exc_info=sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed → é"
    assert "ValueError: bad" in parsed["exception"]
