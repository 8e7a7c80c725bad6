"""Cancel, revise and appeal through intake (fakes): only the submitter (the caller that submitted it,
and its requesting provider), only while under review and undecided; appeals of adverse lines only,
within the window the line names (late: an error naming the window), by whom the regime admits,
once."""

from __future__ import annotations

import datetime as dt

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import FailedPrecondition, NotFound, PermissionDenied, ValidationFailed
from services.common.topics import Topics
from services.intake.domain.model import RequestStatus
from services.intake.domain.records import AppealRecord, LineRecord, RequestRecord
from services.intake.entrypoints.mapping import appeal_to_domain, to_domain
from services.intake.service_layer.handlers import RequestChanger
from tests.factories import OTHER_NPI, VALID_NPI, lumbar_mri
from tests.fakes.intake import IntakeStore

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
#: The authenticated caller that submitted the stored request, and another submitter.
CLINIC = "sample-clinic"
OTHER = "sample-clearinghouse"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def store() -> IntakeStore:
    return IntakeStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changer(store: IntakeStore, clock: Clock) -> RequestChanger:
    return RequestChanger(store.unit_of_work, Topics("t"), clock=clock)


def stored(store: IntakeStore, status: RequestStatus = RequestStatus.PENDED,
           line: types_pb2.LineDetermination | None = None) -> str:
    submitted = lumbar_mri()
    record = RequestRecord(
        request_id="00000000-0000-4000-8000-000000000001", submitter=CLINIC,
        idempotency_key=submitted.idempotency_key,
        fingerprint="f" * 64, member_id="T-MA-0001", line_of_business="medicare_advantage", member_state="CA",
        urgency="standard", review_type="prospective", status=status, status_reason="", received_at=NOW,
        payload=submitted.SerializeToString(),
        lines=(LineRecord(1, "72148", queued=line is None or line.queued_for_review,
                          determination=line.SerializeToString() if line is not None else None),))
    with store.unit_of_work() as uow:
        uow.requests.add(record)
        uow.commit()
    return record.request_id


def denial(file_by: dt.date) -> types_pb2.LineDetermination:
    return types_pb2.LineDetermination(
        line_number=1, procedure_code="72148", action_code=types_pb2.ACTION_CODE_NOT_CERTIFIED,
        appeal_rights=types_pb2.AppealRights(
            regime="ma-reconsideration", level="a reconsideration by the plan", filing_window_days=65,
            file_by=types_pb2.Date(year=file_by.year, month=file_by.month, day=file_by.day),
            who_may_file=["member", "provider_on_behalf"], citation="42 CFR 422.582(b)"))


def filing(request_id: str, appellant: intake_pb2.Appellant.ValueType = intake_pb2.APPELLANT_MEMBER,
           key: str = "ap-1") -> intake_pb2.FileAppealRequest:
    return intake_pb2.FileAppealRequest(idempotency_key=key, request_id=request_id, line_number=1,
                                        urgency=types_pb2.URGENCY_STANDARD, appellant=appellant)


def appeal(changer: RequestChanger, request: intake_pb2.FileAppealRequest,
           submitter: str = CLINIC) -> tuple[AppealRecord, bool]:
    return changer.file_appeal(appeal_to_domain(request), request, submitter=submitter)


def test_the_submitter_cancels_a_pending_request_and_review_hears_of_it(store: IntakeStore,
                                                                        changer: RequestChanger) -> None:
    request_id = stored(store)
    with pytest.raises(PermissionDenied):
        changer.cancel(request_id, OTHER_NPI, "", submitter=CLINIC)
    record = changer.cancel(request_id, VALID_NPI, "moved away", submitter=CLINIC)
    assert (record.status, record.status_reason) == (RequestStatus.CANCELLED, "withdrawn by its submitter: moved away")
    again = changer.cancel(request_id, VALID_NPI, "again", submitter=CLINIC)
    assert again.status is RequestStatus.CANCELLED  # answered again
    [event] = [e for e in store.outbox if e.topic == "t.intake.request-updated.v1"]
    assert isinstance(event.message, events_pb2.RequestCancelled)
    assert (event.key, event.message.reason) == (request_id, "moved away")


def test_another_submitter_cannot_cancel_revise_or_appeal_a_request_and_learns_nothing(
        store: IntakeStore, changer: RequestChanger) -> None:
    """Another caller, even naming the right requesting provider, finds no such request: the words an
    unknown id gets, and nothing written."""
    pending = stored(store)
    revision = lumbar_mri(meets=True, key="rev-other")
    unknown = "00000000-0000-4000-8000-0000000000ff"
    for request_id in (pending, unknown):
        with pytest.raises(NotFound) as cancelled:
            changer.cancel(request_id, VALID_NPI, "", submitter=OTHER)
        assert str(cancelled.value) == f"no request {request_id!r}"
        with pytest.raises(NotFound):
            changer.revise(request_id, VALID_NPI, to_domain(revision), revision, submitter=OTHER)
    store.requests.clear()
    denied = stored(store, RequestStatus.COMPLETE, denial(NOW.date() + dt.timedelta(days=10)))
    with pytest.raises(NotFound):
        appeal(changer, filing(denied), submitter=OTHER)
    assert not store.outbox
    with store.unit_of_work() as uow:
        assert uow.requests.get(denied) is not None
        assert uow.appeals.of_request(denied) == []
    # The submitter itself still may (its key was never taken).
    assert not appeal(changer, filing(denied))[1]


