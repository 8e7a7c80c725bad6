"""The vocabulary layer: what a request's codes and words imply about the facts criteria read. Pure.

Providers send diagnosis and procedure codes, and facts named in their own words, far more often
than the fact names a criteria set declares. A :class:`Vocabulary` is a cited list of
:class:`FactMapping` entries, each saying that a trigger implies a criteria fact:

* ``diagnosis``: any of the request's ICD-10-CM codes matches one of the patterns (an exact code
  ``G83.4``, a prefix ``M48.06*`` or a range of categories ``C00-C43``), and none of the ``except``
  patterns: ``G83.4`` implies ``suspected_cauda_equina = true``;
* ``procedure``: the line's CPT or HCPCS code is one of the codes;
* ``fact``: the request states a fact under another name (``saddle_anaesthesia = true`` implies
  ``suspected_cauda_equina = true``), or, without a value, a synonym whose value is copied
  (``weeks_of_symptoms`` is ``symptom_duration_weeks``).

Each mapping carries its source and its clinical owner's note; a criteria set may switch every
derivation off (``derive_facts: false``), and a mapping may be limited to named sets.

:class:`Derivations` are the mappings that apply to one criteria set, indexed so a line costs one
dictionary look-up per diagnosis plus a short scan of prefixes and ranges. Their contract
(:meth:`Derivations.derive`):

* a fact the line states is never replaced: where a mapping implies another value, the stated one
  is kept and the disagreement is reported (:class:`~services.review.domain.criteria.Contradiction`);
* a fact two mappings imply with different values is not derived at all (and reported);
* every derived fact names what implied it (:class:`~services.review.domain.criteria.DerivedFact`).

:func:`check_vocabularies` holds vocabularies to the criteria library: a mapping must name a fact
some set it applies to declares, with a value of that fact's type; a synonym copies into a fact
every applicable set declares with one type and unit; two mappings must not imply different
values from a code both match; and a criteria set's worked example must not state a fact its own
codes imply otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.review.domain.criteria import (
    CRITERIA_ID,
    ICD10CM_CODE,
    ICD10CM_PREFIX,
    LINE_DERIVED_FACTS,
    NAME,
    ConditionMatcher,
    Contradiction,
    CriteriaSet,
    Derived,
    DerivedFact,
    Example,
    FactSpec,
    FactValue,
    LineFacts,
    Outcome,
    evaluate,
    example_line,
    is_service_code,
    normalize_diagnosis,
    render_value,
)

MAPPING_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
URGENCIES = ("standard", "expedited")


class InvalidVocabulary(ValueError):
    """A vocabulary that contradicts itself or the criteria library. ``field`` is a dotted path into
    the vocabulary file (``mappings[2].when.diagnosis[0]``); the loader adds the file name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- code patterns ---------------------------------------------------------------------------------

def display_diagnosis(code: str) -> str:
    """``G834`` -> ``G83.4``: a normalized ICD-10-CM code as people write it."""
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


@dataclass(frozen=True)
class CodePattern:
    """An ICD-10-CM pattern: an exact code, a prefix (``M48.06*``) or an inclusive range of codes of
    one length (``C00-C43``: every code whose first three characters fall between them, in the
    code set's own order, where digits sort before letters: C7A lies between C79 and C80)."""

    text: str
    low: str  # the normalized code, the prefix stem, or the range's first code
    high: str  # the range's last code; equal to ``low`` otherwise
    kind: str  # "code" | "prefix" | "range"

    @classmethod
    def parse(cls, text: str) -> CodePattern:
        """Raises ValueError naming what is wrong with ``text``."""
        raw = text.strip()
        if "-" in raw:
            first, _, last = raw.partition("-")
            low, high = normalize_diagnosis(first), normalize_diagnosis(last)
            if not (ICD10CM_CODE.fullmatch(low) and ICD10CM_CODE.fullmatch(high)):
                raise ValueError(f"{text!r} is not a range of two ICD-10-CM codes (C00-C43)")
            if len(low) != len(high):
                raise ValueError(f"{text!r}: both ends of a range have the same length (C00-C43, M5450-M5459)")
            if low > high:
                raise ValueError(f"{text!r}: the range ends before it starts")
            return cls(raw, low, high, "range")
        code = normalize_diagnosis(raw)
        if code.endswith("*"):
            if not ICD10CM_PREFIX.fullmatch(code):
                raise ValueError(f"{text!r} is not an ICD-10-CM prefix pattern (M48.06*)")
            return cls(raw, code[:-1], code[:-1], "prefix")
        if not ICD10CM_CODE.fullmatch(code):
            raise ValueError(f"{text!r} is neither an ICD-10-CM code (G83.4), a prefix (M48.06*) nor a range "
                             "(C00-C43)")
        return cls(raw, code, code, "code")

    def matches(self, code: str) -> bool:
        """Whether the normalized ``code`` falls under this pattern."""
        if self.kind == "code":
            return code == self.low
        if self.kind == "prefix":
            return code.startswith(self.low)
        return self.low <= code[:len(self.low)] <= self.high

    def witnesses(self) -> tuple[str, ...]:
        """Codes this pattern matches that stand for it when two patterns are compared: the code,
        the prefix's stem, the range's ends."""
        return (self.low,) if self.low == self.high else (self.low, self.high)


