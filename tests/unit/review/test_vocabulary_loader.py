"""Vocabulary files beside the criteria: read strictly (duplicate and unknown keys, malformed code
patterns), held to the library when it loads (unknown facts, contradictions, worked examples that
fail), watched by the reloader, and what `urctl criteria validate|test|catalog` make of them."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli.criteria.catalog import build_catalog, catalog_text
from services.cli.criteria.library import validate_paths
from services.common.fact_catalog import DEFAULT_CATALOG, load_catalog
from services.review.adapters.criteria_loader import CriteriaLibraryError, load_library
from services.review.adapters.criteria_reload import _changes, fingerprint
from services.review.adapters.vocabulary_loader import VocabularyError, load_vocabulary
from tests.unit.review.builders import SHIPPED_DIR, shipped_library

LUMBAR = SHIPPED_DIR / "imaging-mri-lumbar-spine.yaml"
CT = SHIPPED_DIR / "imaging-ct-abdomen-pelvis.yaml"

VOCABULARY: dict[str, Any] = {
    "id": "test-spine", "version": "1", "title": "test", "owner": "a clinical owner", "sources": ["ICD-10-CM"],
    "mappings": [{"id": "ces", "when": {"diagnosis": ["G83.4"]},
                  "then": {"fact": "suspected_cauda_equina", "value": True},
                  "source": "ICD-10-CM G83.4", "note": "coded means suspected"}],
    "examples": [{"name": "coded", "mapping": "ces", "criteria": "imaging-mri-lumbar-spine",
                  "diagnoses": ["M54.50", "G83.4"], "facts": {}, "derived": {"suspected_cauda_equina": True},
                  "expect": "meets_criteria_urgent", "urgency": "expedited"}],
}


def library_dir(tmp_path: Path, vocabulary: dict[str, Any] | str | None = None, *extra: Path) -> Path:
    """A criteria directory with the lumbar MRI set (and ``extra`` sets) and one vocabulary file."""
    for source in (LUMBAR, *extra):
        shutil.copy(source, tmp_path / source.name)
    if vocabulary is not None:
        (tmp_path / "vocabulary").mkdir()
        text = vocabulary if isinstance(vocabulary, str) else yaml.safe_dump(vocabulary, sort_keys=False)
        (tmp_path / "vocabulary" / "test.yaml").write_text(text)
    return tmp_path


def problems(tmp_path: Path, vocabulary: dict[str, Any] | str, *extra: Path) -> list[str]:
    with pytest.raises(CriteriaLibraryError) as caught:
        load_library(library_dir(tmp_path, vocabulary, *extra))
    return [str(e) for e in caught.value.errors]


def changed(edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VOCABULARY)
    edit(doc)
    return doc


def test_a_library_loads_its_vocabulary_and_derives_with_it(tmp_path: Path) -> None:
    library = load_library(library_dir(tmp_path, VOCABULARY))
    [vocabulary] = library.vocabularies
    assert vocabulary.key == "test-spine@1"
    assert len(vocabulary.content_hash) == 64
    lumbar = library.get("imaging-mri-lumbar-spine")
    assert lumbar is not None
    assert library.derivations(lumbar)
    assert library.derivations(lumbar) is library.derivations(lumbar)  # built once per set


def test_a_library_without_a_vocabulary_folder_derives_nothing(tmp_path: Path) -> None:
    library = load_library(library_dir(tmp_path))
    lumbar = library.get("imaging-mri-lumbar-spine")
    assert library.vocabularies == ()
    assert lumbar is not None
    assert not library.derivations(lumbar)


def test_duplicate_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(VOCABULARY, sort_keys=False).replace("title: test\n", "title: test\ntitle: again\n")
    (tmp_path / "a").mkdir()
    [problem] = problems(tmp_path / "a", text)
    assert problem.startswith("test.yaml: not valid YAML: duplicate key 'title'")
    (tmp_path / "b").mkdir()
    bad = changed(lambda d: d["mappings"][0]["then"].update(valu=True))
    assert problems(tmp_path / "b", bad) == ["test.yaml: mappings[0].then.valu: unknown key (allowed: fact, value)"]


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["mappings"][0]["when"].update(diagnosis=["G83.4?"]),
     "test.yaml: mappings[0].when.diagnosis[0]: 'G83.4?' is neither an ICD-10-CM code (G83.4), a prefix (M48.06*) nor "
     "a range (C00-C43)"),
    (lambda d: d["mappings"][0]["when"].update(diagnosis=["C96-C00"]),
     "test.yaml: mappings[0].when.diagnosis[0]: 'C96-C00': the range ends before it starts"),
    (lambda d: d["mappings"][0]["then"].update(fact="suspected_meningitis"),
     "test.yaml: mappings[0].then.fact: unknown fact 'suspected_meningitis': no criteria set declares it"),
    (lambda d: d["mappings"][0]["then"].update(value=2),
     "test.yaml: mappings[0].then.value: 2 is not a bool, as imaging-mri-lumbar-spine declares "
     "'suspected_cauda_equina'"),
    (lambda d: d["examples"][0].update(expect="meets_criteria"),
     "test.yaml: examples[0]: 'coded' expects meets_criteria, the criteria give meets_criteria_urgent"),
    (lambda d: d["examples"][0].update(urgency="standard"),
     "test.yaml: examples[0]: 'coded' expects a standard line, it is expedited"),
    (lambda d: d["examples"][0].update(criteria="no-such-set"),
     "test.yaml: examples[0].criteria: 'no-such-set': no such criteria set"),
])
def test_a_vocabulary_that_does_not_fit_the_criteria_is_refused_naming_the_field(
        tmp_path: Path, edit: Any, expected: str) -> None:
    [problem] = problems(tmp_path, changed(edit))
    assert problem.startswith(expected)


def test_a_mapping_that_contradicts_a_criteria_example_s_stated_fact_is_refused(tmp_path: Path) -> None:
    """The lumbar set's own example states suspected_cancer=true; a mapping that reads the default
    diagnosis of its examples (M54.5) as ruling cancer out contradicts it."""
    def edit(d: dict[str, Any]) -> None:
        d["mappings"].append({"id": "no-cancer", "when": {"diagnosis": ["M54.5*"]},
                              "then": {"fact": "suspected_cancer", "value": False}, "source": "s", "note": "n"})
        d["examples"].append({"name": "low back pain", "mapping": "no-cancer", "criteria": "imaging-mri-lumbar-spine",
                              "diagnoses": ["M54.50"], "facts": {"symptom_duration_weeks": 2,
                                                                 "conservative_therapy_weeks": 0},
                              "derived": {"suspected_cancer": False}, "expect": "pend_missing_information"})
    found = problems(tmp_path, changed(edit))
    assert any(p.startswith("imaging-mri-lumbar-spine.yaml: examples[2].facts.suspected_cancer: 'suspected cancer, "
                            "durations not given' contradicts the vocabulary: suspected_cancer stated as true and "
                            "kept; diagnosis M54.5 implies false") for p in found)


def test_a_criteria_example_whose_outcome_the_vocabulary_changes_is_refused(tmp_path: Path) -> None:
    """The CT set's 'pregnancy excluded, suspicion not stated' example (default diagnosis R10.3) pends
    for the suspicions; a vocabulary that reads R10.3 as suspected appendicitis would approve it."""
    rlq = {"id": "rlq", "when": {"diagnosis": ["R10.3*"]}, "then": {"fact": "suspected_appendicitis", "value": True},
           "source": "s", "note": "n"}
    worked = {"name": "rlq", "mapping": "rlq", "criteria": "imaging-ct-abdomen-pelvis", "diagnoses": ["R10.31"],
              "facts": {"pregnancy_possible": False}, "derived": {"suspected_appendicitis": True},
              "expect": "meets_criteria"}
    doc = changed(lambda d: d.update(mappings=[rlq], examples=[worked]))
    found = problems(tmp_path, doc, CT)
    assert any(p.startswith("imaging-ct-abdomen-pelvis.yaml: examples[6].expect: 'pregnancy excluded, suspicion not "
                            "stated' expects pend_missing_information") and "with the vocabulary's derived facts the "
               "criteria give meets_criteria" in p for p in found)


def test_the_reloader_sees_and_logs_a_changed_vocabulary(tmp_path: Path) -> None:
    directory = library_dir(tmp_path, VOCABULARY)
    before, old = fingerprint(directory), load_library(directory)
    assert any(name == "vocabulary/test.yaml" for name, _, _ in before)
    (directory / "vocabulary" / "test.yaml").write_text(yaml.safe_dump(changed(lambda d: d.update(title="t2"))))
    assert fingerprint(directory) != before
    assert _changes(old, load_library(directory)) == ["vocabulary test-spine 1 → 1 (content changed)"]


def test_the_shipped_vocabularies_load_with_a_worked_example_for_every_mapping() -> None:
    library = shipped_library()
    assert {v.id for v in library.vocabularies} == {"spine", "abdomen-pelvis", "sleep", "oncology-genetics"}
    for v in library.vocabularies:
        assert {e.mapping for e in v.examples if e.derived} == {m.id for m in v.mappings}
        assert all(m.source.strip() and m.note.strip() for m in v.mappings)
        assert v.owner.strip()
    assert load_vocabulary(SHIPPED_DIR / "vocabulary" / "spine.yaml").mapping("cauda-equina-syndrome-coded") is not None


def test_validate_reports_vocabulary_problems_and_lists_valid_vocabularies(tmp_path: Path) -> None:
    good = validate_paths([SHIPPED_DIR])
    assert good.ok
    assert len(good.vocabularies) == 4
    assert len(good.sets) == 25
    broken = library_dir(tmp_path, changed(lambda d: d["mappings"][0]["then"].update(fact="suspected_meningitis")))
    result = validate_paths([broken])
    assert not result.ok
    assert [type(e) for e in result.problems] == [VocabularyError]
    assert [s.criteria.id for s in result.sets] == ["imaging-mri-lumbar-spine"]
    assert result.vocabularies == []
    alone = validate_paths([broken / "vocabulary" / "test.yaml"])
    assert [e.field for e in alone.problems] == ["mappings[0].then.fact"]


def test_the_fact_catalog_intake_reads_matches_the_criteria_library() -> None:
    """`urctl criteria catalog --write` regenerates services/common/clinical-facts.yaml."""
    assert DEFAULT_CATALOG.read_text(encoding="utf-8") == catalog_text(SHIPPED_DIR)
    catalog = load_catalog()
    built = build_catalog(shipped_library())
    assert set(catalog.facts) == set(built["facts"])
    assert "requested_units" not in catalog.facts
    assert json.loads(json.dumps(built["facts"]["weeks_of_symptoms"])) == {
        "type": "number", "unit": "weeks", "synonym_of": "symptom_duration_weeks"}
    assert built["facts"]["saddle_anaesthesia"] == {"type": "bool"}
