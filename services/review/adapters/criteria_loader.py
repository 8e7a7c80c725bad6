"""Criteria files (YAML) to :class:`CriteriaSet`, strictly, and the library that picks one per line.

Errors::

    ConfigurationError
     ├── ConfigFileError
     │    └── CriteriaError     one problem in one file: str is "file.yaml: field.path: problem"
     └── CriteriaLibraryError   every file's problem, collected by load_library()

The shape is checked here, by hand rather than by a pydantic model (as the platform's other
configuration files are): a rule term is text or a one-key mapping, fact values take the declared
fact's type, and the adverse-outcome guard must see every key and value before any other check.

A file is rejected for unknown or missing keys, values of the wrong YAML type, duplicate keys,
undeclared facts, unknown fact types or operators, outcome rules naming unknown conditions, service
codes that are neither CPT nor HCPCS shaped, examples whose expected outcome the criteria do not
give, and above all any attempt to express a deny or other adverse outcome: software may approve,
pend or refer, never deny (CMS-4201-F; CMS Medicare Advantage FAQ, February 2024).

The content hash is the sha256 of the document's canonical JSON form (sorted keys, no
insignificant whitespace), so comments and layout do not change it and any change of content does.

A criteria set may say ``derive_facts: false`` to take no fact from the vocabulary (the criteria
directory's ``vocabulary/`` folder, adapters/vocabulary_loader.py), which :func:`load_library` loads
and holds to the library: see :func:`vocabulary_problems`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from services.common.config_files import ConfigFileError, canonical_json, parse_yaml, read_text
from services.common.errors import ConfigurationError
from services.review.adapters.vocabulary_loader import (
    VocabularyError,
    load_vocabulary,
    vocabulary_files,
)
from services.review.domain.criteria import (
    AllOf,
    AnyOf,
    Approval,
    Condition,
    CriteriaSet,
    Example,
    FactSpec,
    FactType,
    FactValue,
    InvalidCriteria,
    LineFacts,
    Op,
    Outcome,
    OutcomeRules,
    Predicate,
    PredicateValue,
    PythonMatcher,
    RuleTerm,
    content_hash,
    evaluate,
    example_line,
    is_service_code,
    normalize_diagnosis,
    version_key,
)
from services.review.domain.vocabulary import (
    Derivations,
    Vocabulary,
    check_vocabularies,
    run_example,
)

logger = logging.getLogger(__name__)

_E = TypeVar("_E", FactType, Op, Outcome)

DENY_PROBLEM = ("software may not deny; criteria can only approve, pend or refer to a person "
                "(an adverse decision is a physician's: CMS-4201-F, CMS MA FAQ Feb 2024)")

# Words that express an adverse determination (X12 A3 not certified, A6 modified, A2 partial).
_ADVERSE_WORDS = frozenset({
    "deny", "denied", "denies", "denial", "adverse", "reject", "rejected", "rejection", "decline",
    "declined", "refuse", "refused", "noncertified", "noncertification", "uncertified", "disapprove",
    "disapproved", "a3", "a6", "modify", "modified", "reduce", "reduced", "partial",
})
_ADVERSE_PHRASES = ("not_certified", "non_certified", "not_approved", "not_authorized", "not_covered",
                    "not_medically_necessary", "not_necessary")

TOP_REQUIRED = ("id", "version", "title", "category", "sources", "lines_of_business", "service_codes",
                "diagnosis_patterns", "facts", "conditions", "outcomes", "examples")
TOP_OPTIONAL = ("notes", "approval", "derive_facts")
APPROVAL_REQUIRED = ("max_units", "unit")
FACT_REQUIRED = ("name", "type", "description")
FACT_OPTIONAL = ("unit", "required")
CONDITION_REQUIRED = ("id", "description", "when")
PREDICATE_REQUIRED = ("fact", "op", "value")
OUTCOME_REQUIRED = ("approve_when",)
OUTCOME_OPTIONAL = ("urgent_when", "no_action_when")
EXAMPLE_REQUIRED = ("name", "facts", "expect")
EXAMPLE_OPTIONAL = ("missing_facts", "procedure_code", "diagnoses", "line_of_business")
_KNOWN_KEYS = frozenset(TOP_REQUIRED + TOP_OPTIONAL + FACT_REQUIRED + FACT_OPTIONAL + CONDITION_REQUIRED
                        + PREDICATE_REQUIRED + OUTCOME_REQUIRED + OUTCOME_OPTIONAL + EXAMPLE_REQUIRED
                        + EXAMPLE_OPTIONAL + APPROVAL_REQUIRED + ("all_of", "any_of"))
_EXAMPLE_FACTS = re.compile(r"examples\[\d+\]\.facts")


class CriteriaError(ConfigFileError):
    """One problem in one criteria file."""


class CriteriaLibraryError(ConfigurationError):
    """The problems of every criteria (or vocabulary) file that failed, one line each."""

    def __init__(self, errors: Iterable[ConfigFileError]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} problem(s) in the criteria library:\n"
                         + "\n".join(f"  {e}" for e in self.errors))


# -- YAML ------------------------------------------------------------------------------------------

# -- the adverse-outcome guard ---------------------------------------------------------------------

def _adverse(text: str) -> bool:
    normalized = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return bool(set(normalized.split("_")) & _ADVERSE_WORDS) or any(p in normalized for p in _ADVERSE_PHRASES)


def _adverse_sites(node: object, where: str, scan_values: bool) -> Iterator[str]:
    """Fields that express an adverse outcome: any key (except the fact names of an example), and
    any text in an outcome position (under ``outcomes``, an example's ``expect``, or an unknown
    key). Descriptions, names and fact values elsewhere may say "adverse reaction" or "denied
    before" without expressing an outcome."""
    if isinstance(node, dict):
        fact_names = _EXAMPLE_FACTS.fullmatch(where) is not None
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if not fact_names and _adverse(str(key)):
                yield path
                continue
            outcome_position = not fact_names and (key in ("outcomes", "expect") or key not in _KNOWN_KEYS)
            yield from _adverse_sites(value, path, scan_values or outcome_position)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _adverse_sites(value, f"{where}[{i}]", scan_values)
    elif scan_values and isinstance(node, str) and _adverse(node):
        yield where


