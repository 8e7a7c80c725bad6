"""The Kafka consumer loop every service runs.

Contract (what a handler can rely on, and what happens to every record):

* **One transaction per batch.** A handler applies a batch of events and records their ids in
  ``processed_events`` in ONE database transaction (see :class:`EventHandler`); offsets are
  committed only after that transaction commits, so a crash at any point redelivers, and
  redelivery is a no-op (the handler skips ids already in ``processed_events``).
* **Distinct event ids.** Kafka delivers at least once, and every broker fault produces records
  delivered twice, often within one poll. The loop drops the later copies of an event id before
  the handler sees the batch, so a handler never receives the same id twice in one call (it would
  otherwise insert it twice into ``processed_events`` and fail on the key). Copies in *different*
  batches are the handler's ``processed_events`` check's to skip.
* **Undecodable records** (missing headers, unknown type or version, a payload that does not
  parse) go to the service's dead-letter topic with the reason in a header.
* **A failed batch is split, never condemned.** When the handler raises anything but a
  :class:`TransientError` for a batch, nothing of it was written; the loop bisects it (each half
  in its own transaction, recursively) until the events that fail stand alone. Only an event
  that fails *by itself* with :class:`PoisonMessage` (the handler says it can never be applied)
  is dead-lettered; its neighbours are applied normally. A batch with one poison event among
  *n* costs about 2·log2(n) extra transactions, not n.
* **Everything else is retried, never parked.** :class:`TransientError` (database or peer down,
  a connection lost; :class:`~services.common.errors.Unavailable`; SQLAlchemy's
  ``OperationalError``), and any other exception raised by a single event on its own (a bug, an
  integrity race with another consumer, an unclassified outage), rewind the partitions to their
  first unsettled record and retry with backoff (0.5 s doubling to 2 s). A valid event is never
  dead-lettered because of an error that is not its own fault: an exception the handler did not
  classify as poison holds the consumer at that record (visible as consumer lag and in
  :attr:`ConsumerLoop.failure`) until the cause is fixed, rather than losing the event. Its
  partition cannot go past it (a request's events share a partition and are applied in order); the
  other partitions of the batch wait with it. Records before the failing one that were
  settled (applied, skipped, or dead-lettered) are committed and not redelivered to this loop; a
  dead-lettered record after it may be dead-lettered again on the retry (the dead-letter topic is
  at-least-once too).
* **Commits are bounded.** An offset commit waits at most ``commit_timeout_s`` (2 s); one that
  fails (broker away, group rebalancing) is not retried in place but carried over: merged into the
  next commit, tried again 1 s later, then at doubling intervals up to 8 s while the coordinator
  stays away, so the loop keeps polling (which is what rejoins the group) and applying batches
  meanwhile. Offsets of partitions no longer assigned are dropped: their new owner redelivers from
  the last committed offset, which is harmless. A commit is never what decisions wait for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError

from services.common import tracing
from services.common.clock import utcnow
from services.common.errors import PoisonMessage, TransientError, Unavailable
from services.common.events import (
    HEADER_DLQ_CONSUMER,
    HEADER_DLQ_REASON,
    HEADER_DLQ_SOURCE,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_SCHEMA_VERSION,
    EventHandler,
    IncomingEvent,
)
from services.common.kafka_io import Consumer, Producer, Record
from services.common.metrics import Metrics

logger = logging.getLogger(__name__)

# PoisonMessage and TransientError live in services/common/errors.py, EventHandler in events.py (service
# layers use them without importing Kafka or SQLAlchemy); they are re-exported here, where the loop's
# contract names them.
__all__ = ["ConsumerLoop", "EventHandler", "PoisonMessage", "TransientError", "already_processed", "decode",
           "mark_processed"]

#: Backoff between retries of a batch that failed transiently (doubling from the first). Short: a
#: retry costs one failed transaction, and the wait after the database or broker is back is what
#: stands between an outage and the first decision after it.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 2.0
#: While a failure lasts, how often it is logged again (its first occurrence always is).
REMINDER_S = 60.0
#: How long one offset commit may block the loop, and how soon a failed one is tried again (doubling
#: while the group coordinator stays away, so that an outage costs the loop little of its time).
COMMIT_TIMEOUT_S = 2.0
COMMIT_RETRY_S = 1.0
MAX_COMMIT_RETRY_S = 8.0
#: How often the consumer measures its lag (end offsets against positions) by default.
LAG_INTERVAL_S = 15.0

#: Measures the consumer's lag: partition → records not yet consumed. Called on the loop's thread
#: (kafka-python's consumer is not thread-safe); may raise KafkaError.
LagProbe = Callable[[], Mapping[TopicPartition, int]]


def already_processed(conn: Connection, processed: Table, consumer: str, event_ids: Sequence[str]) -> set[str]:
    if not event_ids:
        return set()
    rows = conn.execute(select(processed.c.event_id).where(
        processed.c.consumer == consumer, processed.c.event_id.in_(list(event_ids))))
    return {r.event_id for r in rows}


def mark_processed(conn: Connection, processed: Table, consumer: str, event_ids: Sequence[str]) -> None:
    if event_ids:
        now = utcnow()
        conn.execute(insert(processed), [{"consumer": consumer, "event_id": e, "processed_at": now}
                                         for e in event_ids])


def _header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


Decoders = Mapping[str, Callable[[bytes], Message]]


def decode(record: Record, decoders: Decoders) -> IncomingEvent:
    """Turn a Kafka record into an IncomingEvent or raise PoisonMessage saying why."""
    headers = record.headers
    event_type = _header(headers, HEADER_EVENT_TYPE)
    event_id = _header(headers, HEADER_EVENT_ID)
    version = _header(headers, HEADER_SCHEMA_VERSION) or "1"
    if not event_type:
        raise PoisonMessage(f"missing '{HEADER_EVENT_TYPE}' header")
    if not event_id:
        raise PoisonMessage(f"missing '{HEADER_EVENT_ID}' header")
    if len(event_id) > 36:
        raise PoisonMessage("event id longer than 36 characters")
    parser = decoders.get(event_type)
    if parser is None:
        raise PoisonMessage(f"unknown event type {event_type!r} for this topic")
    if version != "1":
        raise PoisonMessage(f"unsupported schema version {version!r} of {event_type}")
    if record.value is None:
        raise PoisonMessage("empty payload")
    try:
        message = parser(record.value)
    except (DecodeError, ValueError) as exc:
        raise PoisonMessage(f"payload is not a valid {event_type}: {exc}") from exc
    key = record.key.decode("utf-8", errors="replace") if record.key else ""
    return IncomingEvent(event_id=event_id, event_type=event_type, schema_version=version, key=key,
                         message=message, topic=record.topic, partition=record.partition,
                         offset=record.offset)


@dataclass
class _Item:
    """One decoded event of a batch: where its record sits in the batch, and its in-batch copies."""

    index: int
    record: Record
    event: IncomingEvent
    copies: list[int]


def _consumed(item: _Item) -> tracing.Consumed:
    event, record = item.event, item.record
    return tracing.Consumed(topic=event.topic, partition=event.partition, offset=event.offset, key=event.key,
                            event_id=event.event_id, event_type=event.event_type, headers=record.headers)


class _Interrupted(TransientError):
    """A batch stopped part-way; ``settled[i]`` tells whether record i needs no further work."""

    def __init__(self, cause: TransientError, settled: list[bool]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.settled = settled


class ConsumerLoop:
    """Poll → decode → drop in-batch copies → apply in one transaction → commit offsets. One thread.

    :attr:`failure` names the condition the loop is retrying (``None`` while it makes progress);
    :attr:`last_progress` is the ``time.monotonic()`` of the last batch settled or empty poll, for
    health checks."""

    def __init__(self, consumer: Consumer, handler: EventHandler, decoders: Decoders, *, name: str,
                 dlq_producer: Producer, dlq_topic: str, max_batch: int = 500,
                 on_applied: Callable[[Sequence[IncomingEvent]], None] | None = None,
                 commit_timeout_s: float = COMMIT_TIMEOUT_S, metrics: Metrics | None = None,
                 lag: LagProbe | None = None, lag_interval_s: float = LAG_INTERVAL_S) -> None:
        """``metrics``: where records settled, dead-lettered and the lag ``lag`` measures (every
        ``lag_interval_s``, between polls) are counted."""
        self._consumer = consumer
        self._handler = handler
        self._decoders = decoders
        self._name = name
        self._dlq_producer = dlq_producer
        self._dlq_topic = dlq_topic
        self._max_batch = max_batch
        self._on_applied = on_applied
        self._commit_timeout_ms = int(commit_timeout_s * 1000)
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self._commit_retry_at = 0.0
        self._commit_wait_s = COMMIT_RETRY_S
        self.applied_total = 0
        self.dead_lettered_total = 0
        self.duplicates_skipped_total = 0
        #: Transactions that failed and were split (a measure of how often bisection ran).
        self.bisections_total = 0
        self.failure: str | None = None
        self._metrics = metrics
        self._lag = lag
        self._lag_interval_s = lag_interval_s
        self._lag_due = 0.0
        self._lag_shown: set[tuple[str, str]] = set()
        self.last_progress = time.monotonic()
        self._failing_since = self._reminded_at = 0.0

    # -- dead letters --------------------------------------------------------------------------
    def _dead_letter(self, record: Record, reason: str) -> None:
        logger.warning("dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        headers = list(record.headers or [])
        headers += [(HEADER_DLQ_REASON, reason.encode()[:1000]),
                    (HEADER_DLQ_SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
                    (HEADER_DLQ_CONSUMER, self._name.encode())]
        try:
            future = self._dlq_producer.send(self._dlq_topic, key=record.key, value=record.value,
                                             headers=headers)
            self._dlq_producer.flush(timeout=10)
            future.get(timeout=10)
        except Exception as exc:
            # Not parked yet, so not skippable: retry the batch (a DLQ duplicate is harmless).
            raise TransientError(f"dead-letter topic unavailable: {exc}") from exc
        self.dead_lettered_total += 1
        if self._metrics is not None:
            self._metrics.dead_lettered.labels(record.topic).inc()
            self._metrics.consumer_records.labels(record.topic, "dead_lettered").inc()

    # -- one batch -----------------------------------------------------------------------------
    def process(self, records: Sequence[Record]) -> None:
        """Settle a batch of records (see the module's contract). Raises :class:`TransientError`
        when it must be retried; its ``settled`` attribute then says which records need no retry."""
        settled = [False] * len(records)
        try:
            items = self._decode_all(records, settled)
            copies = sum(len(i.copies) for i in items)
            if copies:
                logger.info("%s: %d of %d records were copies of events earlier in the batch; applied once",
                            self._name, copies, len(records))
                if self._metrics is not None:
                    for item in items:
                        if item.copies:
                            self._metrics.consumer_records.labels(item.event.topic, "duplicate").inc(len(item.copies))
            with tracing.processing(self._name, [_consumed(i) for i in items] if tracing.enabled() else []):
                self._settle(items, settled)
        except TransientError as exc:
            raise _Interrupted(exc, settled) from exc

    def _decode_all(self, records: Sequence[Record], settled: list[bool]) -> list[_Item]:
        items: list[_Item] = []
        first: dict[str, _Item] = {}
        for index, record in enumerate(records):
            try:
                event = decode(record, self._decoders)
            except PoisonMessage as exc:
                self._dead_letter(record, str(exc))
                settled[index] = True
                continue
            seen = first.get(event.event_id)
            if seen is not None:
                # A redelivered copy (at-least-once): settled with the first, never applied twice.
                seen.copies.append(index)
                self.duplicates_skipped_total += 1
                continue
            item = _Item(index, record, event, [])
            first[event.event_id] = item
            items.append(item)
        return items

    def _settle(self, items: Sequence[_Item], settled: list[bool]) -> None:
        """Apply ``items`` in one transaction; when that fails for a reason of its own, split."""
        if not items:
            return
        try:
            self._apply([i.event for i in items])
        except TransientError:
            raise
        except Exception as exc:
            if len(items) == 1:
                self._alone_failed(items[0], exc, settled)
                return
            self.bisections_total += 1
            logger.warning("%s: a batch of %d failed (%s: %s); splitting it to find the event at fault",
                           self._name, len(items), type(exc).__name__, exc, exc_info=True)
            middle = len(items) // 2
            self._settle(items[:middle], settled)
            self._settle(items[middle:], settled)
            return
        for item in items:
            settled[item.index] = True
            for copy in item.copies:
                settled[copy] = True

    def _alone_failed(self, item: _Item, exc: Exception, settled: list[bool]) -> None:
        """An event failed in a transaction of its own: parked if poison, otherwise retried."""
        if isinstance(exc, PoisonMessage):
            self._dead_letter(item.record, str(exc))
            settled[item.index] = True
            for copy in item.copies:
                settled[copy] = True
            return
        condition = f"event {item.event.event_id} failed: {type(exc).__name__}: {exc}"
        if condition != self.failure:
            # Once per condition with the traceback; the retries that follow log one line each.
            logger.error("%s; not a poison message, so it is retried, not dead-lettered", condition,
                         exc_info=exc)
        raise TransientError(condition) from exc

    def _apply(self, events: Sequence[IncomingEvent]) -> None:
        try:
            self._handler.handle_batch(events)
        except Unavailable as exc:
            raise TransientError(str(exc)) from exc
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
                raise TransientError(str(exc).splitlines()[0]) from exc
            raise
        self.applied_total += len(events)
        if self._metrics is not None:
            for topic, count in Counter(e.topic for e in events).items():
                self._metrics.consumer_records.labels(topic, "applied").inc(count)
        if self._on_applied is not None:
            self._on_applied(events)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = FIRST_BACKOFF_S
        while not stop.is_set():
            polled = self._consumer.poll(timeout_ms=200, max_records=self._max_batch)
            if self._lag is not None and time.monotonic() >= self._lag_due:
                self._measure_lag()
            if not polled:
                self.last_progress = time.monotonic()
                self._retry_commit()
                continue
            records = [r for batch in polled.values() for r in batch]
            try:
                self.process(records)
            except _Interrupted as exc:
                self._log_failure(str(exc), backoff)
                self._commit(self._rewind(polled, exc.settled))
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if self.failure is not None:
                logger.info("%s: recovered after %.1f s (%s)", self._name, time.monotonic() - self._failing_since,
                            self.failure)
                self.failure = None
            backoff = FIRST_BACKOFF_S
            self.last_progress = time.monotonic()
            self._commit({TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(batch[-1].offset + 1, "", -1)
                          for tp, batch in polled.items()})
        logger.info("consumer %s stopping", self._name)
        self._retry_commit(force=True)

    def _measure_lag(self) -> None:
        """Record the lag of every assigned partition (kept as it was when the broker cannot say)."""
        self._lag_due = time.monotonic() + self._lag_interval_s
        if self._lag is None or self._metrics is None:
            return
        try:
            lags = self._lag()
        except (KafkaError, OSError) as exc:
            logger.debug("%s: lag not measured this time (%s)", self._name, type(exc).__name__)
            return
        shown = {(tp.topic, str(tp.partition)): lag for tp, lag in lags.items()}
        for gone in self._lag_shown - shown.keys():  # partitions another member holds now
            self._metrics.consumer_lag.remove(*gone)
        for labels, lag in shown.items():
            self._metrics.consumer_lag.labels(*labels).set(lag)
        self._lag_shown = set(shown)

    def _log_failure(self, condition: str, backoff: float) -> None:
        """One line when a failure starts or changes, a reminder every :data:`REMINDER_S` while it lasts."""
        now = time.monotonic()
        if condition != self.failure:
            if self.failure is None:
                self._failing_since = now
            logger.warning("%s: transient failure, retrying every %.1f s or less: %s", self._name, MAX_BACKOFF_S,
                           condition)
            self._reminded_at = now
        elif now - self._reminded_at >= REMINDER_S:
            logger.warning("%s: still failing after %.0f s: %s", self._name, now - self._failing_since, condition)
            self._reminded_at = now
        else:
            logger.debug("%s: still failing, retrying in %.1f s", self._name, backoff)
        self.failure = condition

    def _rewind(self, polled: Mapping[TopicPartition, Sequence[Record]],
                settled: Sequence[bool]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Seek every partition back to its first unsettled record; returns the offsets that may
        be committed (each partition's settled prefix)."""
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        index = 0
        for tp, batch in polled.items():
            flags = settled[index:index + len(batch)]
            index += len(batch)
            prefix = next((n for n, flag in enumerate(flags) if not flag), len(batch))
            if prefix < len(batch):
                self._consumer.seek(tp, batch[prefix].offset)
            if prefix:
                done[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(batch[prefix - 1].offset + 1, "", -1)
        return done

    # -- offset commits ------------------------------------------------------------------------
    def _commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self._uncommitted.update(offsets)
        self._retry_commit()

    def _retry_commit(self, *, force: bool = False) -> None:
        """Commit what is pending, unless a failed attempt asked to wait (``force``: try anyway)."""
        if self._uncommitted and (force or time.monotonic() >= self._commit_retry_at):
            self._try_commit()

    def _try_commit(self) -> None:
        """One bounded attempt; what fails is kept for the next one (the effects are recorded already,
        so a commit that never happens costs a redelivery, never a loss)."""
        if not self._uncommitted:
            return
        assigned = self._assignment()
        if assigned is not None:
            for tp in [tp for tp in self._uncommitted if tp not in assigned]:
                del self._uncommitted[tp]  # another member owns it now and redelivers from its commit
        if not self._uncommitted:
            return
        try:
            self._consumer.commit(dict(self._uncommitted), timeout_ms=self._commit_timeout_ms)
        except KafkaError as exc:
            self._commit_retry_at = time.monotonic() + self._commit_wait_s
            if getattr(exc, "retriable", False):
                logger.warning("%s: offset commit did not complete (%s); next attempt in %.0f s",
                               self._name, type(exc).__name__, self._commit_wait_s)
                self._commit_wait_s = min(self._commit_wait_s * 2, MAX_COMMIT_RETRY_S)
            else:
                # Rebalanced away (CommitFailedError and kin): the partitions' next owner, maybe this
                # member again after it rejoins, resumes from the last commit that did succeed.
                logger.warning("%s: offset commit refused (%s: %s); resuming from the last committed offsets",
                               self._name, type(exc).__name__, exc)
                self._uncommitted.clear()
            return
        self._uncommitted.clear()
        self._commit_wait_s = COMMIT_RETRY_S

    def _assignment(self) -> set[TopicPartition] | None:
        try:
            return set(self._consumer.assignment())
        except (KafkaError, AttributeError):
            return None

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False, timeout_ms=self._commit_timeout_ms)
        except Exception:
            logger.exception("closing consumer")