# -- mappings and vocabularies ---------------------------------------------------------------------

@dataclass(frozen=True)
class Trigger:
    """What implies a fact: one of diagnoses (with exceptions), procedure codes, or stated facts."""

    diagnoses: tuple[CodePattern, ...] = ()
    excluded: tuple[CodePattern, ...] = ()
    procedures: frozenset[str] = frozenset()
    facts: tuple[str, ...] = ()
    fact_value: FactValue | None = None  # with ``facts``: the value that implies; None: a synonym

    @property
    def kind(self) -> str:
        return "diagnosis" if self.diagnoses else "procedure" if self.procedures else "fact"

    def matches_diagnosis(self, code: str) -> bool:
        return any(p.matches(code) for p in self.diagnoses) and not any(p.matches(code) for p in self.excluded)


@dataclass(frozen=True)
class FactMapping:
    """``when`` the trigger holds, the criteria fact ``fact`` is ``value`` (None: the synonym's own
    value). ``criteria``, when not empty, limits it to those criteria set ids."""

    id: str
    when: Trigger
    fact: str
    value: FactValue | None
    source: str
    note: str
    criteria: frozenset[str] = frozenset()

    @property
    def synonym(self) -> bool:
        return self.value is None

    def applies_to(self, criteria: CriteriaSet) -> bool:
        """Whether this mapping derives for ``criteria``: the set allows derivations, declares the
        fact, and is one the mapping names (if it names any)."""
        return (criteria.derive_facts and criteria.declares(self.fact)
                and (not self.criteria or criteria.id in self.criteria))


@dataclass(frozen=True)
class VocabularyExample:
    """A worked case of a mapping: a line of the named criteria set, what must be derived, and the
    outcome (and urgency) the criteria then give."""

    name: str
    mapping: str
    criteria: str
    facts: Mapping[str, FactValue] = field(hash=False)
    expect: Outcome
    derived: Mapping[str, FactValue] = field(hash=False)
    diagnoses: tuple[str, ...] | None = None
    procedure_code: str | None = None
    line_of_business: str | None = None
    missing_facts: tuple[str, ...] | None = None
    urgency: str | None = None  # "expedited" | "standard": whether the line is routed as urgent
    kept_stated: tuple[str, ...] = ()  # facts the example states against what its codes imply


@dataclass(frozen=True)
class Vocabulary:
    """One vocabulary file: versioned, hashed, cited, owned."""

    id: str
    version: str
    title: str
    owner: str
    sources: tuple[str, ...]
    mappings: tuple[FactMapping, ...]
    content_hash: str
    examples: tuple[VocabularyExample, ...] = ()

    def __post_init__(self) -> None:
        _check(self)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def mapping(self, mapping_id: str) -> FactMapping | None:
        return next((m for m in self.mappings if m.id == mapping_id), None)


def _check(v: Vocabulary) -> None:
    """The invariants of a vocabulary on its own; the first violation found is raised."""
    if not CRITERIA_ID.fullmatch(v.id):
        raise InvalidVocabulary("id", f"{v.id!r} is not a lowercase id (letters, digits, '-')")
    if not v.sources or any(not s.strip() for s in v.sources):
        raise InvalidVocabulary("sources", "cite at least one public source, none of them empty")
    if not v.mappings:
        raise InvalidVocabulary("mappings", "define at least one mapping")
    seen: set[str] = set()
    for i, m in enumerate(v.mappings):
        if not MAPPING_ID.fullmatch(m.id) or m.id in seen:
            raise InvalidVocabulary(f"mappings[{i}].id", f"{m.id!r} is not a lowercase id, or is used twice")
        seen.add(m.id)
        _check_mapping(m, f"mappings[{i}]")
    _check_examples(v, seen)


