"""The vocabulary layer (services/review/domain/vocabulary.py): code patterns, derivations, the
stated fact that is never replaced, urgency signals, and the checks that hold a vocabulary to the
criteria library."""

from __future__ import annotations

import dataclasses

import pytest

from services.review.domain.criteria import (
    AllOf,
    AnyOf,
    CriteriaSet,
    Example,
    FactValue,
    Outcome,
    PythonMatcher,
    evaluate,
    red_flags,
)
from services.review.domain.vocabulary import (
    CodePattern,
    Derivations,
    FactMapping,
    InvalidVocabulary,
    Trigger,
    Vocabulary,
    VocabularyExample,
    check_vocabularies,
    display_diagnosis,
    run_example,
)
from tests.unit.review.builders import cond, criteria, line, shipped_library, spec

MATCHER = PythonMatcher()


def red_flag_set(**kwargs: object) -> CriteriaSet:
    """A lumbar-MRI-like set: a red flag approves at once and is urgent; durations otherwise."""
    base = criteria(
        (spec("weeks", required=True, unit="weeks"), spec("suspected_cauda_equina", "bool"),
         spec("suspected_cancer", "bool")),
        (cond("ces", ("suspected_cauda_equina", "eq", True)), cond("cancer", ("suspected_cancer", "eq", True)),
         cond("six_weeks", ("weeks", "ge", 6))),
        AnyOf(("ces", "cancer", "six_weeks")), urgent="ces", title="spine test")
    return dataclasses.replace(base, **kwargs) if kwargs else base  # type: ignore[arg-type]


def mapping(mid: str, fact: str, value: FactValue | None, *, diagnoses: tuple[str, ...] = (),
            excluded: tuple[str, ...] = (), procedures: tuple[str, ...] = (), facts: tuple[str, ...] = (),
            fact_value: FactValue | None = None, scope: tuple[str, ...] = ()) -> FactMapping:
    return FactMapping(
        id=mid, fact=fact, value=value, source="a test source", note="a test note", criteria=frozenset(scope),
        when=Trigger(diagnoses=tuple(CodePattern.parse(p) for p in diagnoses),
                     excluded=tuple(CodePattern.parse(p) for p in excluded), procedures=frozenset(procedures),
                     facts=facts, fact_value=fact_value))


def vocabulary(*mappings: FactMapping, examples: tuple[VocabularyExample, ...] | None = None,
               vid: str = "test-vocabulary") -> Vocabulary:
    worked = examples if examples is not None else tuple(
        VocabularyExample(name=f"example of {m.id}", mapping=m.id, criteria="any", facts={},
                          expect=Outcome.MEETS_CRITERIA, derived={m.fact: True}) for m in mappings)
    return Vocabulary(id=vid, version="1", title="test", owner="a clinical owner", sources=("a source",),
                      mappings=mappings, content_hash="0" * 64, examples=worked)


CES = mapping("ces-coded", "suspected_cauda_equina", True, diagnoses=("G83.4",))
SADDLE = mapping("saddle", "suspected_cauda_equina", True, facts=("saddle_anaesthesia",), fact_value=True)
CANCER = mapping("cancer", "suspected_cancer", True, diagnoses=("C00-C96",), excluded=("C44*",))
WEEKS = mapping("weeks-synonym", "weeks", None, facts=("weeks_of_symptoms",))


# -- code patterns ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "code", "matches"), [
    ("G83.4", "G834", True), ("G83.4", "G8341", False), ("M48.06*", "M48062", True), ("M48.06*", "M4807", False),
    ("C00-C96", "C7951", True), ("C00-C96", "C7A1", True),  # C7A sorts between C79 and C80, as in the code set
    ("C00-C96", "D0510", False), ("C00-C43", "C44", False), ("C00-C43", "C4391", True),
    ("M54.50-M54.59", "M5459", True), ("M54.50-M54.59", "M546", False),
])
def test_code_patterns_match_codes_prefixes_and_ranges(pattern: str, code: str, matches: bool) -> None:
    assert CodePattern.parse(pattern).matches(code) is matches


