from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError
from ur.events.v1 import events_pb2

from services.common.consumer import ConsumerLoop, PoisonMessage, TransientError
from services.common.errors import Unavailable
from services.common.events import IncomingEvent
from tests.unit.common.fakes import FakeConsumer, FakeProducer, Record

TYPE = "ur.events.v1.RequestSubmitted"
DECODERS = {TYPE: events_pb2.RequestSubmitted.FromString}


def good(offset: int, request_id: str, partition: int = 0) -> Record:
    payload = events_pb2.RequestSubmitted(request_id=request_id).SerializeToString()
    return Record("t", partition, offset, request_id.encode(), payload,
                  [("event-type", TYPE.encode()), ("event-id", f"e-{request_id}".encode())])


class Handler:
    """Applies request ids like a real handler: all of a batch or nothing, each event id once (a
    second insert of an id fails on the key, as ``processed_events`` does). ``fail`` maps a request
    id to what applying it raises (``fail_times`` times, then it applies; by default always)."""

    def __init__(self, fail: dict[str, Exception] | None = None, transient_times: int = 0,
                 fail_times: int | None = None) -> None:
        self.applied: list[str] = []
        self.processed: set[str] = set()
        self.calls: list[list[str]] = []
        self.fail = fail or {}
        self.fail_times = fail_times
        self.transient_times = transient_times

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        self.calls.append([e.message.request_id for e in events])  # type: ignore[attr-defined]
        if self.transient_times:
            self.transient_times -= 1
            raise TransientError("database restarting")
        ids = [e.event_id for e in events]
        if len(set(ids)) != len(ids) or self.processed & set(ids):
            raise RuntimeError("UNIQUE constraint failed: processed_events")  # what the database would say
        for e in events:
            rid = e.message.request_id  # type: ignore[attr-defined]
            if rid in self.fail:
                error = self.fail[rid]
                if self.fail_times is not None:
                    self.fail_times -= 1
                    if self.fail_times <= 0:
                        del self.fail[rid]
                raise error
        self.processed.update(ids)
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


def test_transient_failure_rewinds_commits_nothing_and_the_retry_applies_it() -> None:
    consumer = FakeConsumer([[good(5, "r1"), good(6, "r2")]], redeliver=True)
    handler = Handler(transient_times=1)
    run_loop(consumer, handler, FakeProducer())
    assert consumer.seeks == [(TopicPartition("t", 0), 5)]
    assert len(consumer.commits) == 1
    assert consumer.commits[0][TopicPartition("t", 0)].offset == 7
    assert handler.applied == ["r1", "r2"]


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


def test_a_record_delivered_twice_in_one_batch_is_applied_once_in_one_transaction() -> None:
    records = [good(i, f"r{i}") for i in range(6)]
    copy = Record("t", 0, 6, b"r2", records[2].value, list(records[2].headers))  # redelivered, new offset
    consumer = FakeConsumer([[*records, copy]])
    handler = Handler()
    loop = run_loop(consumer, handler, FakeProducer())
    assert handler.calls == [[f"r{i}" for i in range(6)]]  # one transaction, not one per event
    assert loop.duplicates_skipped_total == 1
    assert loop.bisections_total == 0
    assert consumer.commits[-1][TopicPartition("t", 0)].offset == 7


def test_a_poison_event_is_found_by_bisection_and_only_it_is_dead_lettered() -> None:
    consumer = FakeConsumer([[good(i, f"r{i}") for i in range(32)]])
    handler = Handler(fail={"r13": PoisonMessage("refers to unknown request")})
    producer = FakeProducer()
    loop = run_loop(consumer, handler, producer)
    assert sorted(handler.applied) == sorted(f"r{i}" for i in range(32) if i != 13)
    assert [m["key"] for m in producer.sent] == [b"r13"]
    # Halving 32 down to 1: 1 + 2 per level, about 2*log2(n) transactions instead of n.
    assert len(handler.calls) <= 1 + 2 * 5
    assert consumer.commits[-1][TopicPartition("t", 0)].offset == 32
    assert loop.dead_lettered_total == 1


@pytest.mark.parametrize("error", [RuntimeError("a bug"), ValueError("unexpected"),
                                   KeyError("stale cache")])
