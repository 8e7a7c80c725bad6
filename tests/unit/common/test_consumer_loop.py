from __future__ import annotations

import threading
from collections.abc import Sequence

from kafka import TopicPartition
from ur.events.v1 import events_pb2

from services.common.consumer import ConsumerLoop, PoisonMessage, TransientError
from services.common.events import IncomingEvent
from tests.unit.common.fakes import FakeConsumer, FakeProducer, Record

TYPE = "ur.events.v1.RequestSubmitted"
DECODERS = {TYPE: events_pb2.RequestSubmitted.FromString}


def good(offset: int, request_id: str, partition: int = 0) -> Record:
    payload = events_pb2.RequestSubmitted(request_id=request_id).SerializeToString()
    return Record("t", partition, offset, request_id.encode(), payload,
                  [("event-type", TYPE.encode()), ("event-id", f"e-{request_id}".encode())])


class Handler:
    def __init__(self, fail: dict[str, Exception] | None = None, transient_times: int = 0) -> None:
        self.applied: list[str] = []
        self.fail = fail or {}
        self.transient_times = transient_times

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        if self.transient_times:
            self.transient_times -= 1
            raise TransientError("database restarting")
        for e in events:
            rid = e.message.request_id  # type: ignore[attr-defined]
            if rid in self.fail:
                raise self.fail[rid]
        self.applied.extend(e.message.request_id for e in events)  # type: ignore[attr-defined]


def run_loop(consumer: FakeConsumer, handler: Handler, producer: FakeProducer) -> ConsumerLoop:
    """Runs the real loop until every scripted poll has been handed out."""
    loop = ConsumerLoop(consumer, handler, DECODERS, name="test", dlq_producer=producer, dlq_topic="dlq")
    stop = threading.Event()
    consumer.when_drained = stop.set
    loop.run(stop)
    return loop


def test_poison_records_go_to_the_dead_letter_topic_and_the_rest_is_applied() -> None:
    bad_bytes = Record("t", 0, 1, b"x", b"\xff\xfe garbage", [("event-type", TYPE.encode()), ("event-id", b"e-x")])
    no_type = Record("t", 0, 2, b"y", b"", [("event-id", b"e-y")])
    consumer = FakeConsumer([[good(0, "r1"), bad_bytes, no_type, good(3, "r2")]])
    handler, producer = Handler(), FakeProducer()
    loop = run_loop(consumer, handler, producer)
    assert handler.applied == ["r1", "r2"]
    reasons = {m["key"]: m["headers"]["dlq-reason"].decode() for m in producer.sent}
    assert "not a valid ur.events.v1.RequestSubmitted" in reasons[b"x"]
    assert "missing 'event-type' header" in reasons[b"y"]
    assert all(m["headers"]["dlq-source"].startswith(b"t/0/") for m in producer.sent)
    assert consumer.commits[-1][TopicPartition("t", 0)].offset == 4
    assert loop.dead_lettered_total == 2


def test_an_event_the_handler_rejects_is_isolated_from_its_batch() -> None:
    consumer = FakeConsumer([[good(0, "r1"), good(1, "bad"), good(2, "r3")]])
    handler = Handler(fail={"bad": PoisonMessage("refers to unknown request")})
    producer = FakeProducer()
    run_loop(consumer, handler, producer)
    assert handler.applied == ["r1", "r3"]
    assert [m["headers"]["dlq-reason"] for m in producer.sent] == [b"refers to unknown request"]


def test_transient_failure_rewinds_and_commits_nothing() -> None:
    consumer = FakeConsumer([[good(5, "r1"), good(6, "r2")]])
    handler = Handler(transient_times=1)
    run_loop(consumer, handler, FakeProducer())
    assert consumer.seeks == [(TopicPartition("t", 0), 5)]
    assert consumer.commits == []
    assert handler.applied == []


def test_dead_letter_topic_down_is_transient_not_a_skip() -> None:
    bad = Record("t", 0, 0, b"x", b"\xff", [("event-type", TYPE.encode()), ("event-id", b"e")])
    consumer = FakeConsumer([[bad]])
    run_loop(consumer, Handler(), FakeProducer(fail_with=RuntimeError("broker down")))
    assert consumer.commits == []
    assert consumer.seeks == [(TopicPartition("t", 0), 0)]


def test_offsets_are_committed_per_partition_after_apply() -> None:
    consumer = FakeConsumer([[good(10, "a", 0), good(7, "b", 1), good(11, "c", 0)]])
    handler = Handler()
    run_loop(consumer, handler, FakeProducer())
    committed = consumer.commits[-1]
    assert committed[TopicPartition("t", 0)].offset == 12
    assert committed[TopicPartition("t", 1)].offset == 8
