"""Retention: published outbox rows and processed event ids go once past their windows, oldest first
and in batches; unpublished rows never; the deduplication window is never shorter than what the
consumed topics retain."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, select

from services.common.db import make_engine, outbox_table, processed_events_table
from services.common.retention import TOPIC_RETENTION_MARGIN, Retention, dedupe_window

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _tables(tmp_path: Path) -> tuple[Engine, Table, Table]:
    engine = make_engine(f"sqlite:///{tmp_path / 'retention.db'}")
    metadata = MetaData()
    outbox, processed = outbox_table(metadata), processed_events_table(metadata)
    metadata.create_all(engine)
    return engine, outbox, processed


def _outbox_row(n: int, created: dt.datetime, published: dt.datetime | None) -> dict[str, object]:
    return {"event_id": f"e-{n}", "topic": "t", "message_key": "k", "event_type": "T", "schema_version": "1",
            "payload": b"x", "created_at": created, "published_at": published}


def test_published_rows_past_the_window_go_and_unpublished_ones_stay_however_old(tmp_path: Path) -> None:
    engine, outbox, processed = _tables(tmp_path)
    with engine.begin() as conn:
        conn.execute(insert(outbox), [
            *[_outbox_row(n, NOW - 30 * DAY, NOW - 30 * DAY + n * dt.timedelta(minutes=1)) for n in range(7)],
            _outbox_row(7, NOW - 2 * DAY, NOW - 2 * DAY),  # published, inside the window
            _outbox_row(8, NOW - 60 * DAY, None),  # never published: still owed to the broker
        ])
    retention = Retention(engine, outbox, processed, outbox_after=7 * DAY, processed_after=lambda: None,
                          clock=lambda: NOW, batch=3)
    assert retention.prune() == {"outbox": 7, "processed_events": 0}
    with engine.connect() as conn:
        assert sorted(conn.execute(select(outbox.c.event_id)).scalars()) == ["e-7", "e-8"]
    assert retention.prune() == {"outbox": 0, "processed_events": 0}


def test_processed_ids_past_the_window_go_in_batches(tmp_path: Path) -> None:
    engine, outbox, processed = _tables(tmp_path)
    with engine.begin() as conn:
        conn.execute(insert(processed), [
            *[{"consumer": c, "event_id": f"old-{n}", "processed_at": NOW - 20 * DAY + n * dt.timedelta(seconds=1)}
              for n in range(5) for c in ("review", "intake")],
            {"consumer": "review", "event_id": "recent", "processed_at": NOW - 13 * DAY},
        ])
    retention = Retention(engine, outbox, processed, outbox_after=7 * DAY, processed_after=lambda: 14 * DAY,
                          clock=lambda: NOW, batch=4, max_batches=2)
    # Two batches of four per pass: the next pass goes on where this one stopped.
    assert retention.prune()["processed_events"] == 8
    assert retention.prune()["processed_events"] == 2
    with engine.connect() as conn:
        assert list(conn.execute(select(processed.c.event_id)).scalars()) == ["recent"]


def test_without_a_window_processed_ids_are_kept(tmp_path: Path) -> None:
    engine, outbox, processed = _tables(tmp_path)
    with engine.begin() as conn:
        conn.execute(insert(processed), [{"consumer": "review", "event_id": "ancient",
                                          "processed_at": NOW - 400 * DAY}])
    retention = Retention(engine, outbox, processed, outbox_after=DAY, processed_after=lambda: None,
                          clock=lambda: NOW)
    assert retention.prune()["processed_events"] == 0


@pytest.mark.parametrize(("configured", "topics", "expected"), [
    (14 * DAY, {"a": int((7 * DAY).total_seconds() * 1000)}, 14 * DAY),
    (DAY, {"a": int((7 * DAY).total_seconds() * 1000), "b": 3_600_000}, 7 * DAY + TOPIC_RETENTION_MARGIN),
    (DAY, {}, DAY),
    (14 * DAY, {"a": 3_600_000, "forever": -1}, None),
    (14 * DAY, {"unknown": None}, None),
])
def test_the_dedupe_window_covers_the_longest_topic_retention(configured: dt.timedelta,
                                                              topics: dict[str, int | None],
                                                              expected: dt.timedelta | None) -> None:
    assert dedupe_window(configured, topics) == expected