def test_an_event_failing_alone_without_being_poison_is_retried_never_dead_lettered(error: Exception) -> None:
    consumer = FakeConsumer([[good(i, f"r{i}") for i in range(8)]], redeliver=True)
    # Fails in the batch of 8, in the halves holding it ([4..7], [4, 5]) and alone, then applies.
    handler = Handler(fail={"r5": error}, fail_times=4)
    producer = FakeProducer()
    loop = run_loop(consumer, handler, producer)
    assert producer.sent == []
    assert loop.dead_lettered_total == 0
    # The events settled before it are committed; the partition is rewound to the failing one.
    assert consumer.commits[0][TopicPartition("t", 0)].offset == 5
    assert consumer.seeks == [(TopicPartition("t", 0), 5)]
    # Redelivered from r5, the rest applies in one transaction and is committed; nothing is lost.
    assert handler.calls[-1] == ["r5", "r6", "r7"]
    assert sorted(handler.applied) == [f"r{i}" for i in range(8)]
    assert consumer.commits[-1][TopicPartition("t", 0)].offset == 8
    assert loop.failure is None


def test_a_failure_that_is_not_poison_holds_the_batch_from_that_record_and_parks_nothing() -> None:
    # Settled records before it are committed; from it on (other partitions too) all is retried.
    consumer = FakeConsumer([[good(0, "a0", 0), good(1, "a1", 0), good(2, "a2", 0),
                              good(0, "b0", 1), good(1, "b1", 1)]])
    handler = Handler(fail={"a1": RuntimeError("deadlock detected")})
    loop = run_loop(consumer, handler, FakeProducer())
    assert sorted(handler.applied) == ["a0"]
    assert consumer.seeks == [(TopicPartition("t", 0), 1), (TopicPartition("t", 1), 0)]
    assert consumer.commits == [{TopicPartition("t", 0): consumer.commits[0][TopicPartition("t", 0)]}]
    assert consumer.commits[0][TopicPartition("t", 0)].offset == 1
    assert loop.dead_lettered_total == 0
    assert loop.failure is not None
    assert "deadlock" in loop.failure


def test_an_unavailable_dependency_is_transient_without_splitting_the_batch() -> None:
    consumer = FakeConsumer([[good(0, "r0"), good(1, "r1")]])
    handler = Handler(fail={"r0": Unavailable("authorization service unreachable")})
    loop = run_loop(consumer, handler, FakeProducer())
    assert len(handler.calls) == 1
    assert loop.bisections_total == 0
    assert consumer.seeks == [(TopicPartition("t", 0), 0)]
    assert consumer.commits == []


def test_an_offset_commit_is_bounded_and_a_failed_one_is_carried_into_the_next() -> None:
    consumer = FakeConsumer([[good(0, "a", 0)], [good(0, "b", 1)]],
                            commit_failures=[KafkaTimeoutError("coordinator not available")])
    run_loop(consumer, Handler(), FakeProducer())
    assert all(t is not None and t <= 5000 for t in consumer.commit_timeouts)
    # The first commit timed out once (no retry in place); the next one carries its offset along.
    assert len(consumer.commit_timeouts) == 2
    assert consumer.commits == [{TopicPartition("t", 0): consumer.commits[0][TopicPartition("t", 0)],
                                 TopicPartition("t", 1): consumer.commits[0][TopicPartition("t", 1)]}]
    assert consumer.commits[0][TopicPartition("t", 0)].offset == 1


def test_a_refused_commit_after_a_rebalance_is_dropped_not_retried() -> None:
    consumer = FakeConsumer([[good(0, "a", 0)], [good(0, "b", 1)]],
                            commit_failures=[CommitFailedError("group rebalanced")])
    run_loop(consumer, Handler(), FakeProducer())
    assert consumer.commits == [{TopicPartition("t", 1): consumer.commits[0][TopicPartition("t", 1)]}]


def test_offsets_of_partitions_no_longer_assigned_are_not_committed() -> None:
    consumer = FakeConsumer([[good(0, "a", 0)], [good(0, "b", 1)]],
                            commit_failures=[KafkaTimeoutError("coordinator not available")])
    consumer.assigned = {TopicPartition("t", 1)}
    run_loop(consumer, Handler(), FakeProducer())
    assert [set(c) for c in consumer.commits] == [{TopicPartition("t", 1)}]
