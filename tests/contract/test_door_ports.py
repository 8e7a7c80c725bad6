"""The doors' SubmissionStore (services/intake/service_layer/door_ports.py): one contract, run against
the fake (tests/fakes/door.py), SQLite and PostgreSQL (services/intake/adapters/door_store.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from services.common.db import make_engine
from services.intake.adapters.door_store import SqlSubmissionStore, migrate
from services.intake.service_layer.door_ports import SubmissionStore
from tests.fakes.door import FakeSubmissionStore

T = TypeVar("T")
AT = dt.datetime(2027, 3, 1, 14, 30, 5, tzinfo=dt.UTC)
RID = "00000000-0000-4000-8000-000000000001"
RID2 = "00000000-0000-4000-8000-000000000002"
BUNDLE = {"resourceType": "Bundle", "type": "collection", "identifier": {"value": "B-1"},
          "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Claim", "id": "ü"}}]}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SubmissionStore]:
    if request.param == "fake":
        yield FakeSubmissionStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fhir.db'}"
    else:
        make_database: Callable[[str], str] = request.getfixturevalue("make_database")
        url = make_database("doors")
    engine = make_engine(url)
    migrate(engine)
    yield SqlSubmissionStore(engine)
    engine.dispose()


def test_a_recorded_request_is_read_back_whole(store: SubmissionStore) -> None:
    run(store.record(RID, "clinic", BUNDLE, [("urn:trnorg:1", "T-1")], AT))
    stored = run(store.get(RID))
    assert stored is not None
    assert (stored.request_id, stored.submitter, stored.recorded_at) == (RID, "clinic", AT)
    assert stored.bundle == BUNDLE
    assert run(store.get(RID2)) is None


def test_recording_again_replaces_the_bundle_and_adds_identifiers(store: SubmissionStore) -> None:
    run(store.record(RID, "clinic", BUNDLE, [("urn:trnorg:1", "T-1")], AT))
    later = {**BUNDLE, "identifier": {"value": "B-2"}}
    run(store.record(RID, "clinic", later, [("urn:trnorg:1", "T-1"), ("urn:trnorg:1", "T-1-UPD")],
                     AT + dt.timedelta(minutes=1)))
    stored = run(store.get(RID))
    assert stored is not None
    assert stored.bundle == later
    assert run(store.find("clinic", "urn:trnorg:1", "T-1")) == [RID]
    assert run(store.find("clinic", "urn:trnorg:1", "T-1-UPD")) == [RID]


def test_identifiers_are_the_submitters_own(store: SubmissionStore) -> None:
    run(store.record(RID, "clinic", BUNDLE, [("urn:trnorg:1", "T-1")], AT))
    run(store.record(RID2, "clinic", BUNDLE, [("urn:trnorg:1", "T-1")], AT + dt.timedelta(seconds=1)))
    assert run(store.find("clinic", "urn:trnorg:1", "T-1")) == [RID, RID2]
    assert run(store.find("clearinghouse", "urn:trnorg:1", "T-1")) == []
    assert run(store.find("clinic", "urn:trnorg:2", "T-1")) == []
    long_system = "urn:" + "x" * 5000
    run(store.record(RID2, "clinic", BUNDLE, [(long_system, "y" * 5000)], AT))
    assert run(store.find("clinic", long_system, "y" * 5000)) == [RID2]


def test_control_numbers_are_fresh(store: SubmissionStore) -> None:
    numbers = [run(store.next_control_number()) for _ in range(5)]
    assert len(set(numbers)) == 5
    assert all(1 <= n <= 999_999_999 for n in numbers)