# -- shape checks ----------------------------------------------------------------------------------

class _Shape:
    """Reads one file's document, raising CriteriaError at the first problem."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> CriteriaError:
        return CriteriaError(self.path, field, problem)

    def mapping(self, node: object, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
                ) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(node)}")
        for key in node:
            if not isinstance(key, str) or key not in required + optional:
                allowed = ", ".join(required + optional)
                raise self.fail(_join(where, str(key)), f"unknown key (allowed here: {allowed})")
        for key in required:
            if key not in node:
                raise self.fail(_join(where, key), "missing required field")
        return node

    def text(self, node: object, where: str) -> str:
        if not isinstance(node, str):
            hint = " (quote it: YAML read it as a number)" if isinstance(node, int | float) else ""
            raise self.fail(where, f"expected text, got {_kind(node)}{hint}")
        if not node.strip():
            raise self.fail(where, "must not be empty")
        return node

    def texts(self, node: object, where: str) -> list[str]:
        if not isinstance(node, list):
            raise self.fail(where, f"expected a list, got {_kind(node)}")
        return [self.text(item, f"{where}[{i}]") for i, item in enumerate(node)]

    def flag(self, node: object, where: str) -> bool:
        if not isinstance(node, bool):
            raise self.fail(where, f"expected true or false, got {_kind(node)}")
        return node

    def items(self, node: object, where: str) -> list[Any]:
        if not isinstance(node, list):
            raise self.fail(where, f"expected a list, got {_kind(node)}")
        if not node:
            raise self.fail(where, "must not be empty")
        return node


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(node: object) -> str:
    if node is None:
        return "nothing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a mapping", dt.date: "a date"}.get(type(node), type(node).__name__)


def _enum_value(shape: _Shape, kind: type[_E], node: Any, where: str, what: str) -> _E:
    try:
        return kind(node)
    except (ValueError, TypeError):
        allowed = ", ".join(m.value for m in kind)
        raise shape.fail(where, f"unknown {what} {node!r} (one of: {allowed})") from None


def _fact_value(shape: _Shape, spec: FactSpec | None, node: object, where: str) -> FactValue:
    """A YAML scalar as a value of the fact's type (dates may be written as ISO text)."""
    if spec is not None and spec.type is FactType.DATE and isinstance(node, str):
        try:
            return dt.date.fromisoformat(node)
        except ValueError:
            raise shape.fail(where, f"{node!r} is not an ISO date (YYYY-MM-DD)") from None
    if isinstance(node, bool | int | float | str | dt.date) and not isinstance(node, dt.datetime):
        return node
    raise shape.fail(where, f"expected a single value, got {_kind(node)}")


