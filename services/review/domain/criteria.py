"""Clinical criteria for one service line, and what they conclude. Pure Python, no I/O.

A :class:`CriteriaSet` names the services and diagnoses it covers, the typed clinical facts it
reads, the conditions over those facts, and the outcome rules that combine conditions. All of it is
data, so a criteria set can be written, reviewed, versioned and hashed as a file.

:func:`evaluate` applies one criteria set to one line through a :class:`ConditionMatcher` (the
durable-rules adapter in production, :class:`PythonMatcher` as the reference). Its contract:

* a condition is MISSING when any fact it reads is absent (or unusable: of the wrong type); MET
  when the matcher reports it; UNMET otherwise;
* outcome rules are read with three-valued logic (MET true, UNMET false, MISSING unknown), and only a
  rule that is definitely true yields its outcome, in the order ``no_action_when`` (no
  authorization needed), ``urgent_when`` (meets criteria, urgent), ``approve_when`` (meets
  criteria);
* otherwise, when a required fact is missing, or a missing fact could still make a rule true, the
  line is pended for those facts (sorted); else it is referred to a nurse, naming the unmet
  conditions;
* given a :class:`FactDeriver` (the vocabulary layer, services/review/domain/vocabulary.py), facts
  the request did not state are first derived from what it did state (its diagnosis and procedure
  codes, synonymous fact names); a stated fact is never replaced, and every derived fact is named in
  the evaluation (:attr:`LineEvaluation.derived`) and in what the conditions observed;
* the evaluation says when the line is urgent (:attr:`LineEvaluation.urgency`): its ``urgent_when``
  rule holds, or it is still undecided for a missing fact while one of the set's red flags (a
  condition of ``urgent_when`` that approval does not need anyway) is met.

There is no deny outcome, and nothing here can produce one: software may approve, pend or route;
an adverse decision belongs to a physician (CMS-4201-F and the CMS Medicare Advantage FAQ of
February 2024: an algorithm may assist but not be the sole basis of a denial).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeGuard

if TYPE_CHECKING:
    from services.review.domain.nearest import NearestPath


class Outcome(enum.Enum):
    """What software concluded for a line. Mirrors ``ur.common.v1.LineOutcome``; no deny."""

    MEETS_CRITERIA = "meets_criteria"
    MEETS_CRITERIA_URGENT = "meets_criteria_urgent"
    REFER_TO_NURSE = "refer_to_nurse"
    PEND_MISSING_INFORMATION = "pend_missing_information"
    NO_ACTION_REQUIRED = "no_action_required"


class ConditionStatus(enum.Enum):
    MET = "met"
    UNMET = "unmet"
    MISSING = "missing"


FactValue: TypeAlias = bool | float | str | dt.date


class FactType(enum.StrEnum):
    BOOL = "bool"
    NUMBER = "number"
    TEXT = "text"
    DATE = "date"


class Op(enum.StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    IN = "in"
    NOT_IN = "not_in"


SET_OPS = frozenset({Op.IN, Op.NOT_IN})
OPS_BY_TYPE: Mapping[FactType, frozenset[Op]] = {
    FactType.BOOL: frozenset({Op.EQ, Op.NE}),
    FactType.NUMBER: frozenset(Op),
    FactType.TEXT: frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN}),
    FactType.DATE: frozenset(Op),
}

LINES_OF_BUSINESS = frozenset({"medicare_advantage", "medicaid", "commercial", "workers_comp"})

# The service categories criteria sets belong to. Reviewers' specialties are matched against these,
# and a provider's gold-card exemption is earned per category.
CATEGORIES = frozenset({
    "advanced_imaging", "musculoskeletal_surgery", "spine_surgery", "sleep_medicine", "rehabilitation_therapy",
    "chiropractic", "acupuncture", "home_health", "post_acute_care", "inpatient_acute", "pain_management",
    "bariatric_surgery", "genetic_testing", "durable_medical_equipment", "behavioral_health",
})

# Facts a line states by itself (:func:`with_line_facts`); they override a clinical fact of the same
# name, so no vocabulary derives them and intake's fact catalog leaves them out.
LINE_DERIVED_FACTS = ("requested_units",)

# Code shapes (see the domain notes): CPT is 5 digits or 4 digits + F/T/U; HCPCS Level II is a letter
# and 4 digits; a normalized ICD-10-CM code is letter, digit, alphanumeric, then up to 4 alphanumerics.
CPT_CODE = re.compile(r"\d{5}|\d{4}[FTU]")
HCPCS_CODE = re.compile(r"[A-Z]\d{4}")
ICD10CM_CODE = re.compile(r"[A-Z]\d[0-9A-Z][0-9A-Z]{0,4}")
# A prefix pattern: a letter, then optionally a digit and up to 5 alphanumerics, then "*".
ICD10CM_PREFIX = re.compile(r"[A-Z](\d[0-9A-Z]{0,5})?\*")
CRITERIA_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
VERSION = re.compile(r"\d{1,9}(\.\d{1,9}){0,3}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def is_service_code(code: str) -> bool:
    """True for a CPT or HCPCS Level II code shape."""
    return bool(CPT_CODE.fullmatch(code) or HCPCS_CODE.fullmatch(code))


def normalize_diagnosis(code: str) -> str:
    """``m54.50`` -> ``M5450``: the form diagnosis patterns are matched against."""
    return code.strip().upper().replace(".", "")


def version_key(version: str) -> tuple[int, ...]:
    """Numeric ordering of versions, so that ``2026.10`` follows ``2026.9``."""
    return tuple(int(part) for part in version.split("."))


class InvalidCriteria(ValueError):
    """A criteria set that contradicts itself. ``field`` is a dotted path into the set
    (``conditions[2].when.fact``); the loader adds the file name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- facts -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FactSpec:
    """A clinical fact the criteria read. ``required`` facts pend the line when absent and the
    line does not otherwise meet criteria."""

    name: str
    type: FactType
    description: str
    unit: str | None = None
    required: bool = False

    def accepts(self, value: object) -> TypeGuard[FactValue]:
        """Whether ``value`` is usable as this fact (booleans are not numbers, datetimes are
        not dates, non-finite numbers are nobody's measurement)."""
        if self.type is FactType.BOOL:
            return isinstance(value, bool)
        if self.type is FactType.NUMBER:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if self.type is FactType.TEXT:
            return isinstance(value, str)
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)

    def render(self, value: object) -> str:
        """``name=value unit`` as shown to reviewers."""
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            number = float(value)
            text = str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
        elif isinstance(value, dt.date):
            text = value.isoformat()
        else:
            text = str(value)
        if not self.accepts(value):
            return f"{self.name}={text} (unusable: not a {self.type.value})"
        unit = f" {self.unit}" if self.unit and self.type is FactType.NUMBER else ""
        return f"{self.name}={text}{unit}"


