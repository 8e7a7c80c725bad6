"""Transactional outbox: events are rows written with the change they announce,
then published to Kafka by a relay and marked sent.

Contract: an event is published at least once; the first copy of each event reaches its topic after
the first copies of every event written before it under the same key (the same request), however
many replicas of the service run a relay against the same database. The consumers deduplicate on
the event id, so a later copy (a crash between publishing and marking, or a relay that lost its
lease mid-round) is a duplicate record, never a loss, and never overtakes.

How order holds across replicas: one relay at a time holds the outbox's :class:`RelayLease` (a row
of ``relay_lease`` with an expiry and an epoch), and only the holder publishes. The holder reads
the oldest unpublished rows in id order, publishes them in that order, then marks them: it never
skips a row, so a key's events go out in outbox order. A holder that dies or stalls past the expiry
is replaced by another replica's relay, which starts again from the oldest unpublished row; if the
stalled one wakes up mid-round, what it still sends are copies of rows the new holder publishes in
order too, and its marks are refused (fenced by the epoch). Expiry is judged by each replica's
injected clock: the lease must outlast the clocks' disagreement and a round's usual length.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, Exists, Insert, Table, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.common import tracing
from services.common.clock import Clock, ensure_utc, utcnow
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


@functools.cache
def _insert_into(outbox: Table) -> Insert:
    """``insert(outbox)``, built once per table (every staged event paid for building it and its cache key)."""
    return insert(outbox)


def add_events(conn: Connection, outbox: Table, events: Sequence[OutgoingEvent]) -> None:
    """Stage events in the caller's transaction; they exist only if it commits. With tracing on, each
    row keeps the ``traceparent`` of the span that created its event (services/common/tracing.py)."""
    if not events:
        return
    conn.execute(_insert_into(outbox), [
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


def relay_identity(service: str, port: int = 0) -> str:
    """Who holds a lease, as its logs and ``relay_lease.holder`` name it. A replica serving a fixed
    ``port`` is its host (the pod) and that port: restarted there (a crashed container, ``make run``
    again), it is the same replica and takes its lease back at once instead of waiting for it to
    expire; two live processes cannot serve one port of one host. Without a fixed port (0: any), the
    process id and a random part: every process is a replica of its own."""
    if port:
        return f"{service}@{socket.gethostname()}:{port}"[:200]
    return f"{service}@{socket.gethostname()}:pid{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


class RelayLease:
    """The right to publish one outbox, held by one relay at a time: the row ``name`` of the
    ``relay_lease`` table (services/common/db.py).

    :meth:`hold` (called at the start of every round, in the round's transaction) takes the lease when
    nobody holds it, its holder let it expire, or (at this relay's first look) it was held by an earlier
    process of this very replica (same ``holder``: it is dead, see :func:`relay_identity`); keeps it
    while it is this relay's (renewing it once half of ``lease_s`` has passed), and says whether this
    relay holds it. Every change of holder is a
    compare-and-set on ``epoch``, which it increments, so two relays racing for an expired lease cannot
    both win and a relay that lost it learns so at its next write. :meth:`fence` is the condition the
    holder's marks carry. Times come from ``clock``.
    """

    def __init__(self, table: Table, name: str, holder: str, lease_s: float, clock: Clock = utcnow) -> None:
        if lease_s <= 0:
            raise ValueError("a lease lasts a positive number of seconds")
        self.table = table
        self.name = name
        self.holder = holder
        self.lease = timedelta(seconds=lease_s)
        self._clock = clock
        #: The epoch this relay holds, None while it holds none.
        self.epoch: int | None = None
        self._looked = False

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def hold(self, conn: Connection) -> bool:
        """Take, keep or renew the lease in ``conn``'s transaction; whether this relay holds it now."""
        t = self.table
        now = self._clock()
        row = conn.execute(select(t.c.holder, t.c.epoch, t.c.expires_at).where(t.c.name == self.name)).first()
        if row is None:
            return self._first(conn, now)
        expires = ensure_utc(row.expires_at)
        mine = row.holder == self.holder and row.epoch == self.epoch
        first_look, self._looked = not self._looked, True
        if first_look and row.holder == self.holder and not mine:
            expires = now  # this replica's previous process held it: it is gone, take it back now
        if mine and expires > now:
            if expires - now >= self.lease / 2:
                return True
            renewed = conn.execute(update(t).where(t.c.name == self.name, t.c.epoch == row.epoch)
                                   .values(expires_at=now + self.lease)).rowcount
            return self._now_holding(row.epoch if renewed == 1 else None, row.holder)
        if expires > now:  # another relay's, and alive
            return self._now_holding(None, row.holder)
        taken = conn.execute(update(t).where(t.c.name == self.name, t.c.epoch == row.epoch)
                             .values(holder=self.holder, epoch=row.epoch + 1, expires_at=now + self.lease)).rowcount
        return self._now_holding(row.epoch + 1 if taken == 1 else None, row.holder)

    def _first(self, conn: Connection, now: datetime) -> bool:
        """The lease's row does not exist yet: create it, held by this relay (unless another relay
        created it meanwhile, which then holds it)."""
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT ... ON CONFLICT.
        created = conn.execute(dialect_insert(self.table).values(
            name=self.name, holder=self.holder, epoch=1, expires_at=now + self.lease)
            .on_conflict_do_nothing().returning(self.table.c.epoch)).first()
        return self._now_holding(1 if created is not None else None, "nobody")

    def _now_holding(self, epoch: int | None, previous: str) -> bool:
        if epoch is not None and self.epoch is None:
            logger.info("outbox relay %s holds the lease of %s (epoch %d; previous holder %s)", self.holder,
                        self.name, epoch, previous)
        elif epoch is None and self.epoch is not None:
            logger.warning("outbox relay %s lost the lease of %s to %s: another replica publishes now",
                           self.holder, self.name, previous)
        self.epoch = epoch
        return epoch is not None

    def fence(self) -> Exists:
        """The SQL condition 'this relay still holds the lease, at the epoch it read under'."""
        t = self.table
        return exists().where(t.c.name == self.name, t.c.holder == self.holder, t.c.epoch == self.epoch)

    def release(self, engine: Engine) -> None:
        """Let the lease go at once (a graceful stop): another replica takes over at its next look
        instead of after the expiry."""
        if self.epoch is None:
            return
        t = self.table
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.name == self.name, t.c.holder == self.holder, t.c.epoch == self.epoch)
                         .values(expires_at=self._clock()))
        logger.info("outbox relay %s released the lease of %s", self.holder, self.name)
        self.epoch = None


