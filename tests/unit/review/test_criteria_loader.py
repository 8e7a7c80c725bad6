"""The criteria loader refuses broken files with messages that say exactly what is wrong, and
refuses above all any criteria that would have software deny."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.review.adapters.criteria_loader import (
    DENY_PROBLEM,
    CriteriaError,
    CriteriaLibraryError,
    load_criteria,
    load_library,
)
from services.review.domain.criteria import AnyOf, Outcome

BASE: dict[str, Any] = {
    "id": "test-lumbar",
    "version": "1",
    "title": "lumbar spine MRI",
    "category": "advanced_imaging",
    "sources": ["ACR Appropriateness Criteria: Low Back Pain"],
    "lines_of_business": ["commercial"],
    "service_codes": ["72148", "G0399", "0042T"],
    "diagnosis_patterns": ["M54.5*", "M54.16"],
    "facts": [
        {"name": "symptom_duration_weeks", "type": "number", "unit": "weeks", "required": True,
         "description": "weeks of symptoms"},
        {"name": "suspected_cancer", "type": "bool", "description": "whether cancer is suspected"},
    ],
    "conditions": [
        {"id": "six_weeks", "description": "symptoms for at least 6 weeks",
         "when": {"fact": "symptom_duration_weeks", "op": "ge", "value": 6}},
        {"id": "cancer", "description": "suspected cancer (no adverse reaction to contrast implied)",
         "when": {"fact": "suspected_cancer", "op": "eq", "value": True}},
    ],
    "outcomes": {"approve_when": {"any_of": ["six_weeks", "cancer"]}},
    "examples": [
        {"name": "eight weeks", "facts": {"symptom_duration_weeks": 8}, "expect": "meets_criteria"},
        {"name": "two weeks", "facts": {"symptom_duration_weeks": 2, "suspected_cancer": False},
         "expect": "refer_to_nurse"},
    ],
}


def write(directory: Path, doc: Any, name: str = "lumbar.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def broken(tmp_path: Path, mutate: Callable[[dict[str, Any]], object]) -> CriteriaError:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(CriteriaError) as caught:
        load_criteria(write(tmp_path, doc))
    return caught.value


def test_a_valid_file_loads(tmp_path: Path) -> None:
    c = load_criteria(write(tmp_path, BASE))
    assert c.key == "test-lumbar@1"
    assert c.diagnosis_patterns == ("M545*", "M5416")
    assert c.service_codes == frozenset({"72148", "G0399", "0042T"})
    assert c.required_facts == ("symptom_duration_weeks",)
    assert c.outcomes.approve_when == AnyOf(("six_weeks", "cancer"))
    assert [e.expect for e in c.examples] == [Outcome.MEETS_CRITERIA, Outcome.REFER_TO_NURSE]


def test_the_content_hash_ignores_layout_and_comments_but_not_content(tmp_path: Path) -> None:
    plain = load_criteria(write(tmp_path, BASE)).content_hash
    reformatted = "# a comment\n" + yaml.safe_dump(BASE, sort_keys=True, default_flow_style=True)
    (tmp_path / "other.yaml").write_text(reformatted)
    assert load_criteria(tmp_path / "other.yaml").content_hash == plain
    changed = copy.deepcopy(BASE)
    changed["conditions"][0]["when"]["value"] = 7
    changed["examples"][0]["facts"]["symptom_duration_weeks"] = 9
    assert load_criteria(write(tmp_path, changed, "changed.yaml")).content_hash != plain


# -- software may not deny -------------------------------------------------------------------------

@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["outcomes"].update(deny={"any_of": ["six_weeks"]}), "outcomes.deny"),
    (lambda d: d["outcomes"].update(deny_when="cancer"), "outcomes.deny_when"),
    (lambda d: d["outcomes"].update(otherwise="not_certified"), "outcomes.otherwise"),
    (lambda d: d["outcomes"].update(approve_when="Adverse"), "outcomes.approve_when"),
    (lambda d: d["outcomes"].update(reject_when={"all_of": ["six_weeks"]}), "outcomes.reject_when"),
    (lambda d: d["outcomes"].update(partial_when="six_weeks"), "outcomes.partial_when"),
    (lambda d: d["examples"][1].update(expect="denied"), "examples[1].expect"),
    (lambda d: d["examples"][1].update(expect="A3"), "examples[1].expect"),
    (lambda d: d["conditions"][0].update(on_fail="deny"), "conditions[0].on_fail"),
    (lambda d: d.update(denial_reason="too early"), "denial_reason"),
])
def test_any_attempt_to_deny_is_refused(tmp_path: Path, mutate: Callable[[dict[str, Any]], object],
                                        field: str) -> None:
    error = broken(tmp_path, mutate)
    assert error.field == field
    assert error.problem == DENY_PROBLEM
    assert str(error) == f"lumbar.yaml: {field}: {DENY_PROBLEM}"
    assert str(error).startswith(f"lumbar.yaml: {field}: software may not deny; ")


def test_adverse_words_in_free_text_are_not_an_outcome(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["facts"][1]["description"] = "whether an earlier request was denied (not an adverse outcome of this one)"
    doc["notes"] = "Failing these criteria is never a denial."
    assert load_criteria(write(tmp_path, doc)).notes.startswith("Failing")


# -- precise messages ------------------------------------------------------------------------------

@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["conditions"][0]["when"].update(fact="symptom_weeks"),
     "conditions[0].when.fact: 'symptom_weeks' is not a declared fact "
     "(declared: symptom_duration_weeks, suspected_cancer)"),
    (lambda d: d["examples"][0]["facts"].update(bmi=31),
     "examples[0].facts.bmi: 'bmi' is not a declared fact"),
    (lambda d: d.update(service_codes=["7214"]),
     "service_codes[0]: '7214' is neither a CPT code (5 digits, or 4 digits + F/T/U) "
     "nor a HCPCS Level II code (a letter + 4 digits)"),
    (lambda d: d.update(service_codes=["72148", "G039"]), "service_codes[1]: 'G039' is neither a CPT code"),
    (lambda d: d.update(service_codes=["0042X"]), "service_codes[0]: '0042X' is neither a CPT code"),
    (lambda d: d.update(service_codes=[72148]),
     "service_codes[0]: expected text, got a number (quote it: YAML read it as a number)"),
    (lambda d: d.update(version=2026.1), "version: expected text, got a number (quote it"),
    (lambda d: d.pop("title"), "title: missing required field"),
    (lambda d: d["facts"][0].pop("type"), "facts[0].type: missing required field"),
    (lambda d: d["conditions"][1].pop("when"), "conditions[1].when: missing required field"),
    (lambda d: d["outcomes"].pop("approve_when"), "outcomes.approve_when: missing required field"),
    (lambda d: d["outcomes"].update(approve_when={"any_of": ["six_weeks", "cancr"]}),
     "outcomes.approve_when.any_of[1]: 'cancr' is not a defined condition (defined: six_weeks, cancer)"),
    (lambda d: d["outcomes"].update(urgent_when="nope"),
     "outcomes.urgent_when: 'nope' is not a defined condition"),
    (lambda d: d["outcomes"].update(approve_when={"one_of": ["cancer"]}),
     "outcomes.approve_when.one_of: unknown combinator (use all_of or any_of)"),
    (lambda d: d["facts"][0].update(colour="red"), "facts[0].colour: unknown key (allowed here: name, type, "),
    (lambda d: d.update(owner="me"), "owner: unknown key (allowed here: id, version, "),
    (lambda d: d["facts"][0].update(type="integer"),
     "facts[0].type: unknown fact type 'integer' (one of: bool, number, text, date)"),
    (lambda d: d["conditions"][0]["when"].update(op="gte"),
     "conditions[0].when.op: unknown operator 'gte' (one of: eq, ne, gt, ge, lt, le, in, not_in)"),
    (lambda d: d["conditions"][1]["when"].update(op="ge"),
     "conditions[1].when.op: 'ge' does not apply to bool fact 'suspected_cancer' (use one of: eq, ne)"),
    (lambda d: d["conditions"][0]["when"].update(value="six"),
     "conditions[0].when.value: 'six' is not a number as fact 'symptom_duration_weeks' requires"),
    (lambda d: d["examples"][1].update(expect="approved"),
     "examples[1].expect: unknown outcome 'approved' (one of: meets_criteria, "),
    (lambda d: d["examples"][1].update(expect="meets_criteria"),
     "examples[1].expect: 'two weeks' expects meets_criteria, the criteria give refer_to_nurse"),
    (lambda d: d["examples"][0].update(diagnoses=["J44.9"]),
     "examples[0]: 'eight weeks': its line is not covered by this criteria set"),
    (lambda d: d["examples"].append({"name": "nothing", "facts": {}, "expect": "pend_missing_information",
                                     "missing_facts": ["suspected_cancer"]}),
     "examples[2].missing_facts: 'nothing' expects ['suspected_cancer'], the criteria ask for "
     "['suspected_cancer', 'symptom_duration_weeks']"),
    (lambda d: d.update(lines_of_business=["dental"]), "lines_of_business: 'dental' is not one of"),
    (lambda d: d.update(diagnosis_patterns=["M54.5"]), None),  # a full code without '*' is fine
    (lambda d: d.update(diagnosis_patterns=["54.5*"]), "diagnosis_patterns[0]: '545*' is neither"),
    (lambda d: d.update(examples=[]), "examples: must not be empty"),
])
def test_broken_files_are_refused_precisely(tmp_path: Path, mutate: Callable[[dict[str, Any]], object],
                                            message: str | None) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    path = write(tmp_path, doc)
    if message is None:
        load_criteria(path)
        return
    with pytest.raises(CriteriaError) as caught:
        load_criteria(path)
    assert str(caught.value).startswith(f"lumbar.yaml: {message}"), str(caught.value)


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False).replace("title: lumbar spine MRI\n",
                                                         "title: lumbar spine MRI\ntitle: knee MRI\n")
    (tmp_path / "dup.yaml").write_text(text)
    with pytest.raises(CriteriaError, match=r"^dup\.yaml: not valid YAML: .*duplicate key 'title'"):
        load_criteria(tmp_path / "dup.yaml")


def test_malformed_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: [unclosed\n")
    with pytest.raises(CriteriaError, match=r"^bad\.yaml: not valid YAML"):
        load_criteria(tmp_path / "bad.yaml")


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- id: x\n")
    with pytest.raises(CriteriaError, match=r"^list\.yaml: expected a mapping, got a list$"):
        load_criteria(tmp_path / "list.yaml")


# -- the library -----------------------------------------------------------------------------------

def test_the_library_reports_every_broken_file(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a-good.yaml")
    denying = copy.deepcopy(BASE)
    denying["outcomes"]["deny"] = "cancer"
    write(tmp_path, denying, "b-deny.yaml")
    undeclared = copy.deepcopy(BASE)
    undeclared["id"] = "other"
    undeclared["conditions"][0]["when"]["fact"] = "weeks"
    write(tmp_path, undeclared, "c-fact.yaml")
    (tmp_path / "README.txt").write_text("not a criteria file")
    with pytest.raises(CriteriaLibraryError) as caught:
        load_library(tmp_path)
    errors = caught.value.errors
    assert [(e.path.name, e.field) for e in errors] == [("b-deny.yaml", "outcomes.deny"),
                                                        ("c-fact.yaml", "conditions[0].when.fact")]
    assert "b-deny.yaml: outcomes.deny: software may not deny" in str(caught.value)
    assert "c-fact.yaml: conditions[0].when.fact" in str(caught.value)


def test_the_same_id_and_version_twice_is_refused(tmp_path: Path) -> None:
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, BASE, "b.yml")
    with pytest.raises(CriteriaLibraryError) as caught:
        load_library(tmp_path)
    (error,) = caught.value.errors
    assert str(error) == ("b.yml: version: test-lumbar version 1 is also defined in a.yaml; "
                          "give changed criteria a new version")


def test_versions_of_one_id_load_side_by_side(tmp_path: Path) -> None:
    write(tmp_path, BASE, "v1.yaml")
    newer = copy.deepcopy(BASE)
    newer["version"] = "1.1"
    write(tmp_path, newer, "v1-1.yaml")
    library = load_library(tmp_path)
    assert [c.version for c in library.all()] == ["1", "1.1"]
    assert [c.version for c in library.current()] == ["1.1"]


@pytest.mark.parametrize("make", [lambda p: p / "nowhere", lambda p: p])
def test_a_missing_or_empty_directory_is_an_error(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    with pytest.raises(CriteriaLibraryError, match=r"is not a directory|contains no criteria files"):
        load_library(make(tmp_path))


def test_category_must_be_known(tmp_path: Path) -> None:
    error = broken(tmp_path, lambda d: d.update(category="dentistry"))
    assert error.field == "category"
    assert "'dentistry' is not one of" in error.problem
    error = broken(tmp_path, lambda d: d.pop("category"))
    assert error.field == "category"
    assert error.problem == "missing required field"


def test_approval_cap_is_checked(tmp_path: Path) -> None:
    error = broken(tmp_path, lambda d: d.update(approval={"max_units": 0, "unit": "days"}))
    assert error.field == "approval.max_units"
    error = broken(tmp_path, lambda d: d.update(approval={"max_units": "3", "unit": "days"}))
    assert error.field == "approval.max_units"
    assert "whole number" in error.problem
    error = broken(tmp_path, lambda d: d.update(approval={"max_units": 3, "unit": "weeks"}))
    assert error.field == "approval.unit"
    error = broken(tmp_path, lambda d: d.update(approval={"max_units": 3}))
    assert error.field == "approval.unit"
    assert error.problem == "missing required field"
    doc = copy.deepcopy(BASE)
    doc["approval"] = {"max_units": 3, "unit": "days"}
    c = load_criteria(write(tmp_path, doc))
    assert c.approval is not None
    assert (c.approval.max_units, c.approval.unit) == (3, "days")


def test_requested_units_come_from_the_line(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["facts"].append({"name": "requested_units", "type": "number", "unit": "visits",
                         "description": "units the line requests"})
    doc["conditions"].append({"id": "few_units", "description": "at most 6 units",
                              "when": {"fact": "requested_units", "op": "le", "value": 6}})
    doc["outcomes"] = {"approve_when": {"any_of": ["cancer", {"all_of": ["six_weeks", "few_units"]}]}}
    doc["examples"] = [
        {"name": "six units", "facts": {"symptom_duration_weeks": 8, "requested_units": 6},
         "expect": "meets_criteria"},
        {"name": "twelve units",
         "facts": {"symptom_duration_weeks": 8, "requested_units": 12, "suspected_cancer": False},
         "expect": "refer_to_nurse"},
    ]
    c = load_criteria(write(tmp_path, doc))
    from services.review.domain.criteria import LineFacts, PythonMatcher, evaluate, with_line_facts
    line = LineFacts(procedure_code="72148", diagnoses=("M5450",), line_of_business="commercial",
                     member_state="TX", urgency="standard", review_type="prospective", units=12,
                     place_of_service=11,
                     facts=with_line_facts({"symptom_duration_weeks": 8.0, "requested_units": 2.0,
                                             "suspected_cancer": False}, 12))
    result = evaluate(c, line, PythonMatcher())
    assert result.outcome is Outcome.REFER_TO_NURSE
    assert "requested_units=12 visits" in [o for r in result.conditions for o in r.observed]
