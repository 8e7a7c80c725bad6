"""Intake's use cases: submit a request, read it back, and apply the
determination and authorization events that tell the rest of its story."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord, RefValue
from services.common.audit.recording import record_views
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
from services.common.group_commit import AsyncGroupCommit, GroupCommit
from services.common.proto_enums import to_name
from services.common.topics import Topics
from services.intake.domain.changes import (
    LineRights,
    Original,
    check_appeal,
    check_changeable,
    check_revision,
    check_submitter,
)
from services.intake.domain.fact_units import one_per_field, unit_violations
from services.intake.domain.model import (
    SETTLED,
    AdditionalInformation,
    ClinicalFact,
    LineProgress,
    PriorAuthRequest,
    RequestStatus,
    check_eligibility,
    derive_status,
    is_claim_number,
    is_request_id,
    shown,
    validate,
    validate_information,
)
from services.intake.domain.records import (
    AppealDecided,
    AppealRecord,
    DeterminationRecorded,
    InformationRecord,
    LineAuthorized,
    LineDecided,
    LineRecord,
    RequestChanges,
    RequestRecord,
    RevisionRecord,
    StatusChanged,
)
from services.intake.service_layer.ports import Clock, IntakeUnitOfWork

logger = logging.getLogger(__name__)

CONSUMER_NAME = "intake"
MAX_MEMBER_REQUESTS = 200
#: How much longer than its wait a waiting submission may take to read its request one last time.
READ_GRACE_S = 0.5

T = TypeVar("T")
ACTION = types_pb2.ActionCode
CERTIFIED = frozenset({types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL,
                       types_pb2.ACTION_CODE_MODIFIED})


class Waiter:
    """One caller waiting for one request's story to move on. :meth:`wake` may be called from any
    thread (the consumer's); a waiter made for an event loop is awaited on that loop
    (:meth:`wait_async`), one made without a loop is waited on in the caller's thread (:meth:`wait`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._woken = threading.Event()
        self._loop_woken = asyncio.Event()

    def wake(self) -> None:
        if self._loop is None:
            self._woken.set()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._loop_woken.set)

    def wait(self, timeout_s: float) -> bool:
        """Block until woken or ``timeout_s`` passes; whether it was woken."""
        woken = self._woken.wait(timeout_s)
        self._woken.clear()
        return woken

    async def wait_async(self, timeout_s: float) -> bool:
        """Await (on the waiter's loop) until woken or ``timeout_s`` passes; whether it was woken."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._loop_woken.wait()
        except TimeoutError:
            return False
        self._loop_woken.clear()
        return True


class Waiters:
    """The callers waiting for their requests to settle, by request id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, Waiter] = {}

    def register(self, request_id: str, loop: asyncio.AbstractEventLoop | None = None) -> Waiter:
        with self._lock:
            return self._waiting.setdefault(request_id, Waiter(loop))

    def release(self, request_id: str) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def notify(self, request_ids: Sequence[str]) -> None:
        with self._lock:
            woken = [w for rid in request_ids if (w := self._waiting.get(rid)) is not None]
        for waiter in woken:
            waiter.wake()

    def __len__(self) -> int:
        return len(self._waiting)


