"""The specific reason (services/review/domain/nearest.py): the nearest path of the approval rule
and what is unmet or missing on it, never an alternative that merely did not apply."""

from __future__ import annotations

from collections.abc import Mapping

from services.review.domain.criteria import AllOf, AnyOf, PythonMatcher, evaluate
from services.review.domain.nearest import NearestPath, rule_paths
from tests.unit.review.builders import cond, criteria, line, shipped_library, spec

_LUMBAR = shipped_library().get("imaging-mri-lumbar-spine", "2026.1")
assert _LUMBAR is not None
LUMBAR = _LUMBAR
NO_RED_FLAGS = {"suspected_cauda_equina": False, "suspected_cancer": False, "suspected_infection": False,
                "suspected_fracture": False, "progressive_neurologic_deficit": False}


def nearest(facts: Mapping[str, object]) -> NearestPath:
    found = evaluate(LUMBAR, line(facts, code="72148", diagnoses=("M5450",)), PythonMatcher()).nearest
    assert found is not None
    return found


def test_the_rule_in_disjunctive_normal_form() -> None:
    assert rule_paths(AnyOf(("a", AllOf(("b", AnyOf(("c", "d")))), "a"))) == [("a",), ("b", "c"), ("b", "d")]


def test_a_lumbar_mri_with_too_little_therapy_names_the_therapy_not_cauda_equina() -> None:
    path = nearest({**NO_RED_FLAGS, "symptom_duration_weeks": 8.0, "conservative_therapy_weeks": 2.0})
    assert [r.condition_id for r in path.met] == ["symptoms_six_weeks"]
    assert [r.condition_id for r in path.unmet] == ["conservative_therapy_six_weeks"]
    assert path.summary == ("the request shows symptoms for at least 6 weeks, but not at least 6 weeks of "
                            "conservative therapy (conservative_therapy_weeks=2 weeks stated)")
    assert "cauda" not in path.summary


def test_with_nothing_met_the_path_the_request_was_on_is_named_not_a_red_flag_stated_absent() -> None:
    path = nearest({**NO_RED_FLAGS, "symptom_duration_weeks": 2.0, "conservative_therapy_weeks": 1.0})
    assert [r.condition_id for r in path.unmet] == ["symptoms_six_weeks", "conservative_therapy_six_weeks"]
    assert path.summary.startswith("the request does not show symptoms for at least 6 weeks "
                                   "(symptom_duration_weeks=2 weeks stated) or at least 6 weeks")


def test_what_is_missing_on_the_nearest_path_is_named() -> None:
    path = nearest({**NO_RED_FLAGS, "symptom_duration_weeks": 10.0})
    assert [r.condition_id for r in path.missing] == ["conservative_therapy_six_weeks"]
    assert path.summary.endswith("and does not tell us about at least 6 weeks of conservative therapy")


def test_a_met_path_has_no_nearest_and_the_refer_summary_carries_the_reason() -> None:
    met = evaluate(LUMBAR, line({**NO_RED_FLAGS, "symptom_duration_weeks": 8.0, "conservative_therapy_weeks": 7.0},
                                code="72148", diagnoses=("M5450",)), PythonMatcher())
    assert met.nearest is None
    refer = evaluate(LUMBAR, line({**NO_RED_FLAGS, "symptom_duration_weeks": 8.0, "conservative_therapy_weeks": 2.0},
                                  code="72148", diagnoses=("M5450",)), PythonMatcher())
    assert refer.summary.endswith("but not at least 6 weeks of conservative therapy "
                                  "(conservative_therapy_weeks=2 weeks stated).")
    assert (refer.title, refer.sources) == (LUMBAR.title, LUMBAR.sources)


def test_when_every_alternative_merely_did_not_apply_they_are_named_as_such() -> None:
    flags_only = criteria((spec("cauda_equina", "bool"), spec("cancer", "bool")),
                          (cond("suspected_cauda_equina", ("cauda_equina", "eq", True)),
                           cond("suspected_cancer", ("cancer", "eq", True))),
                          AnyOf(("suspected_cauda_equina", "suspected_cancer")))
    found = evaluate(flags_only, line({"cauda_equina": False, "cancer": False}), PythonMatcher()).nearest
    assert found is not None
    assert found.unmet == ()
    assert found.not_applicable == ("suspected cauda equina", "suspected cancer")
    assert found.summary == "the request shows none of: suspected cauda equina; suspected cancer"
