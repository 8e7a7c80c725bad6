"""Intake's domain: a prior-authorization request, its validation, eligibility
and the status a request has as its story unfolds. No I/O here."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from services.common.errors import FieldViolation
from services.intake.domain.codes import is_icd10cm, is_npi, is_procedure_code, is_state

LINES_OF_BUSINESS = ("medicare_advantage", "medicaid", "commercial", "workers_comp")

# Bounds of everything a request carries. Patterns are ASCII and matched whole (``fullmatch``):
# ``\\d`` would accept any Unicode digit and ``$`` a trailing newline.
MAX_LINES = 50
MAX_UNITS = 9999
MAX_FACTS = 200
MAX_DIAGNOSES = 25  # as many as an institutional claim carries (X12 837I)
MAX_MODIFIERS = 4  # CPT/HCPCS modifiers per line (X12 SV1/SV2)
MAX_NAME = 200  # provider names
MAX_TEXT_FACT = 1000
MAX_UNIT = 32
MAX_NUMBER = 1e9  # any clinical number; lab counts reach millions, nothing reaches a billion
MAX_COUNT = 10000  # visits, sessions, treatments, units
MIN_YEAR, MAX_YEAR = 1900, 2199  # dates: a birth date to a far-off end of care, and room to add a year
_KEY = re.compile(r"[\x21-\x7e]{1,100}")
_MEMBER = re.compile(r"[A-Za-z0-9-]{1,40}")
_PLAN = re.compile(r"[\x20-\x7e]{1,40}")
_MODIFIER = re.compile(r"[A-Z0-9]{2}")
_FACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# A workers' comp claim number: printable ASCII without spaces (carriers write "WC-2026-000123",
# "12/34567-A"), as long as the column that indexes it.
_CLAIM_NUMBER = re.compile(r"[\x21-\x7e]{1,40}")
_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# A number fact with one of these units, or without a unit and a name ending in it, is a duration:
# never negative, at most 150 years.
_YEARS = 150
DURATION_UNITS: dict[str, float] = {
    "minutes": _YEARS * 366 * 24 * 60, "hours": _YEARS * 366 * 24, "days": _YEARS * 366,
    "weeks": _YEARS * 53, "months": _YEARS * 12, "years": _YEARS,
    "hours/day": 24, "hours/week": 168, "days/week": 7,
}
_DURATION_SUFFIXES = {"_minutes": "minutes", "_hours": "hours", "_days": "days", "_weeks": "weeks",
                      "_months": "months", "_years": "years", "_hours_per_day": "hours/day",
                      "_hours_per_week": "hours/week", "_days_per_week": "days/week"}
# ...and one counted in these (by unit, or a word of its name) is a count: a whole-ish number in
# [0, MAX_COUNT].
COUNT_UNITS = frozenset({"visits", "sessions", "treatments", "units", "count", "episodes", "injections"})
_COUNT_WORDS = frozenset({"visits", "sessions", "treatments", "units", "count", "episodes", "injections"})

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
    # Workers' comp: the date of injury the claim names. Out of repr, so out of the fingerprint: the
    # fingerprints of requests recorded before it was checked stay what they were.
    injury_date: YMD | None = field(default=None, repr=False)
    # Workers' comp: the claim number ("" for none); out of the fingerprint like the injury date.
    claim_number: str = field(default="", repr=False)

    def fingerprint(self) -> str:
        """Identity of the payload (everything but the idempotency key) for replay detection."""
        # The repr of these frozen dataclasses of tuples, strings and numbers is canonical.
        return hashlib.sha256(repr(replace(self, idempotency_key="")).encode()).hexdigest()


def _date(value: YMD | None) -> dt.date | None:
    """The calendar date, or None for none or one outside [MIN_YEAR, MAX_YEAR] (arithmetic on a date
    near year 9999 overflows downstream)."""
    if value is None or not MIN_YEAR <= value[0] <= MAX_YEAR:
        return None
    try:
        return dt.date(*value)
    except ValueError:
        return None


def _ymd_text(value: YMD) -> str:
    return "-".join(str(part) for part in value)


def validate(req: PriorAuthRequest) -> list[FieldViolation]:
    """Every problem with the request, each naming its field (proto field paths)."""
    v: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        v.append(FieldViolation(field, description))

    _validate_key(req.idempotency_key, bad)
    if not req.member_id:
        bad("member_id", "required")
    elif not _MEMBER.fullmatch(req.member_id):
        bad("member_id", f"{shown(req.member_id)} is not 1-40 ASCII letters, digits or '-'")
    if req.line_of_business is None:
        bad("coverage.line_of_business", "required: medicare advantage, medicaid, commercial or workers' comp")
    if not req.member_state:
        bad("coverage.member_state", "required (two-letter USPS code)")
    elif not is_state(req.member_state):
        bad("coverage.member_state", f"{shown(req.member_state)} is not a two-letter USPS state code")
    if req.plan_id and not _PLAN.fullmatch(req.plan_id):
        bad("coverage.plan_id", "at most 40 printable ASCII characters")
    _validate_providers(req, bad)
    _validate_diagnoses(req, bad)
    if req.review_type is None:
        bad("review_type", "required: prospective, concurrent or retrospective")
    if req.urgency is None:
        bad("urgency", "required: standard or expedited")
    _validate_lines(req, bad)
    _validate_facts(req, bad)
    _validate_certification(req, bad)
    _validate_claim(req, bad)
    return v


def _validate_claim(req: PriorAuthRequest, bad: _Bad) -> None:
    if req.injury_date is not None and _date(req.injury_date) is None:
        bad("workers_comp.date_of_injury", f"{_ymd_text(req.injury_date)} is not a calendar date between {MIN_YEAR} "
                                           f"and {MAX_YEAR}")
    if req.claim_number and not is_claim_number(req.claim_number):
        bad("workers_comp.claim_number", f"{shown(req.claim_number)} is not 1-40 printable ASCII characters "
                                         "without spaces")


def is_claim_number(value: str) -> bool:
    """Whether ``value`` has the shape of a workers' comp claim number a request may carry."""
    return bool(_CLAIM_NUMBER.fullmatch(value))