class Offload(Protocol):
    """Runs a blocking call off the event loop and awaits its result (the gRPC server's
    ``services.common.grpc_server.offload``)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


@dataclass(frozen=True)
class InformationResult:
    information_id: str
    received_at: dt.datetime
    replayed: bool


@dataclass(frozen=True)
class SubmitResult:
    record: RequestRecord
    replayed: bool


@dataclass(frozen=True)
class _Submission:
    """One validated submission waiting for its group's transaction; ``stored`` is what is kept and
    announced (the call as received, without its wait)."""

    request_id: str
    req: PriorAuthRequest
    stored: intake_pb2.SubmitRequestRequest
    fingerprint: str
    submitter: str


class IntakeHandlers:
    def __init__(self, uow_factory: Callable[[], IntakeUnitOfWork], topics: Topics, waiters: Waiters, *,
                 clock: Clock, max_wait_ms: int = 15000, poll_s: float = 1.0,
                 facts: FactCatalog | None = None, max_group_commit: int = 64) -> None:
        """``max_wait_ms`` caps a submission's wait; ``poll_s`` is how often a waiting submission
        re-reads its request even unwoken (events consumed by another replica wake nobody here);
        ``facts``: the catalog of the criteria's facts (units, what cannot be negative), without
        which facts are checked for shape only; ``max_group_commit``: at most this many concurrent
        submissions share a transaction."""
        self._facts = facts
        self._uow = uow_factory
        self._now = clock
        self._topics = topics
        self._waiters = waiters
        self._max_wait_ms = max_wait_ms
        self._poll_s = poll_s
        # Concurrent submissions share a transaction: callers in threads (submit) through one group,
        # callers on the event loop (submit_async, the gRPC servicer) through the other.
        self._group: GroupCommit[_Submission, RequestRecord] = GroupCommit(self._record_batch,
                                                                          max_batch=max_group_commit)
        self._async_group: AsyncGroupCommit[_Submission, RequestRecord] = AsyncGroupCommit(
            self._record_batch, max_batch=max_group_commit)

    # -- commands ------------------------------------------------------------------------------
    def submit(self, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
               wait_ms: int = 0, *, submitter: str) -> SubmitResult:
        """Record ``submitter``'s request (or replay the one its idempotency key names: keys are each
        submitter's own) and, with ``wait_ms``, wait in this thread until it settles, at most
        ``min(wait_ms, max_wait_ms)`` from now."""
        deadline = time.monotonic() + self._wait_s(wait_ms)
        request_id = str(uuid.uuid4())
        waiter = self._waiters.register(request_id) if wait_ms > 0 else None
        try:
            result, settles_later = self._accept(request_id, req, submitted, wait_ms, submitter)
            while waiter is not None and settles_later and (remaining := deadline - time.monotonic()) > 0:
                waiter.wait(min(remaining, self._poll_s))
                result, settles_later = self._reread(result)
        finally:
            if waiter is not None:
                self._waiters.release(request_id)
        return result

    async def submit_async(self, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest, wait_ms: int,
                           offload: Offload, *, submitter: str) -> SubmitResult:
        """:meth:`submit` for a caller on an event loop: the database work runs through ``offload`` and
        the wait is awaited, holding no thread. The wait is bounded from now (receipt): the answer
        comes within ``min(wait_ms, max_wait_ms)`` plus one bounded read of the request
        (:data:`READ_GRACE_S`); a read that takes longer is abandoned for the record already known."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self._wait_s(wait_ms)
        request_id = str(uuid.uuid4())
        waiter = self._waiters.register(request_id, loop) if wait_ms > 0 else None
        try:
            result, settles_later = await self._accept_async(request_id, req, submitted, wait_ms, submitter, offload)
            while waiter is not None and settles_later and (remaining := deadline - time.monotonic()) > 0:
                await waiter.wait_async(min(remaining, self._poll_s))
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0.0) + READ_GRACE_S):
                        result, settles_later = await offload(self._reread, result)
                except TimeoutError:
                    break
        finally:
            if waiter is not None:
                self._waiters.release(request_id)
        return result

    def _wait_s(self, wait_ms: int) -> float:
        return max(0, min(wait_ms, self._max_wait_ms)) / 1000

    def _accept(self, request_id: str, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
                wait_ms: int, submitter: str) -> tuple[SubmitResult, bool]:
        """Validate and record the request as ``request_id`` (or find the submission its key replays);
        the answer, and whether it is still to settle (worth waiting for)."""
        submission = self._checked(request_id, req, submitted, wait_ms, submitter)
        try:
            record = self._group(submission)
        except DuplicateKey:
            # The key is taken: a replay (or a conflict), perhaps by a concurrent submission.
            # Inserting first keeps the common path to one transaction.
            return self._replayed(submission), False
        return self._recorded(submission, record), record.status not in SETTLED

    async def _accept_async(self, request_id: str, req: PriorAuthRequest,
                            submitted: intake_pb2.SubmitRequestRequest, wait_ms: int, submitter: str,
                            offload: Offload) -> tuple[SubmitResult, bool]:
        """:meth:`_accept` on the event loop: the checks run here, the write with the other submissions
        of its group in one thread hop for the whole group (:class:`AsyncGroupCommit`)."""
        submission = self._checked(request_id, req, submitted, wait_ms, submitter)
        try:
            record = await self._async_group(submission, offload)
        except DuplicateKey:
            return await offload(self._replayed, submission), False
        return self._recorded(submission, record), record.status not in SETTLED

    def _checked(self, request_id: str, req: PriorAuthRequest, submitted: intake_pb2.SubmitRequestRequest,
                 wait_ms: int, submitter: str) -> _Submission:
        """The submission to record, once valid (else ValidationFailed, naming every field at fault)."""
        violations = one_per_field(validate(req), self._fact_units(req.facts))
        if wait_ms < 0:
            violations.append(FieldViolation("wait_ms", "must not be negative"))
        if violations:
            raise ValidationFailed(violations)
        stored = intake_pb2.SubmitRequestRequest()
        stored.CopyFrom(submitted)
        stored.wait_ms = 0
        return _Submission(request_id, req, stored, req.fingerprint(), submitter)

    def _replayed(self, submission: _Submission) -> SubmitResult:
        """The answer when the submission's key is taken: the submission it replays (IdempotencyConflict
        when the payload differs); DuplicateKey again when no recorded key explains it."""
        replay = self._replay(submission.submitter, submission.req.idempotency_key, submission.fingerprint)
        if replay is None:
            raise DuplicateKey(f"request {submission.request_id} (idempotency key "
                               f"{submission.req.idempotency_key!r})")
        return replay

    @staticmethod
    def _recorded(submission: _Submission, record: RequestRecord) -> SubmitResult:
        logger.info("request %s recorded for %s: %s (%d lines)", record.request_id, submission.submitter,
                    record.status.value, len(submission.req.lines))
        return SubmitResult(record, replayed=False)

    def _reread(self, result: SubmitResult) -> tuple[SubmitResult, bool]:
        """The request as it stands now (no transaction is held while waiting; re-reading also sees
        events another intake replica consumed), and whether it is still to settle."""
        with self._uow().read_only() as uow:
            record = uow.requests.get(result.record.request_id)
        if record is None:
            return result, True
        return SubmitResult(record, replayed=False), record.status not in SETTLED

    def _fact_units(self, facts: Sequence[ClinicalFact]) -> list[FieldViolation]:
        return unit_violations(facts, self._facts) if self._facts is not None else []

    def _replay(self, submitter: str, key: str, fingerprint: str) -> SubmitResult | None:
        with self._uow().read_only() as uow:
            existing = uow.requests.by_key(submitter, key)
        if existing is None:
            return None
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for request {existing.request_id} with a different "
                "payload; use a new key for a new request")
        return SubmitResult(existing, replayed=True)

    def _record_batch(self, batch: list[_Submission]) -> list[RequestRecord | BaseException]:
        """Check eligibility and record a group of submissions (and the events of the eligible ones) in
        one transaction; if that fails and there was more than one, each again in a transaction of its
        own, so that each caller gets its own answer (a taken idempotency key is one caller's
        DuplicateKey, not its neighbours')."""
        try:
            return list(self._record_many(batch))
        except Exception as exc:  # noqa: BLE001 - the caller's to raise, or each submission's to meet alone
            if len(batch) == 1:
                return [exc]
        outcomes: list[RequestRecord | BaseException] = []
        for submission in batch:
            try:
                outcomes.extend(self._record_many([submission]))
            except Exception as exc:  # noqa: BLE001 - this submission's caller raises it
                outcomes.append(exc)
        return outcomes

    def _record_many(self, batch: Sequence[_Submission]) -> list[RequestRecord]:
        now = self._now()
        with self._uow() as uow:
            members = uow.members.get_many([s.req.member_id for s in batch])
            records = []
            for s in batch:
                member = members.get(s.req.member_id)
                eligibility = check_eligibility(s.req, member.coverages if member else (), member is not None)
                status = RequestStatus.IN_REVIEW if eligibility.eligible else RequestStatus.INELIGIBLE
                records.append(RequestRecord(
                    request_id=s.request_id, submitter=s.submitter, idempotency_key=s.req.idempotency_key,
                    fingerprint=s.fingerprint,
                    member_id=s.req.member_id, line_of_business=s.req.line_of_business,
                    member_state=s.req.member_state, urgency=s.req.urgency, review_type=s.req.review_type,
                    status=status, status_reason="" if eligibility.eligible else eligibility.reason, received_at=now,
                    payload=s.stored.SerializeToString(),
                    lines=tuple(LineRecord(line.line_number, line.procedure_code) for line in s.req.lines),
                    claim_number=s.req.claim_number or None))
            uow.requests.add_many(records)
            for s, record in zip(batch, records, strict=True):
                announced = ""
                if record.status is RequestStatus.IN_REVIEW:
                    event = OutgoingEvent(topic=self._topics.request_submitted, key=s.request_id,
                                          message=_submitted_event(s.request_id, now, s.stored))
                    uow.publish(event)
                    announced = event.event_id
                uow.audit(AuditRecord("request.submitted", s.request_id,
                                      {"status": record.status.value, "lines": len(s.req.lines)},
                                      event_id=announced, member_id=s.req.member_id,
                                      actor=actors.submitter(s.submitter)))
            uow.commit()
        return records

    def add_information(self, info: AdditionalInformation, submitted: intake_pb2.SubmitAdditionalInformationRequest,
                        *, submitter: str) -> InformationResult:
        """Record additional facts for a request under review and forward them to review, in one
        transaction. Only the request's submitter may: another's request is NotFound, exactly as an
        unknown one. Same key and payload: the original answer, even once the request is decided;
        same key, other payload (or another request): IdempotencyConflict."""
        violations = one_per_field(validate_information(info), self._fact_units(info.facts))
        if violations:
            raise ValidationFailed(violations)
        fingerprint = info.fingerprint()
        try:
            return self._record_information(info, submitted, fingerprint, submitter)
        except DuplicateKey:
            # The key was recorded by a concurrent call after this one looked for it: answer as it did.
            replay = self._information_replay(info, fingerprint, submitter)
            if replay is None:
                raise
            return replay

    def _record_information(self, info: AdditionalInformation,
                            submitted: intake_pb2.SubmitAdditionalInformationRequest,
                            fingerprint: str, submitter: str) -> InformationResult:
        now = self._now()
        with self._uow() as uow:
            previous = uow.information.by_key(submitter, info.idempotency_key)
            if previous is not None:
                return _information_answer(info, fingerprint, previous)
            record = uow.requests.get(info.request_id, for_update=True)
            if record is None or record.submitter != submitter:
                raise NotFound(f"no request {shown(info.request_id)}")
            if record.status not in (RequestStatus.IN_REVIEW, RequestStatus.PENDED):
                raise FailedPrecondition(
                    f"request {info.request_id} is {record.status.value.replace('_', ' ')}"
                    f"{': ' + record.status_reason if record.status_reason else ''}; nothing is waiting for "
                    "information")
            information_id = str(uuid.uuid4())
            uow.information.add(InformationRecord(
                information_id=information_id, request_id=info.request_id, submitter=submitter,
                idempotency_key=info.idempotency_key,
                fingerprint=fingerprint, payload=submitted.SerializeToString(), received_at=now))
            event = events_pb2.AdditionalInformationReceived(
                request_id=info.request_id, information_id=information_id,
                clinical_facts=submitted.clinical_facts, note=submitted.note)
            event.received_at.FromDatetime(now)
            outgoing = OutgoingEvent(topic=self._topics.additional_information, key=info.request_id, message=event)
            uow.publish(outgoing)
            uow.audit(AuditRecord("information.received", info.request_id, {
                "information_id": information_id, "count": len(info.facts)}, event_id=outgoing.event_id,
                member_id=record.member_id, actor=actors.submitter(submitter)))
            uow.commit()
        logger.info("additional information %s for request %s: %d facts", information_id, info.request_id,
                    len(info.facts))
        return InformationResult(information_id, now, replayed=False)

    def _information_replay(self, info: AdditionalInformation, fingerprint: str,
                            submitter: str) -> InformationResult | None:
        with self._uow().read_only() as uow:
            previous = uow.information.by_key(submitter, info.idempotency_key)
        return None if previous is None else _information_answer(info, fingerprint, previous)

    # -- queries -------------------------------------------------------------------------------
    def get(self, request_id: str, *, submitter: str | None) -> RequestRecord:
        return self.get_with_information(request_id, submitter=submitter)[0]

    def get_with_information(self, request_id: str, *,
                             submitter: str | None) -> tuple[RequestRecord, list[InformationRecord]]:
        """The request and the additional information received for it, oldest first. NotFound for an
        unknown id, or one that no request can have (without asking the database, which refuses some
        strings outright: PostgreSQL text holds no NUL). With a ``submitter``, only a request it
        submitted: another's is NotFound, with the words an unknown id gets, so that nothing tells the
        two apart; None reads every submitter's. The view is recorded in the audit log."""
        record, information, _ = self.get_story(request_id, submitter=submitter)
        return record, information

    def get_story(self, request_id: str, *, submitter: str | None
                  ) -> tuple[RequestRecord, list[InformationRecord], list[AppealRecord]]:
        """The request, the additional information received for it and the appeals of its lines; whose
        requests may be read as :meth:`get_with_information` says."""
        if not is_request_id(request_id):
            raise NotFound(f"no request {shown(request_id)}")
        with self._uow().read_only() as uow:
            record = uow.requests.get(request_id)
            if record is None or (submitter is not None and record.submitter != submitter):
                raise NotFound(f"no request {shown(request_id)}")
            story = record, uow.information.of_request(request_id), uow.appeals.of_request(request_id)
        record_views(self._uow, [_viewed(record, submitter)])
        return story

    def of_member(self, member_id: str, limit: int, *, submitter: str | None) -> list[RequestRecord]:
        """The member's requests, newest first; ``limit`` 0 means 50, at most 200. With a ``submitter``,
        only those it submitted; None: every submitter's. Each request shown is a view in the audit log."""
        if not 0 <= limit <= MAX_MEMBER_REQUESTS:
            raise ValidationFailed([FieldViolation("limit", f"between 1 and {MAX_MEMBER_REQUESTS} (0 means 50)")])
        if not member_id.strip():
            raise ValidationFailed([FieldViolation("member_id", "required")])
        with self._uow().read_only() as uow:
            found = uow.requests.of_member(member_id.strip(), limit or 50, submitter)
        # One entry per request shown; a search that found none still tells whom it was about.
        record_views(self._uow, [_viewed(r, submitter) for r in found] or [
            AuditRecord("request.listed", refs={"count": 0}, member_id=member_id.strip(), actor=_reader(submitter))])
        return found

    def of_claim(self, claim_number: str, limit: int, *, submitter: str | None) -> list[RequestRecord]:
        """The requests under a workers' comp claim, newest first; ``limit`` and ``submitter`` as for
        :meth:`of_member`. A claim number no request can carry (not 1-40 printable ASCII characters
        without spaces) is refused rather than looked up."""
        violations: list[FieldViolation] = []
        if not 0 <= limit <= MAX_MEMBER_REQUESTS:
            violations.append(FieldViolation("limit", f"between 1 and {MAX_MEMBER_REQUESTS} (0 means 50)"))
        if not claim_number:
            violations.append(FieldViolation("claim_number", "required"))
        elif not is_claim_number(claim_number):
            violations.append(FieldViolation("claim_number", f"{shown(claim_number)} is not 1-40 printable ASCII "
                                                             "characters without spaces"))
        if violations:
            raise ValidationFailed(violations)
        with self._uow().read_only() as uow:
            found = uow.requests.of_claim(claim_number, limit or 50, submitter)
        # The claim number is the injured worker's: an opaque reference, as a member id would be.
        record_views(self._uow, [_viewed(r, submitter) for r in found] or [
            AuditRecord("request.listed", refs={"count": 0, "page": "claim"}, member_id=claim_number,
                        actor=_reader(submitter))])
        return found

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
            audit: list[AuditRecord] = []
            last_event: dict[str, str] = {}
            for event in fresh:
                request_id = _request_id(event)
                record = records.get(request_id)
                if record is None:
                    raise PoisonMessage(f"event {event.event_id} refers to unknown request {request_id}")
                if isinstance(event.message, events_pb2.DeterminationMade):
                    _apply_determination(changes, record, progress[request_id], event.message)
                elif isinstance(event.message, events_pb2.AuthorizationsIssued):
                    _apply_authorizations(changes, record, progress[request_id], event.message)
                audit.append(_applied(event, record))
                last_event[request_id] = event.event_id
                touched.add(request_id)
            now = self._now()
            for request_id in sorted(touched):
                record = records[request_id]
                status = derive_status(record.status, [p.view() for p in progress[request_id].values()])
                if status is not record.status:
                    changes.statuses.append(StatusChanged(request_id, status, now))
                    audit.append(AuditRecord("request.status_changed", request_id, {"status": status.value},
                                             event_id=last_event[request_id], member_id=record.member_id))
            audit += [AuditRecord("appeal.decided", a.request_id, {
                "appeal_id": a.appeal_id, "line": a.line_number, "appeal_outcome": a.outcome},
                event_id=last_event.get(a.request_id, "")) for a in changes.appeals_decided]
            uow.requests.apply(changes)
            uow.appeals.decide(changes.appeals_decided)
            uow.audit(*audit)
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