def _check_mapping(m: FactMapping, where: str) -> None:
    if not NAME.fullmatch(m.fact):
        raise InvalidVocabulary(f"{where}.then.fact", f"{m.fact!r} is not a snake_case fact name")
    if m.fact in LINE_DERIVED_FACTS:
        raise InvalidVocabulary(f"{where}.then.fact", f"{m.fact!r} is stated by the line itself")
    _check_trigger(m, where)
    for cid in sorted(m.criteria):
        if not CRITERIA_ID.fullmatch(cid):
            raise InvalidVocabulary(f"{where}.criteria", f"{cid!r} is not a criteria set id")


def _check_examples(v: Vocabulary, mapping_ids: set[str]) -> None:
    used = {e.mapping for e in v.examples if e.derived}
    for i, m in enumerate(v.mappings):
        if m.id not in used:
            raise InvalidVocabulary(f"mappings[{i}].id", f"{m.id!r} has no worked example that derives a fact "
                                                         "(examples[].mapping, with derived facts)")
    names: set[str] = set()
    for i, e in enumerate(v.examples):
        if not e.name.strip() or e.name in names:
            raise InvalidVocabulary(f"examples[{i}].name", f"{e.name!r} is empty or used twice")
        names.add(e.name)
        if e.mapping not in mapping_ids:
            raise InvalidVocabulary(f"examples[{i}].mapping", f"{e.mapping!r} is not a mapping of this file")
        if e.urgency is not None and e.urgency not in URGENCIES:
            raise InvalidVocabulary(f"examples[{i}].urgency", f"{e.urgency!r} is not standard or expedited")


def _check_trigger(m: FactMapping, where: str) -> None:
    t = m.when
    kinds = sum(1 for present in (t.diagnoses, t.procedures, t.facts) if present)
    if kinds != 1:
        raise InvalidVocabulary(f"{where}.when", "name exactly one of diagnosis, procedure or fact")
    if t.excluded and not t.diagnoses:
        raise InvalidVocabulary(f"{where}.when.except", "only diagnosis patterns take exceptions")
    for code in sorted(t.procedures):
        if not is_service_code(code):
            raise InvalidVocabulary(f"{where}.when.procedure", f"{code!r} is neither a CPT nor a HCPCS code")
    if t.facts:
        _check_fact_trigger(m, where)
    elif m.synonym:
        raise InvalidVocabulary(f"{where}.then.value", "only a fact can be copied; a code implies a value")


def _check_fact_trigger(m: FactMapping, where: str) -> None:
    t = m.when
    for name in t.facts:
        if not NAME.fullmatch(name):
            raise InvalidVocabulary(f"{where}.when.fact", f"{name!r} is not a snake_case fact name")
        if name == m.fact:
            raise InvalidVocabulary(f"{where}.when.fact", f"{name!r} cannot imply itself")
    if m.synonym and t.fact_value is not None:
        raise InvalidVocabulary(f"{where}.then.value", "a fact trigger with a value implies a value: give one")
    if not m.synonym and t.fact_value is None:
        raise InvalidVocabulary(f"{where}.when.value", "say which value of the stated fact implies "
                                                       f"{m.fact} = {render_value(m.value)}")


# -- derivations for one criteria set --------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    label: str  # "vocabulary@version mapping-id"
    mapping: FactMapping
    spec: FactSpec  # the criteria set's declaration of the implied fact