# -- conditions and outcome rules ------------------------------------------------------------------

PredicateValue: TypeAlias = FactValue | tuple[FactValue, ...]


@dataclass(frozen=True)
class Predicate:
    """``fact op value``; for ``in``/``not_in`` the value is a tuple. Numbers compare as floats,
    dates as dates."""

    fact: str
    op: Op
    value: PredicateValue

    def holds(self, actual: FactValue) -> bool:
        """Whether the predicate holds for a usable value of its fact."""
        if self.op in SET_OPS:
            found = any(_same(actual, v) for v in self.values())
            return found if self.op is Op.IN else not found
        expected = self.single()
        if self.op is Op.EQ:
            return _same(actual, expected)
        if self.op is Op.NE:
            return not _same(actual, expected)
        # Validation guarantees comparable types: numbers with numbers, dates with dates.
        a, b = _comparable(actual), _comparable(expected)
        if self.op is Op.GT:
            return a > b
        if self.op is Op.GE:
            return a >= b
        if self.op is Op.LT:
            return a < b
        return a <= b

    def values(self) -> tuple[FactValue, ...]:
        """The values of an ``in``/``not_in`` predicate."""
        if not isinstance(self.value, tuple):
            raise TypeError(f"{self.fact} {self.op.value}: expected a list of values, got {self.value!r}")
        return self.value

    def single(self) -> FactValue:
        """The value of a comparison."""
        if isinstance(self.value, tuple):
            raise TypeError(f"{self.fact} {self.op.value}: expected one value, got {self.value!r}")
        return self.value


def _same(a: FactValue, b: FactValue) -> bool:
    # bool is an int in Python: True must not equal 1.0 here, as it does not in the rules engine.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return a == b


def _comparable(value: FactValue) -> float:
    if isinstance(value, dt.date):
        return float(value.toordinal())
    if not isinstance(value, int | float):
        raise TypeError(f"{value!r} is neither a number nor a date")
    return float(value)


@dataclass(frozen=True)
class Condition:
    """A named clinical condition: every predicate must hold (a conjunction over its facts)."""

    id: str
    description: str
    predicates: tuple[Predicate, ...]
    facts: tuple[str, ...] = field(init=False)  # the facts it reads, in order of first use

    def __post_init__(self) -> None:
        object.__setattr__(self, "facts", tuple(dict.fromkeys(p.fact for p in self.predicates)))


@dataclass(frozen=True)
class AllOf:
    terms: tuple[RuleTerm, ...]


@dataclass(frozen=True)
class AnyOf:
    terms: tuple[RuleTerm, ...]


# A condition id, or a combination of terms.
RuleTerm: TypeAlias = str | AllOf | AnyOf


@dataclass(frozen=True)
class OutcomeRules:
    """Which combinations of conditions give which (non-adverse) outcome."""

    approve_when: RuleTerm
    urgent_when: RuleTerm | None = None
    no_action_when: RuleTerm | None = None

    def in_order(self) -> tuple[tuple[Outcome, str, RuleTerm], ...]:
        """(outcome, field name, rule) in the order they are tried."""
        rules: list[tuple[Outcome, str, RuleTerm | None]] = [
            (Outcome.NO_ACTION_REQUIRED, "no_action_when", self.no_action_when),
            (Outcome.MEETS_CRITERIA_URGENT, "urgent_when", self.urgent_when),
            (Outcome.MEETS_CRITERIA, "approve_when", self.approve_when),
        ]
        return tuple((o, name, rule) for o, name, rule in rules if rule is not None)


def rule_conditions(term: RuleTerm) -> tuple[str, ...]:
    """Every condition id a rule mentions, in order."""
    if isinstance(term, str):
        return (term,)
    return tuple(dict.fromkeys(c for t in term.terms for c in rule_conditions(t)))


