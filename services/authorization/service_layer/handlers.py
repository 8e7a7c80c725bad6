"""Authorization's use cases: keep one record per determination line as determinations arrive
(extensions added to the authorization they continue), match claim lines against the records and
draw their units, and answer look-ups."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.domain import numbers
from services.authorization.domain.claims import ClaimDecision, ClaimLine, Match, UnitDraw, match_claim
from services.authorization.domain.model import (
    CANCELLED,
    MAX_LIST,
    PENDED,
    AuthorizationToIssue,
    Context,
    DecidedLine,
    Decider,
    IssuedAuthorization,
    Metrics,
    extend,
    extendable,
    follow,
    member_query_problems,
    new_record,
    overlap_query_problems,
)
from services.authorization.service_layer.ports import AuthorizationUnitOfWork, Clock
from services.common.audit.chain import AuditRecord, RefValue, identifier
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
from services.common.proto_enums import to_name, to_number
from services.common.topics import Topics

logger = logging.getLogger(__name__)

CONSUMER_NAME = "authorization"
ACTION = types_pb2.ActionCode
CERTIFICATION = types_pb2.CertificationType
#: How often a draw that lost a race to another re-reads and tries again before answering.
DRAW_ATTEMPTS = 5


def _date(d: types_pb2.Date) -> dt.date | None:
    if d.year == 0:
        return None
    try:
        return dt.date(d.year, d.month, d.day)
    except ValueError as exc:
        raise PoisonMessage(f"invalid date {d.year}-{d.month}-{d.day}") from exc


def _proto_date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


_STATUS = {"approved": types_pb2.AUTHORIZATION_STATUS_APPROVED, "expired": types_pb2.AUTHORIZATION_STATUS_EXPIRED,
           "cancelled": types_pb2.AUTHORIZATION_STATUS_CANCELLED,
           "partially_approved": types_pb2.AUTHORIZATION_STATUS_PARTIALLY_APPROVED,
           "modified": types_pb2.AUTHORIZATION_STATUS_MODIFIED, "denied": types_pb2.AUTHORIZATION_STATUS_DENIED,
           "pended": types_pb2.AUTHORIZATION_STATUS_PENDED}


def to_proto(issued: IssuedAuthorization, today: dt.date | None = None) -> types_pb2.Authorization:
    """The record as ``ur.common.v1.Authorization``; read on ``today`` (when given), a usable record
    past its validity is EXPIRED."""
    status = issued.status_on(today) if today is not None else issued.status
    auth = types_pb2.Authorization(
        authorization_number=issued.authorization_number, request_id=issued.request_id,
        line_number=issued.line_number, member_id=issued.member_id, procedure_code=issued.procedure_code,
        units=issued.units, status=_STATUS.get(status, types_pb2.AUTHORIZATION_STATUS_UNSPECIFIED),
        determination_id=issued.determination_id, valid_from=_proto_date(issued.valid_from),
        valid_to=_proto_date(issued.valid_to), servicing_npi=issued.servicing_npi,
        servicing_name=issued.servicing_name, units_used=issued.units_used, units_remaining=issued.remaining,
        unit=issued.unit, criteria=list(issued.criteria), approved_after_appeal=issued.approved_after_appeal,
        appeal_id=issued.appeal_id, reason=issued.reason,
        action_code=to_number(ACTION, issued.action) if issued.action else types_pb2.ACTION_CODE_UNSPECIFIED)
    auth.issued_at.FromDatetime(issued.issued_at)
    if issued.updated_at is not None:
        auth.updated_at.FromDatetime(issued.updated_at)
    if issued.decided_by is not None:
        d = issued.decided_by
        auth.decided_by.CopyFrom(types_pb2.DeciderRef(id=d.id, role=d.role, credential=d.credential, name=d.name,
                                                      criteria=d.criteria))
    if issued.next_review_date is not None:
        auth.next_review_date.CopyFrom(_proto_date(issued.next_review_date))
    for e in issued.extensions:
        added = auth.extensions.add(request_id=e.request_id, line_number=e.line_number,
                                    determination_id=e.determination_id, units_added=e.units_added,
                                    valid_to=_proto_date(e.valid_to))
        added.extended_at.FromDatetime(e.extended_at)
    return auth


def _decider(ref: types_pb2.DeciderRef) -> Decider | None:
    if not ref.id:
        return None
    return Decider(id=ref.id, role=ref.role, credential=ref.credential, name=ref.name, criteria=ref.criteria)


def decided_line(ln: types_pb2.LineDetermination) -> DecidedLine:
    """A determination line as the domain reads it."""
    criteria = []
    if ln.explanation.criteria_id:
        criteria.append(f"{ln.explanation.criteria_id}@{ln.explanation.criteria_version}")
    if ln.criterion:
        cited = ln.criterion.split(":", 1)[0].strip()
        if cited and cited not in criteria:
            criteria.append(cited)
    return DecidedLine(
        line_number=ln.line_number, procedure_code=ln.procedure_code, action=to_name(ACTION, ln.action_code) or "",
        approved_units=ln.approved_units, approved_start=_date(ln.approved_start), approved_end=_date(ln.approved_end),
        decided_at=ln.decided_at.ToDatetime(tzinfo=dt.UTC) if ln.HasField("decided_at") else None,
        decided_by=_decider(ln.decided_by), criteria=tuple(criteria), reason="; ".join(ln.reasons)[:2000],
        next_review_date=_date(ln.next_review_date), appeal_id=ln.appeal.appeal_id, appeal_outcome=ln.appeal.outcome,
        unit=ln.unit or "units")


def context(message: events_pb2.DeterminationMade, now: dt.datetime) -> Context:
    """What the determination says about all its lines; undated, it counts as decided ``now``."""
    det = message.determination
    if not det.request_id or not det.determination_id:
        raise PoisonMessage("determination without request id or determination id")
    if not message.member_id:
        raise PoisonMessage(f"determination {det.determination_id} carries no member id")
    return Context(request_id=det.request_id, determination_id=det.determination_id, member_id=message.member_id,
                   decided_at=det.decided_at.ToDatetime(tzinfo=dt.UTC) if det.HasField("decided_at")
                   else now,
                   servicing_npi=message.servicing_provider.npi, servicing_name=message.servicing_provider.name,
                   certification_type=to_name(CERTIFICATION, det.certification_type) or "initial",
                   related_authorization_number=numbers.normalize(det.related_authorization_number)
                   if det.related_authorization_number else "")


@dataclass
class _Batch:
    """The records one batch creates or changes, and which requests hear of which."""

    on_file: dict[tuple[str, int], IssuedAuthorization]
    originals: dict[str, IssuedAuthorization]
    new: dict[tuple[str, int], AuthorizationToIssue] = field(default_factory=dict)
    changed: dict[str, IssuedAuthorization] = field(default_factory=dict)  # by number
    told: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # request id → record keys
    determination_of: dict[str, str] = field(default_factory=dict)

    def current(self, key: tuple[str, int]) -> AuthorizationToIssue | None:
        if key in self.new:
            return self.new[key]
        found = self.on_file.get(key)
        if found is not None and found.authorization_number in self.changed:
            return self.changed[found.authorization_number]
        return found

    def original(self, number: str) -> IssuedAuthorization | None:
        return self.changed.get(number) or self.originals.get(number)

    def keep(self, record: AuthorizationToIssue, tell: str) -> None:
        key = (record.request_id, record.line_number)
        if isinstance(record, IssuedAuthorization):
            self.changed[record.authorization_number] = record
        else:
            self.new[key] = record
        listed = self.told.setdefault(tell, [])
        if key not in listed:
            listed.append(key)


@dataclass(frozen=True)
class ConsumeResult:
    authorization: IssuedAuthorization
    units_consumed: int
    replayed: bool


class AuthorizationHandlers:
    def __init__(self, uow_factory: Callable[[], AuthorizationUnitOfWork], topics: Topics,
                 validity_days: int = 90, *, clock: Clock) -> None:
        self._uow = uow_factory
        self._now = clock
        self._topics = topics
        self._validity_days = validity_days

    # -- determinations ------------------------------------------------------------------------
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Record every line of every new determination once: a record per line, following its
        latest decision; a certified extension line adds to the authorization it names. One
        AuthorizationsIssued per request whose records changed (and one to the extended
        authorization's own request)."""
        now = self._now()
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            messages: list[events_pb2.DeterminationMade] = []
            for event in fresh:
                if not isinstance(event.message, events_pb2.DeterminationMade):
                    raise PoisonMessage(f"authorization does not consume {type(event.message).__name__}")
                messages.append(event.message)
            contexts = [context(m, now) for m in messages]
            keys = [(c.request_id, ln.line_number) for c, m in zip(contexts, messages, strict=True)
                    for ln in m.determination.lines]
            related = {c.related_authorization_number for c in contexts if c.extends}
            originals = {n: a for n in sorted(related) if (a := uow.authorizations.by_number(n)) is not None}
            batch = _Batch(uow.authorizations.of_lines(keys), originals)
            for ctx, message in zip(contexts, messages, strict=True):
                batch.determination_of[ctx.request_id] = ctx.determination_id
                for ln in message.determination.lines:
                    self._apply(batch, ctx, decided_line(ln), now)
            stored = uow.authorizations.add_many(list(batch.new.values()))
            uow.authorizations.update_many(list(batch.changed.values()))
            event_of = {c.determination_id: e.event_id for c, e in zip(contexts, fresh, strict=True)}
            uow.audit(*[_recorded("authorization.recorded", a, event_of) for a in stored],
                      *[_recorded("authorization.changed", a, event_of) for a in batch.changed.values()])
            final = {(a.request_id, a.line_number): a for a in (*stored, *batch.changed.values())}
            today = now.date()
            for request_id, told in batch.told.items():
                uow.publish(OutgoingEvent(
                    topic=self._topics.authorizations_issued, key=request_id,
                    message=events_pb2.AuthorizationsIssued(
                        request_id=request_id, determination_id=batch.determination_of.get(request_id, ""),
                        authorizations=[to_proto(final[k], today) for k in told])))
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()
        if stored or batch.changed:
            logger.info("recorded %d new and %d changed authorization records for %d determinations", len(stored),
                        len(batch.changed), len(messages))

    def _apply(self, batch: _Batch, ctx: Context, line: DecidedLine, now: dt.datetime) -> None:
        if ctx.extends and line.certified:
            original = batch.original(ctx.related_authorization_number)
            if original is not None and extendable(original, line, ctx):
                extended = extend(original, line, ctx)
                if extended is not None:
                    batch.keep(extended, tell=ctx.request_id)
                    batch.keep(extended, tell=extended.request_id)
                return
            logger.warning("request %s line %d extends %s, which is not this member's usable authorization for %s: "
                           "recorded as an authorization of its own", ctx.request_id, line.line_number,
                           ctx.related_authorization_number, line.procedure_code)
        key = (ctx.request_id, line.line_number)
        current = batch.current(key)
        if current is None:
            if ctx.extends and line.status in (PENDED, CANCELLED):
                return  # an extension waiting for a decision adds nothing yet; a denial gets its reference number
            created = new_record(line, ctx, now, self._validity_days)
            if created is not None:
                batch.keep(created, tell=ctx.request_id)
            return
        updated = follow(current, line, ctx, self._validity_days)
        if updated is not None:
            batch.keep(updated, tell=ctx.request_id)

    # -- claims --------------------------------------------------------------------------------
    def check_claim(self, claim: ClaimLine) -> ClaimDecision:
        """Which record covers the claim line, or the nearest miss (reads only)."""
        _check_claim_line(claim)
        with self._uow().read_only() as uow:
            decision = match_claim(claim, uow.authorizations.for_member(claim.member_id, limit=1000))
        shown = decision.authorization
        refs: dict[str, RefValue] = {"outcome": decision.match.value}
        if shown is not None:
            refs.update(line=shown.line_number, authorization_number=shown.authorization_number)
        record_views(self._uow, [AuditRecord("claim.checked", shown.request_id if shown is not None else "", refs,
                                             member_id=claim.member_id)])
        return decision

    def consume(self, claim_line_id: str, claim: ClaimLine) -> ConsumeResult:
        """Draw the claim line's units, once per claim line id (see the gRPC contract)."""
        _check_claim_line(claim)
        if not claim_line_id.strip() or len(claim_line_id) > 100:
            raise ValidationFailed([FieldViolation("claim_line_id", "required, at most 100 characters")])
        fingerprint = claim.fingerprint()
        for _ in range(DRAW_ATTEMPTS):
            replay = self._replay(claim_line_id, fingerprint)
            if replay is not None:
                return replay
            try:
                drawn = self._draw(claim_line_id, claim, fingerprint)
            except DuplicateKey:
                continue  # a concurrent call with the same claim line id drew first: answer as it did
            if drawn is not None:
                logger.info("claim line %s drew %d %s from %s", claim_line_id, claim.units,
                            drawn.authorization.unit, drawn.authorization.authorization_number)
                return drawn
        raise FailedPrecondition(f"claim line {claim_line_id}: the authorization changed under every attempt; "
                                 "try again")

    def _replay(self, claim_line_id: str, fingerprint: str) -> ConsumeResult | None:
        with self._uow().read_only() as uow:
            previous = uow.draws.get(claim_line_id)
            if previous is None:
                return None
            if previous.fingerprint != fingerprint:
                raise IdempotencyConflict(f"claim line {claim_line_id} already drew {previous.units} unit(s) from "
                                          f"{previous.authorization_number} for another claim line")
            auth = uow.authorizations.by_number(previous.authorization_number)
        if auth is None:
            raise NotFound(f"authorization {previous.authorization_number} of claim line {claim_line_id} is gone")
        return ConsumeResult(auth, previous.units, replayed=True)

    def _draw(self, claim_line_id: str, claim: ClaimLine, fingerprint: str) -> ConsumeResult | None:
        """One attempt; None when another draw took the units between reading and drawing."""
        with self._uow() as uow:
            decision = match_claim(claim, uow.authorizations.for_member(claim.member_id, limit=1000))
            if not decision.covered or decision.authorization is None:
                raise FailedPrecondition(f"{_MATCH_WORDS[decision.match]}: {decision.explanation}")
            number = decision.authorization.authorization_number
            if not uow.authorizations.draw(number, claim.units):
                return None
            uow.draws.add(UnitDraw(claim_line_id, number, claim.units, fingerprint, self._now()))
            auth = decision.authorization
            uow.audit(AuditRecord("units.drawn", auth.request_id, {
                "line": auth.line_number, "authorization_number": number, "claim_line_id": identifier(claim_line_id),
                "units": claim.units}, member_id=auth.member_id))
            uow.commit()
            after = uow.authorizations.by_number(number)
        return ConsumeResult(after or decision.authorization, claim.units, replayed=False)

    # -- queries -------------------------------------------------------------------------------
    def today(self) -> dt.date:
        return self._now().date()

    def get(self, number: str) -> types_pb2.Authorization:
        canonical = numbers.normalize(number)
        if not numbers.is_well_formed(canonical):
            raise ValidationFailed([FieldViolation(
                "authorization_number", f"{number[:40]!r} is not an authorization number (like UR26-8K3F-Q9ZD)")])
        with self._uow().read_only() as uow:
            found = uow.authorizations.by_number(canonical)
        if found is None:
            raise NotFound(f"no authorization {canonical}")
        record_views(self._uow, [_viewed(found)])
        return to_proto(found, self.today())

    def for_member(self, member_id: str, procedure_code: str, overlaps_from: dt.date | None,
                   overlaps_to: dt.date | None, active_only: bool, limit: int) -> list[types_pb2.Authorization]:
        problems = member_query_problems(member_id, procedure_code, limit)
        if problems:
            raise ValidationFailed(problems)
        with self._uow().read_only() as uow:
            found = uow.authorizations.for_member(member_id, procedure_code, overlaps_from, overlaps_to,
                                                  active_only, limit or 100)
        record_views(self._uow, _views(member_id, found))
        today = self.today()
        return [to_proto(a, today) for a in found]

    def overlapping(self, queries: Sequence[tuple[str, dt.date, dt.date]]) -> list[list[types_pb2.Authorization]]:
        """For each (member, from, to), the member's usable records valid on some day of [from, to],
        newest first: a batch of duplicate checks in one read and one audit transaction (one call per
        request cost review a round trip and authorization a transaction each)."""
        problems = overlap_query_problems(queries)
        if problems:
            raise ValidationFailed(problems)
        with self._uow().read_only() as uow:
            found = uow.authorizations.usable_overlapping(queries, MAX_LIST)
        record_views(self._uow, [r for (member_id, _, _), batch in zip(queries, found, strict=True)
                                 for r in _views(member_id, batch)])
        today = self.today()
        return [[to_proto(a, today) for a in batch] for batch in found]

    def metrics(self, issued_from: dt.date | None, issued_to: dt.date | None) -> Metrics:
        if issued_from is not None and issued_to is not None and issued_to < issued_from:
            raise ValidationFailed([FieldViolation("to", "is before from")])
        with self._uow().read_only() as uow:
            return uow.authorizations.metrics(issued_from, issued_to)