def _predicate(shape: _Shape, node: object, where: str, facts: Mapping[str, FactSpec]) -> Predicate:
    raw = shape.mapping(node, where, PREDICATE_REQUIRED)
    name = shape.text(raw["fact"], f"{where}.fact")
    op = _enum_value(shape, Op, raw["op"], f"{where}.op", "operator")
    spec = facts.get(name)
    value: PredicateValue
    if isinstance(raw["value"], list):
        value = tuple(_fact_value(shape, spec, v, f"{where}.value[{i}]") for i, v in enumerate(raw["value"]))
    else:
        value = _fact_value(shape, spec, raw["value"], f"{where}.value")
    return Predicate(fact=name, op=op, value=value)


def _condition(shape: _Shape, node: object, where: str, facts: Mapping[str, FactSpec]) -> Condition:
    raw = shape.mapping(node, where, CONDITION_REQUIRED)
    when = raw["when"]
    if isinstance(when, dict) and set(when) == {"all_of"}:
        parts = shape.items(when["all_of"], f"{where}.when.all_of")
        predicates = tuple(_predicate(shape, p, f"{where}.when.all_of[{i}]", facts) for i, p in enumerate(parts))
    elif isinstance(when, dict) and "all_of" not in when:
        predicates = (_predicate(shape, when, f"{where}.when", facts),)
    else:
        raise shape.fail(f"{where}.when", "expected {fact, op, value} or {all_of: [predicates]}")
    return Condition(id=shape.text(raw["id"], f"{where}.id"),
                     description=shape.text(raw["description"], f"{where}.description"), predicates=predicates)


def _rule(shape: _Shape, node: object, where: str) -> RuleTerm:
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((kind, terms),) = node.items()
        if kind in ("all_of", "any_of"):
            parts = shape.items(terms, f"{where}.{kind}")
            built = tuple(_rule(shape, t, f"{where}.{kind}[{i}]") for i, t in enumerate(parts))
            return AllOf(built) if kind == "all_of" else AnyOf(built)
        raise shape.fail(f"{where}.{kind}", "unknown combinator (use all_of or any_of)")
    raise shape.fail(where, "expected a condition id, {all_of: [...]} or {any_of: [...]}")


def _example(shape: _Shape, node: object, where: str, facts: Mapping[str, FactSpec]) -> Example:
    raw = shape.mapping(node, where, EXAMPLE_REQUIRED, EXAMPLE_OPTIONAL)
    given = raw["facts"]
    if not isinstance(given, dict):
        raise shape.fail(f"{where}.facts", f"expected a mapping of fact name to value, got {_kind(given)}")
    values = {str(k): _fact_value(shape, facts.get(str(k)), v, f"{where}.facts.{k}") for k, v in given.items()}
    missing = raw.get("missing_facts")
    diagnoses = raw.get("diagnoses")
    return Example(
        name=shape.text(raw["name"], f"{where}.name"), facts=values,
        expect=_enum_value(shape, Outcome, raw["expect"], f"{where}.expect", "outcome"),
        missing_facts=tuple(shape.texts(missing, f"{where}.missing_facts")) if missing is not None else None,
        procedure_code=shape.text(raw["procedure_code"], f"{where}.procedure_code") if "procedure_code" in raw
        else None,
        diagnoses=tuple(normalize_diagnosis(d) for d in shape.texts(diagnoses, f"{where}.diagnoses"))
        if diagnoses is not None else None,
        line_of_business=shape.text(raw["line_of_business"], f"{where}.line_of_business")
        if "line_of_business" in raw else None)