def is_request_id(value: str) -> bool:
    """Whether ``value`` has the shape of the request ids intake hands out (a lowercase UUID)."""
    return bool(_REQUEST_ID.fullmatch(value))


def shown(value: str, limit: int = 64) -> str:
    """A value quoted for an error message, cut short: a field may be megabytes long."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def text_problem(value: str, limit: int, *, multiline: bool = False) -> str | None:
    """What is wrong with free text (a name, a note), or None: at most ``limit`` characters, none of
    them a control, format or unassigned character (a newline and a tab only in ``multiline`` text)."""
    if len(value) > limit:
        return f"at most {limit} characters ({len(value)} sent)"
    for ch in value:
        if ch.isprintable() or unicodedata.category(ch) == "Zs" or (multiline and ch in "\t\n\r"):
            continue
        return f"contains the control character U+{ord(ch):04X}"
    return None


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
        elif not _AUTHORIZATION_NUMBER.fullmatch(number):
            bad("related_authorization_number", f"{shown(req.related_authorization_number)} is not an authorization "
                                                "number (like UR26-8K3F-Q9ZD)")


def _validate_providers(req: PriorAuthRequest, bad: _Bad) -> None:
    for prefix, npi, name in (("requesting_provider", req.requesting_npi, req.requesting_name),
                              ("servicing_provider", req.servicing_npi, req.servicing_name)):
        if not npi:
            bad(f"{prefix}.npi", "required")
        elif not is_npi(npi):
            bad(f"{prefix}.npi", f"{shown(npi)} is not a valid NPI (10 ASCII digits with a Luhn check digit)")
        if (problem := text_problem(name, MAX_NAME)) is not None:
            bad(f"{prefix}.name", problem)


def _validate_key(key: str, bad: _Bad) -> None:
    if not key:
        bad("idempotency_key", "required")
    elif not _KEY.fullmatch(key):
        bad("idempotency_key", "1-100 printable ASCII characters without spaces")


def _validate_diagnoses(req: PriorAuthRequest, bad: _Bad) -> None:
    if not req.diagnoses:
        bad("diagnoses", "at least one ICD-10-CM diagnosis is required")
    if len(req.diagnoses) > MAX_DIAGNOSES:
        bad("diagnoses", f"at most {MAX_DIAGNOSES} diagnoses ({len(req.diagnoses)} sent)")
    for i, (code, _primary) in enumerate(req.diagnoses[:MAX_DIAGNOSES]):
        if not is_icd10cm(code):
            bad(f"diagnoses[{i}].code", f"{shown(code)} is not an ICD-10-CM code (e.g. M54.50)")
    if sum(1 for _c, primary in req.diagnoses if primary) > 1:
        bad("diagnoses", "at most one diagnosis may be primary")


def _validate_lines(req: PriorAuthRequest, bad: _Bad) -> None:
    if not req.lines:
        bad("service_lines", "at least one service line is required")
    if len(req.lines) > MAX_LINES:
        bad("service_lines", f"at most {MAX_LINES} lines per request ({len(req.lines)} sent)")
    for i, line in enumerate(req.lines[:MAX_LINES]):
        f = f"service_lines[{i}]"
        if line.line_number != i + 1:
            bad(f"{f}.line_number", f"must be {i + 1} (lines are numbered 1, 2, 3... in order)")
        _validate_codes(line, f, bad)
        if line.units <= 0:
            bad(f"{f}.units", "must be at least 1")
        elif line.units > MAX_UNITS:
            bad(f"{f}.units", f"at most {MAX_UNITS}")
        _validate_dates(line, f, bad)
        if line.place_of_service == 0:
            bad(f"{f}.place_of_service", "required")
        elif not 1 <= line.place_of_service <= 99:
            bad(f"{f}.place_of_service", f"{line.place_of_service} is not a CMS place of service code (01-99)")


def _validate_codes(line: ServiceLine, f: str, bad: _Bad) -> None:
    if not line.procedure_code:
        bad(f"{f}.procedure_code", "required")
    elif not is_procedure_code(line.procedure_code):
        bad(f"{f}.procedure_code", f"{shown(line.procedure_code)} is neither CPT (5 characters) nor HCPCS "
                                   "Level II (letter + 4 digits)")
    if len(line.modifiers) > MAX_MODIFIERS:
        bad(f"{f}.modifiers", f"at most {MAX_MODIFIERS} modifiers ({len(line.modifiers)} sent)")
    for j, modifier in enumerate(line.modifiers[:MAX_MODIFIERS]):
        if not _MODIFIER.fullmatch(modifier):
            bad(f"{f}.modifiers[{j}]", f"{shown(modifier)} is not a two-character modifier")


def _validate_dates(line: ServiceLine, f: str, bad: _Bad) -> None:
    start, end = _date(line.start_date), _date(line.end_date)
    if line.start_date is None:
        bad(f"{f}.start_date", "required")
    elif start is None:
        bad(f"{f}.start_date", f"{_ymd_text(line.start_date)} is not a calendar date between {MIN_YEAR} "
                               f"and {MAX_YEAR}")
    if line.end_date is not None and end is None:
        bad(f"{f}.end_date", f"{_ymd_text(line.end_date)} is not a calendar date between {MIN_YEAR} "
                             f"and {MAX_YEAR}")
    if start and end and end < start:
        bad(f"{f}.end_date", "is before start_date")
    if start and end and (end - start).days > 366:
        bad(f"{f}.end_date", "a line may span at most one year")


def _validate_facts(req: PriorAuthRequest | AdditionalInformation, bad: _Bad) -> None:
    if len(req.facts) > MAX_FACTS:
        bad("clinical_facts", f"at most {MAX_FACTS} facts ({len(req.facts)} sent)")
    names: set[str] = set()
    for i, fact in enumerate(req.facts[:MAX_FACTS]):
        f = f"clinical_facts[{i}]"
        if not _FACT_NAME.fullmatch(fact.name):
            bad(f"{f}.name", "snake_case ASCII name, starting with a letter, at most 64 characters")
        elif fact.name in names:
            bad(f"{f}.name", f"{fact.name!r} is given twice")
        names.add(fact.name)
        if (problem := text_problem(fact.unit, MAX_UNIT)) is not None:
            bad(f"{f}.unit", problem)
        if (value_problem := _fact_value_problem(fact)) is not None:
            bad(f"{f}.{value_problem[0]}", value_problem[1])


def _fact_value_problem(fact: ClinicalFact) -> tuple[str, str] | None:
    """(field, problem) of a fact's value, or None."""
    problem = None
    if fact.kind is None:
        return "value", "a value is required"
    if fact.kind == "date" and _date(fact.value if isinstance(fact.value, tuple) else None) is None:
        problem = f"is not a calendar date between {MIN_YEAR} and {MAX_YEAR}"
    elif fact.kind == "number" and isinstance(fact.value, float):
        problem = number_problem(fact.name, fact.unit, fact.value)
    elif fact.kind == "text" and isinstance(fact.value, str):
        problem = text_problem(fact.value, MAX_TEXT_FACT, multiline=True)
    return None if problem is None else (f"{fact.kind}_value", problem)


