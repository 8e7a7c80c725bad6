"""Loading a changed criteria directory while the service runs: a new version is compiled into the
running rules engine and swapped in at once; what was taken before the swap keeps deciding on the
old version; a broken change leaves the old library in use, says what is wrong, and is retried when
the directory changes again."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest

from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.adapters.criteria_reload import CriteriaReloader, fingerprint
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.criteria import CriteriaSet, LineFacts, Outcome, with_line_facts
from tests.unit.review.builders import SHIPPED_DIR

LUMBAR = SHIPPED_DIR / "imaging-mri-lumbar-spine.yaml"
# Eight weeks of symptoms after five weeks of therapy: short of 2026.1's six weeks, enough for 2026.2's four.
FIVE_WEEKS = {"symptom_duration_weeks": 8.0, "conservative_therapy_weeks": 5.0, "suspected_cauda_equina": False,
              "suspected_cancer": False, "suspected_infection": False, "suspected_fracture": False,
              "progressive_neurologic_deficit": False}


def lumbar_text(criteria_id: str, version: str = "2026.1", therapy_weeks: int = 6) -> str:
    text = LUMBAR.read_text(encoding="utf-8")
    text = text.replace("id: imaging-mri-lumbar-spine\n", f"id: {criteria_id}\n")
    text = text.replace('version: "2026.1"', f'version: "{version}"')
    old = "when: {fact: conservative_therapy_weeks, op: ge, value: 6}"
    assert old in text
    return text.replace(old, f"when: {{fact: conservative_therapy_weeks, op: ge, value: {therapy_weeks}}}")


def line() -> LineFacts:
    return LineFacts(procedure_code="72148", diagnoses=("M5416",), line_of_business="commercial", member_state="CA",
                     urgency="standard", review_type="prospective", units=1, place_of_service=22,
                     facts=with_line_facts(FIVE_WEEKS, 1))


class CountingMatcher(DurableRulesMatcher):
    """The real matcher, counting what the reloader hands it."""

    def __init__(self) -> None:
        self.added: list[tuple[str, ...]] = []
        super().__init__()

    def add(self, criteria: Iterable[CriteriaSet]) -> tuple[str, ...]:
        names = super().add(criteria)
        self.added.append(names)
        return names


@pytest.fixture
def criteria_id() -> str:
    # durable-rules registers a ruleset name once per process: a fresh id per test.
    return f"reload-test-{uuid.uuid4().hex[:10]}"


def reloader(directory: Path, matcher: DurableRulesMatcher) -> CriteriaReloader:
    def evaluator_of(library: CriteriaLibrary) -> LibraryEvaluator:
        return LibraryEvaluator(library, matcher)

    return CriteriaReloader(directory, load_library(directory), matcher, evaluator_of)


def touch_later(path: Path, text: str) -> None:
    """Write ``text`` with a modification time certainly different from the last one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_a_new_version_is_swapped_in_while_the_old_evaluator_still_decides(
        tmp_path: Path, criteria_id: str, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "lumbar.yaml").write_text(lumbar_text(criteria_id), encoding="utf-8")
    matcher = CountingMatcher()
    criteria = reloader(tmp_path, matcher)
    in_flight = criteria.current()
    assert not criteria.check()  # nothing changed
    first = in_flight.evaluate(line())
    assert first is not None
    assert (first.criteria_version, first.outcome) == ("2026.1", Outcome.REFER_TO_NURSE)

    caplog.set_level(logging.INFO, logger="services.review.adapters.criteria_reload")
    touch_later(tmp_path / "lumbar-2026.2.yaml", lumbar_text(criteria_id, "2026.2", therapy_weeks=4))
    assert criteria.check()
    assert matcher.added
    assert f"{criteria_id}@2026.2" in matcher.added[-1]
    assert f"criteria reloaded: {criteria_id} 2026.1 → 2026.2" in caplog.messages

    now = criteria.current().evaluate(line())
    assert now is not None
    assert (now.criteria_version, now.outcome) == ("2026.2", Outcome.MEETS_CRITERIA)
    assert now.criteria_hash != first.criteria_hash
    # A batch that took the evaluator before the swap finishes on the old version.
    again = in_flight.evaluate(line())
    assert again is not None
    assert again.criteria_version == "2026.1"
    assert {c.version for c in criteria.library.all()} == {"2026.1", "2026.2"}
    assert not criteria.check()


