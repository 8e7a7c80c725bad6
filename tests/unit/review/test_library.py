"""The criteria library shipped in services/review/criteria: it loads, it covers what plans require
prior authorization for, every worked example holds under both matchers, every set shows each
outcome it can give, cites its sources, and is the one selected for its own examples."""

from __future__ import annotations

import dataclasses
import functools
import re

import pytest

from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.bootstrap import DEFAULT_CRITERIA_DIR
from services.review.domain.criteria import (
    CriteriaSet,
    Example,
    LineFacts,
    Outcome,
    PythonMatcher,
    evaluate,
    example_line,
)


@functools.cache
def _library() -> CriteriaLibrary:
    return load_library(DEFAULT_CRITERIA_DIR)


@functools.cache
def _durable() -> DurableRulesMatcher:
    return DurableRulesMatcher(_library().all())


def _sets() -> tuple[CriteriaSet, ...]:
    return _library().current()


def _examples() -> list[tuple[CriteriaSet, Example]]:
    return [(c, ex) for c in _sets() for ex in c.examples]


def _example_id(pair: tuple[CriteriaSet, Example]) -> str:
    return f"{pair[0].id}: {pair[1].name}"


# The categories the issue names, each with the sets that cover it.
ISSUE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "advanced imaging": ("imaging-mri-lumbar-spine", "imaging-mri-brain", "imaging-ct-abdomen-pelvis",
                         "imaging-mri-knee"),
    "musculoskeletal surgery": ("surgery-knee-acl-reconstruction", "surgery-total-shoulder-arthroplasty",
                                "surgery-lumbar-fusion"),
    "sleep studies": ("sleep-study-psg", "sleep-study-home-test"),
    "CPAP": ("sleep-cpap-device",),
    "physical/occupational therapy visits": ("therapy-pt-ot-visits",),
    "chiropractic visits": ("chiropractic-visits",),
    "home health": ("home-health-services",),
    "skilled nursing admission": ("skilled-nursing-admission",),
    "inpatient rehabilitation admission": ("inpatient-rehabilitation-admission",),
    "inpatient concurrent stay": ("inpatient-concurrent-stay",),
    "epidural steroid injections": ("epidural-steroid-injection",),
    "bariatric surgery": ("bariatric-surgery",),
    "genetic testing": ("genetic-testing-brca",),
    "power mobility devices": ("power-mobility-device",),
    "behavioral health intensive outpatient": ("bh-intensive-outpatient",),
    "behavioral health partial hospitalization": ("bh-partial-hospitalization",),
    "workers' comp MTUS therapy": ("mtus-physical-therapy-visits",),
    "workers' comp MTUS chiropractic": ("mtus-chiropractic-visits",),
    "workers' comp MTUS acupuncture": ("mtus-acupuncture-visits",),
}

# What a cited source must contain to be recognizable: a coverage determination, a regulation or
# statute, or a named guideline or society.
CITATION = re.compile(
    r"\b(NCD|LCD)\b|\b[LA]\d{5}\b|\bCFR\b|\bCCR\b|Labor Code|Social Security Act|Benefit Policy Manual"
    r"|Appropriateness Criteria|Clinical Practice Guideline|Guidelines?\b|Recommendation Statement"
    r"|\b(ACR|AAOS|AASM|NASS|NCCN|USPSTF|ASMBS|ASAM|MTUS)\b|Preventive Services Task Force")


def test_the_library_loads_with_at_least_21_sets() -> None:
    sets = _sets()
    assert len(sets) >= 21
    assert len({c.id for c in sets}) == len(sets)
    named_after_id = {p.stem for p in DEFAULT_CRITERIA_DIR.glob("*.yaml")} & {c.id for c in sets}
    assert len(named_after_id) >= len(sets) - 1  # pt-ot-visits.yaml predates the convention
    for c in sets:
        assert c.version == "2026.1"
        assert c.title.strip()
        assert c.notes.strip()


def test_every_category_of_the_issue_is_represented() -> None:
    ids = {c.id for c in _sets()}
    for category, set_ids in ISSUE_CATEGORIES.items():
        assert set_ids, category
        assert set(set_ids) <= ids, f"{category}: {sorted(set(set_ids) - ids)} not in the library"


def test_workers_comp_mtus_sets_are_workers_comp_only() -> None:
    for c in _sets():
        if c.id.startswith("mtus-"):
            assert c.lines_of_business == frozenset({"workers_comp"}), c.id


@pytest.mark.parametrize("pair", _examples(), ids=_example_id)
def test_every_example_holds_with_the_python_matcher(pair: tuple[CriteriaSet, Example]) -> None:
    criteria, example = pair
    got = evaluate(criteria, example_line(criteria, example), PythonMatcher())
    assert got.outcome is example.expect, got.summary
    if example.missing_facts is not None:
        assert got.missing_facts == tuple(sorted(example.missing_facts))


@pytest.mark.parametrize("pair", _examples(), ids=_example_id)
def test_every_example_holds_with_the_durable_rules_matcher(pair: tuple[CriteriaSet, Example]) -> None:
    criteria, example = pair
    line = example_line(criteria, example)
    reference = evaluate(criteria, line, PythonMatcher())
    got = evaluate(criteria, line, _durable())
    assert got.outcome is example.expect, got.summary
    assert got.missing_facts == reference.missing_facts
    assert [r.status for r in got.conditions] == [r.status for r in reference.conditions]
    if example.missing_facts is not None:
        assert got.missing_facts == tuple(sorted(example.missing_facts))


