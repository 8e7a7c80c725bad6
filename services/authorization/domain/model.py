"""Authorization records: one per determination line, built from the determinations as they arrive,
and what becomes of them (extensions, appeals, cancellation). Pure: no I/O.

A record follows its line's latest decision: pended, then approved, denied, approved in part or
modified; cancelled when the request is withdrawn; approved after appeal when an appeal overturns
an adverse decision. Every record has a number, denials too: a provider quotes it on appeal.
Approved, partially approved and modified records are *usable*: claims draw units from them while
their validity lasts (:mod:`services.authorization.domain.claims`); a usable record past its last
valid day reads as expired.

An extension or renewal of a concurrent stay (X12 UM02 ``4``/``R``) adds its approved days to the
authorization it names instead of creating another one (:func:`extend`); only its denial gets a
record of its own (the reference number of that denial).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from services.common.errors import FieldViolation

APPROVED = "approved"
PARTIALLY_APPROVED = "partially_approved"
MODIFIED = "modified"
DENIED = "denied"
PENDED = "pended"
CANCELLED = "cancelled"
EXPIRED = "expired"  # how a usable record reads after its validity; never stored

#: X12 278 HCR01 meaning (lowercase) → the record's status. Lines answered "no action required"
#: (no authorization needed) or "contact payer" get no record.
STATUS_OF_ACTION = {"certified_in_total": APPROVED, "certified_partial": PARTIALLY_APPROVED, "modified": MODIFIED,
                    "not_certified": DENIED, "pended": PENDED, "cancelled": CANCELLED}
USABLE = frozenset({APPROVED, PARTIALLY_APPROVED, MODIFIED})
ADVERSE = frozenset({DENIED, PARTIALLY_APPROVED, MODIFIED})
CERTIFIED_ACTIONS = frozenset({"certified_in_total", "certified_partial", "modified"})
EXTENDING = frozenset({"extension", "renewal"})
OVERTURNED = frozenset({"overturned", "partially_overturned"})


@dataclass(frozen=True)
class Decider:
    """Who decided a line: software (with the criteria it applied), a nurse, a physician, an appeal
    reviewer."""

    id: str
    role: str
    credential: str = ""
    name: str = ""
    criteria: str = ""


@dataclass(frozen=True)
class Extension:
    """An extension or renewal that added to an authorization (one per extension request line)."""

    request_id: str
    line_number: int
    determination_id: str
    units_added: int
    valid_to: dt.date
    extended_at: dt.datetime


@dataclass(frozen=True)
class DecidedLine:
    """One line of a determination as authorization reads it."""

    line_number: int
    procedure_code: str
    action: str  # X12 meaning in lowercase, e.g. "certified_in_total", "pended"
    approved_units: int
    approved_start: dt.date | None
    approved_end: dt.date | None
    decided_at: dt.datetime | None = None
    decided_by: Decider | None = None
    criteria: tuple[str, ...] = ()
    reason: str = ""
    next_review_date: dt.date | None = None
    appeal_id: str = ""
    appeal_outcome: str = ""  # overturned, partially_overturned, upheld
    unit: str = "units"

    @property
    def status(self) -> str | None:
        """The record status this line gives, None for a line that gets no record."""
        return STATUS_OF_ACTION.get(self.action)

    @property
    def certified(self) -> bool:
        return self.action in CERTIFIED_ACTIONS and self.approved_units > 0


@dataclass(frozen=True)
class Context:
    """What the determination says about all its lines."""

    request_id: str
    determination_id: str
    member_id: str
    decided_at: dt.datetime
    servicing_npi: str = ""
    servicing_name: str = ""
    certification_type: str = "initial"
    related_authorization_number: str = ""

    @property
    def extends(self) -> bool:
        return self.certification_type in EXTENDING and bool(self.related_authorization_number)


@dataclass(frozen=True)
class AuthorizationDraft:
    line_number: int
    procedure_code: str
    units: int
    valid_from: dt.date
    valid_to: dt.date


def plan_authorizations(lines: Sequence[DecidedLine], decided_on: dt.date,
                        default_validity_days: int) -> list[AuthorizationDraft]:
    """The units and validity of each certified line: its approved dates, else ``default_validity_days``
    from the day of the decision."""
    drafts = []
    for line in lines:
        if not line.certified:
            continue
        start, end = validity(line, decided_on, default_validity_days)
        drafts.append(AuthorizationDraft(line.line_number, line.procedure_code, line.approved_units, start, end))
    return drafts


def validity(line: DecidedLine, decided_on: dt.date, default_validity_days: int) -> tuple[dt.date, dt.date]:
    """A certified line's validity; a line that certifies nothing is valid on no day but its decision's."""
    if not line.certified:
        return decided_on, decided_on
    start = line.approved_start or decided_on
    end = line.approved_end or start + dt.timedelta(days=default_validity_days - 1)
    return start, max(end, start)


@dataclass(frozen=True)
class AuthorizationToIssue:
    """An authorization record about to be stored; storing it gives it its number."""

    request_id: str
    line_number: int
    determination_id: str
    member_id: str
    procedure_code: str
    units: int  # approved units or days (0 for a record that approves nothing)
    valid_from: dt.date
    valid_to: dt.date
    status: str  # approved, partially_approved, modified, denied, pended, cancelled
    issued_at: dt.datetime  # its year is the number's (UR26-...)
    servicing_npi: str = ""
    servicing_name: str = ""
    unit: str = "units"
    criteria: tuple[str, ...] = ()
    decided_by: Decider | None = None
    next_review_date: dt.date | None = None
    reason: str = ""
    action: str = ""
    approved_after_appeal: bool = False
    appeal_id: str = ""
    units_used: int = 0
    updated_at: dt.datetime | None = None
    extensions: tuple[Extension, ...] = field(default=())

    @property
    def usable(self) -> bool:
        """Claims may draw on it (while valid)."""
        return self.status in USABLE

    @property
    def remaining(self) -> int:
        return max(0, self.units - self.units_used) if self.usable else 0

    def status_on(self, day: dt.date) -> str:
        """The status as read on ``day``: a usable record past its validity is expired."""
        return EXPIRED if self.usable and day > self.valid_to else self.status

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True)
class IssuedAuthorization(AuthorizationToIssue):
    """An authorization record on file, with the number a provider quotes on the claim (or the appeal)."""

    authorization_number: str = ""

    @classmethod
    def numbered(cls, draft: AuthorizationToIssue, number: str) -> IssuedAuthorization:
        return cls(**{f.name: getattr(draft, f.name) for f in fields(AuthorizationToIssue)},
                   authorization_number=number)


R = TypeVar("R", bound=AuthorizationToIssue)


def new_record(line: DecidedLine, ctx: Context, now: dt.datetime,
               default_validity_days: int) -> AuthorizationToIssue | None:
    """The record a line's first decision creates; None for a line that gets none."""
    status = line.status
    if status is None:
        return None
    decided_at = line.decided_at or ctx.decided_at
    start, end = validity(line, decided_at.date(), default_validity_days)
    return AuthorizationToIssue(
        request_id=ctx.request_id, line_number=line.line_number, determination_id=ctx.determination_id,
        member_id=ctx.member_id, procedure_code=line.procedure_code,
        units=line.approved_units if line.certified else 0, valid_from=start, valid_to=end, status=status,
        issued_at=now, servicing_npi=ctx.servicing_npi, servicing_name=ctx.servicing_name, unit=line.unit,
        criteria=line.criteria, decided_by=line.decided_by, next_review_date=line.next_review_date,
        reason=line.reason, action=line.action, appeal_id=line.appeal_id, updated_at=decided_at)