@pytest.mark.parametrize(("text", "problem"), [
    ("M5", "neither an ICD-10-CM code"), ("G83.4?", "neither an ICD-10-CM code"), ("*", "prefix pattern"),
    ("C96-C00", "ends before it starts"), ("C00-C4A1", "same length"), ("C00-", "range of two"),
    ("72148", "neither an ICD-10-CM code"),
])
def test_malformed_code_patterns_are_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CodePattern.parse(text)


def test_codes_are_shown_as_people_write_them() -> None:
    assert (display_diagnosis("G834"), display_diagnosis("C50922"), display_diagnosis("I10")) == (
        "G83.4", "C50.922", "I10")


# -- derivations -----------------------------------------------------------------------------------

def test_a_diagnosis_derives_a_fact_that_the_explanation_marks_as_derived() -> None:
    c = red_flag_set()
    got = evaluate(c, line({}, diagnoses=("M5450", "G834")), MATCHER, Derivations(c, [vocabulary(CES)]))
    assert got.outcome is Outcome.MEETS_CRITERIA_URGENT
    [derived] = got.derived
    assert (derived.fact, derived.value, derived.because) == ("suspected_cauda_equina", True, "diagnosis G83.4")
    assert derived.describe() == "suspected cauda equina: derived from diagnosis G83.4"
    assert derived.mapping == "test-vocabulary@1 ces-coded"
    assert "(suspected cauda equina: derived from diagnosis G83.4)" in got.summary
    observed = {r.condition_id: r.observed for r in got.conditions}
    assert observed["ces"] == ("suspected_cauda_equina=true (derived from diagnosis G83.4)",)


def test_a_stated_fact_is_never_replaced_and_the_disagreement_is_reported() -> None:
    c = red_flag_set()
    got = evaluate(c, line({"suspected_cauda_equina": False, "weeks": 8.0}, diagnoses=("G834",)), MATCHER,
                   Derivations(c, [vocabulary(CES)]))
    assert got.outcome is Outcome.MEETS_CRITERIA
    assert got.derived == ()
    assert got.urgency is None
    [contradiction] = got.contradictions
    assert contradiction.describe() == ("suspected_cauda_equina stated as false and kept; diagnosis G83.4 implies "
                                        "true (test-vocabulary@1 ces-coded)")


def test_mappings_that_disagree_derive_nothing() -> None:
    c = red_flag_set()
    ruled_out = mapping("ruled-out", "suspected_cauda_equina", False, facts=("ces_ruled_out",), fact_value=True)
    got = evaluate(c, line({"ces_ruled_out": True, "weeks": 2.0}, diagnoses=("G834",)), MATCHER,
                   Derivations(c, [vocabulary(CES, ruled_out)]))
    assert got.derived == ()
    assert got.missing_facts == ("suspected_cancer", "suspected_cauda_equina")
    assert {x.stated for x in got.contradictions} == {None}
    assert len(got.contradictions) == 2


def test_fact_triggers_need_their_value_and_synonyms_copy_a_usable_one() -> None:
    c = red_flag_set()
    derivations = Derivations(c, [vocabulary(SADDLE, WEEKS)])
    assert derivations.derive(line({"saddle_anaesthesia": False})) is None
    made = derivations.derive(line({"saddle_anaesthesia": True, "weeks_of_symptoms": 8.0}))
    assert made is not None
    assert dict(made.facts) == {"saddle_anaesthesia": True, "weeks_of_symptoms": 8.0,
                                                     "suspected_cauda_equina": True, "weeks": 8.0}
    assert [d.because for d in made.derived] == ["fact saddle_anaesthesia", "fact weeks_of_symptoms"]
    assert derivations.derive(line({"weeks_of_symptoms": "eight"})) is None  # not a number: nothing to copy


def test_exceptions_procedures_and_scopes() -> None:
    c = red_flag_set()
    derivations = Derivations(c, [vocabulary(CANCER)])
    assert derivations.derive(line({}, diagnoses=("C4491",))) is None
    made = derivations.derive(line({}, diagnoses=("C4491", "C7951")))
    assert made is not None
    assert [d.because for d in made.derived] == ["diagnosis C79.51"]
    by_code = mapping("mri-code", "suspected_cancer", True, procedures=("72148",))
    assert Derivations(c, [vocabulary(by_code)]).derive(line({}, code="72148")) is not None
    elsewhere = mapping("other-set", "suspected_cancer", True, diagnoses=("C50*",), scope=("another-set",))
    assert not Derivations(c, [vocabulary(elsewhere)])


