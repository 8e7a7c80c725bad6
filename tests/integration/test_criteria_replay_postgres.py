"""`urctl criteria replay` against review's schema on a real PostgreSQL: the same what-if report as
on SQLite, read in a read-only transaction, and nothing in the database changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.cli import urctl
from services.review.adapters import tables
from services.review.adapters.queries import read_only_engine
from tests.unit.cli.test_criteria_cli import check_replay_report, seed_review_database, write_draft

pytestmark = pytest.mark.integration


def _contents(url: str) -> dict[str, Any]:
    """Row counts of every review table, and every stored case byte for byte."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                      for t in tables.metadata.sorted_tables}
            cases = [tuple(r) for r in conn.execute(sa.select(tables.cases).order_by(tables.cases.c.request_id))]
        return {"counts": counts, "cases": cases}
    finally:
        engine.dispose()


def test_replay_on_postgresql_reads_and_writes_nothing(make_database: Callable[[str], str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("UR_REVIEW_CRITERIA_DIR", raising=False)
    url = make_database("replay")
    stored = seed_review_database(url)
    before = _contents(url)
    assert before["counts"]["cases"] == stored

    draft = write_draft(tmp_path)
    assert urctl.main(["criteria", "replay", str(draft), "--since", "2026-03-01", "--database-url", url,
                       "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    check_replay_report(report)
    assert "***" in report["database"]  # the password is never printed

    monkeypatch.setenv("UR_REVIEW_DATABASE_URL", url)  # the default database comes from the setting
    assert urctl.main(["criteria", "replay", str(draft), "--since", "2026-03-01"]) == 0
    out = capsys.readouterr().out
    assert "was approved → would now be referred to a nurse" in out
    assert "symptom_duration_weeks=8 weeks" in out

    assert _contents(url) == before


def test_the_read_only_engine_refuses_writes_on_postgresql(make_database: Callable[[str], str]) -> None:
    url = make_database("replay_ro")
    seed_review_database(url)
    engine, shown = read_only_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW transaction_read_only")).scalar_one() == "on"
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                conn.execute(sa.delete(tables.cases))
    finally:
        engine.dispose()
    assert "***" in shown
    assert _contents(url)["counts"]["cases"] == 5