def follow(current: R, line: DecidedLine, ctx: Context, default_validity_days: int) -> R | None:
    """``current`` as the line's newer decision leaves it; None when nothing changes (the same
    determination again, or a decision older than the one the record follows).

    An adverse decision overturned on appeal (in whole or part) marks the record approved after
    appeal; units already drawn stay drawn."""
    status = line.status
    if status is None or ctx.determination_id == current.determination_id:
        return None
    decided_at = line.decided_at or ctx.decided_at
    if current.updated_at is not None and decided_at < current.updated_at:
        return None
    start, end = validity(line, decided_at.date(), default_validity_days)
    after_appeal = current.approved_after_appeal or (
        line.appeal_outcome in OVERTURNED and current.status in ADVERSE and status in USABLE)
    if status == CANCELLED:
        # A withdrawn request keeps the record's decision for reference; nothing can draw on it.
        return replace(current, status=CANCELLED, action=line.action, determination_id=ctx.determination_id,
                       decided_by=line.decided_by or current.decided_by, reason=line.reason or current.reason,
                       updated_at=decided_at)
    return replace(current, status=status, units=line.approved_units if line.certified else 0, valid_from=start,
                   valid_to=end, determination_id=ctx.determination_id, procedure_code=line.procedure_code,
                   criteria=line.criteria or current.criteria, decided_by=line.decided_by or current.decided_by,
                   next_review_date=line.next_review_date, reason=line.reason, action=line.action,
                   approved_after_appeal=after_appeal, appeal_id=line.appeal_id or current.appeal_id,
                   unit=line.unit or current.unit, updated_at=decided_at)


