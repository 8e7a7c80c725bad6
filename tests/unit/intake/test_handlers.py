"""Intake's use cases on fakes (tests/fakes/intake.py): submitting, reading back, additional
information, and the determination / authorization events that move a request along."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, replace

import pytest
from google.protobuf.message import Message
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import (
    DuplicateKey,
    FailedPrecondition,
    IdempotencyConflict,
    NotFound,
    PoisonMessage,
    ValidationFailed,
)
from services.common.events import IncomingEvent
from services.common.topics import Topics
from services.intake.domain.model import Coverage, Member, RequestStatus
from services.intake.domain.records import InformationRecord, LineRecord, RequestRecord
from services.intake.entrypoints.mapping import information_to_domain, to_domain
from services.intake.service_layer.handlers import InformationResult, IntakeHandlers, SubmitResult, Waiters
from tests.factories import fact, lumbar_mri
from tests.fakes.intake import FakeInformationRepository, FakeIntakeUnitOfWork, FakeRequestRepository, IntakeStore
from tests.polling import wait_until

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
TOPICS = Topics("t")
CLINIC = "acme-clinic"  # the submitter of the tests' requests
OTHER = "other-clearinghouse"


@dataclass
class Intake:
    store: IntakeStore
    handlers: IntakeHandlers

    def submit(self, message: intake_pb2.SubmitRequestRequest, wait_ms: int = 0, *,
               submitter: str = CLINIC) -> SubmitResult:
        return self.handlers.submit(to_domain(message), message, wait_ms, submitter=submitter)

    def add_info(self, message: intake_pb2.SubmitAdditionalInformationRequest, *,
                 submitter: str = CLINIC) -> InformationResult:
        return self.handlers.add_information(information_to_domain(message), message, submitter=submitter)

    def get(self, request_id: str, submitter: str | None = None) -> RequestRecord:
        """As a reader of every request (None) unless ``submitter`` is given."""
        return self.handlers.get(request_id, submitter=submitter)

    def events(self, topic: str) -> list[Message]:
        return [e.message for e in self.store.outbox if e.topic == topic]


def covered(member_id: str, lob: str = "medicare_advantage", state: str = "CA",
            termination: dt.date | None = None) -> Member:
    return Member(member_id, dt.date(1950, 2, 1),
                  (Coverage(member_id, lob, "H0001-001", state, dt.date(2026, 1, 1), termination),))


@pytest.fixture
def intake() -> Intake:
    store = IntakeStore()
    for member in (covered("T-MA-0001"), covered("T-NV-0002", state="NV"),
                   covered("T-TERM-0003", termination=dt.date(2026, 12, 31))):
        store.members[member.member_id] = member
    return Intake(store, IntakeHandlers(store.unit_of_work, TOPICS, Waiters(), clock=lambda: NOW))


def incoming(message: Message, event_id: str | None = None) -> IncomingEvent:
    return IncomingEvent(event_id=event_id or str(uuid.uuid4()), event_type=message.DESCRIPTOR.full_name,
                         schema_version="1", key="k", message=message, topic="t", partition=0, offset=0)


def determination(request_id: str, *lines: tuple[int, int, bool], determination_id: str = "d1",
                  decided_by: str = "rules-engine") -> events_pb2.DeterminationMade:
    """``lines``: (line number, action code, queued for review)."""
    det = types_pb2.Determination(request_id=request_id, determination_id=determination_id,
                                  decided_by=types_pb2.DeciderRef(id=decided_by))
    det.decided_at.FromDatetime(NOW + dt.timedelta(minutes=5))
    for number, action, queued in lines:
        outcome = types_pb2.LINE_OUTCOME_REFER_TO_NURSE if queued else types_pb2.LINE_OUTCOME_MEETS_CRITERIA
        det.lines.add(line_number=number, action_code=action, queued_for_review=queued, outcome=outcome)
    return events_pb2.DeterminationMade(determination=det, member_id="T-MA-0001")


CERTIFIED = (1, types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, False)
PENDED = (1, types_pb2.ACTION_CODE_PENDED, True)


def authorizations(request_id: str, *line_numbers: int) -> events_pb2.AuthorizationsIssued:
    return events_pb2.AuthorizationsIssued(request_id=request_id, determination_id="d1", authorizations=[
        types_pb2.Authorization(authorization_number=f"UR27-AAAA-BBB{n}", request_id=request_id, line_number=n,
                                units=1) for n in line_numbers])


# -- submit ------------------------------------------------------------------------------------

def test_a_valid_request_is_recorded_in_review_and_announced_together(intake: Intake) -> None:
    message = lumbar_mri()
    message.wait_ms = 5000  # how long the caller would wait; not part of what is stored
    result = intake.submit(message)
    record = result.record
    assert not result.replayed
    assert record.status is RequestStatus.IN_REVIEW
    assert record.status_reason == ""
    assert record.received_at == NOW
    assert record.lines == (LineRecord(1, "72148"),)
    assert intake.store.requests == {record.request_id: record}
    stored = intake_pb2.SubmitRequestRequest.FromString(record.payload)
    assert stored.wait_ms == 0
    assert stored.idempotency_key == message.idempotency_key
    [event] = intake.store.outbox
    assert (event.topic, event.key) == ("t.intake.request-submitted.v1", record.request_id)
    assert isinstance(event.message, events_pb2.RequestSubmitted)
    assert event.message.request_id == record.request_id
    assert event.message.member_id == "T-MA-0001"
    assert event.message.received_at.ToDatetime(dt.UTC) == NOW
    assert list(event.message.service_lines) == list(message.service_lines)


def test_an_invalid_request_is_refused_field_by_field_and_nothing_is_written(intake: Intake) -> None:
    bad = lumbar_mri()
    bad.servicing_provider.npi = "1111111111"
    del bad.diagnoses[:]
    with pytest.raises(ValidationFailed) as caught:
        intake.submit(bad, wait_ms=-1)
    assert [v.field for v in caught.value.violations] == ["servicing_provider.npi", "diagnoses", "wait_ms"]
    assert intake.store.requests == {}
    assert intake.store.outbox == []


def test_the_same_key_and_body_again_is_answered_as_the_first_time(intake: Intake) -> None:
    message = lumbar_mri(key="once")
    first = intake.submit(message)
    again = intake.submit(message)
    assert again.replayed
    assert again.record == first.record
    assert len(intake.store.requests) == 1
    assert len(intake.store.outbox) == 1


def test_the_same_key_with_another_body_is_a_conflict(intake: Intake) -> None:
    first = intake.submit(lumbar_mri(key="once"))
    with pytest.raises(IdempotencyConflict, match=f"already used for request {first.record.request_id}"):
        intake.submit(lumbar_mri(key="once", meets=False))
    assert list(intake.store.requests) == [first.record.request_id]
    assert len(intake.store.outbox) == 1


@pytest.mark.parametrize(("member_id", "reason"), [
    ("T-NOBODY-9", "member not found"),
    ("T-NV-0002", "medicare_advantage coverage is not in state CA"),
    ("T-TERM-0003", "coverage not active on 2027-06-01 (line 1)"),
])
def test_an_ineligible_member_is_recorded_but_not_sent_to_review(intake: Intake, member_id: str, reason: str) -> None:
    message = lumbar_mri(member_id=member_id, start=dt.date(2027, 6, 1))
    result = intake.submit(message, wait_ms=10_000)  # settled at once: nothing to wait for
    assert result.record.status is RequestStatus.INELIGIBLE
    assert result.record.status_reason == reason
    assert list(intake.store.requests) == [result.record.request_id]
    assert intake.store.outbox == []
    again = intake.submit(message)
    assert again.replayed
    assert again.record == result.record


def test_a_waiting_submission_returns_as_soon_as_its_request_settles(intake: Intake) -> None:
    results: list[SubmitResult] = []
    caller = threading.Thread(target=lambda: results.append(intake.submit(lumbar_mri(), wait_ms=20_000)), daemon=True)
    caller.start()
    while not intake.store.requests and caller.is_alive():  # until the request is recorded
        caller.join(0.005)
    [request_id] = intake.store.requests
    events = [incoming(determination(request_id, PENDED))]
    intake.handlers.handle_batch(events)
    intake.handlers.notify(events)
    caller.join(timeout=20)
    assert not caller.is_alive()
    [result] = results
    assert result.record.status is RequestStatus.PENDED
    assert not result.replayed


# -- GetRequest --------------------------------------------------------------------------------

def test_get_returns_the_request_as_it_stands(intake: Intake) -> None:
    record = intake.submit(lumbar_mri()).record
    assert intake.get(record.request_id) == record
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound, match=unknown):
        intake.get(unknown)


# -- each submitter's own requests ---------------------------------------------------------------

def test_a_request_belongs_to_its_submitter_and_another_cannot_tell_it_exists(intake: Intake) -> None:
    record = intake.submit(lumbar_mri()).record
    assert record.submitter == CLINIC
    assert intake.get(record.request_id, submitter=CLINIC) == record
    assert intake.get(record.request_id) == record  # a reader of every request (the workbench)
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound) as theirs:
        intake.get(record.request_id, submitter=OTHER)
    with pytest.raises(NotFound) as nobodys:
        intake.get(unknown, submitter=OTHER)
    # The same words as for an id nobody has: only the id differs.
    assert str(theirs.value).replace(record.request_id, unknown) == str(nobodys.value)


def test_a_members_requests_are_listed_for_their_submitter_only(intake: Intake) -> None:
    mine = intake.submit(lumbar_mri(key="a")).record.request_id
    theirs = intake.submit(lumbar_mri(key="b"), submitter=OTHER).record.request_id
    assert [r.request_id for r in intake.handlers.of_member("T-MA-0001", 0, submitter=CLINIC)] == [mine]
    assert [r.request_id for r in intake.handlers.of_member("T-MA-0001", 0, submitter=OTHER)] == [theirs]
    assert {r.request_id for r in intake.handlers.of_member("T-MA-0001", 0, submitter=None)} == {mine, theirs}
    assert intake.handlers.of_member("T-MA-0001", 0, submitter="a-third-one") == []


def test_idempotency_keys_are_each_submitters_own(intake: Intake) -> None:
    message = lumbar_mri(key="shared-key")
    mine = intake.submit(message)
    # Another submitter's key of the same text is a new request: no replay of mine, and no conflict
    # (which would tell it that someone used the key).
    theirs = intake.submit(lumbar_mri(key="shared-key", meets=False), submitter=OTHER)
    assert not theirs.replayed
    assert theirs.record.request_id != mine.record.request_id
    assert theirs.record.submitter == OTHER
    again = intake.submit(message)
    assert again.replayed
    assert again.record.request_id == mine.record.request_id
    with pytest.raises(IdempotencyConflict):
        intake.submit(lumbar_mri(key="shared-key", meets=False))


def test_information_for_another_submitters_request_is_not_found_and_stores_nothing(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    outbox = list(intake.store.outbox)
    with pytest.raises(NotFound) as theirs:
        intake.add_info(info(request_id), submitter=OTHER)
    assert str(theirs.value) == f"no request {request_id!r}"
    assert intake.store.information == {}
    assert intake.store.outbox == outbox
    # Each submitter's information keys are its own too.
    intake.add_info(info(request_id, key="info-shared"))
    other_request = intake.submit(lumbar_mri(meets=False), submitter=OTHER).record.request_id
    theirs_info = intake.add_info(info(other_request, key="info-shared"), submitter=OTHER)
    assert not theirs_info.replayed
    assert len(intake.store.information) == 2


# -- additional information --------------------------------------------------------------------

def info(request_id: str, key: str = "info-1", weeks: float = 7.0,
         note: str = "PT notes attached") -> intake_pb2.SubmitAdditionalInformationRequest:
    return intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key=key, note=note,
        clinical_facts=[fact("conservative_therapy_weeks", weeks, "weeks"), fact("imaging_done", True)])


INFO_TOPIC = "t.intake.additional-information.v1"
SUBMITTED_TOPIC = TOPICS.request_submitted


def test_information_is_recorded_and_forwarded_to_review_together(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    result = intake.add_info(info(request_id))
    assert not result.replayed
    assert result.received_at == NOW
    assert uuid.UUID(result.information_id)
    [stored] = intake.store.information.values()
    assert stored == InformationRecord(result.information_id, request_id, CLINIC, "info-1",
                                       information_to_domain(info(request_id)).fingerprint(),
                                       info(request_id).SerializeToString(), NOW)
    [event] = intake.events(INFO_TOPIC)
    assert isinstance(event, events_pb2.AdditionalInformationReceived)
    assert (event.request_id, event.information_id, event.note) == (request_id, result.information_id,
                                                                    "PT notes attached")
    assert list(event.clinical_facts) == list(info(request_id).clinical_facts)
    assert event.received_at.ToDatetime(dt.UTC) == NOW
    assert [e.key for e in intake.store.outbox if e.topic == INFO_TOPIC] == [request_id]


def test_the_same_information_again_gets_the_first_answer_even_once_decided(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    first = intake.add_info(info(request_id))
    intake.handlers.handle_batch([incoming(determination(request_id, CERTIFIED))])
    again = intake.add_info(info(request_id))
    assert again == replace(first, replayed=True)
    assert len(intake.store.information) == 1
    assert len(intake.events(INFO_TOPIC)) == 1


def test_a_key_reused_for_other_information_is_a_conflict(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    other_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    intake.add_info(info(request_id))
    for message in (info(request_id, weeks=9.0), info(request_id, note="other"), info(other_id)):
        with pytest.raises(IdempotencyConflict, match="info-1"):
            intake.add_info(message)
    assert len(intake.store.information) == 1
    assert len(intake.events(INFO_TOPIC)) == 1


def test_a_key_recorded_by_a_concurrent_call_is_answered_as_that_call_was(intake: Intake) -> None:
    """The other call commits between this one's look-up and its insert: the store's unique key
    refuses the insert (DuplicateKey) and the answer is the replay."""
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    first = intake.add_info(info(request_id))

    class LateLookUp(FakeInformationRepository):
        def by_key(self, submitter: str, idempotency_key: str) -> InformationRecord | None:
            return None

    class Racing(FakeIntakeUnitOfWork):
        def _open(self, working: IntakeStore) -> None:
            super()._open(working)
            if not self._read_only:
                self.information = LateLookUp(working)

    racing = IntakeHandlers(lambda: Racing(intake.store), TOPICS, Waiters(), clock=lambda: NOW)
    assert racing.add_information(information_to_domain(info(request_id)), info(request_id),
                                  submitter=CLINIC) == replace(first, replayed=True)
    with pytest.raises(IdempotencyConflict):
        racing.add_information(information_to_domain(info(request_id, weeks=1)), info(request_id, weeks=1),
                               submitter=CLINIC)
    assert len(intake.store.information) == 1
    assert len(intake.events(INFO_TOPIC)) == 1


class HeldFirst(FakeIntakeUnitOfWork):
    """A unit of work that counts commits; the first one opened waits until ``release`` is set, so that
    a test decides which submissions queue behind it (and share the next transaction)."""

    opened = 0
    commits = 0
    first_open = threading.Event()
    release = threading.Event()

    def __enter__(self) -> HeldFirst:
        cls = type(self)
        cls.opened += 1
        if cls.opened == 1:
            cls.first_open.set()
            assert cls.release.wait(10), "the test never released the first transaction"
        return super().__enter__()

    def commit(self) -> None:
        type(self).commits += 1
        super().commit()


def _held(intake: Intake) -> tuple[IntakeHandlers, type[HeldFirst]]:
    held = type("Held", (HeldFirst,), {"first_open": threading.Event(), "release": threading.Event()})
    return IntakeHandlers(lambda: held(intake.store), TOPICS, Waiters(), clock=lambda: NOW), held


def _queue_behind_a_held_submission(handlers: IntakeHandlers, held: type[HeldFirst],
                                    messages: Sequence[intake_pb2.SubmitRequestRequest],
                                    pool: futures.ThreadPoolExecutor) -> list[futures.Future[SubmitResult]]:
    def submit(message: intake_pb2.SubmitRequestRequest) -> SubmitResult:
        return handlers.submit(to_domain(message), message, submitter=CLINIC)

    calls = [pool.submit(submit, messages[0])]
    assert held.first_open.wait(10)
    for n, message in enumerate(messages[1:], start=1):
        calls.append(pool.submit(submit, message))
        wait_until(lambda: handlers._group.queued, 10, what=f"{n} submissions queued",
                   until=lambda queued, n=n: queued == n, interval_s=0.005)  # type: ignore[misc]
    held.release.set()
    return calls


def test_concurrent_submissions_share_one_transaction_and_each_gets_its_own_record(intake: Intake) -> None:
    handlers, held = _held(intake)
    messages = [lumbar_mri(key=f"group-{n}", member_id=member, state=state) for n, (member, state) in enumerate(
        [("T-MA-0001", "CA"), ("T-NV-0002", "NV"), ("T-MA-0001", "CA"), ("T-NOBODY-9", "CA"), ("T-TERM-0003", "CA")])]
    with futures.ThreadPoolExecutor(8) as pool:
        results = [call.result(10) for call in _queue_behind_a_held_submission(handlers, held, messages, pool)]
    assert held.commits == 2, "the first submission alone, then the four queued behind it together"
    assert [r.record.idempotency_key for r in results] == [f"group-{n}" for n in range(5)]
    assert [r.record.status for r in results] == [RequestStatus.IN_REVIEW, RequestStatus.IN_REVIEW,
                                                  RequestStatus.IN_REVIEW, RequestStatus.INELIGIBLE,
                                                  RequestStatus.INELIGIBLE]  # not on file; coverage ended
    assert len({r.record.request_id for r in results}) == 5
    assert {r.record.request_id: r.record for r in results} == intake.store.requests
    announced = [e.request_id for e in intake.events(SUBMITTED_TOPIC)]  # type: ignore[attr-defined]
    assert sorted(announced) == sorted(r.record.request_id for r in results[:3])
    assert [a.request_id for a in intake.store.audit] == [r.record.request_id for r in results]


def test_a_taken_key_in_a_shared_transaction_is_that_callers_answer_alone(intake: Intake) -> None:
    first = intake.submit(lumbar_mri(key="taken", start=dt.date(2027, 2, 1)))
    handlers, held = _held(intake)
    replayed = lumbar_mri(key="taken", start=dt.date(2027, 2, 1))
    conflicting = lumbar_mri(key="taken", start=dt.date(2027, 4, 1))
    messages = [lumbar_mri(key="lead"), lumbar_mri(key="fresh-1"), replayed, conflicting, lumbar_mri(key="fresh-2")]
    with futures.ThreadPoolExecutor(8) as pool:
        calls = _queue_behind_a_held_submission(handlers, held, messages, pool)
        assert calls[2].result(10) == replace(first, replayed=True)
        with pytest.raises(IdempotencyConflict):
            calls[3].result(10)
        fresh = [calls[n].result(10) for n in (0, 1, 4)]
    assert [r.replayed for r in fresh] == [False, False, False]
    assert sorted(intake.store.requests) == sorted([first.record.request_id] + [r.record.request_id for r in fresh])
    assert len(intake.events(SUBMITTED_TOPIC)) == 4


def test_a_duplicate_that_no_recorded_key_explains_is_not_swallowed(intake: Intake) -> None:
    class IdTaken(FakeRequestRepository):
        def add_many(self, records: Sequence[RequestRecord]) -> None:
            raise DuplicateKey(f"request {records[0].request_id}")

    class Colliding(FakeIntakeUnitOfWork):
        def _open(self, working: IntakeStore) -> None:
            super()._open(working)
            self.requests = IdTaken(working)

    colliding = IntakeHandlers(lambda: Colliding(intake.store), TOPICS, Waiters(), clock=lambda: NOW)
    message = lumbar_mri()
    with pytest.raises(DuplicateKey):
        colliding.submit(to_domain(message), message, submitter=CLINIC)
    assert intake.store.requests == {}
    assert intake.store.outbox == []


def test_information_for_an_unknown_request_is_not_found(intake: Intake) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound, match=unknown):
        intake.add_info(info(unknown))
    assert intake.store.information == {}


def test_only_requests_waiting_for_a_decision_take_information(intake: Intake) -> None:
    ineligible = intake.submit(lumbar_mri(member_id="T-NOBODY-9")).record.request_id
    decided = intake.submit(lumbar_mri()).record.request_id
    pended = intake.submit(lumbar_mri(meets=False)).record.request_id
    in_review = intake.submit(lumbar_mri(meets=False)).record.request_id
    intake.handlers.handle_batch([incoming(determination(decided, CERTIFIED)),
                                  incoming(determination(pended, PENDED))])
    for request_id, status in ((ineligible, "ineligible: member not found"), (decided, "decided")):
        with pytest.raises(FailedPrecondition, match=f"request {request_id} is {status}; nothing is waiting"):
            intake.add_info(info(request_id, key=f"k-{request_id}"))
    for request_id in (pended, in_review):
        assert not intake.add_info(info(request_id, key=f"k-{request_id}")).replayed
    assert [e.key for e in intake.store.outbox if e.topic == INFO_TOPIC] == [pended, in_review]


def test_invalid_information_is_refused_field_by_field_and_nothing_is_written(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    bad = info(request_id, key="bad key", note="x" * 2001)
    bad.clinical_facts.add(name="no_value")
    with pytest.raises(ValidationFailed) as caught:
        intake.add_info(bad)
    assert [v.field for v in caught.value.violations] == ["idempotency_key", "clinical_facts[2].value", "note"]
    assert intake.store.information == {}
    assert intake.events(INFO_TOPIC) == []


# -- events ------------------------------------------------------------------------------------

def test_a_certified_line_decides_the_request_and_its_authorization_completes_it(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri()).record.request_id
    made = determination(request_id, CERTIFIED, decided_by="rules-engine")
    intake.handlers.handle_batch([incoming(made)])
    record = intake.get(request_id)
    assert record.status is RequestStatus.DECIDED
    assert (record.determination_id, record.decided_at, record.decided_by) == (
        "d1", NOW + dt.timedelta(minutes=5), "rules-engine")
    header = types_pb2.Determination.FromString(record.determination_header or b"")
    assert header.decided_by.id == "rules-engine"
    assert not header.lines
    [line] = record.lines
    assert (line.outcome, line.queued, line.certified) == ("LINE_OUTCOME_MEETS_CRITERIA", False, True)
    assert line.determination == made.determination.lines[0].SerializeToString()
    assert line.authorization is None

    issued = authorizations(request_id, 1)
    intake.handlers.handle_batch([incoming(issued)])
    record = intake.get(request_id)
    assert record.status is RequestStatus.COMPLETE
    assert record.lines[0].authorization == issued.authorizations[0].SerializeToString()


def test_a_line_queued_for_a_person_pends_the_request(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    intake.handlers.handle_batch([incoming(determination(request_id, PENDED))])
    assert intake.get(request_id).status is RequestStatus.PENDED


def test_events_apply_once_in_either_order_and_redelivery_changes_nothing(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri()).record.request_id
    det, auth = incoming(determination(request_id, CERTIFIED), "e-det"), incoming(authorizations(request_id, 1),
                                                                                  "e-auth")
    intake.handlers.handle_batch([auth])  # the authorization overtakes the determination
    assert intake.get(request_id).status is RequestStatus.IN_REVIEW
    intake.handlers.handle_batch([det, auth])
    applied = intake.get(request_id)
    assert applied.status is RequestStatus.COMPLETE
    # Redelivery after a crash is harmless, even if the request changed since.
    changed = replace(applied, status_reason="changed since")
    intake.store.requests[request_id] = changed
    intake.handlers.handle_batch([det, auth])
    assert intake.get(request_id) == changed
    assert intake.store.processed == {("intake", "e-det"), ("intake", "e-auth")}


def test_one_batch_moves_several_requests(intake: Intake) -> None:
    one, two, three = (intake.submit(lumbar_mri()).record.request_id for _ in range(3))
    intake.handlers.handle_batch([incoming(determination(one, CERTIFIED)), incoming(determination(two, PENDED)),
                                  incoming(determination(three, CERTIFIED)), incoming(authorizations(three, 1))])
    assert [intake.get(r).status for r in (one, two, three)] == [
        RequestStatus.DECIDED, RequestStatus.PENDED, RequestStatus.COMPLETE]


@pytest.mark.parametrize(("build", "problem"), [
    (lambda rid: determination(str(uuid.uuid4()), CERTIFIED), "unknown request"),
    (lambda rid: determination(rid, (2, types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, False)), "line 2"),
    (lambda rid: authorizations(rid, 3), "line 3"),
    (lambda rid: events_pb2.RequestSubmitted(request_id=rid), "does not consume"),
])
def test_an_event_that_cannot_apply_is_poison_and_its_batch_changes_nothing(
        intake: Intake, build: object, problem: str) -> None:
    request_id = intake.submit(lumbar_mri()).record.request_id
    before = intake.get(request_id)
    fine = incoming(determination(request_id, CERTIFIED), "e-fine")
    with pytest.raises(PoisonMessage, match=problem):
        intake.handlers.handle_batch([fine, incoming(build(request_id))])  # type: ignore[operator]
    assert intake.get(request_id) == before
    assert intake.store.processed == set()


# -- reading a member's requests and a request's whole story -------------------------------------

def test_the_view_carries_the_submission_and_the_information_received_since(intake: Intake) -> None:
    from services.intake.entrypoints.mapping import to_view

    request_id = intake.submit(lumbar_mri(meets=False)).record.request_id
    intake.add_info(intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key="info-1", note="therapy notes",
        clinical_facts=[fact("conservative_therapy_weeks", 7, "weeks")]))
    record, information = intake.handlers.get_with_information(request_id, submitter=CLINIC)
    view = to_view(record, information)
    submitted = lumbar_mri(meets=False)
    assert view.coverage == submitted.coverage
    assert list(view.diagnoses) == list(submitted.diagnoses)
    assert view.requesting_provider == submitted.requesting_provider
    assert view.servicing_provider == submitted.servicing_provider
    assert list(view.clinical_facts) == list(submitted.clinical_facts)
    [info] = view.additional_information
    assert info.note == "therapy notes"
    assert info.received_at.ToDatetime(tzinfo=dt.UTC) == NOW
    assert [(f.name, f.number_value, f.unit) for f in info.clinical_facts] == [
        ("conservative_therapy_weeks", 7.0, "weeks")]


def test_a_members_requests_newest_first_and_the_limit_is_checked(intake: Intake) -> None:
    first = intake.submit(lumbar_mri(key="a")).record.request_id
    intake.handlers = IntakeHandlers(intake.store.unit_of_work, TOPICS, Waiters(),
                                     clock=lambda: NOW + dt.timedelta(hours=1))
    second = intake.submit(lumbar_mri(key="b")).record.request_id
    intake.submit(lumbar_mri(key="c", member_id="T-NV-0002"))
    assert [r.request_id for r in intake.handlers.of_member("T-MA-0001", 0, submitter=None)] == [second, first]
    assert [r.request_id for r in intake.handlers.of_member(" T-MA-0001 ", 1, submitter=CLINIC)] == [second]
    for member_id, limit in (("T-MA-0001", 201), ("T-MA-0001", -1), (" ", 10)):
        with pytest.raises(ValidationFailed):
            intake.handlers.of_member(member_id, limit, submitter=None)


def under_claim(claim_number: str, key: str, member_id: str = "T-MA-0001") -> intake_pb2.SubmitRequestRequest:
    message = lumbar_mri(key=key, member_id=member_id)
    message.workers_comp.claim_number = claim_number
    return message


def test_a_claims_requests_newest_first_are_found_by_the_submissions_claim_number(intake: Intake) -> None:
    first = intake.submit(under_claim("WC-2027-0042", "a")).record.request_id
    intake.handlers = IntakeHandlers(intake.store.unit_of_work, TOPICS, Waiters(),
                                     clock=lambda: NOW + dt.timedelta(hours=1))
    second = intake.submit(under_claim("WC-2027-0042", "b", member_id="T-NV-0002")).record.request_id
    intake.submit(under_claim("WC-2027-0043", "c"))
    intake.submit(lumbar_mri(key="d"))
    assert [r.request_id for r in intake.handlers.of_claim("WC-2027-0042", 0, submitter=None)] == [second, first]
    assert [r.request_id for r in intake.handlers.of_claim("WC-2027-0042", 1, submitter=CLINIC)] == [second]
    assert intake.handlers.of_claim("WC-2027-0042", 0, submitter="a-third-one") == []
    assert intake.handlers.of_claim("WC-NOTHING", 0, submitter=None) == []


@pytest.mark.parametrize(("claim_number", "limit", "field"), [
    ("WC-1", 201, "limit"), ("WC-1", -1, "limit"), ("", 10, "claim_number"), ("WC 1", 10, "claim_number"),
    ("W" * 41, 10, "claim_number"), ("WC-\u00e9", 10, "claim_number"), ("WC-1\n", 10, "claim_number")])
def test_a_claim_lookup_is_refused_for_a_claim_number_no_request_can_carry(
        intake: Intake, claim_number: str, limit: int, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        intake.handlers.of_claim(claim_number, limit, submitter=None)
    assert [v.field for v in refused.value.violations] == [field]


def test_a_submission_with_a_malformed_claim_number_is_refused(intake: Intake) -> None:
    with pytest.raises(ValidationFailed) as refused:
        intake.submit(under_claim("WC 2027 0042", "bad"))
    assert "workers_comp.claim_number" in [v.field for v in refused.value.violations]
