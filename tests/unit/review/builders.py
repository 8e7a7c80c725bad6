"""Hand-built criteria sets and lines for the review tests.

Every set gets a fresh id: durable-rules registers a ruleset name once per process, and the
matcher refuses a known name with different content."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.domain.criteria import (
    Condition,
    CriteriaSet,
    FactSpec,
    FactType,
    FactValue,
    LineFacts,
    Op,
    OutcomeRules,
    Predicate,
    PredicateValue,
    RuleTerm,
)

SHIPPED_DIR = Path(__file__).resolve().parents[3] / "services" / "review" / "criteria"


def shipped_library() -> CriteriaLibrary:
    return load_library(SHIPPED_DIR)


def spec(name: str, ftype: str = "number", *, required: bool = False, unit: str | None = None) -> FactSpec:
    return FactSpec(name=name, type=FactType(ftype), description=f"the {name.replace('_', ' ')}", unit=unit,
                    required=required)


def cond(cid: str, *predicates: tuple[str, str, PredicateValue]) -> Condition:
    return Condition(id=cid, description=cid.replace("_", " "),
                     predicates=tuple(Predicate(fact=f, op=Op(op), value=v) for f, op, v in predicates))


def criteria(facts: tuple[FactSpec, ...], conditions: tuple[Condition, ...], approve: RuleTerm, *,
             urgent: RuleTerm | None = None, no_action: RuleTerm | None = None, cid: str | None = None,
             version: str = "1", codes: tuple[str, ...] = ("72148",), patterns: tuple[str, ...] = ("M545*",),
             lobs: tuple[str, ...] = ("commercial",), title: str = "test") -> CriteriaSet:
    return CriteriaSet(
        id=cid or f"test-{uuid.uuid4().hex[:12]}", version=version, title=title, sources=("a test",),
        lines_of_business=frozenset(lobs), service_codes=frozenset(codes), diagnosis_patterns=patterns,
        facts=facts, conditions=conditions,
        outcomes=OutcomeRules(approve_when=approve, urgent_when=urgent, no_action_when=no_action),
        content_hash=uuid.uuid4().hex)


def line(facts: Mapping[str, object], *, code: str = "72148", diagnoses: tuple[str, ...] = ("M5450",),
         lob: str = "commercial") -> LineFacts:
    # Lines from the wire may carry anything; the engine must cope, hence Mapping[str, object].
    values: Mapping[str, FactValue] = facts  # type: ignore[assignment]
    return LineFacts(procedure_code=code, diagnoses=diagnoses, line_of_business=lob, member_state="CA",
                     urgency="standard", review_type="prospective", units=1, place_of_service=22, facts=values)