def test_a_broken_change_keeps_the_old_library_and_is_retried_when_fixed(
        tmp_path: Path, criteria_id: str, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "lumbar.yaml").write_text(lumbar_text(criteria_id), encoding="utf-8")
    matcher = CountingMatcher()
    criteria = reloader(tmp_path, matcher)
    before = criteria.current()
    broken = lumbar_text(criteria_id, "2026.2").replace("type: number\n    unit: weeks\n    required: true\n"
                                                        "    description: how many weeks the low",
                                                        "type: numeral\n    unit: weeks\n    required: true\n"
                                                        "    description: how many weeks the low", 1)
    assert "numeral" in broken
    touch_later(tmp_path / "lumbar-2026.2.yaml", broken)
    caplog.set_level(logging.INFO, logger="services.review.adapters.criteria_reload")
    assert not criteria.check()
    assert criteria.current() is before
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "lumbar-2026.2.yaml: facts[0].type" in errors[0].getMessage()
    assert not criteria.check()  # the same broken state is not retried on every poll
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1

    touch_later(tmp_path / "lumbar-2026.2.yaml", lumbar_text(criteria_id, "2026.2", therapy_weeks=4))
    assert criteria.check()
    evaluation = criteria.current().evaluate(line())
    assert evaluation is not None
    assert evaluation.criteria_version == "2026.2"


def test_changed_content_under_a_known_version_is_refused_by_the_engine(
        tmp_path: Path, criteria_id: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "lumbar.yaml"
    path.write_text(lumbar_text(criteria_id), encoding="utf-8")
    criteria = reloader(tmp_path, CountingMatcher())
    criteria.current().evaluate(line())  # compiles 2026.1
    before = criteria.current()
    touch_later(path, lumbar_text(criteria_id, "2026.1", therapy_weeks=4))  # new content, same version
    assert not criteria.check()
    assert criteria.current() is before
    assert any(r.levelno == logging.ERROR and "need a new version" in r.getMessage() for r in caplog.records)


def test_a_removed_file_and_an_emptied_directory(tmp_path: Path, criteria_id: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "lumbar.yaml").write_text(lumbar_text(criteria_id), encoding="utf-8")
    (tmp_path / "lumbar-2026.2.yaml").write_text(lumbar_text(criteria_id, "2026.2", 4), encoding="utf-8")
    criteria = reloader(tmp_path, CountingMatcher())
    caplog.set_level(logging.INFO, logger="services.review.adapters.criteria_reload")
    (tmp_path / "lumbar-2026.2.yaml").unlink()
    assert criteria.check()
    assert f"criteria reloaded: {criteria_id} 2026.2 → 2026.1" in caplog.messages
    (tmp_path / "lumbar.yaml").unlink()
    assert not criteria.check()  # an empty directory is a mistake, not a library: keep serving
    evaluation = criteria.current().evaluate(line())
    assert evaluation is not None
    assert evaluation.criteria_version == "2026.1"


def test_fingerprint_sees_names_sizes_and_times_of_criteria_files_only(tmp_path: Path) -> None:
    assert fingerprint(tmp_path / "absent") == ()
    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "notes.txt").write_text("ignored")
    first = fingerprint(tmp_path)
    assert [name for name, _, _ in first] == ["a.yaml"]
    touch_later(tmp_path / "a.yaml", "xy")
    assert fingerprint(tmp_path) != first
