"""The specific reason a line does not meet its criteria: the path through the criteria's approval
rule that came nearest to being met, and what was unmet or missing on it. Pure: no I/O.

CMS-0057-F (and 42 CFR 422.568(e)(2), 438.404(b)(2)) require an adverse notice to give the specific
reason. A criteria set's approval rule is a tree of ``any_of``/``all_of`` over conditions; each way
of satisfying it is a *path* (a conjunction of conditions: the rule in disjunctive normal form).
Naming the first unmet condition of an ``any_of`` would tell a member whose MRI was refused for too
little conservative therapy that "suspected cauda equina syndrome" was missing: an alternative that
simply did not apply, never what the request was about. So:

* a path is *merely absent* when none of its conditions is met and every condition on it is a
  finding stated absent (a yes/no fact answered no, e.g. ``suspected_cauda_equina = false``):
  nothing on it was ever claimed;
* the nearest path is chosen among the others: the most conditions met, then the fewest unmet or
  missing, then the fewest missing, then the order the criteria declare them in;
* when every path is merely absent (nothing claimed at all), the answer names them all as
  alternatives that did not apply ("none of these was shown").
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.review.domain.criteria import (
    AllOf,
    AnyOf,
    Condition,
    ConditionResult,
    ConditionStatus,
    CriteriaSet,
    FactType,
    Op,
    RuleTerm,
)

#: More paths than this (a pathological rule) are not enumerated; the first ones are used.
MAX_PATHS = 256


@dataclass(frozen=True)
class NearestPath:
    met: tuple[ConditionResult, ...]
    unmet: tuple[ConditionResult, ...]
    missing: tuple[ConditionResult, ...]
    not_applicable: tuple[str, ...]  # descriptions of alternatives that merely did not apply
    summary: str  # one plain-language sentence without a full stop inside


def rule_paths(term: RuleTerm) -> list[tuple[str, ...]]:
    """The rule in disjunctive normal form: each path is the condition ids that together satisfy
    it, in the order the rule names them."""
    if isinstance(term, str):
        return [(term,)]
    if isinstance(term, AnyOf):
        out: list[tuple[str, ...]] = []
        for child in term.terms:
            out.extend(rule_paths(child))
        return _unique(out)[:MAX_PATHS]
    if isinstance(term, AllOf):
        combos: list[tuple[str, ...]] = [()]
        for child in term.terms:
            combos = [tuple(dict.fromkeys(a + b)) for a, b in itertools.product(combos, rule_paths(child))][:MAX_PATHS]
        return _unique(combos)
    raise TypeError(f"not a rule term: {term!r}")


def _unique(paths: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return list(dict.fromkeys(paths))


def _is_finding(condition: Condition, criteria: CriteriaSet) -> bool:
    """A yes/no finding: every predicate asks whether a boolean fact is true."""
    for p in condition.predicates:
        if criteria.fact(p.fact).type is not FactType.BOOL:
            return False
        if not ((p.op is Op.EQ and p.value is True) or (p.op is Op.NE and p.value is False)):
            return False
    return True


_PATHS_ATTRIBUTE = "_nearest_paths"
_MET, _UNMET = ConditionStatus.MET, ConditionStatus.UNMET


def _paths(criteria: CriteriaSet) -> tuple[tuple[str, ...], ...]:
    """``rule_paths`` of the approval rule, computed once per criteria set (the rule never changes:
    the set is frozen) and kept on it like the evaluation plan, so that a line does not pay for
    enumerating the paths again."""
    paths: tuple[tuple[str, ...], ...] | None = criteria.__dict__.get(_PATHS_ATTRIBUTE)
    if paths is None:
        # Not a field: equality, hashing and repr ignore it; two threads may both build it, alike.
        paths = tuple(rule_paths(criteria.outcomes.approve_when))
        object.__setattr__(criteria, _PATHS_ATTRIBUTE, paths)
    return paths


def nearest_path(criteria: CriteriaSet, results: Sequence[ConditionResult]) -> NearestPath | None:
    """The nearest path of ``criteria``'s approval rule given the line's condition ``results``;
    None when a path is fully met (the line meets the criteria)."""
    by_id: Mapping[str, ConditionResult] = {r.condition_id: r for r in results}
    scored = []
    absent: list[tuple[str, ...]] = []
    for order, path in enumerate(_paths(criteria)):
        met_l: list[ConditionResult] = []
        unmet_l: list[ConditionResult] = []
        missing_l: list[ConditionResult] = []
        for c in path:
            r = by_id.get(c)
            if r is not None:
                (met_l if r.status is _MET else unmet_l if r.status is _UNMET else missing_l).append(r)
        if not unmet_l and not missing_l:
            return None
        met, unmet, missing = tuple(met_l), tuple(unmet_l), tuple(missing_l)
        if not met and not missing and all(_is_finding(criteria.condition(r.condition_id), criteria) for r in unmet):
            absent.append(path)
            continue
        scored.append(((-len(met), len(unmet) + len(missing), len(missing), order), met, unmet, missing))
    if not scored:
        names = tuple(dict.fromkeys(" and ".join(criteria.condition(c).description for c in path) for path in absent))
        return NearestPath((), (), (), names, f"the request shows none of: {'; '.join(names)}")
    _, met, unmet, missing = min(scored, key=lambda item: item[0])
    return NearestPath(met, unmet, missing, (), _summary(met, unmet, missing))


def _stated(r: ConditionResult) -> str:
    return f"{r.description} ({', '.join(r.observed)} stated)" if r.observed else r.description


def _summary(met: Sequence[ConditionResult], unmet: Sequence[ConditionResult],
             missing: Sequence[ConditionResult]) -> str:
    parts = []
    if met:
        parts.append("the request shows " + _join([r.description for r in met], "and"))
    if unmet:
        shortfall = _join([_stated(r) for r in unmet], "or")
        parts.append(f"but not {shortfall}" if met else f"the request does not show {shortfall}")
    if missing:
        asked = _join([r.description for r in missing], "or")
        parts.append(f"and does not tell us about {asked}" if parts else f"the request does not tell us about {asked}")
    return ", ".join(parts)


def _join(items: Sequence[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"
