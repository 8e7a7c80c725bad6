"""SubmitAdditionalInformation over gRPC against intake on a real PostgreSQL: the information and
its AdditionalInformationReceived event are recorded together, replays answer as the first call
did (also under a race), and every refusal has its status code and leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Engine, Row, func, select, text
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common.events import IncomingEvent
from services.common.grpc_server import RunningServer, create_server
from services.common.settings import IntakeSettings
from services.common.tls import open_channel
from services.intake import bootstrap
from services.intake.adapters import tables
from services.intake.entrypoints.mapping import to_domain
from services.intake.service_layer.handlers import IntakeHandlers
from tests.conftest import REPO
from tests.factories import fact, lumbar_mri
from tests.identity import CLEARINGHOUSE, CLINIC, CREDENTIALS, as_, token
from tests.polling import wait_until

pytestmark = pytest.mark.integration

TOPIC = "t.intake.additional-information.v1"


@dataclass
class Intake:
    engine: Engine
    handlers: IntakeHandlers
    stub: intake_pb2_grpc.IntakeServiceStub

    def count(self, table: object) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]

    def submit(self, message: intake_pb2.SubmitRequestRequest) -> str:
        return self.handlers.submit(to_domain(message), message, submitter=CLINIC).record.request_id

    def outbox(self) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(tables.outbox).where(tables.outbox.c.topic == TOPIC)
                                     .order_by(tables.outbox.c.id)).all())


@pytest.fixture
def intake(make_database: Callable[[str], str]) -> Iterator[Intake]:
    app = bootstrap.build(IntakeSettings(database_url=make_database("intake"), topic_prefix="t",
                                         members_seed=REPO / "tests" / "data" / "members.yaml",
                                         credentials_file=CREDENTIALS))
    # The gRPC servicer as wired (its access control included), without the runtime's Kafka side;
    # the calls are the clinic's, which submitted the requests.
    server: RunningServer = create_server("127.0.0.1:0", app.runtime.registrations,
                                          interceptors=app.runtime.interceptors)
    channel = open_channel(f"127.0.0.1:{server.port}", token=token(CLINIC))
    try:
        yield Intake(app.runtime.engine, app.handlers, intake_pb2_grpc.IntakeServiceStub(channel))
    finally:
        channel.close()
        server.stop(0)
        app.runtime.engine.dispose()


def info(request_id: str, key: str = "info-1", weeks: float = 7.0,
         note: str = "PT notes attached") -> intake_pb2.SubmitAdditionalInformationRequest:
    return intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key=key, note=note,
        clinical_facts=[fact("conservative_therapy_weeks", weeks, "weeks"), fact("imaging_done", True),
                        types_pb2.ClinicalFact(name="therapy_start", date_value=types_pb2.Date(
                            year=2026, month=11, day=2))])


def refused(intake: Intake, message: intake_pb2.SubmitAdditionalInformationRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        intake.stub.SubmitAdditionalInformation(message, timeout=10)
    return caught.value


def violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        fields += [v.field for v in bad_request.field_violations]
    return fields


def lock_waiters(engine: Engine) -> int:
    """Sessions on this test's database that are waiting for a lock, as PostgreSQL sees them now
    (a new transaction each time: pg_stat_activity is a snapshot per transaction)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                     "WHERE datname = current_database() AND wait_event_type = 'Lock'")).scalar_one())


def decide(intake: Intake, request_id: str, *, queued: bool) -> None:
    """Apply a determination to line 1: queued for a person (PENDED) or certified (DECIDED)."""
    line = (types_pb2.LineDetermination(line_number=1, action_code=types_pb2.ACTION_CODE_PENDED,
                                        outcome=types_pb2.LINE_OUTCOME_REFER_TO_NURSE, queued_for_review=True)
            if queued else
            types_pb2.LineDetermination(line_number=1, action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL,
                                        outcome=types_pb2.LINE_OUTCOME_MEETS_CRITERIA))
    message = events_pb2.DeterminationMade(determination=types_pb2.Determination(
        request_id=request_id, determination_id=str(uuid.uuid4()), lines=[line]))
    message.determination.decided_at.GetCurrentTime()
    intake.handlers.handle_batch([IncomingEvent(
        event_id=str(uuid.uuid4()), event_type="ur.events.v1.DeterminationMade", schema_version="1",
        key=request_id, message=message, topic="t", partition=0, offset=0)])


def test_information_and_its_event_are_recorded_together(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False))
    response = intake.stub.SubmitAdditionalInformation(info(request_id), timeout=10)
    assert not response.replayed
    assert uuid.UUID(response.information_id)
    with intake.engine.connect() as conn:
        stored = conn.execute(select(tables.additional_information)).one()
    assert (stored.information_id, stored.request_id, stored.idempotency_key) == (
        response.information_id, request_id, "info-1")
    assert intake_pb2.SubmitAdditionalInformationRequest.FromString(stored.payload) == info(request_id)

    [row] = intake.outbox()
    assert row.message_key == request_id
    assert row.event_type == "ur.events.v1.AdditionalInformationReceived"
    assert row.schema_version == "1"
    assert uuid.UUID(row.event_id)
    event = events_pb2.AdditionalInformationReceived.FromString(row.payload)
    assert (event.request_id, event.information_id, event.note) == (
        request_id, response.information_id, "PT notes attached")
    assert list(event.clinical_facts) == list(info(request_id).clinical_facts)
    assert event.received_at == response.received_at
    received = response.received_at.ToDatetime(dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - received).total_seconds()) < 60