# -- examples --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    """A worked case shipped with a criteria set: the facts, and the outcome they must give.
    Unset line attributes default to the set's first code, diagnosis pattern and line of business."""

    name: str
    facts: Mapping[str, FactValue] = field(hash=False)  # a mapping cannot be hashed; the rest identifies it
    expect: Outcome
    missing_facts: tuple[str, ...] | None = None
    procedure_code: str | None = None
    diagnoses: tuple[str, ...] | None = None
    line_of_business: str | None = None


# -- the criteria set ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Approval:
    """How much a line that meets criteria is approved for: at most ``max_units`` per certification
    period (inpatient days, visits). Units beyond it are not refused: they come back as the next
    review (concurrent review's "approved days and next review date"), which only a person may
    turn into anything adverse."""

    max_units: int
    unit: str  # "days" | "visits" | "units"


APPROVAL_UNITS = frozenset({"days", "visits", "units"})


@dataclass(frozen=True)
class CriteriaSet:
    """One versioned, hashed set of clinical criteria. Construction validates internal
    consistency and raises :class:`InvalidCriteria` naming the field at fault."""

    id: str
    version: str
    title: str
    sources: tuple[str, ...]
    lines_of_business: frozenset[str]
    service_codes: frozenset[str]
    diagnosis_patterns: tuple[str, ...]
    facts: tuple[FactSpec, ...]
    conditions: tuple[Condition, ...]
    outcomes: OutcomeRules
    content_hash: str
    examples: tuple[Example, ...] = ()
    notes: str = ""
    category: str = "advanced_imaging"
    approval: Approval | None = None
    derive_facts: bool = True  # False: the vocabulary layer derives nothing for this set
    _facts_by_name: Mapping[str, FactSpec] = field(init=False, repr=False, compare=False)
    _conditions_by_id: Mapping[str, Condition] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_facts_by_name", {f.name: f for f in self.facts})
        object.__setattr__(self, "_conditions_by_id", {c.id: c for c in self.conditions})
        _check(self)

    @property
    def key(self) -> str:
        """``id@version``: unique within a library."""
        return f"{self.id}@{self.version}"

    @property
    def required_facts(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.facts if f.required)

    def fact(self, name: str) -> FactSpec:
        return self._facts_by_name[name]

    def condition(self, condition_id: str) -> Condition:
        return self._conditions_by_id[condition_id]

    def declares(self, fact_name: str) -> bool:
        return fact_name in self._facts_by_name

    def diagnosis_specificity(self, diagnoses: Iterable[str]) -> tuple[int, int] | None:
        """How specifically the best of ``diagnoses`` matches this set's patterns: (characters
        matched, 1 for an exact code / 0 for a prefix), or None when none matches."""
        best: tuple[int, int] | None = None
        for raw in diagnoses:
            code = normalize_diagnosis(raw)
            for pattern in self.diagnosis_patterns:
                if pattern.endswith("*"):
                    stem = pattern[:-1]
                    score = (len(stem), 0) if code.startswith(stem) else None
                else:
                    score = (len(pattern), 1) if code == pattern else None
                if score is not None and (best is None or score > best):
                    best = score
        return best

    def covers(self, line: LineFacts) -> bool:
        """Service code, line of business and at least one diagnosis all match."""
        return (line.procedure_code.strip().upper() in self.service_codes
                and line.line_of_business in self.lines_of_business
                and self.diagnosis_specificity(line.diagnoses) is not None)


def _check(c: CriteriaSet) -> None:
    """The invariants of a criteria set; the first violation found is raised."""
    if not CRITERIA_ID.fullmatch(c.id):
        raise InvalidCriteria("id", f"{c.id!r} is not a lowercase id (letters, digits, '-')")
    if not VERSION.fullmatch(c.version):
        raise InvalidCriteria("version", f"{c.version!r} is not a dotted number such as '2026.1'")
    if not c.title.strip():
        raise InvalidCriteria("title", "must not be empty")
    if c.category not in CATEGORIES:
        raise InvalidCriteria("category", f"{c.category!r} is not one of {sorted(CATEGORIES)}")
    if c.approval is not None:
        if not 1 <= c.approval.max_units <= 366:
            raise InvalidCriteria("approval.max_units", "must be a whole number from 1 to 366")
        if c.approval.unit not in APPROVAL_UNITS:
            raise InvalidCriteria("approval.unit", f"{c.approval.unit!r} is not one of {sorted(APPROVAL_UNITS)}")
    if not c.sources or any(not s.strip() for s in c.sources):
        raise InvalidCriteria("sources", "cite at least one public source, none of them empty")
    _check_coverage(c)
    _check_facts(c)
    _check_conditions(c)
    _check_outcomes(c)
    _check_examples(c)


def _check_coverage(c: CriteriaSet) -> None:
    """Lines of business, service codes and diagnosis patterns: what the set covers."""
    if not c.lines_of_business:
        raise InvalidCriteria("lines_of_business", "name at least one line of business")
    for lob in sorted(c.lines_of_business):
        if lob not in LINES_OF_BUSINESS:
            raise InvalidCriteria("lines_of_business", f"{lob!r} is not one of {sorted(LINES_OF_BUSINESS)}")
    if not c.service_codes:
        raise InvalidCriteria("service_codes", "name at least one CPT or HCPCS code")
    for code in sorted(c.service_codes):
        if not is_service_code(code):
            raise InvalidCriteria("service_codes", f"{code!r} is neither a CPT code (5 digits, or 4 digits + F/T/U) "
                                                   "nor a HCPCS Level II code (a letter + 4 digits)")
    if not c.diagnosis_patterns:
        raise InvalidCriteria("diagnosis_patterns", "name at least one ICD-10-CM code or prefix pattern")
    for i, pattern in enumerate(c.diagnosis_patterns):
        if not (ICD10CM_CODE.fullmatch(pattern) or ICD10CM_PREFIX.fullmatch(pattern)):
            raise InvalidCriteria(f"diagnosis_patterns[{i}]",
                                  f"{pattern!r} is neither a normalized ICD-10-CM code (M5450) "
                                  "nor a prefix pattern (M545*)")
    if len(set(c.diagnosis_patterns)) != len(c.diagnosis_patterns):
        raise InvalidCriteria("diagnosis_patterns", "lists a pattern twice")