def parse_criteria(doc: object, path: Path, digest: str) -> CriteriaSet:
    """Build a criteria set from a parsed YAML document; ``path`` only names the file in errors."""
    shape = _Shape(path)
    for site in _adverse_sites(doc, "", scan_values=False):
        raise shape.fail(site, DENY_PROBLEM)
    raw = shape.mapping(doc, "", TOP_REQUIRED, TOP_OPTIONAL)

    specs: list[FactSpec] = []
    for i, node in enumerate(shape.items(raw["facts"], "facts")):
        f = shape.mapping(node, f"facts[{i}]", FACT_REQUIRED, FACT_OPTIONAL)
        specs.append(FactSpec(
            name=shape.text(f["name"], f"facts[{i}].name"),
            type=_enum_value(shape, FactType, f["type"], f"facts[{i}].type", "fact type"),
            description=shape.text(f["description"], f"facts[{i}].description"),
            unit=shape.text(f["unit"], f"facts[{i}].unit") if "unit" in f else None,
            required=shape.flag(f["required"], f"facts[{i}].required") if "required" in f else False))
    by_name = {s.name: s for s in specs}
    conditions = tuple(_condition(shape, c, f"conditions[{i}]", by_name)
                       for i, c in enumerate(shape.items(raw["conditions"], "conditions")))
    out = shape.mapping(raw["outcomes"], "outcomes", OUTCOME_REQUIRED, OUTCOME_OPTIONAL)
    outcomes = OutcomeRules(
        approve_when=_rule(shape, out["approve_when"], "outcomes.approve_when"),
        urgent_when=_rule(shape, out["urgent_when"], "outcomes.urgent_when") if "urgent_when" in out else None,
        no_action_when=_rule(shape, out["no_action_when"], "outcomes.no_action_when")
        if "no_action_when" in out else None)
    examples = tuple(_example(shape, e, f"examples[{i}]", by_name)
                     for i, e in enumerate(shape.items(raw["examples"], "examples")))
    patterns = shape.texts(raw["diagnosis_patterns"], "diagnosis_patterns")
    codes = shape.texts(raw["service_codes"], "service_codes")
    for i, code in enumerate(codes):
        if not is_service_code(code):
            raise shape.fail(f"service_codes[{i}]", f"{code!r} is neither a CPT code (5 digits, or 4 digits + F/T/U) "
                                                    "nor a HCPCS Level II code (a letter + 4 digits)")
    approval = None
    if "approval" in raw:
        a = shape.mapping(raw["approval"], "approval", APPROVAL_REQUIRED)
        if not isinstance(a["max_units"], int) or isinstance(a["max_units"], bool):
            raise shape.fail("approval.max_units", f"expected a whole number, got {_kind(a['max_units'])}")
        approval = Approval(max_units=a["max_units"], unit=shape.text(a["unit"], "approval.unit"))
    try:
        criteria = CriteriaSet(
            id=shape.text(raw["id"], "id"), version=shape.text(raw["version"], "version"),
            title=shape.text(raw["title"], "title"), sources=tuple(shape.texts(raw["sources"], "sources")),
            lines_of_business=frozenset(shape.texts(raw["lines_of_business"], "lines_of_business")),
            service_codes=frozenset(codes),
            diagnosis_patterns=tuple(normalize_diagnosis(p) for p in patterns),
            facts=tuple(specs), conditions=conditions, outcomes=outcomes, content_hash=digest,
            examples=examples, notes=shape.text(raw["notes"], "notes") if "notes" in raw else "",
            category=shape.text(raw["category"], "category"), approval=approval,
            derive_facts=shape.flag(raw["derive_facts"], "derive_facts") if "derive_facts" in raw else True)
    except InvalidCriteria as exc:
        raise shape.fail(exc.field, exc.problem) from exc
    _check_examples_hold(shape, criteria)
    return criteria


def _check_examples_hold(shape: _Shape, criteria: CriteriaSet) -> None:
    """A criteria file whose own worked examples fail is wrong somewhere: refuse it."""
    for i, ex in enumerate(criteria.examples):
        line = example_line(criteria, ex)
        if not criteria.covers(line):
            raise shape.fail(f"examples[{i}]", f"{ex.name!r}: its line is not covered by this criteria set "
                                               "(service code, line of business or diagnosis)")
        got = evaluate(criteria, line, PythonMatcher())
        if got.outcome is not ex.expect:
            raise shape.fail(f"examples[{i}].expect", f"{ex.name!r} expects {ex.expect.value}, "
                                                      f"the criteria give {got.outcome.value} ({got.summary})")
        if ex.missing_facts is not None and tuple(sorted(ex.missing_facts)) != got.missing_facts:
            raise shape.fail(f"examples[{i}].missing_facts",
                             f"{ex.name!r} expects {sorted(ex.missing_facts)}, the criteria ask for "
                             f"{list(got.missing_facts)}")


def load_criteria(path: Path) -> CriteriaSet:
    """Read and validate one criteria file; raises :class:`CriteriaError`."""
    doc = parse_yaml(path, read_text(path, CriteriaError), CriteriaError)
    return parse_criteria(doc, path, content_hash(canonical_json(doc)))