def _possible_outcomes(criteria: CriteriaSet) -> set[Outcome]:
    outcomes = {Outcome.MEETS_CRITERIA, Outcome.REFER_TO_NURSE}
    if criteria.outcomes.urgent_when is not None:
        outcomes.add(Outcome.MEETS_CRITERIA_URGENT)
    if criteria.outcomes.no_action_when is not None:
        outcomes.add(Outcome.NO_ACTION_REQUIRED)
    if criteria.facts:  # any declared fact can be absent from a request
        outcomes.add(Outcome.PEND_MISSING_INFORMATION)
    return outcomes


@pytest.mark.parametrize("criteria", _sets(), ids=lambda c: c.id)
def test_every_set_has_an_example_for_each_outcome_it_can_give(criteria: CriteriaSet) -> None:
    shown = {ex.expect for ex in criteria.examples}
    assert _possible_outcomes(criteria) <= shown, sorted(o.value for o in _possible_outcomes(criteria) - shown)
    for ex in criteria.examples:
        if ex.expect is Outcome.PEND_MISSING_INFORMATION:
            assert ex.missing_facts, f"{ex.name!r} pends without naming the missing facts"


@pytest.mark.parametrize("criteria", _sets(), ids=lambda c: c.id)
def test_every_set_cites_a_recognizable_source(criteria: CriteriaSet) -> None:
    assert any(CITATION.search(source) for source in criteria.sources), criteria.sources


@pytest.mark.parametrize("pair", _examples(), ids=_example_id)
def test_each_example_selects_its_own_set(pair: tuple[CriteriaSet, Example]) -> None:
    criteria, example = pair
    chosen = _library().select(example_line(criteria, example))
    assert chosen is not None
    assert chosen.id == criteria.id, f"selected {chosen.id}"


def test_no_two_current_sets_tie_on_the_same_line() -> None:
    """For every example line, no other current set covers it just as specifically."""
    def rank(c: CriteriaSet, diagnoses: tuple[str, ...]) -> tuple[int, int, int, int]:
        specificity = c.diagnosis_specificity(diagnoses)
        assert specificity is not None
        return (-specificity[0], -specificity[1], len(c.lines_of_business), len(c.service_codes))

    for criteria, example in _examples():
        line = example_line(criteria, example)
        own = rank(criteria, line.diagnoses)
        rivals = [c for c in _sets() if c.id != criteria.id and c.covers(line) and rank(c, line.diagnoses) == own]
        assert not rivals, f"{criteria.id}: {example.name!r} ties with {[c.id for c in rivals]}"


def test_the_inpatient_concurrent_stay_certifies_days_with_a_next_review() -> None:
    stay = _library().get("inpatient-concurrent-stay")
    assert stay is not None
    assert stay.approval is not None
    assert stay.approval.unit == "days"
    assert 1 <= stay.approval.max_units <= 7
    assert stay.category == "inpatient_acute"
    long_request = next(ex for ex in stay.examples if ex.expect is Outcome.MEETS_CRITERIA
                        and isinstance(units := ex.facts.get("requested_units", 0), int | float)
                        and units > stay.approval.max_units)
    got = evaluate(stay, example_line(stay, long_request), PythonMatcher())
    assert got.outcome is Outcome.MEETS_CRITERIA
    assert got.approval == stay.approval


def test_visit_caps_refer_to_a_nurse_beyond_the_cap() -> None:
    """Workers' comp visit caps read the line's units: more visits than the cap go to a nurse."""
    for set_id in ("mtus-physical-therapy-visits", "mtus-chiropractic-visits", "mtus-acupuncture-visits"):
        criteria = _library().get(set_id)
        assert criteria is not None
        assert criteria.declares("requested_units")
        met = next(ex for ex in criteria.examples if ex.expect is Outcome.MEETS_CRITERIA)
        line = example_line(criteria, met)
        many = dataclasses.replace(line, units=40, facts={**line.facts, "requested_units": 40.0})
        assert evaluate(criteria, many, PythonMatcher()).outcome is Outcome.REFER_TO_NURSE, set_id


@pytest.mark.parametrize(("code", "diagnoses", "lob"), [
    ("27447", ("M1711",), "commercial"),       # total knee arthroplasty: sample workload's uncovered surgery
    ("29881", ("S83241A",), "commercial"),     # knee arthroscopy with meniscectomy
    ("63030", ("M5116",), "medicare_advantage"),  # lumbar laminotomy
    ("27130", ("M1611",), "medicaid"),         # total hip arthroplasty
    ("29827", ("M75121",), "workers_comp"),    # shoulder arthroscopy, rotator cuff repair
    ("28296", ("M2011",), "commercial"),       # bunionectomy
    ("97110", ("M5416",), "workers_comp"),     # therapy for lumbar radiculopathy, workers' comp
    ("97110", ("Z471",), "workers_comp"),      # postsurgical therapy, workers' comp
])
def test_services_meant_to_stay_uncovered_select_nothing(code: str, diagnoses: tuple[str, ...], lob: str) -> None:
    probe = LineFacts(procedure_code=code, diagnoses=diagnoses, line_of_business=lob, member_state="CA",
                      urgency="standard", review_type="prospective", units=1, place_of_service=11, facts={})
    assert _library().select(probe) is None