def extend(original: R, line: DecidedLine, ctx: Context) -> R | None:
    """``original`` with a certified extension line's days added: validity to the later of its end
    and the line's, the next review date the line's. None when this extension line was already
    applied (redelivery) or the original cannot be extended (not usable)."""
    if not line.certified or not original.usable:
        return None
    if any((e.request_id, e.line_number) == (ctx.request_id, line.line_number) for e in original.extensions):
        return None
    decided_at = line.decided_at or ctx.decided_at
    end = max(original.valid_to, line.approved_end or original.valid_to)
    added = Extension(request_id=ctx.request_id, line_number=line.line_number, determination_id=ctx.determination_id,
                      units_added=line.approved_units, valid_to=end, extended_at=decided_at)
    return replace(original, units=original.units + line.approved_units, valid_to=end,
                   next_review_date=line.next_review_date, extensions=(*original.extensions, added),
                   updated_at=max(decided_at, original.updated_at or decided_at))


def extendable(original: AuthorizationToIssue | None, line: DecidedLine, ctx: Context) -> bool:
    """Whether ``original`` is the authorization the extension line continues: the same member and
    service, and usable."""
    return (original is not None and original.member_id == ctx.member_id
            and original.procedure_code == line.procedure_code and original.usable)


@dataclass(frozen=True)
class Metrics:
    """Decided lines by outcome (CMS-0057-F's yearly public metrics read these)."""

    approved: int = 0
    partially_approved: int = 0
    modified: int = 0
    denied: int = 0
    cancelled: int = 0
    approved_after_appeal: int = 0

    @property
    def decided(self) -> int:
        return self.approved + self.partially_approved + self.modified + self.denied


# -- queries ------------------------------------------------------------------------------------

MAX_LIST = 1000
# The shapes intake accepts (ASCII, matched whole): anything else can match no authorization, and
# some strings (a NUL) the database refuses outright.
_MEMBER = re.compile(r"[A-Za-z0-9-]{1,40}")
_PROCEDURE = re.compile(r"[0-9]{4}[0-9FTU]|[A-Z][0-9]{4}")


def _member_problems(member_id: str, field: str) -> list[FieldViolation]:
    """What is wrong with a member id a query names (``field``: its proto path), if anything."""
    if not member_id:
        return [FieldViolation(field, "required")]
    if not _MEMBER.fullmatch(member_id):
        return [FieldViolation(field, "1-40 ASCII letters, digits or '-'")]
    return []


#: Queries one FindOverlappingAuthorizations call may carry (a consumer batch's requests).
MAX_OVERLAP_QUERIES = 1000


def overlap_query_problems(queries: Sequence[tuple[str, dt.date, dt.date]]) -> list[FieldViolation]:
    """What is wrong with a batch of overlap queries (``queries[i].field`` names), if anything."""
    if len(queries) > MAX_OVERLAP_QUERIES:
        return [FieldViolation("queries", f"at most {MAX_OVERLAP_QUERIES} ({len(queries)} sent)")]
    problems = []
    for i, (member_id, start, end) in enumerate(queries):
        problems.extend(_member_problems(member_id, f"queries[{i}].member_id"))
        if end < start:
            problems.append(FieldViolation(f"queries[{i}].overlaps_to", "is before overlaps_from"))
    return problems


def member_query_problems(member_id: str, procedure_code: str, limit: int) -> list[FieldViolation]:
    """What is wrong with a query of a member's authorizations (proto field names), if anything."""
    problems = _member_problems(member_id, "member_id")
    if procedure_code and not _PROCEDURE.fullmatch(procedure_code):
        problems.append(FieldViolation("procedure_code", "a CPT (5 characters) or HCPCS Level II code, or empty"))
    if not 0 <= limit <= MAX_LIST:
        problems.append(FieldViolation("limit", f"between 1 and {MAX_LIST} (0 means 100)"))
    return problems