def _check_facts(c: CriteriaSet) -> None:
    if not c.facts:
        raise InvalidCriteria("facts", "declare at least one fact")
    seen: set[str] = set()
    used = {f for cond in c.conditions for f in cond.facts}
    for i, spec in enumerate(c.facts):
        where = f"facts[{i}]"
        if not NAME.fullmatch(spec.name):
            raise InvalidCriteria(f"{where}.name", f"{spec.name!r} is not a snake_case name")
        if spec.name in seen:
            raise InvalidCriteria(f"{where}.name", f"{spec.name!r} is declared twice")
        seen.add(spec.name)
        if not spec.description.strip():
            raise InvalidCriteria(f"{where}.description", "must not be empty")
        if spec.unit is not None and spec.type is not FactType.NUMBER:
            raise InvalidCriteria(f"{where}.unit", f"only number facts have a unit, {spec.name!r} is {spec.type.value}")
        if spec.name not in used and not spec.required:
            raise InvalidCriteria(f"{where}.name", f"{spec.name!r} is used by no condition and not required")


def _check_conditions(c: CriteriaSet) -> None:
    if not c.conditions:
        raise InvalidCriteria("conditions", "define at least one condition")
    seen: set[str] = set()
    for i, cond in enumerate(c.conditions):
        where = f"conditions[{i}]"
        if not NAME.fullmatch(cond.id):
            raise InvalidCriteria(f"{where}.id", f"{cond.id!r} is not a snake_case id")
        if cond.id in seen:
            raise InvalidCriteria(f"{where}.id", f"{cond.id!r} is defined twice")
        seen.add(cond.id)
        if not cond.description.strip():
            raise InvalidCriteria(f"{where}.description", "must not be empty")
        if not cond.predicates:
            raise InvalidCriteria(f"{where}.when", "needs at least one predicate")
        for j, p in enumerate(cond.predicates):
            _check_predicate(c, p, f"{where}.when" if len(cond.predicates) == 1 else f"{where}.when.all_of[{j}]")


def _check_predicate(c: CriteriaSet, p: Predicate, where: str) -> None:
    if not c.declares(p.fact):
        raise InvalidCriteria(f"{where}.fact", f"{p.fact!r} is not a declared fact "
                                               f"(declared: {', '.join(f.name for f in c.facts)})")
    spec = c.fact(p.fact)
    if p.op not in OPS_BY_TYPE[spec.type]:
        allowed = ", ".join(sorted(o.value for o in OPS_BY_TYPE[spec.type]))
        raise InvalidCriteria(f"{where}.op", f"{p.op.value!r} does not apply to {spec.type.value} fact "
                                             f"{p.fact!r} (use one of: {allowed})")
    values = p.value if isinstance(p.value, tuple) else (p.value,)
    if (p.op in SET_OPS) != isinstance(p.value, tuple):
        raise InvalidCriteria(f"{where}.value", f"{p.op.value!r} takes " +
                              ("a list of values" if p.op in SET_OPS else "a single value"))
    if not values:
        raise InvalidCriteria(f"{where}.value", "the list of values is empty")
    for v in values:
        if not spec.accepts(v):
            raise InvalidCriteria(f"{where}.value", f"{v!r} is not a {spec.type.value} "
                                                    f"as fact {p.fact!r} requires")


def _check_rule(c: CriteriaSet, term: RuleTerm, where: str) -> None:
    if isinstance(term, str):
        if term not in c._conditions_by_id:
            raise InvalidCriteria(where, f"{term!r} is not a defined condition "
                                         f"(defined: {', '.join(cond.id for cond in c.conditions)})")
        return
    kind = "all_of" if isinstance(term, AllOf) else "any_of"
    if not term.terms:
        raise InvalidCriteria(f"{where}.{kind}", "is empty")
    for i, t in enumerate(term.terms):
        _check_rule(c, t, f"{where}.{kind}[{i}]")


def _check_outcomes(c: CriteriaSet) -> None:
    for _, name, rule in c.outcomes.in_order():
        _check_rule(c, rule, f"outcomes.{name}")
    for name in c.required_facts:
        if not c.declares(name):  # unreachable through FactSpec, kept for hand-built sets
            raise InvalidCriteria("facts", f"required fact {name!r} is not declared")
    mentioned = {cid for _, _, rule in c.outcomes.in_order() for cid in rule_conditions(rule)}
    for i, cond in enumerate(c.conditions):
        if cond.id not in mentioned:
            raise InvalidCriteria(f"conditions[{i}].id", f"{cond.id!r} is used by no outcome rule")