class Derivations:
    """The mappings of every vocabulary that apply to one criteria set, indexed for
    :meth:`derive`. Empty (and false) when none apply."""

    def __init__(self, criteria: CriteriaSet, vocabularies: Iterable[Vocabulary]) -> None:
        self.criteria_key = criteria.key
        self._exact: dict[str, list[_Entry]] = {}
        self._prefixes: list[tuple[str, _Entry]] = []
        self._ranges: list[tuple[str, str, int, _Entry]] = []
        self._procedures: dict[str, list[_Entry]] = {}
        self._facts: dict[str, list[_Entry]] = {}
        self.entries: list[_Entry] = []
        for vocabulary in vocabularies:
            for m in vocabulary.mappings:
                if not m.applies_to(criteria):
                    continue
                entry = _Entry(f"{vocabulary.key} {m.id}", m, criteria.fact(m.fact))
                self.entries.append(entry)
                for pattern in m.when.diagnoses:
                    if pattern.kind == "code":
                        self._exact.setdefault(pattern.low, []).append(entry)
                    elif pattern.kind == "prefix":
                        self._prefixes.append((pattern.low, entry))
                    else:
                        self._ranges.append((pattern.low, pattern.high, len(pattern.low), entry))
                for code in m.when.procedures:
                    self._procedures.setdefault(code, []).append(entry)
                for name in m.when.facts:
                    self._facts.setdefault(name, []).append(entry)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def derive(self, line: LineFacts) -> Derived | None:
        """The line's facts with those its codes and words imply (see the module docstring); None
        when nothing is implied."""
        proposals: list[tuple[_Entry, FactValue, str]] = []
        if self._exact or self._prefixes or self._ranges:
            self._from_diagnoses(line.diagnoses, proposals)
        if self._procedures:
            procedure = line.procedure_code.strip().upper()
            proposals += [(entry, _implied(entry), f"procedure {procedure}")
                          for entry in self._procedures.get(procedure, ())]
        if self._facts:
            self._from_facts(line.facts, proposals)
        if not proposals:
            return None
        return _resolve(line.facts, proposals)

    def _from_diagnoses(self, diagnoses: Iterable[str], proposals: list[tuple[_Entry, FactValue, str]]) -> None:
        # Patterns are matched inline (this runs for every line): codes, then prefixes, then ranges;
        # a match is confirmed against the mapping's exceptions.
        exact, prefixes, ranges = self._exact, self._prefixes, self._ranges
        for code in diagnoses:
            matched = exact.get(code, ())
            for stem, entry in prefixes:
                if code.startswith(stem):
                    matched = (*matched, entry)
            for low, high, n, entry in ranges:
                if low <= code[:n] <= high:
                    matched = (*matched, entry)
            proposals += [(entry, _implied(entry), f"diagnosis {display_diagnosis(code)}") for entry in matched
                          if not entry.mapping.when.excluded or entry.mapping.when.matches_diagnosis(code)]

    def _from_facts(self, facts: Mapping[str, FactValue], proposals: list[tuple[_Entry, FactValue, str]]) -> None:
        for name, entries in self._facts.items():
            stated = facts.get(name)
            if stated is None:
                continue
            for entry in entries:
                if entry.mapping.synonym:
                    if entry.spec.accepts(stated):
                        proposals.append((entry, stated, f"fact {name}"))
                elif _same(stated, entry.mapping.when.fact_value):
                    proposals.append((entry, _implied(entry), f"fact {name}"))


def _implied(entry: _Entry) -> FactValue:
    value = entry.mapping.value
    if value is None:  # unreachable for codes: a synonym is always a fact trigger (_check_trigger)
        raise InvalidVocabulary(entry.label, "a code trigger needs a value")
    return value


def _same(a: object, b: object) -> bool:
    # True is not 1.0 here, as it is not in the rules engine.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return a == b


def _resolve(facts: Mapping[str, FactValue], proposals: Sequence[tuple[_Entry, FactValue, str]]) -> Derived:
    by_fact: dict[str, list[tuple[_Entry, FactValue, str]]] = {}
    for proposal in proposals:
        by_fact.setdefault(proposal[0].mapping.fact, []).append(proposal)
    merged = dict(facts)
    derived: list[DerivedFact] = []
    contradictions: list[Contradiction] = []
    for name, offered in by_fact.items():
        if name in facts:  # stated: kept whatever the codes say; a disagreement is reported
            stated = facts[name]
            contradictions += [Contradiction(name, stated, value, because, entry.label)
                               for entry, value, because in offered if not _same(stated, value)]
            continue
        first = offered[0][1]
        if any(not _same(value, first) for _, value, _ in offered):
            contradictions += [Contradiction(name, None, value, because, entry.label)
                               for entry, value, because in offered]
            continue
        merged[name] = first
        becauses = list(dict.fromkeys(because for _, _, because in offered))
        labels = list(dict.fromkeys(entry.label for entry, _, _ in offered))
        derived.append(DerivedFact(name, first, ", ".join(becauses), "; ".join(labels)))
    return Derived(merged, tuple(derived), tuple(contradictions))


