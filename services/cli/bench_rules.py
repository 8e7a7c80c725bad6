"""Criteria-library line evaluations per second next to the raw durable-rules rate for the same
lines, and the process's memory before and after N evaluations (default 1,000,000).

    python -m services.cli.bench_rules --evaluations 1000000 --json out.json

Run it as its own process (``make bench`` does): the memory figures are this process's RSS.

The lines: every example case of every current criteria set (the cases shipped with the library,
their line attributes filled in as ``urctl criteria test`` does) and the vocabulary's worked
examples (codes and words from which facts are derived), the same cases again with every number
shifted a little, and lines no criteria set covers (an uncovered service code, a covered code with an
uncovered diagnosis or line of business), one in ten, interleaved so that consecutive lines go to
different sets. The rotation is replayed until N lines have been evaluated.

line evaluations/s
    ``LibraryEvaluator.evaluate`` as the review service calls it: select the criteria set, derive
    facts from the line's codes and words (the vocabulary), match through ``DurableRulesMatcher``
    (one durable-rules assert and one session delete per line), three-valued outcome, urgency,
    explanation.
raw durable-rules/s
    The engine alone on the same work: for each line of the same rotation, the fact the matcher
    would assert (derived facts included) is built beforehand, and the loop only sets its ``sid``,
    calls ``assert_fact`` on a ruleset compiled from the same criteria set (same rules, same catch-all rule, each action
    appending its condition id to a list) on a host without background threads, and deletes the
    session. Lines no set covers cost the engine nothing and count as done, as they do for the
    library. The ratio of the two rates is what the Python around the engine costs.
raw durable-rules/s, fixed fact (earlier ``make bench`` figure)
    One 5-field fact on a 4-rule ruleset (3 fire), asserted and deleted repeatedly: for comparison
    with earlier results only.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from durable import engine
from durable.lang import m, when_all
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.adapters.rules_engine import DurableRulesMatcher, engine_fact, ruleset_definition
from services.review.domain.criteria import FactValue, LineFacts, example_line
from services.review.domain.vocabulary import example_of

DEFAULT_CRITERIA_DIR = Path(__file__).resolve().parents[1] / "review" / "criteria"
TARGET_RATIO = 0.5
TARGET_RSS_GROWTH_PCT = 10.0
UNCOVERED_EVERY = 10  # one line in ten matches no criteria set
PROGRESS_STEP = 2_000

RAW_MEASURES = ("durable-rules alone on the same line rotation: per line, one assert_fact of the fact the matcher "
                "would send (built beforehand, only its sid set in the loop) on a ruleset compiled from the same "
                "criteria set (same rules and catch-all, actions append the condition id to a list), on a host "
                "without background threads, then delete_state of that session; lines no set covers cost nothing")
RAW_FIXED_MEASURES = ("one 5-field fact on a 4-rule ruleset (3 rules fire), assert_fact + delete_state repeatedly "
                      "(the earlier make bench figure)")


def rss_kib() -> int:
    """This process's resident set size (VmRSS), in KiB."""
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError("VmRSS not found in /proc/self/status (Linux only)")
    return int(match.group(1))


# -- the lines -------------------------------------------------------------------------------------

def _shifted(facts: dict[str, FactValue], step: int) -> dict[str, FactValue]:
    """The same facts with every number moved a little (so the rotation is not only the shipped
    values); booleans, texts and dates are kept."""
    moved: dict[str, FactValue] = {}
    for name, value in facts.items():
        if isinstance(value, float | int) and not isinstance(value, bool):
            moved[name] = float(value) + (0.5 if step % 2 else -0.5) * (1 + step % 3)
        else:
            moved[name] = value
    return moved


def _uncovered(library: CriteriaLibrary) -> list[LineFacts]:
    """Lines no current criteria set covers: an office visit code, and for each set one of its codes
    with an unrelated diagnosis or an uncovered line of business."""
    lines = [LineFacts(procedure_code="99213", diagnoses=("J069",), line_of_business="commercial", member_state="CA",
                       urgency="standard", review_type="prospective", units=1, place_of_service=11,
                       facts={"symptom_duration_weeks": 3.0})]
    for c in library.current():
        if not c.examples:
            continue
        base = example_line(c, c.examples[0])
        lines.append(dataclasses.replace(base, diagnoses=("Z0000",)))
        others = sorted({"medicare_advantage", "medicaid", "commercial", "workers_comp"} - c.lines_of_business)
        if others:
            lines.append(dataclasses.replace(base, line_of_business=others[0]))
    return [line for line in lines if library.select(line) is None]


