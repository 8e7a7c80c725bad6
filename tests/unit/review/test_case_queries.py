"""services/review/adapters/queries.py: review's read-only queries over its stored cases. One contract,
run here on SQLite and in tests/integration/test_case_queries_postgres.py on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.errors import ConfigurationError, NotFound, Unavailable
from services.review.adapters import tables
from services.review.adapters.queries import (
    CaseReader,
    StoredCase,
    UnreadableCase,
    open_case_reader,
    read_only_engine,
)
from tests.factories import lumbar_mri, submitted_event

MARCH_2 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def stored_row(received_at: dt.datetime, *, request_id: str | None = None, person: bool = False,
               garbage: bool = False) -> dict[str, Any]:
    """A ``cases`` row as review's consumer writes it; ``person``: a nurse has since approved line 1
    (the workflow replaces that line of the stored determination); ``garbage``: bytes that do not decode."""
    request_id = request_id or str(uuid.uuid4())
    request = submitted_event(lumbar_mri(meets=False), request_id, received_at).message
    assert isinstance(request, events_pb2.RequestSubmitted)
    determination = types_pb2.Determination(
        request_id=request_id, determination_id=str(uuid.uuid4()),
        decided_by=types_pb2.DeciderRef(id="system:rules-engine", role="software"))
    line = determination.lines.add(line_number=1, procedure_code="72148",
                                   outcome=types_pb2.LINE_OUTCOME_REFER_TO_NURSE,
                                   decided_by=types_pb2.DeciderRef(id="system:rules-engine", role="software"))
    line.explanation.criteria_id = "imaging-mri-lumbar-spine"
    if person:
        line.action_code = types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
        line.decided_by.CopyFrom(types_pb2.DeciderRef(id="rn-okafor", role="nurse", name="A. Okafor"))
    return {
        "request_id": request_id, "determination_id": determination.determination_id,
        "member_id": request.member_id, "line_of_business": "medicare_advantage", "member_state": "CA",
        "urgency": "standard", "review_type": "prospective", "requesting_npi": "1234567893",
        "received_at": received_at, "due_at": received_at + dt.timedelta(days=7), "regime": "cms-0057-f",
        "request": b"\xff\xff not a protobuf" if garbage else request.SerializeToString(),
        "determination": determination.SerializeToString(), "created_at": received_at}


def seed(url: str, rows: list[dict[str, Any]]) -> None:
    """Review's schema and ``rows`` (case rows as review's adapter writes them)."""
    engine = sa.create_engine(url)
    try:
        tables.metadata.create_all(engine)
        with engine.begin() as conn:
            if rows:
                conn.execute(sa.insert(tables.cases), rows)
    finally:
        engine.dispose()


class CaseQueriesContract:
    """What the read-only queries give on every database review runs on; subclasses supply ``url``
    (a database that does not exist yet or holds no tables) as a fixture."""

    @pytest.fixture
    def rows(self, url: str) -> list[dict[str, Any]]:
        """Five cases: two on 2026-03-02 (received in reverse id order), one exactly at the start
        of 2026-03-03, one a nurse has decided since, and one before the window that cannot be decoded."""
        rows = [stored_row(MARCH_2 + dt.timedelta(minutes=5), request_id="b" * 8),
                stored_row(MARCH_2 + dt.timedelta(minutes=5), request_id="a" * 8),
                stored_row(dt.datetime(2026, 3, 3, tzinfo=dt.UTC)),
                stored_row(MARCH_2 + dt.timedelta(hours=1), person=True),
                stored_row(dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC), garbage=True)]
        seed(url, rows)
        return rows

    @pytest.fixture
    def reader(self, url: str, rows: list[dict[str, Any]]) -> Iterator[CaseReader]:
        with open_case_reader(url) as reader:
            yield reader

    def test_cases_in_a_window_come_decoded_oldest_first(self, reader: CaseReader,
                                                         rows: list[dict[str, Any]]) -> None:
        start, end = dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
        with reader.snapshot() as cases:
            got = list(cases.received(start, end))
            assert cases.count(start, end) == len(got) == 3
        assert [c.request_id for c in got] == ["a" * 8, "b" * 8, rows[3]["request_id"]]
        for case in got:
            assert isinstance(case, StoredCase)
            row = next(r for r in rows if r["request_id"] == case.request_id)
            assert case.request.SerializeToString() == row["request"]
            assert case.determination.SerializeToString() == row["determination"]
            assert case.request.request_id == case.determination.request_id == case.request_id
            assert case.received_at == row["received_at"]
            assert case.received_at.tzinfo is not None
            assert case.received_at.utcoffset() == dt.timedelta(0)

    def test_the_window_is_half_open_and_open_ended_without_an_end(self, reader: CaseReader) -> None:
        march_3 = dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
        with reader.snapshot() as cases:
            assert cases.count(march_3) == 1  # received exactly at the start: in
            assert cases.count(MARCH_2, march_3) == 3  # received exactly at the end: out
            assert cases.count(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == 5
            assert cases.count(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) == 0
            assert list(cases.received(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))) == []

    def test_a_case_that_cannot_be_decoded_is_reported_not_raised(self, reader: CaseReader,
                                                                  rows: list[dict[str, Any]]) -> None:
        with reader.snapshot() as cases:
            (case,) = cases.received(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
        assert isinstance(case, UnreadableCase)
        assert case.request_id == rows[4]["request_id"]
        assert "cannot decode" in case.problem
        assert case.received_at == dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)

    def test_lines_a_person_decided(self, reader: CaseReader, rows: list[dict[str, Any]]) -> None:
        with reader.snapshot() as cases:
            decided = cases.case(rows[3]["request_id"])
            software = cases.case(rows[0]["request_id"])
        assert isinstance(decided, StoredCase)
        assert isinstance(software, StoredCase)
        (line,) = decided.decided_by_person().values()
        assert (line.line_number, line.decided_by.role, line.action_code) == \
            (1, "nurse", types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL)
        assert software.decided_by_person() == {}

    def test_one_case_by_request_id(self, reader: CaseReader, rows: list[dict[str, Any]]) -> None:
        with reader.snapshot() as cases:
            case = cases.case(rows[2]["request_id"])
            assert cases.case(str(uuid.uuid4())) is None
        assert isinstance(case, StoredCase)
        assert case.request_id == rows[2]["request_id"]
        assert case.received_at == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)

    def test_the_extent_of_what_is_stored(self, url: str, reader: CaseReader) -> None:
        with reader.snapshot() as cases:
            extent = cases.extent()
        assert extent.count == 5
        assert extent.first_received == dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
        assert extent.last_received == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)

    def test_the_extent_of_an_empty_database(self, url: str) -> None:
        seed(url, [])
        with open_case_reader(url) as reader, reader.snapshot() as cases:
            extent = cases.extent()
            assert cases.count(MARCH_2) == 0
        assert (extent.count, extent.first_received, extent.last_received) == (0, None, None)

    def test_the_engine_refuses_writes(self, url: str, rows: list[dict[str, Any]]) -> None:
        engine, _ = read_only_engine(url)
        try:
            with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=r"readonly|read-only"):
                conn.execute(sa.delete(tables.cases))
        finally:
            engine.dispose()
        with open_case_reader(url) as reader, reader.snapshot() as cases:
            assert cases.extent().count == len(rows)

    def test_a_database_without_review_s_schema_is_unavailable(self, url: str) -> None:
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # exists, but holds no cases table
            conn.execute(sa.text("CREATE TABLE unrelated (id INTEGER)"))
        engine.dispose()
        with open_case_reader(url) as reader:
            with pytest.raises(Unavailable, match="cannot read the review database") as caught, \
                    reader.snapshot() as cases:
                cases.count(MARCH_2)
            assert reader.location in str(caught.value)

    def test_the_caller_s_own_errors_pass_through(self, reader: CaseReader) -> None:
        def count_then_fail() -> None:
            with reader.snapshot() as cases:
                cases.count(MARCH_2)
                raise KeyError("mine")

        with pytest.raises(KeyError, match="mine"):
            count_then_fail()


class TestOnSqlite(CaseQueriesContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'review.db'}"

    def test_reading_leaves_the_file_untouched(self, url: str, tmp_path: Path, reader: CaseReader) -> None:
        path = tmp_path / "review.db"
        before = path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))
        with reader.snapshot() as cases:
            list(cases.received(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
        assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before

    def test_a_file_a_service_has_open_is_read_without_immutable(self, url: str, tmp_path: Path,
                                                                 rows: list[dict[str, Any]]) -> None:
        """With a -wal file beside it (a live service), the file is read as it is now, not frozen."""
        writer = sqlite3.connect(tmp_path / "review.db")
        try:
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute("DELETE FROM cases WHERE request_id = ?", (rows[0]["request_id"],))
            writer.commit()  # in the -wal file, not yet in the main file
            assert (tmp_path / "review.db-wal").exists()
            with open_case_reader(url) as reader, reader.snapshot() as cases:
                assert cases.extent().count == len(rows) - 1
        finally:
            writer.close()

    def test_where_there_is_no_database(self, tmp_path: Path) -> None:
        with pytest.raises(NotFound, match="no review database at"):
            open_case_reader(f"sqlite:///{tmp_path / 'absent.db'}")
        with pytest.raises(NotFound):
            open_case_reader("sqlite://")
        with pytest.raises(ConfigurationError, match="not a database URL"):
            open_case_reader("::")
        with pytest.raises(ConfigurationError, match="SQLite or PostgreSQL, not mysql"):
            open_case_reader("mysql://u@h/db")