# -- checks against the criteria library -----------------------------------------------------------

@dataclass(frozen=True)
class VocabularyProblem:
    """A problem of a vocabulary (``vocabulary`` its key) or, with ``criteria`` set, of a criteria set's
    worked example against the vocabulary."""

    vocabulary: str
    field: str
    problem: str
    criteria: str = ""


def check_vocabularies(vocabularies: Sequence[Vocabulary], sets: Sequence[CriteriaSet]) -> list[VocabularyProblem]:
    """Every problem of ``vocabularies`` against the criteria ``sets`` (the library's current ones):
    unknown facts and criteria ids, values of the wrong type, synonyms without one type and unit,
    mappings that imply different values from one code or stated fact, and criteria examples that
    state a fact against what their own codes imply. Worked examples: :func:`check_examples`."""
    problems: list[VocabularyProblem] = []
    ids = {c.id for c in sets}
    declared = {f.name for c in sets for f in c.facts}
    for v in vocabularies:
        for i, m in enumerate(v.mappings):
            problems += [VocabularyProblem(v.key, f"mappings[{i}].{f}", p) for f, p in _mapping_problems(m, sets, ids,
                                                                                                      declared)]
    problems += _disagreements(vocabularies)
    problems += _example_contradictions(vocabularies, sets)
    return problems


def _mapping_problems(m: FactMapping, sets: Sequence[CriteriaSet], ids: set[str],
                      declared: set[str]) -> list[tuple[str, str]]:
    unknown = sorted(m.criteria - ids)
    if unknown:
        return [("criteria", f"{', '.join(unknown)}: no such criteria set")]
    scope = [c for c in sets if not m.criteria or c.id in m.criteria]
    targets = [c for c in scope if c.declares(m.fact)]
    if not targets:
        where = f"none of {', '.join(sorted(m.criteria))}" if m.criteria else "no criteria set"
        return [("then.fact", f"unknown fact {m.fact!r}: {where} declares it")]
    out: list[tuple[str, str]] = []
    specs = {(c.fact(m.fact).type, c.fact(m.fact).unit) for c in targets}
    if m.synonym:
        if len(specs) > 1:
            kinds = ", ".join(sorted(f"{t.value} {u}" if u else t.value for t, u in specs))
            out.append(("then.fact", f"{m.fact!r} is declared with different types or units ({kinds}); "
                                     "a synonym copies into one"))
        for name in m.when.facts:
            if name in declared:
                owner = next(c.id for c in sets if c.declares(name))
                out.append(("when.fact", f"{name!r} is a criteria fact ({owner} declares it), not a synonym"))
    else:
        for c in targets:
            spec = c.fact(m.fact)
            if m.value is not None and not spec.accepts(m.value):
                out.append(("then.value", f"{render_value(m.value)} is not a {spec.type.value}, as {c.id} declares "
                                          f"{m.fact!r}"))
                break
    return out


def _trigger_codes(t: Trigger) -> list[str]:
    return [code for p in (*t.diagnoses, *t.excluded) for code in p.witnesses()]


def _disagreements(vocabularies: Sequence[Vocabulary]) -> list[VocabularyProblem]:
    """Pairs of mappings implying different values of one fact from a trigger both match: a code
    one of their patterns names that both match, the same procedure code, or the same stated fact
    and value (a synonym agrees with everything it copies)."""
    entries = [(v, i, m) for v in vocabularies for i, m in enumerate(v.mappings) if not m.synonym]
    problems: list[VocabularyProblem] = []
    for a_index, (va, ia, a) in enumerate(entries):
        for vb, ib, b in entries[a_index + 1:]:
            if a.fact != b.fact or _same(a.value, b.value) or (a.criteria and b.criteria
                                                                and not a.criteria & b.criteria):
                continue
            shared = _shared_trigger(a.when, b.when)
            if shared:
                problems.append(VocabularyProblem(
                    vb.key, f"mappings[{ib}].then.value",
                    f"{b.id} implies {b.fact} = {render_value(b.value)} from {shared}, where {va.key} {a.id} "
                    f"(mappings[{ia}]) implies {render_value(a.value)}"))
    return problems