# -- the library -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CriteriaLibrary:
    """Every loaded criteria set, every version, and the vocabularies that derive facts for them.
    Selection uses the highest version of each id."""

    sets: tuple[CriteriaSet, ...]
    vocabularies: tuple[Vocabulary, ...] = ()
    _all: tuple[CriteriaSet, ...] = field(init=False, repr=False, compare=False)
    _current_by_code: Mapping[str, tuple[CriteriaSet, ...]] = field(init=False, repr=False, compare=False)
    _derivations: dict[int, tuple[CriteriaSet, Derivations]] = field(init=False, repr=False, compare=False)

    def derivations(self, criteria: CriteriaSet) -> Derivations:
        """The vocabulary's derivations for ``criteria`` (any set, a draft included), built once."""
        # Keyed by identity (this runs for every line): the entry keeps its set alive, so an id is
        # never reused for another set while the entry exists.
        found = self._derivations.get(id(criteria))
        if found is None or found[0] is not criteria:
            # Two threads may both build one; they are alike, and either is kept.
            found = self._derivations[id(criteria)] = (criteria, Derivations(criteria, self.vocabularies))
        return found[1]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_derivations", {})
        ordered = tuple(sorted(self.sets, key=lambda c: (c.id, version_key(c.version))))
        newest = {c.id: c for c in ordered}  # ascending versions: the last one of each id stays
        by_code: dict[str, list[CriteriaSet]] = {}
        for c in newest.values():
            for code in c.service_codes:
                by_code.setdefault(code, []).append(c)
        object.__setattr__(self, "_all", ordered)
        object.__setattr__(self, "_current_by_code", {k: tuple(v) for k, v in by_code.items()})

    def all(self) -> tuple[CriteriaSet, ...]:
        """All sets, ordered by id then version."""
        return self._all

    def current(self) -> tuple[CriteriaSet, ...]:
        """The highest version of each id, ordered by id."""
        return tuple({c.id: c for c in self._all}.values())

    def get(self, criteria_id: str, version: str | None = None) -> CriteriaSet | None:
        """A set by id and version (default: the highest version)."""
        matches = [c for c in self.all() if c.id == criteria_id and (version is None or c.version == version)]
        return matches[-1] if matches else None

    def select(self, line: LineFacts) -> CriteriaSet | None:
        """The criteria set that applies to ``line``, or None.

        Among the current versions covering the line's service code, line of business and a
        diagnosis, the most specific wins: the longest matching diagnosis pattern (an exact code
        beats a prefix of the same length), then fewer lines of business, then fewer service codes,
        then the smaller id, so the choice never depends on file order. A newer version that stopped
        covering a line is not overridden by an older one that still does."""
        index: dict[str, tuple[tuple[frozenset[str], frozenset[str], tuple[str, ...], CriteriaSet], ...]] | None
        index = self.__dict__.get("_select_index")
        if index is None:
            # Built once, on first use; not a field. Per code: (lines of business, exact codes,
            # prefix stems longest first, set), the same answers as CriteriaSet.covers and
            # diagnosis_specificity without redoing their work for every line.
            index = {code: tuple((c.lines_of_business,
                                  frozenset(p for p in c.diagnosis_patterns if not p.endswith("*")),
                                  tuple(sorted((p[:-1] for p in c.diagnosis_patterns if p.endswith("*")),
                                               key=len, reverse=True)), c) for c in sets)
                     for code, sets in self._current_by_code.items()}
            object.__setattr__(self, "_select_index", index)
        entries = index.get(line.procedure_code.strip().upper())
        if not entries:
            return None
        codes = [normalize_diagnosis(d) for d in line.diagnoses]
        best: tuple[tuple[int, int, int, int, str], CriteriaSet] | None = None
        for lobs, exact, stems, c in entries:
            if line.line_of_business not in lobs:
                continue
            specificity: tuple[int, int] | None = None
            for code in codes:
                score = (len(code), 1) if code in exact else None
                for stem in stems:
                    if code.startswith(stem):
                        if score is None or (len(stem), 0) > score:
                            score = (len(stem), 0)
                        break
                if score is not None and (specificity is None or score > specificity):
                    specificity = score
            if specificity is not None:
                key = (-specificity[0], -specificity[1], len(lobs), len(c.service_codes), c.id)
                if best is None or key < best[0]:
                    best = (key, c)
        return best[1] if best is not None else None


