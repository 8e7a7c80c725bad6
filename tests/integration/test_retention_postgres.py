"""Retention on PostgreSQL, on a service's migrated schema: old published outbox rows and old processed
event ids go, in batches, through the indexes the migrations add; unpublished rows stay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import insert, select, text

from services.authorization.adapters import tables
from services.common import migrations
from services.common.db import make_engine
from services.common.retention import Retention

pytestmark = pytest.mark.integration

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def test_retention_prunes_a_migrated_schema(make_database: Callable[[str], str]) -> None:
    engine = make_engine(make_database("retention"))
    migrations.upgrade("authorization", engine)
    with engine.begin() as conn:
        conn.execute(insert(tables.outbox), [
            {"event_id": f"e-{n}", "topic": "t", "message_key": "k", "event_type": "T", "schema_version": "1",
             "payload": b"x", "created_at": NOW - 10 * DAY,
             "published_at": None if n % 10 == 0 else NOW - 10 * DAY + n * dt.timedelta(seconds=1)}
            for n in range(100)])
        conn.execute(insert(tables.processed_events), [
            {"consumer": "authorization", "event_id": f"p-{n}", "processed_at": NOW - (20 if n < 60 else 1) * DAY}
            for n in range(100)])
        indexes = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename IN "
                                        "('outbox', 'processed_events')")).scalars())
    assert {"ix_outbox_published_at", "ix_processed_events_processed_at"} <= indexes
    retention = Retention(engine, tables.outbox, tables.processed_events, outbox_after=7 * DAY,
                          processed_after=lambda: 14 * DAY, clock=lambda: NOW, batch=25)
    assert retention.prune() == {"outbox": 90, "processed_events": 60}
    with engine.connect() as conn:
        left = list(conn.execute(select(tables.outbox.c.published_at)).scalars())
        kept = conn.execute(select(tables.processed_events.c.event_id)).scalars().all()
    assert left == [None] * 10
    assert sorted(kept) == sorted(f"p-{n}" for n in range(60, 100))
    engine.dispose()
