"""Transactional outbox: events are rows written with the change they announce,
then published to Kafka by a relay and marked sent.

Contract: an event is published at least once, in outbox order per relay; the
consumers deduplicate on the event id, so a crash between publishing and
marking (or a second relay instance) costs a duplicate record, never a loss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table, func, insert, select, update

from services.common import tracing
from services.common.clock import utcnow
from services.common.db import is_postgres
from services.common.events import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_PRODUCER,
    HEADER_SCHEMA_VERSION,
    OutgoingEvent,
)
from services.common.kafka_io import Producer
from services.common.metrics import Metrics

logger = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 2.0
#: While a failure lasts, how often it is logged again (its first occurrence always is, with its traceback).
REMINDER_S = 60.0


def add_events(conn: Connection, outbox: Table, events: Sequence[OutgoingEvent]) -> None:
    """Stage events in the caller's transaction; they exist only if it commits. With tracing on, each
    row keeps the ``traceparent`` of the span that created its event (services/common/tracing.py)."""
    if not events:
        return
    conn.execute(insert(outbox), [
        {
            "event_id": e.event_id,
            "topic": e.topic,
            "message_key": e.key,
            "event_type": e.event_type,
            "schema_version": e.schema_version,
            "payload": e.message.SerializeToString(),
            "created_at": e.created_at,
            "traceparent": tracing.event_created(e.topic, e.key, e.event_id),
        }
        for e in events
    ])


class OutboxRelay:
    """Publishes unsent outbox rows with acks=all, then marks them published.

    ``wake()`` after a commit gets the event out at once; otherwise the relay
    polls every ``idle_s`` (which also picks up rows left by a crashed process).
    """

    def __init__(self, engine: Engine, outbox: Table, producer: Producer, producer_name: str,
                 batch_size: int = 500, idle_s: float = 0.2, wakeup: threading.Event | None = None,
                 metrics: Metrics | None = None) -> None:
        self._engine = engine
        self._outbox = outbox
        self._producer = producer
        self._producer_name = producer_name.encode()
        self._batch_size = batch_size
        self._idle_s = idle_s
        # Given when units of work are wired before the relay exists (they set it after commit).
        self._wakeup = wakeup if wakeup is not None else threading.Event()
        self._metrics = metrics

    def wake(self) -> None:
        self._wakeup.set()

    def publish_pending(self) -> int:
        """One round: publish up to batch_size rows. Returns how many were published."""
        t = self._outbox
        query = (select(t.c.id, t.c.event_id, t.c.topic, t.c.message_key, t.c.event_type,
                        t.c.schema_version, t.c.payload, t.c.traceparent)
                 .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self._batch_size))
        if is_postgres(self._engine):
            # A second relay (another replica) skips rows this one is publishing.
            query = query.with_for_update(skip_locked=True)
        with self._engine.begin() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return 0
            futures = [
                self._producer.send(
                    row.topic, key=row.message_key.encode(), value=bytes(row.payload),
                    headers=[(HEADER_EVENT_TYPE, row.event_type.encode()),
                             (HEADER_SCHEMA_VERSION, row.schema_version.encode()),
                             (HEADER_EVENT_ID, row.event_id.encode()),
                             (HEADER_PRODUCER, self._producer_name), *tracing.kafka_headers(row.traceparent)])
                for row in rows
            ]
            self._producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=30)  # raises if the broker did not take it: nothing is marked
            conn.execute(update(t).where(t.c.id.in_([r.id for r in rows])).values(published_at=utcnow()))
        if self._metrics is not None:
            for row in rows:
                self._metrics.outbox_published.labels(row.topic).inc()
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop``. A failed round (broker or database away) is retried 0.5 s later,
        backing off to :data:`MAX_BACKOFF_S`: short, because the relay is the first hop of every
        decision after an outage. The first failure of a kind logs its traceback; while it lasts, a
        reminder every :data:`REMINDER_S`."""
        backoff = FIRST_BACKOFF_S
        failing: str | None = None
        since = reminded = 0.0
        while not stop.is_set():
            # Cleared before the round so that a wake() during it is not lost.
            self._wakeup.clear()
            try:
                published = self.publish_pending()
            except Exception as exc:
                now = time.monotonic()
                condition = type(exc).__name__
                if condition != failing:
                    logger.exception("outbox relay round failed; retrying every %.1f s or less", MAX_BACKOFF_S)
                    since = now if failing is None else since
                    reminded = now
                elif now - reminded >= REMINDER_S:
                    logger.warning("outbox relay still failing after %.0f s (%s: %s)", now - since, condition,
                                   str(exc).splitlines()[0] if str(exc) else "")
                    reminded = now
                failing = condition
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if failing is not None:
                logger.info("outbox relay recovered after %.1f s (%s)", time.monotonic() - since, failing)
                failing = None
            backoff = FIRST_BACKOFF_S
            if published < self._batch_size:
                self._wakeup.wait(self._idle_s)
        # Drain what committed before shutdown so a graceful stop leaves nothing behind.
        try:
            while self.publish_pending():
                pass
        except Exception:
            logger.exception("final outbox drain failed; rows stay for the next start")


def backlog(engine: Engine, outbox: Table, now: datetime) -> tuple[int, float]:
    """(rows not yet published, age in seconds of the oldest of them, 0 when none): one query on the
    partial index of unpublished rows."""
    t = outbox
    with engine.connect() as conn:
        count, oldest = conn.execute(select(func.count(), func.min(t.c.created_at))
                                     .where(t.c.published_at.is_(None))).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands timestamps back naive; they were written in UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (now - oldest).total_seconds())