def _shared_trigger(a: Trigger, b: Trigger) -> str:
    if a.diagnoses and b.diagnoses:
        for code in _trigger_codes(a) + _trigger_codes(b):
            if a.matches_diagnosis(code) and b.matches_diagnosis(code):
                return f"diagnosis {display_diagnosis(code)}"
    both = sorted(a.procedures & b.procedures)
    if both:
        return f"procedure {both[0]}"
    for name in sorted(set(a.facts) & set(b.facts)):
        if _same(a.fact_value, b.fact_value):
            return f"fact {name} = {render_value(a.fact_value)}"
    return ""


def _example_contradictions(vocabularies: Sequence[Vocabulary], sets: Sequence[CriteriaSet]) -> list[VocabularyProblem]:
    """Criteria examples that state a fact their own line's codes and words imply otherwise."""
    problems: list[VocabularyProblem] = []
    for c in sets:
        derivations = Derivations(c, vocabularies)
        if not derivations:
            continue
        for i, example in enumerate(c.examples):
            made = derivations.derive(example_line(c, example))
            for contradiction in made.contradictions if made is not None else ():
                vocabulary = contradiction.mapping.split(" ")[0]
                problems.append(VocabularyProblem(
                    vocabulary, f"examples[{i}].facts.{contradiction.fact}",
                    f"{example.name!r} contradicts the vocabulary: {contradiction.describe()}", criteria=c.key))
    return problems


def example_of(criteria: CriteriaSet, e: VocabularyExample) -> LineFacts:
    """The line a vocabulary example describes, with the set's defaults filled in as for the set's
    own examples."""
    return example_line(criteria, Example(name=e.name, facts=e.facts, expect=e.expect, missing_facts=e.missing_facts,
                                          procedure_code=e.procedure_code, diagnoses=e.diagnoses,
                                          line_of_business=e.line_of_business))


def run_example(criteria: CriteriaSet, derivations: Derivations, e: VocabularyExample,
                matcher: ConditionMatcher) -> list[str]:
    """What is wrong with a worked example's result through ``matcher``: empty when the line is
    covered by the set, the expected facts (and only they) are derived, its mapping among them when
    it expects any, and the outcome, missing facts, urgency and kept stated facts are as expected."""
    line = example_of(criteria, e)
    if not criteria.covers(line):
        return [f"its line is not covered by {criteria.id} (service code, line of business or diagnosis)"]
    got = evaluate(criteria, line, matcher, derivations)
    problems: list[str] = []
    derived = {d.fact: d.value for d in got.derived}
    if set(derived) != set(e.derived) or any(not _same(derived[k], v) for k, v in e.derived.items()):
        shown = ", ".join(f"{k}={render_value(v)}" for k, v in sorted(derived.items())) or "nothing"
        problems.append(f"derives {shown}, expected "
                        + (", ".join(f"{k}={render_value(v)}" for k, v in sorted(e.derived.items())) or "nothing"))
    elif e.derived and not _uses(got.derived, e.mapping):
        problems.append(f"mapping {e.mapping!r} derives none of its facts")
    if got.outcome is not e.expect:
        problems.append(f"expects {e.expect.value}, the criteria give {got.outcome.value} ({got.summary})")
    if e.missing_facts is not None and tuple(sorted(e.missing_facts)) != got.missing_facts:
        problems.append(f"expects missing {sorted(e.missing_facts)}, the criteria ask for {list(got.missing_facts)}")
    routed = "expedited" if got.urgency is not None else "standard"
    if e.urgency is not None and e.urgency != routed:
        problems.append(f"expects a {e.urgency} line, it is {routed}"
                        + (f" ({got.urgency.reason()})" if got.urgency is not None else ""))
    kept = sorted({c.fact for c in got.contradictions if c.stated is not None})
    if kept != sorted(e.kept_stated):
        problems.append(f"keeps stated {kept or 'nothing'} against its codes, expected "
                        f"{sorted(e.kept_stated) or 'nothing'}")
    return problems


def _uses(derived: Iterable[DerivedFact], mapping_id: str) -> bool:
    return any(label.split(" ", 1)[1] == mapping_id for d in derived for label in d.mapping.split("; "))
