"""The FHIR door's recorded PAS Bundles as the subscription worker reads them, on SQLite and
PostgreSQL: none before the door created its table, the submitter and Bundle after, an outage raised."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from services.common.clock import utcnow
from services.common.db import make_engine
from services.intake.adapters.door_store import migrate
from services.intake.adapters.door_tables import pas_requests
from services.intake.interop.subscriptions.adapters.door_submissions import DoorSubmissions
from services.intake.interop.subscriptions.adapters.results import PasSubmission

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_doors_records_are_read_when_its_table_exists(backend: str, tmp_path: Path,
                                                          make_database: Callable[[str], str]) -> None:
    url = f"sqlite:///{tmp_path / 'fhir.db'}" if backend == "sqlite" else make_database("fhir")
    engine = make_engine(url)
    read = DoorSubmissions(engine)
    try:
        with engine.connect() as conn:
            assert read(conn, ["r-1"]) == {}  # no door yet: no PAS request
        migrate(engine)  # the door's own migrations
        bundle = {"resourceType": "Bundle", "type": "collection"}
        with engine.begin() as conn:
            conn.execute(insert(pas_requests).values(request_id="r-1", submitter="org-a", recorded_at=utcnow(),
                                              bundle=zlib.compress(json.dumps(bundle).encode())))
        with engine.connect() as conn:
            found = read(conn, ["r-1", "r-2"])
            assert read(conn, []) == {}
        assert list(found) == ["r-1"]
        assert found["r-1"].submitter == "org-a"
        assert json.loads(found["r-1"].bundle) == bundle
        assert isinstance(found["r-1"], PasSubmission)
    finally:
        engine.dispose()


def test_an_unreachable_database_raises_rather_than_answering_none(refused_target: str) -> None:
    engine = make_engine(f"postgresql+psycopg://ur:ur@{refused_target}/fhir?connect_timeout=2")
    try:
        with pytest.raises(OperationalError):
            DoorSubmissions(engine)(None, ["r-1"])  # type: ignore[arg-type]
    finally:
        engine.dispose()