def test_same_key_and_payload_replays_the_first_answer(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False))
    first = intake.stub.SubmitAdditionalInformation(info(request_id), timeout=10)
    decide(intake, request_id, queued=False)  # a replay still answers after the request is decided
    again = intake.stub.SubmitAdditionalInformation(info(request_id), timeout=10)
    assert again.replayed
    assert (again.information_id, again.received_at) == (first.information_id,
                                                                            first.received_at)
    assert intake.count(tables.additional_information) == 1
    assert len(intake.outbox()) == 1


def test_same_key_with_another_payload_is_already_exists(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False))
    other_id = intake.submit(lumbar_mri(meets=False))
    intake.stub.SubmitAdditionalInformation(info(request_id), timeout=10)
    for message in (info(request_id, weeks=9.0), info(request_id, note="other note"), info(other_id)):
        error = refused(intake, message)
        assert error.code() is grpc.StatusCode.ALREADY_EXISTS
        assert "info-1" in (error.details() or "")
    assert intake.count(tables.additional_information) == 1
    assert len(intake.outbox()) == 1


def test_racing_calls_with_one_key_record_once_and_all_get_the_answer(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False))
    answers: list[intake_pb2.SubmitAdditionalInformationResponse] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            answers.append(intake.stub.SubmitAdditionalInformation(info(request_id, key="race"), timeout=60))
        except grpc.RpcError as exc:
            errors.append(exc)

    # Hold the request's row lock so that every call has looked for its key (and found none)
    # before any of them can record it: a call asks for the lock only after its look-up, so once
    # PostgreSQL shows all eight waiting for a lock, all eight have missed the key.
    with intake.engine.begin() as conn:
        conn.execute(select(tables.requests).where(tables.requests.c.request_id == request_id).with_for_update())
        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        wait_until(lambda: lock_waiters(intake.engine), 30, what="all eight calls to wait for the request's row lock",
                   until=lambda waiting: waiting == 8 or bool(errors))
        assert errors == []
    for t in threads:
        t.join()
    assert errors == []
    assert len({a.information_id for a in answers}) == 1
    assert sum(not a.replayed for a in answers) == 1
    assert intake.count(tables.additional_information) == 1
    assert len(intake.outbox()) == 1


def test_invalid_information_is_invalid_argument_and_stores_nothing(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False))
    events_before = intake.count(tables.outbox)
    bad = info(request_id, key="bad key", note="x" * 2001)
    bad.clinical_facts.add(name="Bad Name", bool_value=True)
    bad.clinical_facts.add(name="no_value")
    bad.clinical_facts.add(name="imaging_done", bool_value=False)
    error = refused(intake, bad)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(error) == ["idempotency_key", "clinical_facts[3].name", "clinical_facts[4].value",
                                 "clinical_facts[5].name", "note"]
    error = refused(intake, intake_pb2.SubmitAdditionalInformationRequest(request_id="not-a-uuid"))
    assert violations(error) == ["request_id", "idempotency_key", "clinical_facts"]
    assert intake.count(tables.additional_information) == 0
    assert intake.count(tables.outbox) == events_before


def test_unknown_request_is_not_found(intake: Intake) -> None:
    unknown = str(uuid.uuid4())
    error = refused(intake, info(unknown))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert unknown in (error.details() or "")
    assert intake.count(tables.additional_information) == 0
    assert len(intake.outbox()) == 0


def test_another_submitters_request_is_not_found_and_nobody_anonymous_gets_in(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False))
    with pytest.raises(grpc.RpcError) as theirs:
        intake.stub.SubmitAdditionalInformation(info(request_id), metadata=as_(CLEARINGHOUSE), timeout=10)
    assert theirs.value.code() is grpc.StatusCode.NOT_FOUND
    assert theirs.value.details() == f"no request {request_id!r}"  # what an unknown id gets
    with pytest.raises(grpc.RpcError) as anonymous:
        intake.stub.SubmitAdditionalInformation(info(request_id), metadata=(("authorization", ""),), timeout=10)
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert intake.count(tables.additional_information) == 0
    assert len(intake.outbox()) == 0


def test_requests_not_under_review_are_failed_precondition(intake: Intake) -> None:
    ineligible = intake.submit(lumbar_mri(member_id="T-NOPE-0001"))
    decided = intake.submit(lumbar_mri())
    decide(intake, decided, queued=False)
    for request_id, status in ((ineligible, "ineligible"), (decided, "decided")):
        error = refused(intake, info(request_id, key=f"k-{request_id}"))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert f"request {request_id} is {status}" in (error.details() or "")
        assert "nothing is waiting for information" in (error.details() or "")
    assert intake.count(tables.additional_information) == 0
    assert len(intake.outbox()) == 0


def test_pended_and_in_review_requests_take_information(intake: Intake) -> None:
    in_review = intake.submit(lumbar_mri(meets=False))
    pended = intake.submit(lumbar_mri(meets=False))
    decide(intake, pended, queued=True)
    assert intake.handlers.get(pended, submitter=CLINIC).status.value == "pended"
    for request_id in (in_review, pended):
        assert not intake.stub.SubmitAdditionalInformation(info(request_id, key=f"k-{request_id}"),
                                                           timeout=10).replayed
    assert [r.message_key for r in intake.outbox()] == [in_review, pended]