def line_rotation(library: CriteriaLibrary) -> list[LineFacts]:
    """The rotation evaluated over and over: each current set's examples, the vocabulary's worked
    examples for it (lines whose codes and words derive facts), and their shifted twins, interleaved
    across sets, with an uncovered line every UNCOVERED_EVERY lines."""
    worked: dict[str, list[LineFacts]] = {}
    current = {c.id: c for c in library.current()}
    for vocabulary in library.vocabularies:
        for e in vocabulary.examples:
            if e.criteria in current:
                worked.setdefault(e.criteria, []).append(example_of(current[e.criteria], e))
    per_set: list[list[LineFacts]] = []
    for c in library.current():
        cases = [example_line(c, ex) for ex in c.examples] + worked.get(c.id, [])
        twins = [dataclasses.replace(line, facts=_shifted(dict(line.facts), i)) for i, line in enumerate(cases)]
        if cases:
            per_set.append(cases + twins)
    covered = [line for group in itertools.zip_longest(*per_set) for line in group if line is not None]
    uncovered = _uncovered(library)
    lines: list[LineFacts] = []
    for i, line in enumerate(covered):
        if uncovered and i % (UNCOVERED_EVERY - 1) == 0:
            lines.append(uncovered[(i // (UNCOVERED_EVERY - 1)) % len(uncovered)])
        lines.append(line)
    return lines


# -- measurements ----------------------------------------------------------------------------------

def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False, refresh_per_second=4)


def _timed_loop(console: Console, label: str, count: int, step: Callable[[int], None]) -> float:
    """Seconds taken by ``step(0) ... step(count - 1)``, shown as a progress bar."""
    with _progress(console) as bar:
        task = bar.add_task(label, total=count)
        t0 = time.perf_counter()
        done = 0
        while done < count:
            chunk = min(PROGRESS_STEP, count - done)
            for i in range(done, done + chunk):
                step(i)
            done += chunk
            bar.update(task, completed=done)
        return time.perf_counter() - t0


class _QuietHost(engine.Host):  # type: ignore[misc]  # durable has no type information
    """A durable-rules host without background dispatcher threads (see rules_engine's docstring)."""

    def _run(self) -> None:
        return None


def measure_raw(library: CriteriaLibrary, lines: list[LineFacts], count: int, console: Console) -> float:
    """Raw durable-rules evaluations/s over the same rotation (see the module docstring)."""
    host = _QuietHost()
    fired: list[str] = []
    record = fired.append

    def action(condition_id: str) -> Callable[[Any], None]:
        def act(c: Any) -> None:
            record(condition_id)

        return act

    prefix = f"raw-{uuid.uuid4().hex[:8]}-"
    names: dict[str, str] = {}
    jobs: list[tuple[str, dict[str, Any]] | None] = []
    for line in lines:
        criteria = library.select(line)
        if criteria is None:
            jobs.append(None)
            continue
        if criteria.key not in names:
            names[criteria.key] = prefix + criteria.key
            host.register_rulesets({names[criteria.key]: ruleset_definition(criteria, action)})
        # The fact the matcher asserts: the line's facts with what the vocabulary derives for them.
        derived = library.derivations(criteria).derive(line) if criteria.derive_facts else None
        jobs.append((names[criteria.key], engine_fact(criteria, derived.facts if derived is not None else line.facts)))
    size = len(jobs)
    assert_fact, delete_state = host.assert_fact, host.delete_state

    def step(i: int) -> None:
        job = jobs[i % size]
        if job is None:
            return
        name, fact = job
        sid = str(i + 1)
        fact["sid"] = sid
        fired.clear()
        assert_fact(name, fact)
        delete_state(name, sid)

    return count / _timed_loop(console, "raw durable-rules, same lines", count, step)


def measure_raw_fixed(count: int, console: Console) -> float:
    """The earlier ``make bench`` ceiling: one fixed fact on a 4-rule ruleset."""
    hits: list[int] = []
    host = _QuietHost()
    name = f"bench_raw_{uuid.uuid4().hex[:6]}"
    host.register_rulesets({name: {
        "any_line": when_all(m.line == 1)(lambda c: None).define(),
        "duration": when_all(m.symptom_duration_weeks >= 6)(lambda c: hits.append(1)).define(),
        "therapy": when_all(m.conservative_therapy_weeks >= 6)(lambda c: hits.append(2)).define(),
        "cauda_equina": when_all(m.suspected_cauda_equina == True)(lambda c: hits.append(3)).define(),  # noqa: E712
    }})
    facts = {"symptom_duration_weeks": 8.0, "conservative_therapy_weeks": 7.0, "suspected_cauda_equina": False}

    def step(i: int) -> None:
        sid = f"s{i}"
        host.assert_fact(name, {"sid": sid, "line": 1, **facts})
        host.delete_state(name, sid)
        hits.clear()

    return count / _timed_loop(console, "raw durable-rules, fixed fact (earlier figure)", count, step)


def run(evaluations: int = 1_000_000, *, raw_evaluations: int = 200_000, warmup: int = 20_000,
        criteria_dir: Path | str = DEFAULT_CRITERIA_DIR, console: Console | None = None) -> dict[str, Any]:
    """Measure and return the report (see the module docstring; figures are per second and KiB)."""
    console = console or Console(stderr=True)
    files = sorted(p.name for p in Path(criteria_dir).iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    library = load_library(criteria_dir)
    lines = line_rotation(library)
    matcher = DurableRulesMatcher(library.all())
    evaluator = LibraryEvaluator(library, matcher)
    size = len(lines)
    outcomes: Counter[str] = Counter()
    uncovered = 0
    for line in lines:  # one pass: the outcome mix of the rotation, and every set's ruleset compiled
        evaluation = evaluator.evaluate(line)
        if evaluation is None:
            uncovered += 1
        else:
            outcomes[evaluation.outcome.value] += 1

    raw_fixed = measure_raw_fixed(min(raw_evaluations, 50_000), console) if raw_evaluations else 0.0
    raw = measure_raw(library, lines, raw_evaluations, console) if raw_evaluations else 0.0

    evaluate = evaluator.evaluate

    def step(i: int) -> None:
        evaluate(lines[i % size])

    _timed_loop(console, "warm-up", warmup, step)
    gc.collect()
    rss_before = rss_kib()
    elapsed = _timed_loop(console, "criteria library line evaluations", evaluations, step)
    gc.collect()
    rss_after = rss_kib()
    rate = evaluations / elapsed if evaluations else 0.0
    growth = 100.0 * (rss_after - rss_before) / rss_before
    ratio = rate / raw if raw else None
    return {
        "criteria_dir": str(criteria_dir),
        "criteria_files": len(files),
        "criteria_sets_loaded": len(library.all()),
        "criteria_sets_current": len(library.current()),
        "lines_in_rotation": size,
        "uncovered_lines_in_rotation": uncovered,
        "rotation_outcomes": dict(sorted(outcomes.items())),
        "evaluations": evaluations,
        "seconds": round(elapsed, 3),
        "line_evals_per_s": round(rate),
        "raw_per_s": round(raw),
        "raw_evaluations": raw_evaluations,
        "raw_measures": RAW_MEASURES,
        "raw_fixed_fact_per_s": round(raw_fixed),
        "raw_fixed_fact_measures": RAW_FIXED_MEASURES,
        "ratio_vs_raw": round(ratio, 3) if ratio is not None else None,
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "rss_growth_pct": round(growth, 2),
        "targets": {"ratio_vs_raw_min": TARGET_RATIO, "rss_growth_pct_max": TARGET_RSS_GROWTH_PCT,
                    "ratio_met": ratio is not None and ratio >= TARGET_RATIO,
                    "rss_met": growth < TARGET_RSS_GROWTH_PCT},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title="criteria library vs raw durable-rules")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in report_rows(report):
        table.add_row(name, value)
    console.print(table)
    console.print(f"raw = {report['raw_measures']}")


def report_rows(report: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(measure, value) rows shared with ``make bench``'s final table."""
    targets = report["targets"]
    ratio_met = "met" if targets["ratio_met"] else "NOT met"
    rss_met = "met" if targets["rss_met"] else "NOT met"
    yield "criteria sets loaded (files)", f"{report['criteria_sets_loaded']} ({report['criteria_files']})"
    yield "lines in rotation (uncovered)", f"{report['lines_in_rotation']} ({report['uncovered_lines_in_rotation']})"
    yield "line evaluations", f"{report['evaluations']:,}"
    yield "line evaluations/s, whole library", f"{report['line_evals_per_s']:,}"
    yield "raw durable-rules/s, same lines", f"{report['raw_per_s']:,}"
    yield "ratio library / raw (target >= 0.5)", f"{report['ratio_vs_raw']} ({ratio_met})"
    yield "raw durable-rules/s, fixed fact (earlier figure)", f"{report['raw_fixed_fact_per_s']:,}"
    yield "RSS before / after (KiB)", f"{report['rss_kib_before']:,} / {report['rss_kib_after']:,}"
    yield "RSS growth (target < 10 %)", f"{report['rss_growth_pct']} % ({rss_met})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_rules", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=1_000_000, help="line evaluations to time and watch")
    parser.add_argument("--raw-evaluations", type=int, default=200_000,
                        help="raw durable-rules evaluations for the ceiling (0: skip)")
    parser.add_argument("--warmup", type=int, default=20_000, help="line evaluations before the first RSS reading")
    parser.add_argument("--criteria-dir", type=Path, default=DEFAULT_CRITERIA_DIR)
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.evaluations < 1 or args.raw_evaluations < 0 or args.warmup < 0:
        parser.error("--evaluations must be positive, --raw-evaluations and --warmup not negative")
    console = Console()
    report = run(args.evaluations, raw_evaluations=args.raw_evaluations, warmup=args.warmup,
                 criteria_dir=args.criteria_dir, console=console)
    render(report, console)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