def _check_examples(c: CriteriaSet) -> None:
    names: set[str] = set()
    for i, ex in enumerate(c.examples):
        where = f"examples[{i}]"
        if not ex.name.strip() or ex.name in names:
            raise InvalidCriteria(f"{where}.name", f"{ex.name!r} is empty or used twice")
        names.add(ex.name)
        for name, value in ex.facts.items():
            if not c.declares(name):
                raise InvalidCriteria(f"{where}.facts.{name}", f"{name!r} is not a declared fact")
            if not c.fact(name).accepts(value):
                raise InvalidCriteria(f"{where}.facts.{name}", f"{value!r} is not a {c.fact(name).type.value}")
        if ex.procedure_code is not None and ex.procedure_code not in c.service_codes:
            raise InvalidCriteria(f"{where}.procedure_code", f"{ex.procedure_code!r} is not one of service_codes")
        if ex.line_of_business is not None and ex.line_of_business not in c.lines_of_business:
            raise InvalidCriteria(f"{where}.line_of_business",
                                  f"{ex.line_of_business!r} is not one of lines_of_business")
        if ex.missing_facts is not None:
            for name in ex.missing_facts:
                if not c.declares(name):
                    raise InvalidCriteria(f"{where}.missing_facts", f"{name!r} is not a declared fact")


def content_hash(canonical: bytes) -> str:
    """The hash a criteria set is identified by: sha256 of its canonical content."""
    return hashlib.sha256(canonical).hexdigest()


# -- lines and their evaluation --------------------------------------------------------------------

@dataclass(frozen=True)
class LineFacts:
    """Everything known about one service line. ``diagnoses`` are normalized ICD-10-CM codes
    (uppercase, no dot); ``facts`` are the request's clinical facts by name."""

    procedure_code: str
    diagnoses: tuple[str, ...]
    line_of_business: str
    member_state: str
    urgency: str  # "standard" | "expedited"
    review_type: str  # "prospective" | "concurrent" | "retrospective"
    units: int
    place_of_service: int
    facts: Mapping[str, FactValue] = field(hash=False)


def with_line_facts(facts: Mapping[str, FactValue], units: int) -> dict[str, FactValue]:
    """A request's clinical facts plus what the line itself states (``requested_units``), which
    wins over a clinical fact of the same name. Build :attr:`LineFacts.facts` with this."""
    merged = dict(facts)
    if units > 0:
        merged["requested_units"] = float(units)
    return merged


def example_line(criteria: CriteriaSet, example: Example) -> LineFacts:
    """The line an example describes, with the set's defaults filled in."""
    pattern = criteria.diagnosis_patterns[0]
    return LineFacts(
        procedure_code=example.procedure_code or min(criteria.service_codes),
        diagnoses=example.diagnoses or (pattern.rstrip("*"),),
        line_of_business=example.line_of_business or min(criteria.lines_of_business),
        member_state="", urgency="standard", review_type="prospective", place_of_service=11,
        units=_example_units(example), facts=with_line_facts(example.facts, _example_units(example)))


def _example_units(example: Example) -> int:
    units = example.facts.get("requested_units", 1)
    return int(units) if isinstance(units, int | float) and not isinstance(units, bool) and units >= 1 else 1


@dataclass(frozen=True)
class ConditionResult:
    condition_id: str
    description: str
    status: ConditionStatus
    observed: tuple[str, ...]  # "name=value unit" of the facts it saw


