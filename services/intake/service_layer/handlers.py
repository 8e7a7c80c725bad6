"""Intake's use cases: submit a request, read it back, and apply the
determination and authorization events that tell the rest of its story."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.clock import utcnow
from services.common.consumer import PoisonMessage
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.grpc_errors import FieldViolation, IdempotencyConflict, NotFound, ValidationFailed
from services.common.settings import Topics
from services.intake.adapters.repository import IntakeUnitOfWork, RequestRecord
from services.intake.domain.model import (
    SETTLED,
    LineProgress,
    PriorAuthRequest,
    RequestStatus,
    check_eligibility,
    derive_status,
    validate,
)

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
class SubmitResult:
    record: RequestRecord
    replayed: bool


class IntakeHandlers:
    def __init__(self, uow_factory: Callable[[], IntakeUnitOfWork], topics: Topics, waiters: Waiters,
                 max_wait_ms: int = 15000) -> None:
        self._uow = uow_factory
        self._topics = topics
        self._waiters = waiters
        self._max_wait_ms = max_wait_ms

    # -- commands ------------------------------------------------------------------------------
    def submit(self, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
               wait_ms: int = 0) -> SubmitResult:
        violations = validate(req)
        if wait_ms < 0:
            violations.append(FieldViolation("wait_ms", "must not be negative"))
        if violations:
            raise ValidationFailed(violations)
        fingerprint = req.fingerprint()
        replay = self._replay(req.idempotency_key, fingerprint)
        if replay is not None:
            return replay
        request_id = str(uuid.uuid4())
        waiter = self._waiters.register(request_id) if wait_ms > 0 else None
        try:
            try:
                record_status = self._record(request_id, req, submitted, fingerprint)
            except IntegrityError:
                # Lost a race with a concurrent submission of the same key.
                replay = self._replay(req.idempotency_key, fingerprint)
                if replay is None:
                    raise
                return replay
            if waiter is not None and record_status not in SETTLED:
                self._wait(request_id, waiter, min(wait_ms, self._max_wait_ms))
        finally:
            if waiter is not None:
                self._waiters.release(request_id)
        return SubmitResult(self.get(request_id), replayed=False)

    def _replay(self, key: str, fingerprint: str) -> SubmitResult | None:
        with self._uow() as uow:
            existing_id = uow.requests.id_for_key(key)
            if existing_id is None:
                return None
            existing = uow.requests.get(existing_id)
        assert existing is not None
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for request {existing.request_id} with a different "
                "payload; use a new key for a new request")
        return SubmitResult(existing, replayed=True)

    def _record(self, request_id: str, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
                fingerprint: str) -> RequestStatus:
        now = utcnow()
        stored = intake_pb2.SubmitRequestRequest()
        stored.CopyFrom(submitted)
        stored.wait_ms = 0
        with self._uow() as uow:
            eligibility = check_eligibility(req, uow.members.coverages(req.member_id),
                                            uow.members.known(req.member_id))
            status = RequestStatus.IN_REVIEW if eligibility.eligible else RequestStatus.INELIGIBLE
            uow.requests.add(
                {"request_id": request_id, "idempotency_key": req.idempotency_key, "fingerprint": fingerprint,
                 "member_id": req.member_id, "line_of_business": req.line_of_business,
                 "member_state": req.member_state, "urgency": req.urgency, "review_type": req.review_type,
                 "status": status.value, "status_reason": "" if eligibility.eligible else eligibility.reason,
                 "received_at": now, "payload": stored.SerializeToString(), "updated_at": now},
                [{"request_id": request_id, "line_number": line.line_number,
                  "procedure_code": line.procedure_code, "queued": False, "certified": False}
                 for line in req.lines])
            if eligibility.eligible:
                uow.publish(OutgoingEvent(topic=self._topics.request_submitted, key=request_id,
                                          message=_submitted_event(request_id, now, stored)))
            uow.commit()
        logger.info("request %s recorded: %s (%d lines)", request_id, status.value, len(req.lines))
        return status

    def _wait(self, request_id: str, waiter: threading.Event, wait_ms: int) -> None:
        """Sleep until the request settles or time runs out. No transaction is open meanwhile;
        the periodic re-read covers events consumed by another intake replica."""
        deadline = time.monotonic() + wait_ms / 1000
        while (remaining := deadline - time.monotonic()) > 0:
            waiter.wait(min(remaining, 0.25))
            waiter.clear()
            with self._uow() as uow:
                record = uow.requests.get(request_id)
            if record is not None and record.status in SETTLED:
                return

    # -- queries -------------------------------------------------------------------------------
    def get(self, request_id: str) -> RequestRecord:
        with self._uow() as uow:
            record = uow.requests.get(request_id)
        if record is None:
            raise NotFound(f"no request {request_id!r}")
        return record

    # -- events --------------------------------------------------------------------------------
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Apply DeterminationMade / AuthorizationsIssued events (idempotent, one transaction)."""
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            records = uow.requests.get_many(sorted({_request_id(e) for e in fresh}))
            touched: set[str] = set()
            for event in fresh:
                request_id = _request_id(event)
                record = records.get(request_id)
                if record is None:
                    raise PoisonMessage(f"event {event.event_id} refers to unknown request {request_id}")
                if isinstance(event.message, events_pb2.DeterminationMade):
                    _apply_determination(uow, record, event.message)
                elif isinstance(event.message, events_pb2.AuthorizationsIssued):
                    _apply_authorizations(uow, record, event.message)
                touched.add(request_id)
            for request_id in sorted(touched):
                _refresh_status(uow, request_id)
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()

    def notify(self, events: Sequence[IncomingEvent]) -> None:
        self._waiters.notify([_request_id(e) for e in events])