def _reader(submitter: str | None) -> str:
    """Who reads: the submitter reading its own requests, else the caller (left to the unit of work)."""
    return actors.submitter(submitter) if submitter is not None else ""


def _viewed(record: RequestRecord, submitter: str | None) -> AuditRecord:
    return AuditRecord("request.viewed", record.request_id, {"status": record.status.value},
                       member_id=record.member_id, actor=_reader(submitter))


def _applied(event: IncomingEvent, record: RequestRecord) -> AuditRecord:
    """The audit record of a consumed determination or authorizations event."""
    message = event.message
    if isinstance(message, events_pb2.DeterminationMade):
        return AuditRecord("determination.recorded", record.request_id, {
            "determination_id": message.determination.determination_id,
            "lines": len(message.determination.lines)}, event_id=event.event_id, member_id=record.member_id)
    numbers = [a.authorization_number for a in message.authorizations] if isinstance(
        message, events_pb2.AuthorizationsIssued) else []
    refs: dict[str, RefValue] = {"count": len(numbers)}
    if len(numbers) == 1:
        refs["authorization_number"] = numbers[0]
    return AuditRecord("authorizations.recorded", record.request_id, refs, event_id=event.event_id,
                       member_id=record.member_id)


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
        urgency=stored.urgency, clinical_facts=stored.clinical_facts, certification_type=stored.certification_type,
        related_authorization_number=stored.related_authorization_number.strip().upper(),
        member_contact=stored.member_contact, workers_comp=stored.workers_comp)
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
        if line.appeal.appeal_id and line.appeal.outcome:
            changes.appeals_decided.append(AppealDecided(
                request_id=record.request_id, line_number=line.line_number, appeal_id=line.appeal.appeal_id,
                outcome=line.appeal.outcome, decided_at=line.decided_at.ToDatetime(tzinfo=dt.UTC)
                if line.HasField("decided_at") else determination.decided_at.ToDatetime(tzinfo=dt.UTC),
                forwarded_to=line.appeal.forwarded_to))


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


