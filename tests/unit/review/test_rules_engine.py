"""The durable-rules matcher: one ruleset per criteria version, nothing left behind per line,
correct under concurrent use."""

from __future__ import annotations

import random
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from durable import engine

from services.review.adapters.rules_engine import (
    DurableRulesMatcher,
    RulesEngineError,
    engine_number,
    registered_rulesets,
    ruleset_name,
)
from services.review.domain.criteria import CriteriaSet, LineFacts, PythonMatcher, evaluate
from tests.unit.review.builders import cond, criteria, line, shipped_library, spec

LIBRARY = shipped_library()


def _lumbar() -> CriteriaSet:
    found = LIBRARY.get("imaging-mri-lumbar-spine")
    assert found is not None
    return found


LUMBAR = _lumbar()
RED_FLAGS = ("suspected_cauda_equina", "suspected_cancer", "suspected_infection", "suspected_fracture",
             "progressive_neurologic_deficit")


def lumbar_lines(count: int, seed: int) -> list[LineFacts]:
    """Lines of every kind: approved, urgent, referred, pended, and some matching no rule at all."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        facts: dict[str, object] = {}
        if rng.random() < 0.9:
            facts["symptom_duration_weeks"] = float(rng.randint(0, 20))
        if rng.random() < 0.9:
            facts["conservative_therapy_weeks"] = float(rng.randint(0, 12))
        for flag in RED_FLAGS:
            if rng.random() < 0.9:
                facts[flag] = rng.random() < 0.05
        lines.append(line(facts, diagnoses=("M5416",)))
    return lines


def _rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match, "needs Linux /proc"
    return int(match.group(1))


def test_every_session_is_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    asserted: list[tuple[Any, str, str]] = []
    deleted: list[str] = []
    real_assert: Callable[..., Any] = engine.Host.assert_fact
    real_delete: Callable[..., Any] = engine.Host.delete_state

    def spy_assert(host: Any, name: str, fact: dict[str, Any], complete: Any = None) -> Any:
        asserted.append((host, name, fact["sid"]))
        return real_assert(host, name, fact, complete)

    def spy_delete(host: Any, name: str, sid: str | None = None) -> None:
        deleted.append(str(sid))
        real_delete(host, name, sid)

    monkeypatch.setattr(engine.Host, "assert_fact", spy_assert)
    monkeypatch.setattr(engine.Host, "delete_state", spy_delete)
    matcher = DurableRulesMatcher()
    results = [matcher.matched(LUMBAR, one) for one in lumbar_lines(200, seed=1)]
    assert frozenset() in results
    assert any(results)
    assert [sid for _, _, sid in asserted] == deleted
    assert len(set(deleted)) == 200
    for host, name, sid in asserted:
        assert name == "imaging-mri-lumbar-spine@2026.1"
        with pytest.raises(Exception, match="Could not get state"):
            host.get_state(name, sid)


def test_twenty_thousand_lines_leave_nothing_behind() -> None:
    # A durable-rules ruleset holds about 1,024 live sessions before asserts raise MemoryError,
    # so 20,000 lines only pass if each session is deleted; RSS shows nothing else piles up.
    matcher = DurableRulesMatcher()
    lines = lumbar_lines(2_000, seed=2)
    for one in lines:
        matcher.matched(LUMBAR, one)
    before = _rss_kib()
    for _ in range(10):
        for one in lines:
            matcher.matched(LUMBAR, one)
    growth = _rss_kib() - before
    assert growth < 8 * 1024, f"RSS grew by {growth} KiB over 20,000 evaluations"


def test_concurrent_evaluations_match_sequential_ones() -> None:
    matcher = DurableRulesMatcher()
    work = [(c, one) for c in LIBRARY.all() for ex in c.examples for one in [_example_line(c, ex.name)]]
    work += [(LUMBAR, one) for one in lumbar_lines(1_500, seed=3)]
    expected = [evaluate(c, one, PythonMatcher()) for c, one in work]
    assert [evaluate(c, one, matcher) for c, one in work] == expected
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        try:
            order = list(range(len(work)))
            random.Random(n).shuffle(order)
            start.wait()
            got = {i: evaluate(work[i][0], work[i][1], matcher) for i in order}
            results[n] = [got[i] for i in range(len(work))]
        except BaseException as exc:  # noqa: BLE001 - a failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so that interleavings actually happen
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert len(results) == 4
    for got in results.values():
        assert got == expected


def _example_line(c: CriteriaSet, name: str) -> LineFacts:
    from services.review.domain.criteria import example_line
    return example_line(c, next(ex for ex in c.examples if ex.name == name))


def test_one_ruleset_per_criteria_version() -> None:
    facts = (spec("n"),)
    v1 = criteria(facts, (cond("c", ("n", "ge", 1)),), "c", cid="test-versions", version="1")
    v2 = criteria(facts, (cond("c", ("n", "ge", 2)),), "c", cid="test-versions", version="2")
    matcher = DurableRulesMatcher([v1])
    assert matcher.compile(v1) == "test-versions@1" == ruleset_name(v1)  # idempotent
    assert matcher.matched(v2, line({"n": 1.5})) == frozenset()
    assert matcher.matched(v1, line({"n": 1.5})) == {"c"}
    assert {"test-versions@1", "test-versions@2"} <= registered_rulesets()


def test_a_known_name_with_different_content_is_refused() -> None:
    facts = (spec("n"),)
    first = criteria(facts, (cond("c", ("n", "ge", 1)),), "c", cid="test-changed", version="1")
    changed = criteria(facts, (cond("c", ("n", "ge", 5)),), "c", cid="test-changed", version="1")
    DurableRulesMatcher([first])
    with pytest.raises(RulesEngineError, match="already compiled from different content"):
        DurableRulesMatcher().matched(changed, line({"n": 3}))


def test_thresholds_the_engine_cannot_represent_are_refused_at_compile_time() -> None:
    tiny = criteria((spec("n"),), (cond("c", ("n", "gt", 1e-5)),), "c")
    with pytest.raises(RulesEngineError, match="outside what the rules engine represents"):
        DurableRulesMatcher([tiny])


@pytest.mark.parametrize(("x", "proxy"), [
    (0.0, 0.0), (-0.0, 0.0), (6.0, 6.0), (1e-3, 1e-3), (9.99e-4, 5e-4), (-1e-9, -5e-4), (1e15, 1e15),
    (1e20, 1e15), (-1e300, -1e15), (123456.789, 123456.789),
])
def test_numbers_become_proxies_the_engine_can_parse(x: float, proxy: float) -> None:
    assert engine_number(x) == proxy


def test_engine_failures_are_translated_and_leave_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(host: Any, name: str, fact: dict[str, Any], complete: Any = None) -> Any:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(engine.Host, "assert_fact", failing)
    with pytest.raises(RulesEngineError, match="engine exploded"):
        DurableRulesMatcher().matched(LUMBAR, line({"symptom_duration_weeks": 8.0}))
    monkeypatch.undo()
    assert DurableRulesMatcher().matched(LUMBAR, line({"symptom_duration_weeks": 8.0})) == {"symptoms_six_weeks"}


def test_lines_no_condition_holds_for_are_safe_on_a_fresh_ruleset() -> None:
    # Without the catch-all rule, deleting the session of an unhandled fact crashed the process
    # here (SIGSEGV) on the second version of a one-rule set; this is that scenario, many times.
    facts = (spec("n"),)
    first = criteria(facts, (cond("c", ("n", "ge", 1)),), "c", cid="test-unmatched", version="1")
    second = criteria(facts, (cond("c", ("n", "ge", 2)),), "c", cid="test-unmatched", version="2")
    matcher = DurableRulesMatcher([first])
    for i in range(3_000):
        assert matcher.matched(second, line({"n": 1.5} if i % 3 else {})) == frozenset()
    assert matcher.matched(second, line({"n": 2})) == {"c"}
