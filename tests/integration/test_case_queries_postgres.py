"""Review's read-only case queries (services/review/adapters/queries.py) on a real PostgreSQL: the
contract of tests/unit/review/test_case_queries.py, and what only PostgreSQL has to show: a snapshot
that a concurrent writer does not change, and a location without the password."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from services.review.adapters import tables
from services.review.adapters.queries import CaseReader
from tests.unit.review.test_case_queries import MARCH_2, CaseQueriesContract, stored_row

pytestmark = pytest.mark.integration


class TestOnPostgres(CaseQueriesContract):
    @pytest.fixture
    def url(self, make_database: Callable[[str], str]) -> str:
        return make_database("case_queries")

    def test_a_snapshot_does_not_see_a_concurrent_write(self, url: str, reader: CaseReader,
                                                        rows: list[dict[str, Any]]) -> None:
        writer = sa.create_engine(url)
        try:
            with reader.snapshot() as cases:
                counted = cases.count(MARCH_2)
                with writer.begin() as conn:  # committed while the snapshot is open
                    conn.execute(sa.insert(tables.cases), [stored_row(MARCH_2 + dt.timedelta(minutes=30))])
                assert len(list(cases.received(MARCH_2))) == counted
            with reader.snapshot() as cases:
                assert cases.count(MARCH_2) == counted + 1
        finally:
            writer.dispose()

    def test_the_location_hides_the_password(self, reader: CaseReader) -> None:
        assert ":***@" in reader.location
        assert reader.location.startswith("postgresql")