def _request_id(event: IncomingEvent) -> str:
    message = event.message
    if isinstance(message, events_pb2.DeterminationMade):
        return str(message.determination.request_id)
    if isinstance(message, events_pb2.AuthorizationsIssued):
        return str(message.request_id)
    raise PoisonMessage(f"intake does not consume {event.event_type}")


def _submitted_event(request_id: str, received_at: object,
                     stored: intake_pb2.SubmitRequestRequest) -> events_pb2.RequestSubmitted:
    event = events_pb2.RequestSubmitted(
        request_id=request_id, member_id=stored.member_id, coverage=stored.coverage,
        requesting_provider=stored.requesting_provider, servicing_provider=stored.servicing_provider,
        diagnoses=stored.diagnoses, service_lines=stored.service_lines, review_type=stored.review_type,
        urgency=stored.urgency, clinical_facts=stored.clinical_facts)
    event.received_at.FromDatetime(received_at)  # type: ignore[arg-type]
    return event


def _apply_determination(uow: IntakeUnitOfWork, record: RequestRecord,
                         message: events_pb2.DeterminationMade) -> None:
    determination = message.determination
    known = {ln.line_number for ln in record.lines}
    for line in determination.lines:
        if line.line_number not in known:
            raise PoisonMessage(f"determination names line {line.line_number} that request "
                                f"{record.request_id} does not have")
    header = types_pb2.Determination()
    header.CopyFrom(determination)
    del header.lines[:]
    uow.requests.update_request(
        record.request_id, determination_id=determination.determination_id,
        decided_at=determination.decided_at.ToDatetime(tzinfo=utcnow().tzinfo),
        decided_by=determination.decided_by.id, determination_header=header.SerializeToString(),
        updated_at=utcnow())
    for line in determination.lines:
        uow.requests.update_line(
            record.request_id, line.line_number,
            outcome=types_pb2.LineOutcome.Name(line.outcome), queued=line.queued_for_review,
            certified=line.action_code in CERTIFIED, determination=line.SerializeToString())


def _apply_authorizations(uow: IntakeUnitOfWork, record: RequestRecord,
                          message: events_pb2.AuthorizationsIssued) -> None:
    for auth in message.authorizations:
        uow.requests.update_line(record.request_id, auth.line_number, authorization=auth.SerializeToString(),
                                 authorization_number=auth.authorization_number)


def _refresh_status(uow: IntakeUnitOfWork, request_id: str) -> None:
    record = uow.requests.get(request_id)
    assert record is not None
    status = _status_of(record)
    if status is not record.status:
        uow.requests.update_request(request_id, status=status.value, updated_at=utcnow())


def _status_of(record: RequestRecord) -> RequestStatus:
    return derive_status(record.status, [
        LineProgress(decided=ln.determination is not None, queued=ln.queued, certified=ln.certified,
                     authorized=ln.authorization is not None) for ln in record.lines])
