"""Intake's domain: a prior-authorization request, its validation, eligibility
and the status a request has as its story unfolds. No I/O here."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from services.common.errors import FieldViolation
from services.intake.domain.codes import is_icd10cm, is_npi, is_procedure_code, is_state

LINES_OF_BUSINESS = ("medicare_advantage", "medicaid", "commercial", "workers_comp")

MAX_LINES = 50
MAX_UNITS = 9999
MAX_FACTS = 200
_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")
_MEMBER = re.compile(r"^[A-Za-z0-9-]{1,40}$")
_FACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

YMD = tuple[int, int, int]
_Bad = Callable[[str, str], None]


class RequestStatus(enum.Enum):
    IN_REVIEW = "in_review"
    PENDED = "pended"
    DECIDED = "decided"
    COMPLETE = "complete"
    INELIGIBLE = "ineligible"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ServiceLine:
    line_number: int
    procedure_code: str
    modifiers: tuple[str, ...]
    units: int
    start_date: YMD | None
    end_date: YMD | None
    place_of_service: int


@dataclass(frozen=True)
class ClinicalFact:
    name: str
    kind: str | None  # None: no value was given
    value: bool | float | str | YMD | None
    unit: str


@dataclass(frozen=True)
class PriorAuthRequest:
    """A request as submitted, before validation (values may be malformed)."""

    idempotency_key: str
    member_id: str
    line_of_business: str | None  # None: unspecified
    member_state: str
    plan_id: str
    requesting_npi: str
    requesting_name: str
    servicing_npi: str
    servicing_name: str
    diagnoses: tuple[tuple[str, bool], ...]
    lines: tuple[ServiceLine, ...]
    review_type: str | None
    urgency: str | None
    facts: tuple[ClinicalFact, ...]
    # X12 UM02: "initial" (default), "extension" or "renewal" of related_authorization_number, ...
    certification_type: str = "initial"
    related_authorization_number: str = ""

    def fingerprint(self) -> str:
        """Identity of the payload (everything but the idempotency key) for replay detection."""
        # The repr of these frozen dataclasses of tuples, strings and numbers is canonical.
        return hashlib.sha256(repr(replace(self, idempotency_key="")).encode()).hexdigest()


def _date(value: YMD | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date(*value)
    except ValueError:
        return None


def validate(req: PriorAuthRequest) -> list[FieldViolation]:
    """Every problem with the request, each naming its field (proto field paths)."""
    v: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        v.append(FieldViolation(field, description))

    _validate_parties(req, bad)
    _validate_diagnoses(req, bad)
    if req.review_type is None:
        bad("review_type", "required: prospective, concurrent or retrospective")
    if req.urgency is None:
        bad("urgency", "required: standard or expedited")
    _validate_lines(req, bad)
    _validate_facts(req, bad)
    _validate_certification(req, bad)
    return v


_AUTHORIZATION_NUMBER = re.compile(r"^UR\d{2}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
#: Certification types a submission may carry; cancellations, revisions and appeals have their own calls.
SUBMITTED_CERTIFICATIONS = ("initial", "extension", "renewal")


def _validate_certification(req: PriorAuthRequest, bad: _Bad) -> None:
    """An extension or renewal continues an authorization, which it names (X12 UM02 4 / R)."""
    if req.certification_type not in SUBMITTED_CERTIFICATIONS:
        bad("certification_type", "initial, extension or renewal (cancel, revise and appeal have calls of their own)")
    elif req.certification_type != "initial":
        number = req.related_authorization_number.strip().upper()
        if not number:
            bad("related_authorization_number", f"an {req.certification_type} names the authorization it continues")
        elif not _AUTHORIZATION_NUMBER.match(number):
            bad("related_authorization_number", f"{req.related_authorization_number!r} is not an authorization "
                                                "number (like UR26-8K3F-Q9ZD)")


def _validate_parties(req: PriorAuthRequest, bad: _Bad) -> None:
    """The key, the member and their coverage, the providers."""
    if not req.idempotency_key:
        bad("idempotency_key", "required")
    elif not _KEY.match(req.idempotency_key):
        bad("idempotency_key", "1-100 printable ASCII characters without spaces")
    if not req.member_id:
        bad("member_id", "required")
    elif not _MEMBER.match(req.member_id):
        bad("member_id", "1-40 letters, digits or '-'")
    if req.line_of_business is None:
        bad("coverage.line_of_business", "required: medicare advantage, medicaid, commercial or workers' comp")
    if not req.member_state:
        bad("coverage.member_state", "required (two-letter USPS code)")
    elif not is_state(req.member_state):
        bad("coverage.member_state", f"{req.member_state!r} is not a two-letter USPS state code")
    for prefix, npi in (("requesting_provider", req.requesting_npi), ("servicing_provider", req.servicing_npi)):
        if not npi:
            bad(f"{prefix}.npi", "required")
        elif not is_npi(npi):
            bad(f"{prefix}.npi", f"{npi!r} is not a valid NPI (10 digits with a Luhn check digit)")


def _validate_diagnoses(req: PriorAuthRequest, bad: _Bad) -> None:
    if not req.diagnoses:
        bad("diagnoses", "at least one ICD-10-CM diagnosis is required")
    for i, (code, _primary) in enumerate(req.diagnoses):
        if not is_icd10cm(code):
            bad(f"diagnoses[{i}].code", f"{code!r} is not an ICD-10-CM code (e.g. M54.50)")
    if sum(1 for _c, primary in req.diagnoses if primary) > 1:
        bad("diagnoses", "at most one diagnosis may be primary")


def _validate_lines(req: PriorAuthRequest, bad: _Bad) -> None:
    if not req.lines:
        bad("service_lines", "at least one service line is required")
    if len(req.lines) > MAX_LINES:
        bad("service_lines", f"at most {MAX_LINES} lines per request")
    for i, line in enumerate(req.lines):
        _validate_line(i, line, bad)


def _validate_line(i: int, line: ServiceLine, bad: _Bad) -> None:
    f = f"service_lines[{i}]"
    if line.line_number != i + 1:
        bad(f"{f}.line_number", f"must be {i + 1} (lines are numbered 1, 2, 3... in order)")
    if not line.procedure_code:
        bad(f"{f}.procedure_code", "required")
    elif not is_procedure_code(line.procedure_code):
        bad(f"{f}.procedure_code",
            f"{line.procedure_code!r} is neither CPT (5 characters) nor HCPCS Level II (letter + 4 digits)")
    for j, modifier in enumerate(line.modifiers):
        if not re.fullmatch(r"[A-Z0-9]{2}", modifier):
            bad(f"{f}.modifiers[{j}]", f"{modifier!r} is not a two-character modifier")
    if line.units <= 0:
        bad(f"{f}.units", "must be at least 1")
    elif line.units > MAX_UNITS:
        bad(f"{f}.units", f"at most {MAX_UNITS}")
    _validate_line_dates(f, line, bad)
    if line.place_of_service == 0:
        bad(f"{f}.place_of_service", "required")


def _validate_line_dates(f: str, line: ServiceLine, bad: _Bad) -> None:
    start, end = _date(line.start_date), _date(line.end_date)
    if line.start_date is None:
        bad(f"{f}.start_date", "required")
    elif start is None:
        bad(f"{f}.start_date", f"{line.start_date} is not a calendar date")
    if line.end_date is not None and end is None:
        bad(f"{f}.end_date", f"{line.end_date} is not a calendar date")
    if start and end and end < start:
        bad(f"{f}.end_date", "is before start_date")
    if start and end and (end - start).days > 366:
        bad(f"{f}.end_date", "a line may span at most one year")


def _validate_facts(req: PriorAuthRequest | AdditionalInformation, bad: _Bad) -> None:
    if len(req.facts) > MAX_FACTS:
        bad("clinical_facts", f"at most {MAX_FACTS} facts")
    names: set[str] = set()
    for i, fact in enumerate(req.facts):
        f = f"clinical_facts[{i}]"
        if not _FACT_NAME.match(fact.name):
            bad(f"{f}.name", "snake_case name, starting with a letter, at most 64 characters")
        elif fact.name in names:
            bad(f"{f}.name", f"{fact.name!r} is given twice")
        names.add(fact.name)
        if fact.kind is None:
            bad(f"{f}.value", "a value is required")
        elif fact.kind == "date" and _date(fact.value if isinstance(fact.value, tuple) else None) is None:
            bad(f"{f}.date_value", "is not a calendar date")
        elif fact.kind == "number" and isinstance(fact.value, float) and fact.value != fact.value:
            bad(f"{f}.number_value", "is not a number")


# -- additional information ---------------------------------------------------------------------

MAX_NOTE = 2000


@dataclass(frozen=True)
class AdditionalInformation:
    """Facts sent for a request already under review (the answer to a request for information)."""

    request_id: str
    idempotency_key: str
    facts: tuple[ClinicalFact, ...]
    note: str

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(replace(self, idempotency_key="")).encode()).hexdigest()


def validate_information(info: AdditionalInformation) -> list[FieldViolation]:
    v: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        v.append(FieldViolation(field, description))

    try:
        uuid.UUID(info.request_id)
    except ValueError:
        bad("request_id", "required: the id SubmitRequest returned")
    if not info.idempotency_key:
        bad("idempotency_key", "required")
    elif not _KEY.match(info.idempotency_key):
        bad("idempotency_key", "1-100 printable ASCII characters without spaces")
    if not info.facts:
        bad("clinical_facts", "send at least one fact")
    _validate_facts(info, bad)
    if len(info.note) > MAX_NOTE:
        bad("note", f"at most {MAX_NOTE} characters")
    return v


# -- eligibility --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Coverage:
    member_id: str
    line_of_business: str
    plan_id: str
    state: str
    effective: dt.date
    termination: dt.date | None

    def active_on(self, day: dt.date) -> bool:
        return self.effective <= day and (self.termination is None or day <= self.termination)


@dataclass(frozen=True)
class Member:
    """A member on file and their coverages (eligibility is checked against these)."""

    member_id: str
    birth_date: dt.date | None
    coverages: tuple[Coverage, ...]


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str


def check_eligibility(req: PriorAuthRequest, coverages: Sequence[Coverage], member_known: bool) -> Eligibility:
    """The member must have coverage of the requested line of business, in the
    requested state, active on every line's start date."""
    if not member_known:
        return Eligibility(False, "member not found")
    same_lob = [c for c in coverages if c.line_of_business == req.line_of_business]
    if not same_lob:
        return Eligibility(False, f"no {req.line_of_business} coverage on file for this member")
    in_state = [c for c in same_lob if c.state == req.member_state]
    if not in_state:
        return Eligibility(False, f"{req.line_of_business} coverage is not in state {req.member_state}")
    for line in req.lines:
        day = _date(line.start_date)
        if day is not None and not any(c.active_on(day) for c in in_state):
            return Eligibility(False, f"coverage not active on {day.isoformat()} (line {line.line_number})")
    return Eligibility(True, "eligible")


# -- status -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineProgress:
    decided: bool
    queued: bool
    certified: bool  # approved in whole or part: an authorization is due
    authorized: bool


def derive_status(current: RequestStatus, lines: Iterable[LineProgress]) -> RequestStatus:
    """Order-independent: determination and authorization events may arrive either way round."""
    if current in (RequestStatus.INELIGIBLE, RequestStatus.CANCELLED):
        return current
    lines = list(lines)
    if not lines or not all(line.decided for line in lines):
        return RequestStatus.IN_REVIEW
    if any(line.queued for line in lines):
        return RequestStatus.PENDED
    if all(line.authorized for line in lines if line.certified):
        return RequestStatus.COMPLETE
    return RequestStatus.DECIDED


SETTLED = frozenset({RequestStatus.PENDED, RequestStatus.COMPLETE, RequestStatus.INELIGIBLE, RequestStatus.CANCELLED})
#: Where a request may still be revised or cancelled by its submitter.
UNDER_REVIEW = frozenset({RequestStatus.IN_REVIEW, RequestStatus.PENDED})