def render_value(value: object) -> str:
    """A fact value as reviewers read it (``true``, ``8``, ``2026-03-01``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if math.isfinite(number) and number.is_integer() and abs(number) < 1e15 \
            else repr(number)
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class DerivedFact:
    """A criteria fact the request did not state, derived from what it did state. ``because`` names
    what implied it ("diagnosis G83.4", "fact saddle_anaesthesia", "procedure 72148"), ``mapping``
    the vocabulary entry that says so ("spine@2026.1 cauda-equina-syndrome-coded")."""

    fact: str
    value: FactValue
    because: str
    mapping: str

    def describe(self) -> str:
        """"suspected cauda equina: derived from diagnosis G83.4"."""
        return f"{self.fact.replace('_', ' ')}: derived from {self.because}"


@dataclass(frozen=True)
class Contradiction:
    """A fact the vocabulary would have derived otherwise than the request states it (the stated
    value is kept), or, with ``stated`` None, that mappings disagree (nothing is derived)."""

    fact: str
    stated: object | None
    implied: FactValue
    because: str
    mapping: str

    def describe(self) -> str:
        if self.stated is None:
            return (f"{self.fact} not derived: {self.because} implies {render_value(self.implied)} ({self.mapping}), "
                    "and another mapping implies otherwise")
        return (f"{self.fact} stated as {render_value(self.stated)} and kept; {self.because} implies "
                f"{render_value(self.implied)} ({self.mapping})")


@dataclass(frozen=True)
class Derived:
    """What a :class:`FactDeriver` made of a line: its facts with the derived ones added."""

    facts: Mapping[str, FactValue] = field(hash=False)
    derived: tuple[DerivedFact, ...] = ()
    contradictions: tuple[Contradiction, ...] = ()


class FactDeriver(Protocol):
    def derive(self, line: LineFacts) -> Derived | None:
        """The line's facts with those its codes and words imply, or None when nothing applies
        (the line is then evaluated as it is). Never replaces a fact the line states."""
        ...


@dataclass(frozen=True)
class UrgencySignal:
    """Why a line is urgent under its criteria: ``definite`` when the set's ``urgent_when`` rule
    holds; otherwise that rule still waits for the ``missing`` facts while red flags are met."""

    definite: bool
    criteria_title: str
    red_flags: tuple[str, ...]  # the met conditions, each naming the facts derived for it
    missing: tuple[str, ...] = ()

    def reason(self) -> str:
        flags = "; ".join(self.red_flags)
        if self.definite:
            return f"meets the urgent {self.criteria_title} criteria: {flags}"
        return (f"a red flag of the urgent {self.criteria_title} criteria: {flags}; the request does not yet "
                f"state {', '.join(self.missing)}")


@dataclass(frozen=True)
class LineEvaluation:
    outcome: Outcome
    criteria_id: str
    criteria_version: str
    criteria_hash: str
    conditions: tuple[ConditionResult, ...]
    missing_facts: tuple[str, ...]
    summary: str  # one plain-language sentence a nurse can read
    approval: Approval | None = None  # the set's cap, when the line meets criteria
    category: str = "general"  # the set's service category (routing, gold card)
    derived: tuple[DerivedFact, ...] = ()  # facts derived from the request's codes and words
    contradictions: tuple[Contradiction, ...] = ()  # stated facts kept against what codes imply
    urgency: UrgencySignal | None = None  # why the line is urgent, when it is (or may well be)
    title: str = ""
    sources: tuple[str, ...] = ()
    # When the line does not meet the criteria: the nearest path of their approval rule
    # (services/review/domain/nearest.py), the specific reason a notice gives.
    nearest: NearestPath | None = None


class ConditionMatcher(Protocol):
    def matched(self, criteria: CriteriaSet, line: LineFacts) -> frozenset[str]:
        """Ids of the conditions whose every predicate holds on ``line.facts``. A condition
        with an absent or unusable fact never holds."""
        ...


class PythonMatcher:
    """Reference :class:`ConditionMatcher`: evaluates the predicates in plain Python."""

    def matched(self, criteria: CriteriaSet, line: LineFacts) -> frozenset[str]:
        usable = usable_facts(criteria, line.facts)
        return frozenset(
            cond.id for cond in criteria.conditions
            if all(p.fact in usable and p.holds(usable[p.fact]) for p in cond.predicates))


def usable_facts(criteria: CriteriaSet, facts: Mapping[str, object]) -> dict[str, FactValue]:
    """The facts the criteria declare, present with a value of the declared type."""
    return _plan(criteria).usable(facts)


Truth: TypeAlias = bool | None  # None: unknown, because a fact is missing


# -- the per-set evaluation plan ---------------------------------------------------------------------
#
# evaluate() runs once per service line, so everything about a criteria set that does not depend on
# the line (type checks per fact, the facts each condition reads, the outcome rules as compiled
# Kleene functions, how each fact is rendered) is worked out once, on first use, and kept on the
# set itself. A plan holds no line data: its size does not grow with the lines evaluated.

_PLAN_ATTRIBUTE = "_evaluation_plan"


def _accepter(spec: FactSpec) -> Callable[[object], TypeGuard[FactValue]]:
    """``spec.accepts`` with a fast path for the exact types lines carry."""
    accepts = spec.accepts
    if spec.type is FactType.BOOL:
        def boolean(v: object) -> TypeGuard[FactValue]:
            return v is True or v is False  # bool cannot be subclassed: same as isinstance

        return boolean
    if spec.type is FactType.NUMBER:
        isfinite = math.isfinite

        def number(v: object) -> TypeGuard[FactValue]:
            if type(v) is float:
                return isfinite(v)
            return accepts(v)

        return number
    if spec.type is FactType.TEXT:
        def text(v: object) -> TypeGuard[FactValue]:
            return type(v) is str or accepts(v)

        return text
    return accepts


def _renderer(spec: FactSpec) -> Callable[[object], str]:
    """``spec.render`` with its answers for booleans and finite floats computed without the checks."""
    render = spec.render
    if spec.type is FactType.BOOL:
        rendered_true, rendered_false = render(True), render(False)
        return lambda v: rendered_true if v is True else rendered_false if v is False else render(v)
    if spec.type is FactType.NUMBER:
        prefix = f"{spec.name}="
        suffix = f" {spec.unit}" if spec.unit else ""
        isfinite = math.isfinite

        def number(v: object) -> str:
            if type(v) is float and isfinite(v):
                text = str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
                return prefix + text + suffix
            return render(v)

        return number
    return render


class _Rule:
    """An outcome rule compiled for Kleene logic over ``{condition id: True | False | None}``."""

    __slots__ = ("children", "condition_id", "conjunction", "term")

    def __init__(self, term: RuleTerm) -> None:
        self.term = term
        self.condition_id = term if isinstance(term, str) else None
        self.conjunction = isinstance(term, AllOf)
        self.children = () if isinstance(term, str) else tuple(_Rule(t) for t in term.terms)

    def truth(self, known: Mapping[str, Truth]) -> Truth:
        if self.condition_id is not None:
            return known[self.condition_id]
        result: Truth
        if self.conjunction:
            result = True
            for child in self.children:
                value = child.truth(known)
                if value is False:
                    return False
                if value is None:
                    result = None
            return result
        result = False
        for child in self.children:
            value = child.truth(known)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    def open_conditions(self, known: Mapping[str, Truth], out: list[str]) -> None:
        """Unknown conditions whose value could still change this rule, if it is undecided. Exact
        when each condition appears once in the rule; otherwise it may name a few too many, never
        too few."""
        if self.truth(known) is not None:
            return
        if self.condition_id is not None:
            out.append(self.condition_id)
            return
        for child in self.children:
            child.open_conditions(known, out)

    def live_met(self, known: Mapping[str, Truth], out: list[str]) -> None:
        """The met conditions of the parts of this rule that are not already false (a met
        condition beside a false one in a conjunction cannot make the rule true)."""
        if self.truth(known) is False:
            return
        if self.condition_id is not None:
            if known[self.condition_id] is True:
                out.append(self.condition_id)
            return
        for child in self.children:
            child.live_met(known, out)

    def witnesses(self, known: Mapping[str, Truth], out: list[str]) -> None:
        """The met conditions that make a true rule true."""
        if self.condition_id is not None:
            if known[self.condition_id] is True:
                out.append(self.condition_id)
            return
        for child in self.children:
            if self.conjunction or child.truth(known) is True:
                child.witnesses(known, out)


def necessary_conditions(term: RuleTerm) -> frozenset[str]:
    """The conditions every way of making ``term`` true needs."""
    if isinstance(term, str):
        return frozenset({term})
    parts = [necessary_conditions(t) for t in term.terms]
    if isinstance(term, AllOf):
        return frozenset().union(*parts)
    return frozenset.intersection(*parts) if parts else frozenset()


def red_flags(criteria: CriteriaSet) -> frozenset[str]:
    """The conditions of ``urgent_when`` that approval does not need anyway: what makes a line
    urgent rather than merely approvable (cauda equina, peritoneal signs, a step down from an
    inpatient stay). Empty without ``urgent_when``."""
    urgent = criteria.outcomes.urgent_when
    if urgent is None:
        return frozenset()
    return frozenset(rule_conditions(urgent)) - necessary_conditions(criteria.outcomes.approve_when)


class _Plan:
    __slots__ = ("checks", "conditions", "red_flags", "renderers", "required", "rules", "urgent")

    def __init__(self, criteria: CriteriaSet) -> None:
        self.checks = tuple((spec.name, _accepter(spec)) for spec in criteria.facts)
        self.conditions = tuple((cond.id, cond.description, cond.facts) for cond in criteria.conditions)
        read = dict.fromkeys(f for cond in criteria.conditions for f in cond.facts)
        self.renderers = tuple((name, _renderer(criteria.fact(name))) for name in read)
        self.required = criteria.required_facts
        self.rules = tuple((outcome, _Rule(rule)) for outcome, _, rule in criteria.outcomes.in_order())
        urgent = criteria.outcomes.urgent_when
        self.urgent = _Rule(urgent) if urgent is not None else None
        self.red_flags = red_flags(criteria)

    def usable(self, facts: Mapping[str, object]) -> dict[str, FactValue]:
        usable: dict[str, FactValue] = {}
        get = facts.get
        for name, accepts in self.checks:
            value = get(name)
            if value is not None and accepts(value):
                usable[name] = value
        return usable


def _plan(criteria: CriteriaSet) -> _Plan:
    plan: _Plan | None = criteria.__dict__.get(_PLAN_ATTRIBUTE)
    if plan is None:
        # Not a field: equality, hashing and repr ignore it; two threads may both build one, alike.
        plan = _Plan(criteria)
        object.__setattr__(criteria, _PLAN_ATTRIBUTE, plan)
    return plan


def _with_facts(line: LineFacts, facts: Mapping[str, FactValue]) -> LineFacts:
    """``dataclasses.replace(line, facts=facts)`` without its per-call introspection."""
    copy: LineFacts = object.__new__(LineFacts)
    attributes = copy.__dict__
    attributes.update(line.__dict__)
    attributes["facts"] = facts
    return copy


_MET, _UNMET, _MISSING = ConditionStatus.MET, ConditionStatus.UNMET, ConditionStatus.MISSING


def evaluate(criteria: CriteriaSet, line: LineFacts, matcher: ConditionMatcher,
             deriver: FactDeriver | None = None) -> LineEvaluation:
    """Apply ``criteria`` to ``line``; see the module docstring for the contract. The matcher
    sees only the declared facts that are present and well typed. ``deriver`` (the vocabulary's
    derivations for this set) adds facts implied by the line's codes and words, unless the set
    switched derivations off."""
    plan = _plan(criteria)
    line, derived, contradictions = _derive(criteria, line, deriver)
    facts = line.facts
    usable = plan.usable(facts)
    matched = matcher.matched(criteria, _with_facts(line, usable))
    results, known = _condition_results(plan, _rendered(plan, facts, derived), usable, matched)

    def done(outcome: Outcome, missing: tuple[str, ...], summary: str,
             nearest: NearestPath | None = None) -> LineEvaluation:
        meets = outcome is Outcome.MEETS_CRITERIA or outcome is Outcome.MEETS_CRITERIA_URGENT
        return LineEvaluation(outcome=outcome, criteria_id=criteria.id, criteria_version=criteria.version,
                              criteria_hash=criteria.content_hash, conditions=tuple(results),
                              missing_facts=missing, summary=_with_derivations(summary, derived),
                              approval=criteria.approval if meets else None, category=criteria.category,
                              derived=derived, contradictions=contradictions,
                              urgency=_urgency(criteria, plan, outcome, known, usable, derived),
                              title=criteria.title, sources=criteria.sources, nearest=nearest)

    title = criteria.title
    for outcome, rule in plan.rules:
        if rule.truth(known) is True:
            witnesses: list[str] = []
            rule.witnesses(known, witnesses)
            because = _describe(criteria, witnesses)
            if outcome is Outcome.NO_ACTION_REQUIRED:
                return done(outcome, (), f"No authorization is required under the {title} criteria: {because}.")
            if outcome is Outcome.MEETS_CRITERIA_URGENT:
                return done(outcome, (), f"Meets the {title} criteria and is urgent: {because}.")
            return done(outcome, (), f"Meets the {title} criteria: {because}.")

    from services.review.domain.nearest import nearest_path  # it reads this module's types

    nearest = nearest_path(criteria, results)
    missing = {f for f in plan.required if f not in usable}
    open_conditions: list[str] = []
    for _, rule in plan.rules:
        rule.open_conditions(known, open_conditions)
    for cid in open_conditions:
        missing.update(f for f in criteria.condition(cid).facts if f not in usable)
    if missing:
        names = tuple(sorted(missing))
        wanted = "; ".join(f"{criteria.fact(n).description} ({n})" for n in names)
        return done(Outcome.PEND_MISSING_INFORMATION, names,
                    f"Cannot apply the {title} criteria until the request states: {wanted}.", nearest)

    # The nearest path, not every unmet condition: an alternative that did not apply is no reason.
    why = nearest.summary if nearest is not None else "no combination of conditions is met"
    return done(Outcome.REFER_TO_NURSE, (),
                f"Does not clearly meet the {title} criteria, so a nurse reviews it: {why}.", nearest)


def _derive(criteria: CriteriaSet, line: LineFacts, deriver: FactDeriver | None
            ) -> tuple[LineFacts, tuple[DerivedFact, ...], tuple[Contradiction, ...]]:
    """The line with the facts ``deriver`` adds (unless the set switched derivations off)."""
    made = deriver.derive(line) if deriver is not None and criteria.derive_facts else None
    if made is None:
        return line, (), ()
    return _with_facts(line, made.facts), made.derived, made.contradictions


def _rendered(plan: _Plan, facts: Mapping[str, object], derived: tuple[DerivedFact, ...]) -> dict[str, str]:
    """``name=value unit`` of the facts the conditions read, a derived one saying what from."""
    rendered: dict[str, str] = {}
    for name, render in plan.renderers:
        value = facts.get(name)
        if value is not None:
            rendered[name] = render(value)
    for d in derived:
        if d.fact in rendered:
            rendered[d.fact] += f" (derived from {d.because})"
    return rendered


def _with_derivations(summary: str, derived: tuple[DerivedFact, ...]) -> str:
    if not derived:
        return summary
    return f"{summary[:-1]} ({'; '.join(d.describe() for d in derived)})."


def _urgency(criteria: CriteriaSet, plan: _Plan, outcome: Outcome, known: Mapping[str, Truth],
             usable: Mapping[str, FactValue], derived: tuple[DerivedFact, ...]) -> UrgencySignal | None:
    """Whether the line is urgent: ``urgent_when`` holds, or is undecided with a red flag met. A line
    that needs no authorization is never urgent."""
    rule = plan.urgent
    if rule is None or outcome is Outcome.NO_ACTION_REQUIRED:
        return None
    truth = rule.truth(known)
    if truth is False:
        return None
    met: list[str] = []
    if truth is True:
        rule.witnesses(known, met)
    else:
        rule.live_met(known, met)
        met = [cid for cid in met if cid in plan.red_flags]
        if not met:
            return None
    flags = []
    for cid in dict.fromkeys(met):
        condition = criteria.condition(cid)
        notes = [d.describe() for d in derived if d.fact in condition.facts]
        flags.append(condition.description + (f" ({'; '.join(notes)})" if notes else ""))
    if truth is True:
        return UrgencySignal(True, criteria.title, tuple(flags))
    open_conditions: list[str] = []
    rule.open_conditions(known, open_conditions)
    missing = sorted({f for cid in open_conditions for f in criteria.condition(cid).facts if f not in usable})
    return UrgencySignal(False, criteria.title, tuple(flags), tuple(missing))


def _condition_results(plan: _Plan, rendered: Mapping[str, str], usable: Mapping[str, FactValue],
                       matched: frozenset[str]) -> tuple[list[ConditionResult], dict[str, Truth]]:
    """Each condition's status (with the values it read, as reviewers see them, from ``rendered``)
    and its truth."""
    results: list[ConditionResult] = []
    known: dict[str, Truth] = {}
    for cid, description, reads in plan.conditions:
        if len(reads) == 1:
            name = reads[0]
            present = name in usable
            observed: tuple[str, ...] = (rendered[name],) if name in rendered else ()
        else:
            present = all(f in usable for f in reads)
            observed = tuple(rendered[f] for f in reads if f in rendered)
        if not present:
            status, known[cid] = _MISSING, None
        elif cid in matched:
            status, known[cid] = _MET, True
        else:
            status, known[cid] = _UNMET, False
        results.append(ConditionResult(cid, description, status, observed))
    return results, known


def _describe(criteria: CriteriaSet, condition_ids: Iterable[str]) -> str:
    return "; ".join(criteria.condition(cid).description for cid in dict.fromkeys(condition_ids))