def _recorded(action: str, a: IssuedAuthorization, event_of: dict[str, str]) -> AuditRecord:
    """An audit record of a record created or changed by a determination (``event_of``: determination
    id → the event that brought it)."""
    refs: dict[str, RefValue] = {"line": a.line_number, "authorization_number": a.authorization_number,
                                 "status": a.status, "determination_id": a.determination_id}
    if a.extensions:
        refs["count"] = len(a.extensions)
    return AuditRecord(action, a.request_id, refs, event_id=event_of.get(a.determination_id, ""),
                       member_id=a.member_id)


def _views(member_id: str, found: Sequence[IssuedAuthorization]) -> list[AuditRecord]:
    """What a search of ``member_id``'s records records: one entry per record shown; a search that found
    none still tells whom it was about."""
    return [_viewed(a) for a in found] or [AuditRecord("authorization.listed", refs={"count": 0},
                                                       member_id=member_id)]


def _viewed(a: IssuedAuthorization) -> AuditRecord:
    return AuditRecord("authorization.viewed", a.request_id, {
        "line": a.line_number, "authorization_number": a.authorization_number}, member_id=a.member_id)


_MATCH_WORDS = {Match.COVERED: "covered", Match.EXPIRED: "not valid on the date of service",
                Match.OTHER_PROVIDER: "authorized at another servicing provider",
                Match.OTHER_CODE: "not authorized for this code", Match.EXHAUSTED: "units exhausted",
                Match.NEVER_AUTHORIZED: "never authorized", Match.DENIED: "denied", Match.CANCELLED: "cancelled",
                Match.PENDED: "still pended"}


def _check_claim_line(claim: ClaimLine) -> None:
    violations = []
    if not claim.member_id.strip():
        violations.append(FieldViolation("claim.member_id", "required"))
    if len(claim.servicing_npi) != 10 or not claim.servicing_npi.isdigit():
        violations.append(FieldViolation("claim.servicing_npi", "10 digits"))
    if not claim.procedure_code.strip():
        violations.append(FieldViolation("claim.procedure_code", "required"))
    if claim.units < 1:
        violations.append(FieldViolation("claim.units", "at least 1"))
    if violations:
        raise ValidationFailed(violations)
