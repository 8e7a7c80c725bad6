"""The standard front doors' use cases: Da Vinci PAS ``Claim/$submit`` (requests, and Claim updates that
cancel or revise a pending one), ``Claim/$inquire``, and X12 278 interchanges.

Each translates with services/intake/interop (pure), calls intake as the submitter
(:class:`~services.intake.service_layer.door_ports.IntakeApi`) and answers in the door's terms. The
answers, by case:

* a body that is not valid FHIR/PAS: ``invalid`` with an OperationOutcome naming each element
  (nothing reaches intake);
* valid PAS the platform cannot review, or intake refuses (its validation, an unknown member or
  ineligible coverage, an update of a decided request), or intake cannot be reached: ``ok`` with the
  guide's error response (a ClaimResponse with ``outcome = error`` and X12 reject reasons: 42 "unable
  to respond now" for the last, with follow-up P: resend the same Bundle, which intake replays);
* otherwise ``ok`` with the PAS response Bundle: intake waits for the determination up to the
  door's budget, and a line not decided by then is pended (A4);
* the same Bundle identifier again with other content: ``conflict``.

Authentication and the rate limit are intake's: Unauthenticated, PermissionDenied (other than an
update's "not your request") and ResourceExhausted pass through for the transport to answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ur.intake.v1 import intake_pb2

from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    Unavailable,
    ValidationFailed,
)
from services.intake.interop.answers import Rejection
from services.intake.interop.pas.fhir import parse_bundle
from services.intake.interop.pas.guard import DEFAULT_LIMITS, Limits, load
from services.intake.interop.pas.inquiry import InquiryQuery, parse_inquiry
from services.intake.interop.pas.inquiry_response import inquiry_parameters, pas_inquiry_bundle
from services.intake.interop.pas.outcome import Problem, operation_outcome
from services.intake.interop.pas.refusal import split
from services.intake.interop.pas.request import bundle_to_command, pas_request_to_command
from services.intake.interop.pas.response import REQUEST_ID_SYSTEM, pas_error_bundle, pas_response_bundle
from services.intake.interop.pas.update import ClaimUpdate, claim_identifiers, is_update, read_update
from services.intake.interop.payers import PayerProfile
from services.intake.interop.x12 import Party, receive_278, reply_envelope, response_278_set
from services.intake.interop.x12.envelope import VERSION, Interchange, wrap
from services.intake.service_layer.door_ports import Clock, ControlNumbers, IntakeApi, SubmissionStore, Submitter

logger = logging.getLogger(__name__)

#: How long a door lets intake wait for a determination by default: PAS answers within 15 seconds,
#: and translating, storing and answering take the rest.
DEFAULT_WAIT_MS = 13_000

Outcome = Literal["ok", "invalid", "conflict"]


@dataclass(frozen=True)
class Answer:
    """A FHIR door's answer: ``ok`` (a PAS response or error Bundle, a Parameters), ``invalid`` (an
    OperationOutcome: the body cannot be read as PAS) or ``conflict`` (an OperationOutcome: the
    Bundle identifier was used for another request)."""

    outcome: Outcome
    resource: dict[str, Any]


def _invalid(problems: Sequence[Problem]) -> Answer:
    return Answer("invalid", operation_outcome(problems))


# Intake's field names -> the X12 reject reason and loop of the same fault.
_FIELD_REASONS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(^|\.)service_lines\[\d+\]\.(procedure_code|modifiers)"), "AG", "2000F"),
    (re.compile(r"(^|\.)service_lines\[\d+\]\.(start_date|end_date)"), "57", "2000F"),
    (re.compile(r"(^|\.)diagnoses"), "AF", "2000E"),
    (re.compile(r"(^|\.)member_id"), "72", "2010C"),
    (re.compile(r"(^|\.)(requesting|servicing)_provider"), "43", "2010B"),
)
_LINE = re.compile(r"service_lines\[(\d+)\]")


def violation_rejections(violations: Sequence[FieldViolation]) -> list[Rejection]:
    """Intake's validation failures as rejections (33 input errors unless a closer reason fits)."""
    out = []
    for v in violations:
        code, loop = "33", "2000E"
        for pattern, reason, where in _FIELD_REASONS:
            if pattern.search(v.field):
                code, loop = reason, where
                break
        line = _LINE.search(v.field)
        number = int(line.group(1)) + 1 if line is not None else 0
        out.append(Rejection(loop if number or loop != "2000F" else "2000E", code, "C",
                             f"{v.field}: {v.description}" if v.field else v.description, line=number))
    return out or [Rejection("2000E", "33", "C", "the request does not validate")]