def test_a_set_can_switch_derivations_off() -> None:
    c = red_flag_set(derive_facts=False)
    assert not Derivations(c, [vocabulary(CES)])
    # evaluate() honours the switch even when handed derivations built for another version of the set
    got = evaluate(c, line({}, diagnoses=("G834",)), MATCHER, Derivations(red_flag_set(), [vocabulary(CES)]))
    assert got.derived == ()
    assert got.outcome is Outcome.PEND_MISSING_INFORMATION


# -- urgency ---------------------------------------------------------------------------------------

def peritonitis_set() -> CriteriaSet:
    """The CT abdomen shape: approval needs pregnancy excluded; urgency needs peritoneal signs too."""
    return criteria(
        (spec("pregnancy_possible", "bool", required=True), spec("peritoneal_signs", "bool"),
         spec("suspected_appendicitis", "bool")),
        (cond("not_pregnant", ("pregnancy_possible", "eq", False)),
         cond("peritonitis", ("peritoneal_signs", "eq", True)),
         cond("appendicitis", ("suspected_appendicitis", "eq", True))),
        AllOf(("not_pregnant", AnyOf(("appendicitis", "peritonitis")))),
        urgent=AllOf(("not_pregnant", "peritonitis")), title="abdomen test")


def test_red_flags_are_the_urgent_conditions_approval_does_not_need() -> None:
    assert red_flags(peritonitis_set()) == {"peritonitis"}
    assert red_flags(red_flag_set()) == {"ces"}


def test_a_red_flag_while_a_fact_is_missing_makes_a_pended_line_urgent() -> None:
    c = peritonitis_set()
    signs = mapping("peritonitis-coded", "peritoneal_signs", True, diagnoses=("K35.2*",))
    got = evaluate(c, line({}, diagnoses=("K3520",)), MATCHER, Derivations(c, [vocabulary(signs)]))
    assert got.outcome is Outcome.PEND_MISSING_INFORMATION
    assert got.missing_facts == ("pregnancy_possible",)
    assert got.urgency is not None
    assert not got.urgency.definite
    assert got.urgency.reason() == ("a red flag of the urgent abdomen test criteria: peritonitis (peritoneal signs: "
                                    "derived from diagnosis K35.20); the request does not yet state pregnancy_possible")


def test_a_met_condition_that_is_no_red_flag_makes_nothing_urgent() -> None:
    got = evaluate(peritonitis_set(), line({"pregnancy_possible": False, "suspected_appendicitis": True}), MATCHER)
    assert got.outcome is Outcome.MEETS_CRITERIA
    assert got.urgency is None


def test_a_met_urgent_rule_is_definitely_urgent() -> None:
    got = evaluate(red_flag_set(), line({"suspected_cauda_equina": True}), MATCHER)
    assert got.urgency is not None
    assert got.urgency.definite
    assert got.urgency.reason() == "meets the urgent spine test criteria: ces"


# -- a vocabulary's own consistency and the library's checks ---------------------------------------

@pytest.mark.parametrize(("build", "field", "problem"), [
    (lambda: vocabulary(mapping("Bad Id", "weeks", 1.0, diagnoses=("M545",))), "mappings[0].id", "lowercase"),
    (lambda: vocabulary(mapping("x", "requested_units", 1.0, diagnoses=("M545",))), "mappings[0].then.fact",
     "stated by the line"),
    (lambda: vocabulary(mapping("x", "weeks", 1.0)), "mappings[0].when", "exactly one"),
    (lambda: vocabulary(mapping("x", "weeks", None, diagnoses=("M545",))), "mappings[0].then.value",
     "only a fact can be copied"),
    (lambda: vocabulary(mapping("x", "ces", True, facts=("saddle",))), "mappings[0].when.value", "which value"),
    (lambda: vocabulary(mapping("x", "weeks", 1.0, procedures=("7214",))), "mappings[0].when.procedure",
     "neither a CPT"),
    (lambda: vocabulary(CES, examples=()), "mappings[0].id", "no worked example"),
])
def test_a_vocabulary_that_contradicts_itself_is_refused(build: object, field: str, problem: str) -> None:
    with pytest.raises(InvalidVocabulary) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_the_library_check_names_unknown_facts_wrong_types_and_unknown_sets() -> None:
    c = red_flag_set()
    problems = check_vocabularies([vocabulary(
        mapping("unknown", "suspected_meningitis", True, diagnoses=("G03*",)),
        mapping("wrong-type", "weeks", True, diagnoses=("M545",)),
        mapping("no-set", "weeks", 1.0, diagnoses=("M546",), scope=("no-such-set",)),
        mapping("not-a-synonym", "weeks", None, facts=("suspected_cancer",)))], [c])
    assert [(p.field, p.problem) for p in problems] == [
        ("mappings[0].then.fact", "unknown fact 'suspected_meningitis': no criteria set declares it"),
        ("mappings[1].then.value", f"true is not a number, as {c.id} declares 'weeks'"),
        ("mappings[2].criteria", "no-such-set: no such criteria set"),
        ("mappings[3].when.fact", f"'suspected_cancer' is a criteria fact ({c.id} declares it), not a synonym"),
    ]