class OutboxRelay:
    """Publishes unsent outbox rows with acks=all, in id order, then marks them published.

    ``wake()`` after a commit gets the event out at once; otherwise the relay polls every ``idle_s``
    (which also picks up rows left by a crashed process). With a ``lease`` (as every service runs it)
    only the holder publishes; the others look every ``standby_s`` whether it is theirs to take, and
    what their own service commits is published by the holder within ``idle_s``. Without one the
    relay assumes it is alone.
    """

    def __init__(self, engine: Engine, outbox: Table, producer: Producer, producer_name: str,
                 batch_size: int = 500, idle_s: float = 0.2, wakeup: threading.Event | None = None,
                 metrics: Metrics | None = None, lease: RelayLease | None = None, standby_s: float = 1.0,
                 clock: Clock = utcnow) -> None:
        self._engine = engine
        self._outbox = outbox
        self._producer = producer
        self._producer_name = producer_name.encode()
        self._batch_size = batch_size
        self._idle_s = idle_s
        # Given when units of work are wired before the relay exists (they set it after commit).
        self._wakeup = wakeup if wakeup is not None else threading.Event()
        self._metrics = metrics
        self._lease = lease
        self._standby_s = standby_s
        self._clock = clock

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def active(self) -> bool:
        """Whether this relay publishes (it holds the lease, or runs without one)."""
        return self._lease is None or self._lease.held

    def publish_pending(self) -> int:
        """One round: publish up to batch_size rows (none when another relay holds the lease).
        Returns how many were published.

        Three steps, none holding a transaction across the broker's answer (a stalled broker blocks no
        writer): read the oldest unpublished rows (after taking or renewing the lease), publish them in
        order and wait for every acknowledgement, then mark them, only while the lease is still ours."""
        t = self._outbox
        query = (select(t.c.id, t.c.event_id, t.c.topic, t.c.message_key, t.c.event_type,
                        t.c.schema_version, t.c.payload, t.c.traceparent)
                 .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self._batch_size))
        with self._engine.begin() as conn:
            holding = self._lease is None or self._lease.hold(conn)
            rows = conn.execute(query).all() if holding else []
        if self._metrics is not None:
            self._metrics.outbox_relay_active.set(1 if holding else 0)
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
        mark = update(t).where(t.c.id.in_([r.id for r in rows])).values(published_at=self._clock())
        if self._lease is not None:
            mark = mark.where(self._lease.fence())
        with self._engine.begin() as conn:
            marked = conn.execute(mark).rowcount
        if marked != len(rows):
            # The lease changed hands during the round: the new holder publishes these rows again.
            logger.warning("outbox relay: the lease was taken over mid-round; %d published rows are left to "
                           "the new holder (consumers drop the copies)", len(rows))
        if self._metrics is not None:
            for row in rows:
                self._metrics.outbox_published.labels(row.topic).inc()
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop``. A failed round (broker or database away) is retried 0.5 s later,
        backing off to :data:`MAX_BACKOFF_S`: short, because the relay is the first hop of every
        decision after an outage. The first failure of a kind logs its traceback; while it lasts, a
        reminder every :data:`REMINDER_S`. On stop, the holder drains what committed and releases
        the lease."""
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
            if not self.active:
                stop.wait(self._standby_s)
            elif published < self._batch_size:
                self._wakeup.wait(self._idle_s)
        self._drain()

    def _drain(self) -> None:
        """Publish what committed before shutdown (when this relay holds the lease, or can take it), so
        a graceful stop leaves nothing behind, then hand the lease over."""
        try:
            while self.publish_pending():
                pass
            if self._lease is not None:
                self._lease.release(self._engine)
        except Exception:
            logger.exception("final outbox drain failed; rows stay for the next holder")


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
