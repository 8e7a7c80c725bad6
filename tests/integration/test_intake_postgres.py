"""Intake's handlers on a real PostgreSQL: atomic request + outbox, nothing
half-written for bad input, one request per idempotency key under a race,
and idempotent application of determination/authorization events."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, func, select, update
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import FailedPrecondition, IdempotencyConflict, NotFound, ValidationFailed
from services.common.events import IncomingEvent
from services.common.settings import IntakeSettings
from services.intake import bootstrap
from services.intake.adapters import tables
from services.intake.domain.model import RequestStatus
from services.intake.entrypoints.mapping import information_to_domain, to_domain
from services.intake.service_layer.handlers import IntakeHandlers
from tests.conftest import REPO
from tests.factories import fact, lumbar_mri
from tests.identity import CLINIC

pytestmark = pytest.mark.integration


@dataclass
class Intake:
    engine: Engine
    handlers: IntakeHandlers

    def count(self, table: object) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
def intake(make_database: Callable[[str], str]) -> Iterator[Intake]:
    app = bootstrap.build(IntakeSettings(database_url=make_database("intake"), topic_prefix="t",
                                         members_seed=REPO / "tests" / "data" / "members.yaml"))
    yield Intake(app.runtime.engine, app.handlers)
    app.runtime.engine.dispose()


def submit(intake: Intake, message):  # type: ignore[no-untyped-def]
    return intake.handlers.submit(to_domain(message), message, submitter=CLINIC)


def test_request_and_its_event_are_recorded_together(intake: Intake) -> None:
    result = submit(intake, lumbar_mri())
    assert result.record.status is RequestStatus.IN_REVIEW
    assert intake.count(tables.requests) == 1
    assert intake.count(tables.outbox) == 1
    with intake.engine.connect() as conn:
        row = conn.execute(select(tables.outbox)).one()
    event = events_pb2.RequestSubmitted.FromString(row.payload)
    assert event.request_id == result.record.request_id
    assert row.message_key == event.request_id
    assert row.topic == "t.intake.request-submitted.v1"


def test_invalid_request_leaves_nothing_behind(intake: Intake) -> None:
    bad = lumbar_mri()
    bad.servicing_provider.npi = "1111111111"
    with pytest.raises(ValidationFailed) as caught:
        submit(intake, bad)
    assert [v.field for v in caught.value.violations] == ["servicing_provider.npi"]
    assert intake.count(tables.requests) == intake.count(tables.outbox) == intake.count(tables.request_lines) == 0


def test_ineligible_is_recorded_but_not_published(intake: Intake) -> None:
    result = submit(intake, lumbar_mri(member_id="NOBODY-1"))
    assert result.record.status is RequestStatus.INELIGIBLE
    assert result.record.status_reason == "member not found"
    assert intake.count(tables.requests) == 1
    assert intake.count(tables.outbox) == 0


def test_racing_submissions_of_one_key_make_one_request(intake: Intake) -> None:
    message = lumbar_mri(key="race-key")
    results, barrier = [], threading.Barrier(10)

    def go() -> None:
        barrier.wait()
        results.append(submit(intake, message))

    threads = [threading.Thread(target=go) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.record.request_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert intake.count(tables.requests) == 1
    assert intake.count(tables.outbox) == 1
    with pytest.raises(IdempotencyConflict):
        submit(intake, lumbar_mri(key="race-key", meets=False))


def _event(event_id: str, message: object) -> IncomingEvent:
    return IncomingEvent(event_id=event_id, event_type="x", schema_version="1", key="k",
                         message=message, topic="t", partition=0, offset=0)  # type: ignore[arg-type]


def test_events_apply_once_in_either_order(intake: Intake) -> None:
    rid = submit(intake, lumbar_mri()).record.request_id
    auth = events_pb2.AuthorizationsIssued(request_id=rid, determination_id="d1", authorizations=[
        types_pb2.Authorization(authorization_number="UR26-AAAA-BBBB", request_id=rid, line_number=1, units=1)])
    determination = events_pb2.DeterminationMade(determination=types_pb2.Determination(
        request_id=rid, determination_id="d1", lines=[types_pb2.LineDetermination(
            line_number=1, action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL,
            outcome=types_pb2.LINE_OUTCOME_MEETS_CRITERIA)]))
    determination.determination.decided_at.GetCurrentTime()
    intake.handlers.handle_batch([_event("e-auth", auth)])  # the authorization overtakes the determination
    assert intake.handlers.get(rid, submitter=CLINIC).status is RequestStatus.IN_REVIEW
    intake.handlers.handle_batch([_event("e-det", determination), _event("e-auth", auth)])
    assert intake.handlers.get(rid, submitter=CLINIC).status is RequestStatus.COMPLETE
    # redelivery after a crash: harmless even if the row was changed since
    with intake.engine.begin() as conn:
        conn.execute(update(tables.request_lines).values(authorization_number="changed"))
    intake.handlers.handle_batch([_event("e-det", determination), _event("e-auth", auth)])
    with intake.engine.connect() as conn:
        assert conn.execute(select(tables.request_lines.c.authorization_number)).scalar() == "changed"
    assert intake.count(tables.processed_events) == 2


def _info(request_id: str, key: str = "info-1", weeks: float = 7.0) -> intake_pb2.SubmitAdditionalInformationRequest:
    return intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key=key, note="therapy notes attached",
        clinical_facts=[fact("conservative_therapy_weeks", weeks, "weeks")])


def add_info(intake: Intake, message: intake_pb2.SubmitAdditionalInformationRequest):  # type: ignore[no-untyped-def]
    return intake.handlers.add_information(information_to_domain(message), message, submitter=CLINIC)


def test_additional_information_is_recorded_and_forwarded_once(intake: Intake) -> None:
    request_id = submit(intake, lumbar_mri(meets=False)).record.request_id
    first = add_info(intake, _info(request_id))
    again = add_info(intake, _info(request_id))
    assert again.replayed
    assert again.information_id == first.information_id
    assert intake.count(tables.additional_information) == 1
    with intake.engine.connect() as conn:
        rows = conn.execute(select(tables.outbox).where(tables.outbox.c.topic == "t.intake.additional-information.v1")
                            ).all()
    assert len(rows) == 1
    assert rows[0].message_key == request_id
    event = events_pb2.AdditionalInformationReceived.FromString(rows[0].payload)
    assert event.information_id == first.information_id
    assert event.clinical_facts[0].number_value == 7.0
    with pytest.raises(IdempotencyConflict):
        add_info(intake, _info(request_id, weeks=9.0))


def test_bad_additional_information_is_refused_precisely_and_stores_nothing(intake: Intake) -> None:
    request_id = submit(intake, lumbar_mri(meets=False)).record.request_id
    bad = _info(request_id)
    bad.clinical_facts.add(name="Bad Name", bool_value=True)
    bad.clinical_facts.add(name="no_value")
    with pytest.raises(ValidationFailed) as caught:
        add_info(intake, bad)
    assert [v.field for v in caught.value.violations] == ["clinical_facts[1].name", "clinical_facts[2].value"]
    with pytest.raises(ValidationFailed) as caught:
        add_info(intake, intake_pb2.SubmitAdditionalInformationRequest(request_id="nope", idempotency_key="k"))
    assert [v.field for v in caught.value.violations] == ["request_id", "clinical_facts"]
    with pytest.raises(NotFound):
        add_info(intake, _info(str(uuid.uuid4()), key="other"))
    assert intake.count(tables.additional_information) == 0


def test_information_for_a_request_not_under_review_is_refused(intake: Intake) -> None:
    ineligible = lumbar_mri(member_id="T-NOPE-0001")
    record = submit(intake, ineligible).record
    assert record.status is RequestStatus.INELIGIBLE
    with pytest.raises(FailedPrecondition, match="ineligible"):
        add_info(intake, _info(record.request_id))
