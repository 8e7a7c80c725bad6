"""The criteria engine: evaluation semantics, the matcher contract (run against the reference
PythonMatcher and the durable-rules matcher alike), the shipped library and its selection."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping

import pytest

from services.review.adapters.criteria_loader import CriteriaLibrary
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.criteria import (
    AllOf,
    AnyOf,
    ConditionMatcher,
    ConditionStatus,
    CriteriaSet,
    FactType,
    InvalidCriteria,
    LineFacts,
    Outcome,
    PythonMatcher,
    evaluate,
    example_line,
    version_key,
)
from tests.unit.review.builders import cond, criteria, line, shipped_library, spec

LIBRARY = shipped_library()
SHIPPED_EXAMPLES = [(c, ex) for c in LIBRARY.all() for ex in c.examples]
REQUIRED_FILES = {"imaging-mri-lumbar-spine", "imaging-mri-knee", "therapy-pt-ot-visits", "sleep-study-psg"}


def lumbar_like(**overrides: object) -> CriteriaSet:
    """The lumbar MRI logic in miniature: a red flag or two six-week durations."""
    return criteria(
        (spec("weeks", required=True, unit="weeks"), spec("therapy_weeks", required=True, unit="weeks"),
         spec("cauda_equina", "bool"), spec("cancer", "bool")),
        (cond("ce", ("cauda_equina", "eq", True)), cond("ca", ("cancer", "eq", True)),
         cond("six_weeks", ("weeks", "ge", 6)), cond("six_weeks_therapy", ("therapy_weeks", "ge", 6))),
        AnyOf(("ce", "ca", AllOf(("six_weeks", "six_weeks_therapy")))), urgent="ce", **overrides)  # type: ignore[arg-type]


def run(c: CriteriaSet, facts: Mapping[str, object], matcher: ConditionMatcher | None = None) -> tuple[
        Outcome, tuple[str, ...]]:
    got = evaluate(c, line(facts), matcher or PythonMatcher())
    return got.outcome, got.missing_facts


# -- outcome semantics -----------------------------------------------------------------------------

def test_urgent_comes_before_approve_and_ignores_missing_required_facts() -> None:
    assert run(lumbar_like(), {"cauda_equina": True}) == (Outcome.MEETS_CRITERIA_URGENT, ())


def test_approve_rule_true_despite_other_missing_facts() -> None:
    assert run(lumbar_like(), {"cancer": True}) == (Outcome.MEETS_CRITERIA, ())
    assert run(lumbar_like(), {"weeks": 6, "therapy_weeks": 6.0}) == (Outcome.MEETS_CRITERIA, ())


def test_missing_required_facts_pend_even_when_the_rule_is_decided() -> None:
    facts = {"cauda_equina": False, "cancer": False, "weeks": 2}
    assert run(lumbar_like(), facts) == (Outcome.PEND_MISSING_INFORMATION, ("therapy_weeks",))


def test_pend_names_only_facts_that_could_still_change_the_result() -> None:
    # The durations decide their branch (false); only the unanswered red flags could approve.
    facts = {"weeks": 2, "therapy_weeks": 0}
    assert run(lumbar_like(), facts) == (Outcome.PEND_MISSING_INFORMATION, ("cancer", "cauda_equina"))


def test_everything_missing_pends_for_every_fact_sorted() -> None:
    assert run(lumbar_like(), {}) == (Outcome.PEND_MISSING_INFORMATION,
                                      ("cancer", "cauda_equina", "therapy_weeks", "weeks"))


def test_refer_when_everything_is_known_and_nothing_approves() -> None:
    got = evaluate(lumbar_like(), line({"cauda_equina": False, "cancer": False, "weeks": 8, "therapy_weeks": 1}),
                   PythonMatcher())
    assert got.outcome is Outcome.REFER_TO_NURSE
    assert got.missing_facts == ()
    assert "nurse" in got.summary
    # The nearest path (weeks met, therapy not), never the red flags that merely did not apply.
    assert "the request shows six weeks, but not six weeks therapy (therapy_weeks=1 weeks stated)" in got.summary
    assert " ce" not in got.summary
    assert " ca" not in got.summary


def test_no_action_rule_is_tried_first() -> None:
    c = criteria((spec("done", required=True), spec("asked", required=True), spec("signed", "bool")),
                 (cond("first", ("done", "eq", 0)), cond("small", ("asked", "le", 12)),
                  cond("signed_plan", ("signed", "eq", True))),
                 AllOf(("small", "signed_plan")), no_action=AllOf(("first", "small")))
    assert run(c, {"done": 0, "asked": 10, "signed": True}) == (Outcome.NO_ACTION_REQUIRED, ())
    assert run(c, {"done": 4, "asked": 10, "signed": True}) == (Outcome.MEETS_CRITERIA, ())
    assert run(c, {"done": 0, "asked": 20, "signed": True}) == (Outcome.REFER_TO_NURSE, ())
    # "done" unknown: it could still make the line need no authorization.
    assert run(c, {"asked": 10, "signed": False}) == (Outcome.PEND_MISSING_INFORMATION, ("done",))


def test_condition_statuses_and_observed_facts() -> None:
    got = evaluate(lumbar_like(), line({"cauda_equina": False, "weeks": 8.0, "therapy_weeks": "lots"}),
                   PythonMatcher())
    by_id = {r.condition_id: r for r in got.conditions}
    assert by_id["ce"].status is ConditionStatus.UNMET
    assert by_id["ce"].observed == ("cauda_equina=false",)
    assert by_id["ca"].status is ConditionStatus.MISSING
    assert by_id["ca"].observed == ()
    assert by_id["six_weeks"].status is ConditionStatus.MET
    assert by_id["six_weeks"].observed == ("weeks=8 weeks",)
    # A fact of the wrong type is unusable: the condition is missing it, and says why.
    assert by_id["six_weeks_therapy"].status is ConditionStatus.MISSING
    assert by_id["six_weeks_therapy"].observed == ("therapy_weeks=lots (unusable: not a number)",)
    assert got.outcome is Outcome.PEND_MISSING_INFORMATION
    assert got.missing_facts == ("cancer", "therapy_weeks")
    assert got.criteria_id
    assert got.criteria_version == "1"
    assert got.criteria_hash


def test_missing_takes_precedence_over_a_matcher_that_claims_too_much() -> None:
    class Boastful:
        def matched(self, criteria: CriteriaSet, line: LineFacts) -> frozenset[str]:
            return frozenset(c.id for c in criteria.conditions)

    got = evaluate(lumbar_like(), line({"weeks": 9}), Boastful())
    statuses = {r.condition_id: r.status for r in got.conditions}
    assert statuses == {"ce": ConditionStatus.MISSING, "ca": ConditionStatus.MISSING,
                        "six_weeks": ConditionStatus.MET, "six_weeks_therapy": ConditionStatus.MISSING}
    assert got.outcome is Outcome.PEND_MISSING_INFORMATION


def test_the_matcher_sees_only_declared_well_typed_facts() -> None:
    seen: list[Mapping[str, object]] = []

    class Spy:
        def matched(self, criteria: CriteriaSet, line: LineFacts) -> frozenset[str]:
            seen.append(dict(line.facts))
            return frozenset()

    evaluate(lumbar_like(), line({"weeks": 3, "therapy_weeks": True, "cancer": "no", "undeclared": 1}), Spy())
    assert seen == [{"weeks": 3}]


def test_summaries_are_single_plain_sentences() -> None:
    c = lumbar_like(title="lumbar spine MRI")
    cases: list[dict[str, object]] = [
        {"cauda_equina": True}, {"cancer": True}, {},
        {"cauda_equina": False, "cancer": False, "weeks": 1, "therapy_weeks": 1}]
    for facts in cases:
        summary = evaluate(c, line(facts), PythonMatcher()).summary
        assert summary.endswith(".")
        assert summary.count(". ") == 0
        assert "lumbar spine MRI" in summary


def test_no_outcome_is_adverse() -> None:
    assert {o.value for o in Outcome} == {"meets_criteria", "meets_criteria_urgent", "refer_to_nurse",
                                          "pend_missing_information", "no_action_required"}


# -- construction invariants -----------------------------------------------------------------------

@pytest.mark.parametrize(("build", "field", "words"), [
    (lambda: criteria((spec("flag", "bool"),), (cond("c", ("flag", "ge", True)),), "c"),
     "conditions[0].when.op", "does not apply to bool"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", 1)),), AnyOf(("c", "nope"))),
     "outcomes.approve_when.any_of[1]", "'nope' is not a defined condition"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", 1)), cond("d", ("n", "le", 9))), "c"),
     "conditions[1].id", "used by no outcome rule"),
    (lambda: criteria((spec("n"), spec("unused", "bool")), (cond("c", ("n", "ge", 1)),), "c"),
     "facts[1].name", "used by no condition"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "in", 3)),), "c"), "conditions[0].when.value", "a list"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", "six")),), "c"), "conditions[0].when.value",
     "is not a number"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", 1)),), "c", codes=("7214",)), "service_codes",
     "neither a CPT"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", 1)),), "c", patterns=("M54.5*",)),
     "diagnosis_patterns[0]", "neither a normalized"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", 1)),), "c", lobs=("dental",)), "lines_of_business",
     "'dental'"),
    (lambda: criteria((spec("n"),), (cond("c", ("n", "ge", 1)),), "c", version="v2"), "version", "dotted number"),
])
def test_inconsistent_sets_are_refused(build: object, field: str, words: str) -> None:
    with pytest.raises(InvalidCriteria) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field
    assert words in caught.value.problem


def test_versions_order_numerically() -> None:
    assert sorted(["2026.10", "2026.9", "2025.12", "2026.1"], key=version_key) == [
        "2025.12", "2026.1", "2026.9", "2026.10"]


# -- the matcher contract --------------------------------------------------------------------------

def _typed_set() -> CriteriaSet:
    """Every fact type and operator, including a conjunction and awkward fact names."""
    facts = (spec("score"), spec("onset", "date"), spec("side", "text"), spec("flag", "bool"),
             spec("matches"), spec("id", "text"), spec("sid", "bool"))
    conditions = (
        cond("score_gt_10", ("score", "gt", 10)), cond("score_ge_10", ("score", "ge", 10)),
        cond("score_lt_0_5", ("score", "lt", 0.5)), cond("score_le_0", ("score", "le", 0)),
        cond("score_eq_7_5", ("score", "eq", 7.5)), cond("score_ne_7_5", ("score", "ne", 7.5)),
        cond("score_band", ("score", "ge", 10), ("score", "le", 24)),
        cond("score_in", ("score", "in", (1, 2, 3))), cond("score_not_in", ("score", "not_in", (1, 2, 3))),
        cond("recent", ("onset", "ge", dt.date(2026, 1, 1))), cond("before", ("onset", "lt", dt.date(2025, 6, 30))),
        cond("left", ("side", "eq", "left")), cond("not_right", ("side", "ne", "right")),
        cond("side_in", ("side", "in", ("left", "both"))), cond("side_not_in", ("side", "not_in", ("left", "both"))),
        cond("flag_true", ("flag", "eq", True)), cond("flag_not_true", ("flag", "ne", True)),
        cond("matches_big", ("matches", "ge", 100)), cond("id_x", ("id", "eq", "x")),
        cond("sid_set", ("sid", "eq", True)),
        cond("mixed", ("flag", "eq", False), ("side", "in", ("left", "right")), ("score", "lt", 1000)),
    )
    return criteria(facts, conditions, AnyOf(tuple(c.id for c in conditions)))


TYPED = _typed_set()


class MatcherContract:
    """What every ConditionMatcher must do; subclasses supply the matcher."""

    def make_matcher(self) -> ConditionMatcher:
        raise NotImplementedError

    @pytest.mark.parametrize(("c", "example"), SHIPPED_EXAMPLES,
                             ids=[f"{c.id}:{ex.name}" for c, ex in SHIPPED_EXAMPLES])
    def test_shipped_examples(self, c: CriteriaSet, example: object) -> None:
        from services.review.domain.criteria import Example
        assert isinstance(example, Example)
        ex_line = example_line(c, example)
        assert LIBRARY.select(ex_line) is c
        got = evaluate(c, ex_line, self.make_matcher())
        assert got.outcome is example.expect, got.summary
        if example.missing_facts is not None:
            assert got.missing_facts == tuple(sorted(example.missing_facts))

    @pytest.mark.parametrize(("facts", "expected"), [
        ({"score": 10}, {"score_ge_10", "score_band", "score_ne_7_5", "score_not_in"}),
        ({"score": 10.000001}, {"score_gt_10", "score_ge_10", "score_band", "score_ne_7_5", "score_not_in"}),
        ({"score": 9.999999}, {"score_ne_7_5", "score_not_in"}),
        ({"score": 7.5}, {"score_eq_7_5", "score_not_in"}),
        ({"score": 2}, {"score_in", "score_ne_7_5"}),
        ({"score": 0}, {"score_lt_0_5", "score_le_0", "score_ne_7_5", "score_not_in"}),
        ({"score": 1e-9}, {"score_lt_0_5", "score_ne_7_5", "score_not_in"}),
        ({"score": -1e-9}, {"score_lt_0_5", "score_le_0", "score_ne_7_5", "score_not_in"}),
        ({"score": 1e20}, {"score_gt_10", "score_ge_10", "score_ne_7_5", "score_not_in"}),
        ({"score": 25}, {"score_gt_10", "score_ge_10", "score_ne_7_5", "score_not_in"}),
        ({"onset": dt.date(2026, 1, 1)}, {"recent"}),
        ({"onset": dt.date(2025, 6, 29)}, {"before"}),
        ({"side": "left"}, {"left", "not_right", "side_in"}),
        ({"side": "right"}, {"side_not_in"}),
        ({"side": 'a "quoted" \\ side, é'}, {"not_right", "side_not_in"}),
        ({"flag": True}, {"flag_true"}),
        ({"flag": False}, {"flag_not_true"}),
        ({"flag": False, "side": "right", "score": 999}, {"flag_not_true", "side_not_in", "mixed", "score_gt_10",
                                                          "score_ge_10", "score_ne_7_5", "score_not_in"}),
        ({"matches": 100, "id": "x", "sid": True}, {"matches_big", "id_x", "sid_set"}),
        ({}, set()),
    ])
    def test_predicates(self, facts: dict[str, object], expected: set[str]) -> None:
        assert self.make_matcher().matched(TYPED, line(facts)) == expected

    @pytest.mark.parametrize("facts", [
        {"score": "12"}, {"score": True}, {"score": math.nan}, {"score": math.inf}, {"flag": 1},
        {"onset": dt.datetime(2026, 2, 1, 9, 0)},  # noqa: DTZ001 - a time, naive or not, is not a date
        {"onset": "2026-02-01"}, {"side": 3}, {"score": None},
    ])
    def test_unusable_facts_never_match(self, facts: dict[str, object]) -> None:
        assert self.make_matcher().matched(TYPED, line(facts)) == frozenset()

    def test_agrees_with_the_reference_on_random_lines(self) -> None:
        rng = random.Random(20260401)
        matcher, reference = self.make_matcher(), PythonMatcher()
        for c in [*LIBRARY.all(), TYPED]:
            thresholds = sorted({float(p.value) for cond_ in c.conditions for p in cond_.predicates
                                 if isinstance(p.value, int | float) and not isinstance(p.value, bool)})
            for _ in range(300):
                facts = {f.name: _random_value(rng, f.type, thresholds) for f in c.facts if rng.random() < 0.8}
                assert evaluate(c, line(facts), matcher) == evaluate(c, line(facts), reference), facts


def _random_value(rng: random.Random, ftype: FactType, thresholds: list[float]) -> object:
    if rng.random() < 0.05:
        return rng.choice(["junk", None, math.nan, 3, True])
    if ftype is FactType.BOOL:
        return rng.random() < 0.5
    if ftype is FactType.NUMBER:
        near = rng.choice(thresholds or [0.0]) + rng.choice([-1, -1e-9, 0, 1e-9, 1, 0.5])
        return rng.choice([near, rng.uniform(-5, 40), float(rng.randint(0, 30)), 0.0])
    if ftype is FactType.DATE:
        return dt.date(2025, 1, 1) + dt.timedelta(days=rng.randint(0, 600))
    return rng.choice(["left", "right", "both", "x", ""])


class TestPythonMatcher(MatcherContract):
    def make_matcher(self) -> ConditionMatcher:
        return PythonMatcher()


class TestDurableRulesMatcher(MatcherContract):
    def make_matcher(self) -> ConditionMatcher:
        return DurableRulesMatcher()


# -- the shipped library ---------------------------------------------------------------------------

def test_required_criteria_files_are_shipped_and_cite_sources() -> None:
    assert {c.id for c in LIBRARY.all()} >= REQUIRED_FILES
    assert len(set(LIBRARY.all())) == len(LIBRARY.all())  # hashable, and distinct
    for c in LIBRARY.all():
        assert c.sources
        assert all(len(s) > 20 for s in c.sources)
        assert len(c.content_hash) == 64


@pytest.mark.parametrize("c", LIBRARY.all(), ids=lambda c: c.id)
def test_each_shipped_set_has_an_example_of_every_outcome_it_can_give(c: CriteriaSet) -> None:
    possible = {Outcome.MEETS_CRITERIA, Outcome.REFER_TO_NURSE, Outcome.PEND_MISSING_INFORMATION}
    if c.outcomes.urgent_when is not None:
        possible.add(Outcome.MEETS_CRITERIA_URGENT)
    if c.outcomes.no_action_when is not None:
        possible.add(Outcome.NO_ACTION_REQUIRED)
    assert {ex.expect for ex in c.examples} == possible


def test_lumbar_mri_is_selected_for_low_back_pain_lines() -> None:
    for code in ("72148", "72149", "72158"):
        for dx in ("M5450", "M5416", "M5116", "M48062", "M5126"):
            for lob in ("medicare_advantage", "medicaid", "commercial", "workers_comp"):
                chosen = LIBRARY.select(line({}, code=code, diagnoses=("Z0000", dx), lob=lob))
                assert chosen is not None
                assert chosen.id == "imaging-mri-lumbar-spine"
    dotted = LIBRARY.select(line({}, diagnoses=("m54.16",)))  # normalized before matching
    assert dotted is not None
    assert dotted.id == "imaging-mri-lumbar-spine"


@pytest.mark.parametrize(("code", "diagnoses", "lob"), [
    ("27447", ("M1711",), "commercial"),      # no criteria set covers knee arthroplasty
    ("72148", ("J449",), "commercial"),       # lumbar MRI for a diagnosis the set does not list
    ("97110", ("M5416",), "workers_comp"),    # therapy set does not cover workers' comp
    ("G0399", ("G4731",), "medicare_advantage"),  # central sleep apnea: not for a home test
])
def test_uncovered_lines_select_nothing(code: str, diagnoses: tuple[str, ...], lob: str) -> None:
    assert LIBRARY.select(line({}, code=code, diagnoses=diagnoses, lob=lob)) is None


def _covering(cid: str, version: str = "1", patterns: tuple[str, ...] = ("M*",),
              lobs: tuple[str, ...] = ("commercial",), codes: tuple[str, ...] = ("72148",)) -> CriteriaSet:
    return criteria((spec("n"),), (cond("c", ("n", "ge", 1)),), "c", cid=cid, version=version, patterns=patterns,
                    lobs=lobs, codes=codes)


def test_selection_prefers_the_most_specific_set() -> None:
    broad = _covering("broad", patterns=("M*",))
    narrow = _covering("narrow", patterns=("M545*",))
    exact = _covering("exact", patterns=("M5450",))
    library = CriteriaLibrary((broad, narrow, exact))
    assert library.select(line({}, diagnoses=("M5450",))) is exact
    assert library.select(line({}, diagnoses=("M5459",))) is narrow
    assert library.select(line({}, diagnoses=("M1711",))) is broad
    fewer_lobs = _covering("fewer-lobs", lobs=("commercial",))
    more_lobs = _covering("a-more-lobs", lobs=("commercial", "medicaid"))
    assert CriteriaLibrary((more_lobs, fewer_lobs)).select(line({})) is fewer_lobs


def test_selection_takes_the_highest_version_and_is_deterministic() -> None:
    versions = [_covering("same", version=v) for v in ("2026.9", "2026.10", "2025.1")]
    for order in (versions, versions[::-1]):
        chosen = CriteriaLibrary(tuple(order)).select(line({}))
        assert chosen is not None
        assert chosen.version == "2026.10"
    tie_a, tie_b = _covering("tie-a"), _covering("tie-b")
    assert CriteriaLibrary((tie_b, tie_a)).select(line({})) is tie_a
    # A newer version that stopped covering a code is not overridden by the older one.
    old = _covering("moved", version="1", codes=("72148",))
    new = _covering("moved", version="2", codes=("72149",))
    library = CriteriaLibrary((old, new))
    assert library.select(line({}, code="72148")) is None
    assert library.get("moved") is new
    assert library.get("moved", "1") is old
    assert library.all() == (old, new)
    assert library.current() == (new,)
