"""Retention of the two tables that would otherwise only grow: published outbox rows and the ids of
consumed events (``processed_events``). The runtime runs :meth:`Retention.prune` periodically
(``UR_RETENTION_INTERVAL_S``).

Why deleting is safe, and when:

* **Published outbox rows** (``UR_OUTBOX_RETENTION_DAYS``, default 7). A row is marked published
  only after the broker acknowledged it with ``acks=all`` (services/common/outbox.py); the relay
  never reads a marked row again, and nothing looks a row up by its event id (ids are random), so
  a published row serves only inspection and can go at any age. Unpublished rows are never deleted,
  however old: they are events still owed to the broker.

* **Processed event ids** (``UR_PROCESSED_EVENTS_RETENTION_DAYS``, default 14). An id must be
  remembered for as long as a copy of its event can still be delivered; a copy older than that is
  applied again. Copies come from

  1. redelivery after a crash or a rebalance, from the last committed offset: seconds old;
  2. a replay of the whole log when a group's committed offsets are gone (Kafka expires the offsets
     of a group that has been empty for ``offsets.retention.minutes``, 7 days by default; an
     operator may reset them): as old as the oldest record the topic still retains;
  3. a relay that stopped between publishing and marking republishes its last batch when it comes
     back: the copy is as old as that service's downtime.

  (2) is bounded by the consumed topics' ``retention.ms``: the window actually used is the larger
  of the setting and the longest retention of the topics the service consumes plus a day (asked of
  the broker at each pass; a pass that cannot ask leaves the ids alone); a topic retained forever
  turns pruning of ``processed_events`` off.
  (3) is covered as long as no service stays down longer than the window (14 days by default);
  beyond that, the handlers' own checks (one case per request, one authorization per line) still
  refuse the duplicate.

Rows go in batches of :data:`BATCH`, each in its own short transaction, oldest first through an
index (``ix_outbox_published_at``, ``ix_processed_events_processed_at``), so a pass never holds
locks for long or reads what it keeps.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Delete, Engine, Table, delete, select, tuple_

from services.common.clock import Clock, utcnow

logger = logging.getLogger(__name__)

#: Rows deleted per transaction, and at most this many transactions per table and pass (the next
#: pass goes on where this one stopped).
BATCH = 5000
MAX_BATCHES = 200
#: Kept beyond the consumed topics' retention: a record may be read a little after it would expire.
TOPIC_RETENTION_MARGIN = dt.timedelta(days=1)


def dedupe_window(configured: dt.timedelta, topic_retention_ms: Mapping[str, int | None]) -> dt.timedelta | None:
    """How long processed event ids are kept: ``configured``, but never less than the longest retention
    of the consumed topics plus :data:`TOPIC_RETENTION_MARGIN`; ``None`` (keep them all) when a topic
    keeps its records forever (``None`` or a negative ``retention.ms``)."""
    window = configured
    for topic, retention_ms in sorted(topic_retention_ms.items()):
        if retention_ms is None or retention_ms < 0:
            logger.warning("topic %s keeps its records forever: consumed event ids are never pruned", topic)
            return None
        needed = dt.timedelta(milliseconds=retention_ms) + TOPIC_RETENTION_MARGIN
        if needed > window:
            logger.info("topic %s retains records for %s: consumed event ids are kept %s, not %s", topic,
                        dt.timedelta(milliseconds=retention_ms), needed, configured)
            window = needed
    return window


@dataclass
class Retention:
    """Deletes published outbox rows older than ``outbox_after`` and processed event ids older than the
    window ``processed_after()`` returns at each pass (``None``: none this pass)."""

    engine: Engine
    outbox: Table
    processed: Table
    outbox_after: dt.timedelta
    processed_after: Callable[[], dt.timedelta | None]
    clock: Clock = utcnow
    batch: int = BATCH
    max_batches: int = MAX_BATCHES

    def prune(self) -> dict[str, int]:
        """One pass; returns how many rows of each table went."""
        now = self.clock()
        counts = {"outbox": self._prune_outbox(now - self.outbox_after)}
        window = self.processed_after()
        counts["processed_events"] = 0 if window is None else self._prune_processed(now - window)
        if any(counts.values()):
            logger.info("retention: deleted %d published outbox rows and %d processed event ids",
                        counts["outbox"], counts["processed_events"])
        return counts

    def _prune_outbox(self, cutoff: dt.datetime) -> int:
        t = self.outbox
        oldest = (select(t.c.id).where(t.c.published_at.is_not(None), t.c.published_at < cutoff)
                  .order_by(t.c.published_at).limit(self.batch))
        return self._in_batches(delete(t).where(t.c.id.in_(oldest.scalar_subquery())))

    def _prune_processed(self, cutoff: dt.datetime) -> int:
        t = self.processed
        oldest = (select(t.c.consumer, t.c.event_id).where(t.c.processed_at < cutoff)
                  .order_by(t.c.processed_at).limit(self.batch))
        return self._in_batches(delete(t).where(tuple_(t.c.consumer, t.c.event_id).in_(oldest)))

    def _in_batches(self, statement: Delete) -> int:
        deleted = 0
        for _ in range(self.max_batches):
            with self.engine.begin() as conn:
                gone = conn.execute(statement).rowcount
            deleted += gone
            if gone < self.batch:
                break
        return deleted
