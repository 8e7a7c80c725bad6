"""Intake's use cases: submit a request, read it back, and apply the
determination and authorization events that tell the rest of its story."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import (
    DuplicateKey,
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    NotFound,
    PoisonMessage,
    ValidationFailed,
)
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.fact_catalog import FactCatalog
from services.common.topics import Topics
from services.intake.domain.fact_units import unit_violations
from services.intake.domain.model import (
    SETTLED,
    AdditionalInformation,
    ClinicalFact,
    LineProgress,
    PriorAuthRequest,
    RequestStatus,
    check_eligibility,
    derive_status,
    validate,
    validate_information,
)
from services.intake.domain.records import (
    DeterminationRecorded,
    InformationRecord,
    LineAuthorized,
    LineDecided,
    LineRecord,
    RequestChanges,
    RequestRecord,
    StatusChanged,
)
from services.intake.service_layer.ports import Clock, IntakeUnitOfWork

logger = logging.getLogger(__name__)

CONSUMER_NAME = "intake"
CERTIFIED = frozenset({types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL,
                       types_pb2.ACTION_CODE_MODIFIED})


class Waiters:
    """Lets a SubmitRequest call sleep until its request's story moves on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def register(self, request_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(request_id, threading.Event())

    def release(self, request_id: str) -> None:
        with self._lock:
            self._events.pop(request_id, None)

    def notify(self, request_ids: Sequence[str]) -> None:
        with self._lock:
            for rid in request_ids:
                event = self._events.get(rid)
                if event is not None:
                    event.set()


@dataclass(frozen=True)
class InformationResult:
    information_id: str
    received_at: dt.datetime
    replayed: bool


@dataclass(frozen=True)
class SubmitResult:
    record: RequestRecord
    replayed: bool