def test_the_library_check_names_mappings_that_contradict_each_other() -> None:
    c = red_flag_set()
    everything = mapping("all-of-chapter-g", "suspected_cauda_equina", False, diagnoses=("G00-G99",))
    [problem] = check_vocabularies([vocabulary(CES), vocabulary(everything, vid="other")], [c])
    assert problem.vocabulary == "other@1"
    assert problem.field == "mappings[0].then.value"
    assert problem.problem == ("all-of-chapter-g implies suspected_cauda_equina = false from diagnosis G83.4, "
                               "where test-vocabulary@1 ces-coded (mappings[0]) implies true")


def test_the_library_check_names_a_criteria_example_that_contradicts_a_mapping() -> None:
    c = dataclasses.replace(red_flag_set(), examples=(
        Example("ruled out despite the code", {"suspected_cauda_equina": False, "weeks": 8.0}, Outcome.MEETS_CRITERIA,
                diagnoses=("G834",)),))
    [problem] = check_vocabularies([vocabulary(CES)], [c])
    assert (problem.criteria, problem.field) == (c.key, "examples[0].facts.suspected_cauda_equina")
    assert "'ruled out despite the code' contradicts the vocabulary" in problem.problem


def test_a_worked_example_must_derive_what_it_says_and_give_its_outcome_and_urgency() -> None:
    c = red_flag_set()
    derivations = Derivations(c, [vocabulary(CES)])
    good = VocabularyExample(name="coded", mapping="ces-coded", criteria=c.id, facts={}, diagnoses=("M5450", "G834"),
                             expect=Outcome.MEETS_CRITERIA_URGENT, derived={"suspected_cauda_equina": True},
                             urgency="expedited")
    assert run_example(c, derivations, good, MATCHER) == []
    wrong = dataclasses.replace(good, expect=Outcome.MEETS_CRITERIA, urgency="standard", derived={})
    assert run_example(c, derivations, wrong, MATCHER) == [
        "derives suspected_cauda_equina=true, expected nothing",
        "expects meets_criteria, the criteria give meets_criteria_urgent (Meets the spine test criteria and is urgent: "
        "ces (suspected cauda equina: derived from diagnosis G83.4).)",
        "expects a standard line, it is expedited (meets the urgent spine test criteria: ces (suspected cauda equina: "
        "derived from diagnosis G83.4))"]


def test_the_shipped_vocabulary_derives_the_issue_s_request() -> None:
    """Issue 13: G83.4 with urinary retention and saddle anaesthesia, no suspected_cauda_equina."""
    library = shipped_library()
    lumbar = library.get("imaging-mri-lumbar-spine")
    assert lumbar is not None
    got = evaluate(lumbar, line({"urinary_retention": True, "saddle_anaesthesia": True}, diagnoses=("M5450", "G834"),
                                lob="medicare_advantage"), MATCHER, library.derivations(lumbar))
    assert got.outcome is Outcome.MEETS_CRITERIA_URGENT
    assert got.urgency is not None
    assert got.urgency.definite
    assert [d.describe() for d in got.derived] == [
        "suspected cauda equina: derived from diagnosis G83.4, fact saddle_anaesthesia, fact urinary_retention"]