# -- after submission: cancel, revise, appeal ----------------------------------------------------

@dataclass(frozen=True)
class AppealFiling:
    """An appeal as filed, before checking (values may be malformed)."""

    idempotency_key: str
    request_id: str
    line_number: int
    urgency: str | None
    appellant: str | None
    appellant_name: str
    reason: str

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(replace(self, idempotency_key="")).encode()).hexdigest()


def decided_lines(record: RequestRecord) -> list[int]:
    """Lines with a decision of their own (approved, denied, modified, no action needed): not pended."""
    return [ln.line_number for ln in record.lines if ln.determination is not None and not ln.queued]


def _line_rights(line: LineRecord) -> LineRights | None:
    if line.determination is None:
        return None
    det = types_pb2.LineDetermination.FromString(line.determination)
    r = det.appeal_rights
    file_by = dt.date(r.file_by.year, r.file_by.month, r.file_by.day) if r.file_by.year else None
    return LineRights(action=to_name(ACTION, det.action_code) or "", file_by=file_by, window_days=r.filing_window_days,
                      level=r.level, who_may_file=tuple(r.who_may_file), citation=r.citation)


class RequestChanger:
    """The submitter's changes to a request under review, and appeals of its adverse lines. Only the
    request's submitter (the authenticated caller that submitted it) may: another's request is
    NotFound, exactly as an unknown one, before anything else is looked at."""

    def __init__(self, uow_factory: Callable[[], IntakeUnitOfWork], topics: Topics, *, clock: Clock) -> None:
        self._uow = uow_factory
        self._topics = topics
        self._now = clock

    def cancel(self, request_id: str, requesting_npi: str, reason: str, *, submitter: str) -> RequestRecord:
        """Withdraw a request still under review (see the gRPC contract); cancelling again answers again."""
        if len(reason) > 300:
            raise ValidationFailed([FieldViolation("reason", "at most 300 characters")])
        now = self._now()
        with self._uow() as uow:
            record = _found(uow, request_id, submitter)
            submitted = intake_pb2.SubmitRequestRequest.FromString(record.payload)
            check_submitter(requesting_npi, submitted.requesting_provider.npi)
            if record.status is RequestStatus.CANCELLED:
                return record
            check_changeable(record.status, record.status_reason, decided_lines(record), "cancelled")
            why = "withdrawn by its submitter" + (f": {reason.strip()}" if reason.strip() else "")
            uow.requests.cancel(record.request_id, why, now)
            event = events_pb2.RequestCancelled(request_id=record.request_id, reason=reason.strip(),
                                                cancelled_by=requesting_npi.strip())
            event.cancelled_at.FromDatetime(now)
            outgoing = OutgoingEvent(topic=self._topics.request_updated, key=record.request_id, message=event)
            uow.publish(outgoing)
            uow.audit(AuditRecord("request.cancelled", record.request_id, {"status": "cancelled"},
                                  event_id=outgoing.event_id, member_id=record.member_id,
                                  actor=actors.submitter(submitter)))
            uow.commit()
            logger.info("request %s cancelled by %s", record.request_id, requesting_npi.strip())
            return _found(uow, request_id, submitter)

    def revise(self, request_id: str, requesting_npi: str, revision: PriorAuthRequest,
               submitted: intake_pb2.SubmitRequestRequest, *, submitter: str) -> tuple[RequestRecord, bool]:
        """Revise a request still under review: (the request, whether this replays an earlier call)."""
        violations = [FieldViolation(f"revision.{v.field}", v.description) for v in validate(revision)]
        if violations:
            raise ValidationFailed(violations)
        fingerprint = hashlib.sha256(f"{request_id}:{revision.fingerprint()}".encode()).hexdigest()
        now = self._now()
        with self._uow() as uow:
            record = _found(uow, request_id, submitter)
            previous = uow.revisions.by_key(revision.idempotency_key)
            if previous is not None:
                if previous.fingerprint != fingerprint:
                    raise IdempotencyConflict(f"idempotency key {revision.idempotency_key!r} was already used for "
                                              "another revision; use a new key")
                return record, True
            original = intake_pb2.SubmitRequestRequest.FromString(record.payload)
            check_submitter(requesting_npi, original.requesting_provider.npi)
            check_changeable(record.status, record.status_reason, decided_lines(record), "revised")
            kept = check_revision(Original(record.member_id, record.line_of_business, record.member_state,
                                           len(record.lines), original.requesting_provider.npi), revision)
            if kept:
                raise ValidationFailed(kept)
            stored = intake_pb2.SubmitRequestRequest()
            stored.CopyFrom(submitted)
            stored.wait_ms = 0
            stored.idempotency_key = record.idempotency_key  # the request keeps its key; the revision has its own
            revision_id = str(uuid.uuid4())
            uow.revisions.add(RevisionRecord(revision_id=revision_id, request_id=record.request_id,
                                             idempotency_key=revision.idempotency_key, fingerprint=fingerprint,
                                             payload=submitted.SerializeToString(), received_at=now))
            uow.requests.revise(record.request_id, stored.SerializeToString(),
                                [(ln.line_number, ln.procedure_code) for ln in revision.lines], now)
            event = events_pb2.RequestRevised(request=_submitted_event(record.request_id, record.received_at, stored),
                                              revision_id=revision_id)
            event.revised_at.FromDatetime(now)
            outgoing = OutgoingEvent(topic=self._topics.request_updated, key=record.request_id, message=event)
            uow.publish(outgoing)
            uow.audit(AuditRecord("request.revised", record.request_id, {
                "revision_id": revision_id, "lines": len(revision.lines)}, event_id=outgoing.event_id,
                member_id=record.member_id, actor=actors.submitter(submitter)))
            uow.commit()
            logger.info("request %s revised (%s)", record.request_id, revision_id)
            return _found(uow, request_id, submitter), False

    def file_appeal(self, filing: AppealFiling, submitted: intake_pb2.FileAppealRequest, *,
                    submitter: str) -> tuple[AppealRecord, bool]:
        """Record an appeal of an adverse line and send it to review: (the appeal, whether replayed)."""
        _check_filing(filing)
        fingerprint = filing.fingerprint()
        now = self._now()
        with self._uow() as uow:
            # The request first: a replay's fingerprint names it, so an appeal replayed is of a request
            # the caller submitted.
            record = _found(uow, filing.request_id, submitter)
            previous = uow.appeals.by_key(filing.idempotency_key)
            if previous is not None:
                if previous.fingerprint != fingerprint:
                    raise IdempotencyConflict(f"idempotency key {filing.idempotency_key!r} was already used for "
                                              "another appeal; use a new key")
                return previous, True
            line = next((ln for ln in record.lines if ln.line_number == filing.line_number), None)
            if line is None:
                raise ValidationFailed([FieldViolation("line_number", f"request {record.request_id} has no line "
                                                                      f"{filing.line_number}")])
            already = any(a.line_number == filing.line_number for a in uow.appeals.of_request(record.request_id))
            check_appeal(filing.line_number, _line_rights(line), filing.appellant or "", now.date(), already)
            appeal = AppealRecord(appeal_id=str(uuid.uuid4()), request_id=record.request_id,
                                  line_number=filing.line_number, idempotency_key=filing.idempotency_key,
                                  fingerprint=fingerprint, urgency=filing.urgency or "standard",
                                  appellant=filing.appellant or "", appellant_name=filing.appellant_name.strip(),
                                  reason=filing.reason.strip(), filed_at=now, payload=submitted.SerializeToString())
            try:
                uow.appeals.add(appeal)
            except DuplicateKey as exc:
                raise FailedPrecondition(f"line {filing.line_number} is already appealed") from exc
            event = events_pb2.AppealFiled(appeal_id=appeal.appeal_id, request_id=appeal.request_id,
                                           line_number=appeal.line_number, urgency=submitted.urgency,
                                           appellant=appeal.appellant, appellant_name=appeal.appellant_name,
                                           reason=appeal.reason, clinical_facts=submitted.clinical_facts,
                                           member_id=record.member_id)
            event.filed_at.FromDatetime(now)
            outgoing = OutgoingEvent(topic=self._topics.appeal_filed, key=record.request_id, message=event)
            uow.publish(outgoing)
            uow.audit(AuditRecord("appeal.filed", record.request_id, {
                "appeal_id": appeal.appeal_id, "line": appeal.line_number, "urgency": appeal.urgency},
                event_id=outgoing.event_id, member_id=record.member_id, actor=actors.submitter(submitter)))
            uow.commit()
        logger.info("appeal %s of request %s line %d filed by the %s", appeal.appeal_id, appeal.request_id,
                    appeal.line_number, appeal.appellant)
        return appeal, False