class IntakeHandlers:
    def __init__(self, uow_factory: Callable[[], IntakeUnitOfWork], topics: Topics, waiters: Waiters, *,
                 clock: Clock, max_wait_ms: int = 15000, facts: FactCatalog | None = None) -> None:
        """``facts``: the catalog of the criteria's facts (units, what cannot be negative); without
        it facts are checked for shape only."""
        self._facts = facts
        self._uow = uow_factory
        self._now = clock
        self._topics = topics
        self._waiters = waiters
        self._max_wait_ms = max_wait_ms

    # -- commands ------------------------------------------------------------------------------
    def submit(self, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
               wait_ms: int = 0) -> SubmitResult:
        violations = validate(req) + self._fact_units(req.facts)
        if wait_ms < 0:
            violations.append(FieldViolation("wait_ms", "must not be negative"))
        if violations:
            raise ValidationFailed(violations)
        fingerprint = req.fingerprint()
        request_id = str(uuid.uuid4())
        waiter = self._waiters.register(request_id) if wait_ms > 0 else None
        try:
            try:
                record = self._record(request_id, req, submitted, fingerprint)
            except DuplicateKey:
                # The key is taken: a replay (or a conflict), perhaps by a concurrent submission.
                # Inserting first keeps the common path to one transaction.
                replay = self._replay(req.idempotency_key, fingerprint)
                if replay is None:
                    raise
                return replay
            if waiter is not None and record.status not in SETTLED:
                self._wait(request_id, waiter, min(wait_ms, self._max_wait_ms))
                record = self.get(request_id)
        finally:
            if waiter is not None:
                self._waiters.release(request_id)
        return SubmitResult(record, replayed=False)

    def _fact_units(self, facts: Sequence[ClinicalFact]) -> list[FieldViolation]:
        return unit_violations(facts, self._facts) if self._facts is not None else []

    def _replay(self, key: str, fingerprint: str) -> SubmitResult | None:
        with self._uow().read_only() as uow:
            existing = uow.requests.by_key(key)
        if existing is None:
            return None
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for request {existing.request_id} with a different "
                "payload; use a new key for a new request")
        return SubmitResult(existing, replayed=True)

    def _record(self, request_id: str, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
                fingerprint: str) -> RequestRecord:
        """Check eligibility and record the request (and, if eligible, its event) in one transaction."""
        now = self._now()
        stored = intake_pb2.SubmitRequestRequest()
        stored.CopyFrom(submitted)
        stored.wait_ms = 0
        payload = stored.SerializeToString()
        with self._uow() as uow:
            member = uow.members.get(req.member_id)
            eligibility = check_eligibility(req, member.coverages if member else (), member is not None)
            status = RequestStatus.IN_REVIEW if eligibility.eligible else RequestStatus.INELIGIBLE
            record = RequestRecord(
                request_id=request_id, idempotency_key=req.idempotency_key, fingerprint=fingerprint,
                member_id=req.member_id, line_of_business=req.line_of_business, member_state=req.member_state,
                urgency=req.urgency, review_type=req.review_type, status=status,
                status_reason="" if eligibility.eligible else eligibility.reason, received_at=now,
                payload=payload, lines=tuple(LineRecord(line.line_number, line.procedure_code) for line in req.lines))
            uow.requests.add(record)
            if eligibility.eligible:
                uow.publish(OutgoingEvent(topic=self._topics.request_submitted, key=request_id,
                                          message=_submitted_event(request_id, now, stored)))
            uow.commit()
        logger.info("request %s recorded: %s (%d lines)", request_id, status.value, len(req.lines))
        return record

    def _wait(self, request_id: str, waiter: threading.Event, wait_ms: int) -> None:
        """Sleep until the request settles or time runs out. No transaction is open meanwhile;
        the periodic re-read covers events consumed by another intake replica."""
        deadline = time.monotonic() + wait_ms / 1000
        while (remaining := deadline - time.monotonic()) > 0:
            waiter.wait(min(remaining, 0.25))
            waiter.clear()
            with self._uow().read_only() as uow:
                record = uow.requests.get(request_id)
            if record is not None and record.status in SETTLED:
                return

    def add_information(self, info: AdditionalInformation,
                        submitted: intake_pb2.SubmitAdditionalInformationRequest) -> InformationResult:
        """Record additional facts for a request under review and forward them to review, in one
        transaction. Same key and payload: the original answer, even once the request is decided;
        same key, other payload (or another request): IdempotencyConflict."""
        violations = validate_information(info) + self._fact_units(info.facts)
        if violations:
            raise ValidationFailed(violations)
        fingerprint = info.fingerprint()
        try:
            return self._record_information(info, submitted, fingerprint)
        except DuplicateKey:
            # The key was recorded by a concurrent call after this one looked for it: answer as it did.
            replay = self._information_replay(info, fingerprint)
            if replay is None:
                raise
            return replay

    def _record_information(self, info: AdditionalInformation,
                            submitted: intake_pb2.SubmitAdditionalInformationRequest,
                            fingerprint: str) -> InformationResult:
        now = self._now()
        with self._uow() as uow:
            previous = uow.information.by_key(info.idempotency_key)
            if previous is not None:
                return _information_answer(info, fingerprint, previous)
            record = uow.requests.get(info.request_id, for_update=True)
            if record is None:
                raise NotFound(f"no request {info.request_id!r}")
            if record.status not in (RequestStatus.IN_REVIEW, RequestStatus.PENDED):
                raise FailedPrecondition(
                    f"request {info.request_id} is {record.status.value.replace('_', ' ')}"
                    f"{': ' + record.status_reason if record.status_reason else ''}; nothing is waiting for "
                    "information")
            information_id = str(uuid.uuid4())
            uow.information.add(InformationRecord(
                information_id=information_id, request_id=info.request_id, idempotency_key=info.idempotency_key,
                fingerprint=fingerprint, payload=submitted.SerializeToString(), received_at=now))
            event = events_pb2.AdditionalInformationReceived(
                request_id=info.request_id, information_id=information_id,
                clinical_facts=submitted.clinical_facts, note=submitted.note)
            event.received_at.FromDatetime(now)
            uow.publish(OutgoingEvent(topic=self._topics.additional_information, key=info.request_id, message=event))
            uow.commit()
        logger.info("additional information %s for request %s: %d facts", information_id, info.request_id,
                    len(info.facts))
        return InformationResult(information_id, now, replayed=False)

    def _information_replay(self, info: AdditionalInformation, fingerprint: str) -> InformationResult | None:
        with self._uow().read_only() as uow:
            previous = uow.information.by_key(info.idempotency_key)
        return None if previous is None else _information_answer(info, fingerprint, previous)

    # -- queries -------------------------------------------------------------------------------
    def get(self, request_id: str) -> RequestRecord:
        with self._uow().read_only() as uow:
            record = uow.requests.get(request_id)
        if record is None:
            raise NotFound(f"no request {request_id!r}")
        return record

    # -- events --------------------------------------------------------------------------------
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Apply DeterminationMade / AuthorizationsIssued events (idempotent, one transaction).

        Line progress is tracked in memory across the batch so that each statement runs once
        per batch (executemany), not once per line or request."""
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            records = uow.requests.get_many(sorted({_request_id(e) for e in fresh}))
            progress = {rid: {ln.line_number: _Progress.of(ln) for ln in rec.lines} for rid, rec in records.items()}
            changes = RequestChanges()
            touched: set[str] = set()
            for event in fresh:
                request_id = _request_id(event)
                record = records.get(request_id)
                if record is None:
                    raise PoisonMessage(f"event {event.event_id} refers to unknown request {request_id}")
                if isinstance(event.message, events_pb2.DeterminationMade):
                    _apply_determination(changes, record, progress[request_id], event.message)
                elif isinstance(event.message, events_pb2.AuthorizationsIssued):
                    _apply_authorizations(changes, record, progress[request_id], event.message)
                touched.add(request_id)
            now = self._now()
            for request_id in sorted(touched):
                record = records[request_id]
                status = derive_status(record.status, [p.view() for p in progress[request_id].values()])
                if status is not record.status:
                    changes.statuses.append(StatusChanged(request_id, status, now))
            uow.requests.apply(changes)
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()

    def notify(self, events: Sequence[IncomingEvent]) -> None:
        self._waiters.notify([_request_id(e) for e in events])


def _information_answer(info: AdditionalInformation, fingerprint: str,
                        previous: InformationRecord) -> InformationResult:
    """The answer to a call whose key is already recorded (``previous``): a replay, or a conflict."""
    if previous.fingerprint != fingerprint or previous.request_id != info.request_id:
        raise IdempotencyConflict(
            f"idempotency key {info.idempotency_key!r} was already used for other information; use a new key")
    return InformationResult(previous.information_id, previous.received_at, replayed=True)


def _request_id(event: IncomingEvent) -> str:
    message = event.message
    if isinstance(message, events_pb2.DeterminationMade):
        return str(message.determination.request_id)
    if isinstance(message, events_pb2.AuthorizationsIssued):
        return str(message.request_id)
    raise PoisonMessage(f"intake does not consume {event.event_type}")


def _submitted_event(request_id: str, received_at: dt.datetime,
                     stored: intake_pb2.SubmitRequestRequest) -> events_pb2.RequestSubmitted:
    event = events_pb2.RequestSubmitted(
        request_id=request_id, member_id=stored.member_id, coverage=stored.coverage,
        requesting_provider=stored.requesting_provider, servicing_provider=stored.servicing_provider,
        diagnoses=stored.diagnoses, service_lines=stored.service_lines, review_type=stored.review_type,
        urgency=stored.urgency, clinical_facts=stored.clinical_facts)
    event.received_at.FromDatetime(received_at)
    return event


@dataclass
class _Progress:
    decided: bool
    queued: bool
    certified: bool
    authorized: bool

    @classmethod
    def of(cls, line: LineRecord) -> _Progress:
        return cls(line.determination is not None, line.queued, line.certified, line.authorization is not None)

    def view(self) -> LineProgress:
        return LineProgress(self.decided, self.queued, self.certified, self.authorized)


def _apply_determination(changes: RequestChanges, record: RequestRecord, lines: dict[int, _Progress],
                         message: events_pb2.DeterminationMade) -> None:
    determination = message.determination
    for line in determination.lines:
        if line.line_number not in lines:
            raise PoisonMessage(f"determination names line {line.line_number} that request "
                                f"{record.request_id} does not have")
    header = types_pb2.Determination()
    header.CopyFrom(determination)
    del header.lines[:]
    changes.determinations.append(DeterminationRecorded(
        request_id=record.request_id, determination_id=determination.determination_id,
        decided_at=determination.decided_at.ToDatetime(tzinfo=dt.UTC), decided_by=determination.decided_by.id,
        header=header.SerializeToString()))
    for line in determination.lines:
        certified = line.action_code in CERTIFIED
        changes.lines_decided.append(LineDecided(
            request_id=record.request_id, line_number=line.line_number,
            outcome=types_pb2.LineOutcome.Name(line.outcome), queued=line.queued_for_review,
            certified=certified, determination=line.SerializeToString()))
        progress = lines[line.line_number]
        progress.decided, progress.queued, progress.certified = True, line.queued_for_review, certified


def _apply_authorizations(changes: RequestChanges, record: RequestRecord, lines: dict[int, _Progress],
                          message: events_pb2.AuthorizationsIssued) -> None:
    for auth in message.authorizations:
        if auth.line_number not in lines:
            raise PoisonMessage(f"authorization for line {auth.line_number} that request "
                                f"{record.request_id} does not have")
        changes.lines_authorized.append(LineAuthorized(
            request_id=record.request_id, line_number=auth.line_number, authorization=auth.SerializeToString(),
            authorization_number=auth.authorization_number))
        lines[auth.line_number].authorized = True