@pytest.mark.parametrize("status", [RequestStatus.COMPLETE, RequestStatus.DECIDED, RequestStatus.INELIGIBLE])
def test_a_request_no_longer_under_review_is_not_edited(store: IntakeStore, changer: RequestChanger,
                                                        status: RequestStatus) -> None:
    request_id = stored(store, status)
    with pytest.raises(FailedPrecondition, match="file a new request, or an appeal"):
        changer.cancel(request_id, VALID_NPI, "", submitter=CLINIC)


def test_a_request_with_a_decided_line_is_not_edited(store: IntakeStore, changer: RequestChanger) -> None:
    request_id = stored(store, line=denial(dt.date(2027, 5, 5)))
    revision = lumbar_mri(meets=True)
    with pytest.raises(FailedPrecondition, match=r"line\(s\) 1 of the request are decided"):
        changer.revise(request_id, VALID_NPI, to_domain(revision), revision, submitter=CLINIC)


def test_a_revision_keeps_member_coverage_and_lines_and_is_sent_to_review(store: IntakeStore,
                                                                          changer: RequestChanger) -> None:
    request_id = stored(store)
    other_member = lumbar_mri(member_id="T-MCD-0002")
    with pytest.raises(ValidationFailed) as caught:
        changer.revise(request_id, VALID_NPI, to_domain(other_member), other_member, submitter=CLINIC)
    assert [v.field for v in caught.value.violations] == ["revision.member_id"]
    revision = lumbar_mri(meets=True, key="rev-1")
    record, replayed = changer.revise(request_id, VALID_NPI, to_domain(revision), revision, submitter=CLINIC)
    assert not replayed
    # The same key again: replayed.
    assert changer.revise(request_id, VALID_NPI, to_domain(revision), revision, submitter=CLINIC)[1]
    kept = intake_pb2.SubmitRequestRequest.FromString(record.payload)
    assert kept.clinical_facts == revision.clinical_facts
    assert kept.idempotency_key != "rev-1"  # the request keeps its own key
    [event] = [e.message for e in store.outbox if isinstance(e.message, events_pb2.RequestRevised)]
    assert event.request.request_id == request_id


def test_an_appeal_within_the_window_is_sent_to_review_once(store: IntakeStore, changer: RequestChanger) -> None:
    request_id = stored(store, RequestStatus.COMPLETE, denial(NOW.date() + dt.timedelta(days=10)))
    first = appeal(changer, filing(request_id))
    assert appeal(changer, filing(request_id)) == (first[0], True)
    with pytest.raises(FailedPrecondition, match="already appealed"):
        appeal(changer, filing(request_id, key="ap-2"))
    [event] = [e.message for e in store.outbox if isinstance(e.message, events_pb2.AppealFiled)]
    assert (event.request_id, event.line_number, event.appellant) == (request_id, 1, "member")


def test_a_late_appeal_is_refused_naming_the_window(store: IntakeStore, changer: RequestChanger,
                                                    clock: Clock) -> None:
    request_id = stored(store, RequestStatus.COMPLETE, denial(dt.date(2027, 3, 5)))
    clock.now = dt.datetime(2027, 3, 6, 9, 0, tzinfo=dt.UTC)
    with pytest.raises(FailedPrecondition) as caught:
        appeal(changer, filing(request_id))
    assert str(caught.value) == ("the appeal window closed on 2027-03-05: a reconsideration by the plan must be asked "
                                 "for within 65 days of the notice (42 CFR 422.582(b))")


def test_an_appeal_by_someone_the_regime_does_not_admit_or_of_an_approval_is_refused(
        store: IntakeStore, changer: RequestChanger) -> None:
    request_id = stored(store, RequestStatus.COMPLETE, denial(NOW.date() + dt.timedelta(days=10)))
    with pytest.raises(PermissionDenied, match="may be filed by: member, provider on behalf"):
        appeal(changer, filing(request_id, intake_pb2.APPELLANT_INJURED_WORKER))
    approved = types_pb2.LineDetermination(line_number=1, action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL)
    store.requests.clear()
    request_id = stored(store, RequestStatus.COMPLETE, approved)
    with pytest.raises(FailedPrecondition, match="nothing to appeal"):
        appeal(changer, filing(request_id, key="ap-9"))
