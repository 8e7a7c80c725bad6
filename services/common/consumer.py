"""The Kafka consumer loop every service runs.

Contract:
* a handler applies a batch of events and records their ids in
  ``processed_events`` in ONE database transaction (see :class:`EventHandler`);
* offsets are committed only after that transaction commits, so a crash at any
  point redelivers, and redelivery is a no-op;
* a record that cannot be decoded, or that a handler rejects as invalid
  (:class:`PoisonMessage`), goes to the service's dead-letter topic with the
  reason in a header, and the loop goes on;
* a :class:`TransientError` (database or peer down) rewinds to the first
  unapplied record and retries with backoff; nothing is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from google.protobuf.message import DecodeError, Message
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError

from services.common.clock import utcnow
from services.common.errors import PoisonMessage, TransientError
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

logger = logging.getLogger(__name__)

# PoisonMessage and TransientError live in services/common/errors.py, EventHandler in events.py (service
# layers use them without importing Kafka or SQLAlchemy); they are re-exported here, where the loop's
# contract names them.
__all__ = ["ConsumerLoop", "EventHandler", "PoisonMessage", "TransientError", "already_processed", "decode",
           "mark_processed"]



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


class ConsumerLoop:
    """Poll → decode → apply in one transaction → commit offsets. One thread."""

    def __init__(self, consumer: Consumer, handler: EventHandler, decoders: Decoders, *, name: str,
                 dlq_producer: Producer, dlq_topic: str, max_batch: int = 500,
                 on_applied: Callable[[Sequence[IncomingEvent]], None] | None = None) -> None:
        self._consumer = consumer
        self._handler = handler
        self._decoders = decoders
        self._name = name
        self._dlq_producer = dlq_producer
        self._dlq_topic = dlq_topic
        self._max_batch = max_batch
        self._on_applied = on_applied
        self.applied_total = 0
        self.dead_lettered_total = 0

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
            self._dlq_producer.flush(timeout=30)
            future.get(timeout=30)
        except Exception as exc:
            # Not parked yet, so not skippable: retry the batch (a DLQ duplicate is harmless).
            raise TransientError(f"dead-letter topic unavailable: {exc}") from exc
        self.dead_lettered_total += 1

    # -- one batch -----------------------------------------------------------------------------
    def process(self, records: Sequence[Record]) -> None:
        """Apply a batch of records; raises TransientError if it must be retried."""
        decoded: list[tuple[Record, IncomingEvent]] = []
        for record in records:
            try:
                decoded.append((record, decode(record, self._decoders)))
            except PoisonMessage as exc:
                self._dead_letter(record, str(exc))
        if not decoded:
            return
        events = [e for _, e in decoded]
        try:
            self._apply(events)
        except TransientError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad event must not hold back the others
            logger.warning("batch of %d failed (%s); applying one by one", len(events), exc)
        else:
            return
        for record, event in decoded:
            try:
                self._apply([event])
            except TransientError:
                raise
            except PoisonMessage as exc:
                self._dead_letter(record, str(exc))
            except Exception as exc:
                logger.exception("event %s failed", event.event_id)
                self._dead_letter(record, f"{type(exc).__name__}: {exc}")

    def _apply(self, events: Sequence[IncomingEvent]) -> None:
        try:
            self._handler.handle_batch(events)
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
                raise TransientError(str(exc)) from exc
            raise
        self.applied_total += len(events)
        if self._on_applied is not None:
            self._on_applied(events)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            polled = self._consumer.poll(timeout_ms=200, max_records=self._max_batch)
            if not polled:
                continue
            records = [r for batch in polled.values() for r in batch]
            try:
                self.process(records)
            except TransientError as exc:
                logger.warning("transient failure, will retry in %.1fs: %s", backoff, exc)
                for tp, batch in polled.items():
                    self._consumer.seek(tp, batch[0].offset)
                stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
                continue
            backoff = 0.5
            offsets = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(batch[-1].offset + 1, "", -1)
                       for tp, batch in polled.items()}
            self._commit(offsets)
        logger.info("consumer %s stopping", self._name)

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        for attempt in range(3):
            try:
                self._consumer.commit(offsets)
            except Exception as exc:  # noqa: BLE001 - the effects are recorded; a lost commit means redelivery
                logger.warning("offset commit failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.2)
            else:
                return

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except Exception:
            logger.exception("closing consumer")