def unavailable(detail: str) -> Rejection:
    return Rejection("2000A", "42", "P", f"unable to respond now ({detail}); send the same request again shortly")


class PasDoor:
    """``Claim/$submit`` and ``Claim/$inquire`` (see the module docstring)."""

    def __init__(self, intake: IntakeApi, store: SubmissionStore, *, clock: Clock,
                 payers: Mapping[str, PayerProfile] | None = None, wait_ms: int = DEFAULT_WAIT_MS,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self._intake = intake
        self._store = store
        self._now = clock
        self._payers = dict(payers or {})
        self._wait_ms = wait_ms
        self._limits = limits

    # -- $submit ---------------------------------------------------------------------------------
    async def submit(self, body: bytes | str | Mapping[str, Any], submitter: Submitter) -> Answer:
        """A PAS request Bundle or Claim update (see the module docstring)."""
        bundle, problems = load(body, self._limits)
        if problems:
            return _invalid(problems)
        if is_update(bundle):
            return await self._update(bundle, submitter)
        parsed, problems = parse_bundle(bundle, self._limits, checked=True)
        if parsed is None:
            return _invalid(problems)
        command = bundle_to_command(parsed, submitter.id, payers=self._payers)
        if isinstance(command, list):
            return self._problems(bundle, command)
        command.wait_ms = self._wait_ms
        try:
            reply = await self._intake.submit(command, submitter)
        except ValidationFailed as exc:
            return self._refused(bundle, violation_rejections(exc.violations))
        except IdempotencyConflict as exc:
            return Answer("conflict", operation_outcome([Problem("Bundle.identifier", "duplicate", str(exc))]))
        except Unavailable as exc:
            logger.warning("intake unavailable for a PAS submission of %s: %s", submitter.id, exc)
            return self._refused(bundle, [unavailable("intake cannot be reached")])
        view = reply.request
        await self._record(view.request_id, submitter, bundle, claim_identifiers(bundle))
        return Answer("ok", pas_response_bundle(bundle, view, now=self._now(), parsed=parsed))

    def _problems(self, bundle: Mapping[str, Any], problems: Sequence[Problem]) -> Answer:
        invalid, refusals = split(problems, bundle)
        if invalid:
            return _invalid(invalid)
        return self._refused(bundle, refusals)

    def _refused(self, bundle: Mapping[str, Any], rejections: Sequence[Rejection], request_id: str = "") -> Answer:
        return Answer("ok", pas_error_bundle(bundle, rejections, request_id=request_id, now=self._now()))

    async def _record(self, request_id: str, submitter: Submitter, bundle: Mapping[str, Any],
                      identifiers: Sequence[tuple[str, str]]) -> None:
        """Keep the Bundle for later answers; a failure costs only those (inquiries then answer from the
        inquiry's resources), never this answer."""
        try:
            await self._store.record(request_id, submitter.id, bundle, identifiers, self._now())
        except Unavailable as exc:
            logger.error("request %s of %s answered but not recorded by the door: %s", request_id, submitter.id, exc)

    # -- Claim updates -----------------------------------------------------------------------------
    async def _update(self, bundle: Mapping[str, Any], submitter: Submitter) -> Answer:
        update = read_update(bundle, limits=self._limits)
        if isinstance(update, list):
            return self._problems(bundle, update)
        request_id = update.request_id or await self._prior(update, submitter)
        if request_id is None:
            named = ", ".join(f"{s}|{v}" for s, v in update.prior_identifiers) or "none"
            return self._refused(bundle, [Rejection(
                "2000E", "33", "C", f"no pending request of {submitter.id} was submitted with the prior Claim's "
                                    f"identifier ({named})", path="Bundle.entry[0].resource.related[0].claim")])
        try:
            view = await self._apply(bundle, update, request_id, submitter)
        except _Refused as refused:
            return refused.answer
        await self._record(view.request_id, submitter, bundle, update.identifiers)
        return Answer("ok", pas_response_bundle(bundle, view, now=self._now()))

    async def _prior(self, update: ClaimUpdate, submitter: Submitter) -> str | None:
        for system, value in update.prior_identifiers:
            found = await self._store.find(submitter.id, system, value)
            if found:
                return found[-1]
        return None

    async def _apply(self, bundle: Mapping[str, Any], update: ClaimUpdate, request_id: str,
                     submitter: Submitter) -> intake_pb2.RequestView:
        """Cancel or revise in intake; raises _Refused with the answer when intake or the translation
        refuses."""
        try:
            if update.kind == "cancel":
                reason = "cancelled by the submitter (PAS Claim update " + ", ".join(
                    v for _s, v in update.identifiers)[:200] + ")"
                return await self._intake.cancel(request_id, update.requesting_npi, reason, submitter)
            command = pas_request_to_command(update.revision, submitter.id, payers=self._payers, limits=self._limits)
            if isinstance(command, list):
                raise _Refused(self._problems(bundle, command))
            return await self._intake.revise(request_id, update.requesting_npi, command, submitter)
        except ValidationFailed as exc:
            raise _Refused(self._refused(bundle, violation_rejections(exc.violations), request_id)) from exc
        except (NotFound, FailedPrecondition) as exc:
            raise _Refused(self._refused(bundle, [Rejection("2000E", "33", "C", str(exc))], request_id)) from exc
        except PermissionDenied as exc:  # CancelRequest/ReviseRequest: another requesting provider
            raise _Refused(self._refused(bundle, [Rejection("2010B", "43", "C", str(exc))], request_id)) from exc
        except IdempotencyConflict as exc:
            raise _Refused(Answer("conflict", operation_outcome(
                [Problem("Bundle.identifier", "duplicate", str(exc))]))) from exc
        except Unavailable as exc:
            raise _Refused(self._refused(bundle, [unavailable("intake cannot be reached")], request_id)) from exc

    # -- $inquire ----------------------------------------------------------------------------------
    async def inquire(self, body: bytes | str | Mapping[str, Any], submitter: Submitter) -> Answer:
        """A PAS inquiry Bundle: the current response of each of the submitter's requests it matches."""
        inquiry, problems = load(body, self._limits)
        if problems:
            return _invalid(problems)
        query = parse_inquiry(inquiry, limits=self._limits)
        if isinstance(query, list):
            return _invalid(query)
        bundles = []
        for view in await self._matches(query, submitter):
            stored = await self._store.get(view.request_id)
            request = stored.bundle if stored is not None and stored.submitter == submitter.id else None
            bundles.append(pas_inquiry_bundle(inquiry, view, request, now=self._now()))
        return Answer("ok", inquiry_parameters(bundles))

    async def _matches(self, query: InquiryQuery, submitter: Submitter) -> list[intake_pb2.RequestView]:
        if query.claim_identifier is not None:
            system, value = query.claim_identifier
            ids = [value] if system == REQUEST_ID_SYSTEM else await self._store.find(submitter.id, system, value)
            views = []
            for request_id in dict.fromkeys(ids):
                try:
                    views.append(await self._intake.get(request_id, submitter))
                except NotFound:
                    continue  # unknown, or another submitter's: intake says the same for both
        else:
            views = await self._intake.member_requests(query.member_id, submitter)
        return [v for v in views if _matches(query, v)]


def _matches(query: InquiryQuery, view: intake_pb2.RequestView) -> bool:
    """Query by example: the member and requester always; the services and dates when asked."""
    if view.member_id != query.member_id or view.requesting_provider.npi != query.requester_npi:
        return False
    lines = [item.line for item in view.lines]
    if query.procedure_codes and not {ln.procedure_code for ln in lines} & set(query.procedure_codes):
        return False
    if query.service_from is None and query.service_to is None:
        return True
    for line in lines:
        start = dt.date(line.start_date.year, line.start_date.month, line.start_date.day) \
            if line.HasField("start_date") else None
        end = dt.date(line.end_date.year, line.end_date.month, line.end_date.day) \
            if line.HasField("end_date") else start
        if start is None or end is None:
            continue
        if (query.service_to is None or start <= query.service_to) and (
                query.service_from is None or end >= query.service_from):
            return True
    return False


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.outcome)
        self.answer = answer