def load_library(directory: Path | str) -> CriteriaLibrary:
    """Load every ``*.yaml``/``*.yml`` file of ``directory``, and the vocabulary files of its
    ``vocabulary/`` folder. Raises :class:`CriteriaLibraryError` listing the problems of all files
    (not just the first), including an id and version defined twice, a missing directory or one
    without criteria files, a vocabulary that does not fit the criteria (:func:`vocabulary_problems`),
    and a criteria set whose worked examples no longer hold once facts are derived."""
    root = Path(directory)
    if not root.is_dir():
        raise CriteriaLibraryError([CriteriaError(root, "", "is not a directory")])
    paths = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not paths:
        raise CriteriaLibraryError([CriteriaError(root, "", "contains no criteria files (*.yaml)")])
    errors: list[ConfigFileError] = []
    loaded: dict[str, tuple[Path, CriteriaSet]] = {}
    for path in paths:
        try:
            criteria = load_criteria(path)
        except CriteriaError as exc:
            errors.append(exc)
            continue
        if criteria.key in loaded:
            other = loaded[criteria.key][0].name
            errors.append(CriteriaError(path, "version", f"{criteria.id} version {criteria.version} is also "
                                                         f"defined in {other}; give changed criteria a new version"))
            continue
        loaded[criteria.key] = (path, criteria)
    vocabularies = _load_vocabularies(root, errors)
    if errors:
        raise CriteriaLibraryError(errors)
    library = CriteriaLibrary(tuple(c for _, c in loaded.values()), tuple(v for _, v in vocabularies.values()))
    files = {key: path for key, (path, _) in (*loaded.items(), *vocabularies.items())}
    problems = vocabulary_problems(library, files)
    if problems:
        raise CriteriaLibraryError(problems)
    for c in library.current():
        logger.debug("criteria %s version %s (sha256 %s)", c.id, c.version, c.content_hash[:12])
    return library


def _load_vocabularies(root: Path, errors: list[ConfigFileError]) -> dict[str, tuple[Path, Vocabulary]]:
    """Each vocabulary file of the criteria directory by key, as far as it loads (the problems of the
    others appended to ``errors``); one id may be defined once."""
    vocabularies: dict[str, tuple[Path, Vocabulary]] = {}
    for path in vocabulary_files(root):
        try:
            vocabulary = load_vocabulary(path)
        except VocabularyError as exc:
            errors.append(exc)
            continue
        if vocabulary.id in {v.id for _, v in vocabularies.values()}:
            errors.append(VocabularyError(path, "id", f"vocabulary {vocabulary.id!r} is defined twice"))
            continue
        vocabularies[vocabulary.key] = (path, vocabulary)
    return vocabularies


def vocabulary_problems(library: CriteriaLibrary, paths: Mapping[str, Path]) -> list[ConfigFileError]:
    """The vocabularies held to the library's current sets (``paths``: the file of each criteria and
    vocabulary key): unknown facts, contradictions, worked examples that fail, and criteria examples
    whose outcome changes once facts are derived."""
    current = library.current()
    found: list[ConfigFileError] = []
    faulty: set[str] = set()
    for p in check_vocabularies(library.vocabularies, current):
        owner = p.criteria or p.vocabulary
        error: type[ConfigFileError] = CriteriaError if p.criteria else VocabularyError
        found.append(error(paths.get(owner, Path(owner)), p.field, p.problem))
        faulty.add(p.vocabulary)
    by_id = {c.id: c for c in current}
    matcher = PythonMatcher()
    for v in library.vocabularies:
        if v.key in faulty:
            continue  # its examples would only repeat what is wrong with its mappings
        for i, e in enumerate(v.examples):
            criteria = by_id.get(e.criteria)
            if criteria is None:
                found.append(VocabularyError(paths[v.key], f"examples[{i}].criteria", f"{e.criteria!r}: no such "
                                                                                      "criteria set"))
                continue
            found += [VocabularyError(paths[v.key], f"examples[{i}]", f"{e.name!r} {problem}")
                      for problem in run_example(criteria, library.derivations(criteria), e, matcher)]
    for c in current:
        derivations = library.derivations(c)
        if not derivations:
            continue
        for i, ex in enumerate(c.examples):
            got = evaluate(c, example_line(c, ex), matcher, derivations)
            wrong_missing = ex.missing_facts is not None and tuple(sorted(ex.missing_facts)) != got.missing_facts
            if got.outcome is not ex.expect or wrong_missing:
                found.append(CriteriaError(paths.get(c.key, Path(c.id)), f"examples[{i}].expect",
                                           f"{ex.name!r} expects {ex.expect.value}"
                                           + (f" (missing {sorted(ex.missing_facts)})" if wrong_missing and
                                              ex.missing_facts is not None else "")
                                           + f"; with the vocabulary's derived facts the criteria give "
                                             f"{got.outcome.value} ({got.summary})"))
    return found