def _found(uow: IntakeUnitOfWork, request_id: str, submitter: str) -> RequestRecord:
    """``submitter``'s request ``request_id``, locked; NotFound for an unknown one and for another's alike."""
    if not is_request_id(request_id.strip()):
        raise NotFound(f"no request {shown(request_id)}")
    record = uow.requests.get(request_id.strip(), for_update=True)
    if record is None or record.submitter != submitter:
        raise NotFound(f"no request {shown(request_id)}")
    return record


def _check_filing(filing: AppealFiling) -> None:
    v = []
    if not filing.idempotency_key or len(filing.idempotency_key) > 100:
        v.append(FieldViolation("idempotency_key", "required, at most 100 characters"))
    if not filing.request_id.strip():
        v.append(FieldViolation("request_id", "required"))
    if filing.line_number < 1:
        v.append(FieldViolation("line_number", "the line appealed (1, 2, ...)"))
    if filing.urgency is None:
        v.append(FieldViolation("urgency", "standard or expedited"))
    if filing.appellant is None:
        v.append(FieldViolation("appellant", "member, provider_on_behalf, injured_worker or representative"))
    if len(filing.reason) > 2000:
        v.append(FieldViolation("reason", "at most 2000 characters"))
    if v:
        raise ValidationFailed(v)