# -- X12 ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class X12Answer:
    """What an interchange is answered with: the 278 responses (every transaction set accepted), the
    999 (none accepted), both as two interchanges (some accepted), or a TA1 (unreadable)."""

    kind: Literal["278", "999", "999+278", "TA1"]
    body: str


US = Party("ZZ", "URPLATFORM", "URPLATFORM")


class X12Door:
    """The X12 278 over HTTP (and ``urctl x12 submit``): an interchange of 278 requests in, the answer
    out. Every accepted request is submitted to intake as the submitter, waiting up to the door's
    budget; its 278 response carries the determination (A4 for a line still under review), the
    rejections of a request the platform cannot review (AAA), or AAA 42 when intake cannot be reached."""

    def __init__(self, intake: IntakeApi, control: ControlNumbers, *, clock: Clock,
                 payers: Mapping[str, PayerProfile] | None = None, wait_ms: int = DEFAULT_WAIT_MS,
                 us: Party = US) -> None:
        self._intake = intake
        self._control = control
        self._now = clock
        self._payers = dict(payers or {})
        self._wait_ms = wait_ms
        self._us = us

    async def receive(self, text: str, submitter: Submitter) -> X12Answer:
        at = self._now()
        receipt = receive_278(text, submitter.id, self._payers, at=at,
                              interchange_control=await self._control.next_control_number(),
                              group_control=await self._control.next_control_number(), us=self._us)
        if receipt.interchange is None:
            return X12Answer("TA1", receipt.acknowledgment)
        sets = []
        for n, received in enumerate(receipt.requests, start=1):
            control = f"{n:04d}"
            outcome = received.outcome
            if isinstance(outcome, list):
                sets.append(response_278_set(received.request, rejections=outcome, transaction_control=control))
                continue
            outcome.wait_ms = self._wait_ms
            view, rejections = await self._submit(outcome, submitter)
            sets.append(response_278_set(received.request, view=view, rejections=rejections,
                                         transaction_control=control))
        if not sets:
            return X12Answer("999", receipt.acknowledgment)
        envelope = reply_envelope(receipt.interchange, await self._control.next_control_number(),
                                  await self._control.next_control_number(), at)
        responses = wrap(envelope, "HI", VERSION, sets)
        if _all_accepted(receipt.interchange):
            return X12Answer("278", responses)
        return X12Answer("999+278", receipt.acknowledgment + responses)

    async def _submit(self, command: intake_pb2.SubmitRequestRequest, submitter: Submitter
                      ) -> tuple[intake_pb2.RequestView | None, list[Rejection]]:
        try:
            return (await self._intake.submit(command, submitter)).request, []
        except ValidationFailed as exc:
            return None, violation_rejections(exc.violations)
        except IdempotencyConflict as exc:
            return None, [Rejection("2000E", "33", "C", str(exc))]
        except Unavailable as exc:
            logger.warning("intake unavailable for a 278 of %s: %s", submitter.id, exc)
            return None, [unavailable("intake cannot be reached")]


def _all_accepted(interchange: Interchange) -> bool:
    return all(not g.errors and all(ts.accepted for ts in g.transactions) for g in interchange.groups)