def duration_unit(name: str, unit: str) -> str | None:
    """The time unit a number fact is measured in (its unit, else its name's suffix), or None."""
    if unit:
        return unit.strip().lower() if unit.strip().lower() in DURATION_UNITS else None
    for suffix, implied in _DURATION_SUFFIXES.items():
        if name.endswith(suffix):
            return implied
    return None


def is_count(name: str, unit: str) -> bool:
    """Whether a number fact counts something (visits, sessions...): by its unit, else by its name."""
    if unit:
        return unit.strip().lower() in COUNT_UNITS
    return not _COUNT_WORDS.isdisjoint(name.split("_"))


def number_problem(name: str, unit: str, value: float) -> str | None:
    """What is wrong with a number fact's value, or None: finite and at most MAX_NUMBER in size;
    a duration (:func:`duration_unit`) or a count (:func:`is_count`) is never negative and is bounded."""
    if not math.isfinite(value):
        return "must be a finite number"
    if abs(value) > MAX_NUMBER:
        return f"at most {MAX_NUMBER:g} in size"
    if (time_unit := duration_unit(name, unit)) is not None:
        if value < 0:
            return f"a duration ({time_unit}) cannot be negative"
        if value > DURATION_UNITS[time_unit]:
            return f"at most {DURATION_UNITS[time_unit]:g} {time_unit}"
    elif is_count(name, unit):
        if value < 0:
            return "a count cannot be negative"
        if value > MAX_COUNT:
            return f"at most {MAX_COUNT}"
    return None


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

    if not is_request_id(info.request_id):
        bad("request_id", "required: the id SubmitRequest returned")
    _validate_key(info.idempotency_key, bad)
    if not info.facts:
        bad("clinical_facts", "send at least one fact")
    _validate_facts(info, bad)
    if (problem := text_problem(info.note, MAX_NOTE, multiline=True)) is not None:
        bad("note", problem)
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
