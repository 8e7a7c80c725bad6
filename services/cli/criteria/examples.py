"""``urctl criteria test [PATH ...]``: run every example case of every criteria set, and every worked
example of the vocabulary beside them, through both condition matchers (durable-rules, as the review
service runs, and the reference Python matcher), with the facts the vocabulary derives, and report
each example whose outcome, missing facts, condition statuses, derived facts or urgency are not what
it expects."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.cli.base import EXIT_OK, EXIT_SERVICE_ERROR, Targets
from services.cli.criteria.library import LoadedSet, LoadedVocabulary, criteria_paths, validate_paths
from services.cli.criteria.validate import print_problems, problem_json
from services.cli.render import indent, kv_grid, plain, progress_bar
from services.review.adapters.criteria_loader import CriteriaLibrary
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.criteria import (
    ConditionMatcher,
    FactDeriver,
    LineEvaluation,
    PythonMatcher,
    evaluate,
    example_line,
    version_key,
)
from services.review.domain.vocabulary import run_example

PROGRESS_MIN_SETS = 8  # below this many sets, `test` needs no progress bar


@dataclass(frozen=True)
class ExampleFailure:
    """One example that did not give what it expects: what it expected, what each matcher gave."""

    set_key: str
    example: str
    expected: str
    got: str
    summary: str


@dataclass(frozen=True)
class SetResult:
    """A criteria set's examples: how many passed, and each failure."""

    loaded: LoadedSet
    passed: int
    failures: tuple[ExampleFailure, ...]


def _describe_result(evaluation: LineEvaluation) -> str:
    text = evaluation.outcome.value
    if evaluation.missing_facts:
        text += f" (missing: {', '.join(evaluation.missing_facts)})"
    return text


def run_examples(loaded: LoadedSet, matchers: Mapping[str, ConditionMatcher],
                 deriver: FactDeriver | None = None) -> SetResult:
    """Every example of the set through every matcher, with the facts the vocabulary derives
    (``deriver``) as the review service does: the expected outcome, the expected missing facts,
    and the same condition statuses from each matcher."""
    c = loaded.criteria
    passed = 0
    failures: list[ExampleFailure] = []
    for example in c.examples:
        line = example_line(c, example)
        expected = example.expect.value + (f" (missing: {', '.join(sorted(example.missing_facts))})"
                                           if example.missing_facts is not None else "")
        problems: list[str] = []
        summary = ""
        statuses: dict[str, tuple[str, ...]] = {}
        for name, matcher in matchers.items():
            try:
                got = evaluate(c, line, matcher, deriver)
            except Exception as exc:  # noqa: BLE001 - an engine failure is this example's failure, not the run's
                problems.append(f"{name}: error: {exc}")
                continue
            summary = summary or got.summary
            statuses[name] = tuple(f"{r.condition_id}={r.status.value}" for r in got.conditions)
            wrong_missing = (example.missing_facts is not None
                             and tuple(sorted(example.missing_facts)) != got.missing_facts)
            if got.outcome is not example.expect or wrong_missing:
                problems.append(f"{name}: {_describe_result(got)}")
                summary = got.summary
        if len(set(statuses.values())) > 1:
            problems += [f"{name} condition statuses: {', '.join(s)}" for name, s in statuses.items()]
        if problems:
            failures.append(ExampleFailure(c.key, example.name, expected, "; ".join(problems), summary))
        else:
            passed += 1
    return SetResult(loaded, passed, tuple(failures))


@dataclass(frozen=True)
class VocabularyResult:
    """A vocabulary's worked examples: how many passed, and each failure."""

    loaded: LoadedVocabulary
    passed: int
    failures: tuple[ExampleFailure, ...]


def run_vocabulary_examples(loaded: LoadedVocabulary, library: CriteriaLibrary | None,
                            matchers: Mapping[str, ConditionMatcher]) -> VocabularyResult:
    """Every worked example of a vocabulary through every matcher, on the current version of the
    criteria set it names in ``library``: the facts derived, the outcome, missing facts and urgency."""
    v = loaded.vocabulary
    passed = 0
    failures: list[ExampleFailure] = []
    current = {c.id: c for c in library.current()} if library is not None else {}
    for e in v.examples:
        criteria = current.get(e.criteria)
        if library is None or criteria is None:
            failures.append(ExampleFailure(v.key, e.name, e.expect.value, f"no criteria set {e.criteria!r}", ""))
            continue
        problems: list[str] = []
        for name, matcher in matchers.items():
            try:
                problems += [f"{name}: {p}" for p in run_example(criteria, library.derivations(criteria), e, matcher)]
            except Exception as exc:  # noqa: BLE001 - an engine failure is this example's failure, not the run's
                problems.append(f"{name}: error: {exc}")
        expected = e.expect.value + (f", derived {', '.join(sorted(e.derived))}" if e.derived else "")
        if problems:
            failures.append(ExampleFailure(v.key, e.name, expected, "; ".join(problems), ""))
        else:
            passed += 1
    return VocabularyResult(loaded, passed, tuple(failures))


def cmd_test(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    validation = validate_paths(criteria_paths(args))
    matchers: dict[str, ConditionMatcher] = {"durable-rules": DurableRulesMatcher(), "python": PythonMatcher()}
    results: list[SetResult] = []
    sets = sorted(validation.sets, key=lambda s: (s.criteria.id, version_key(s.criteria.version)))
    with progress_bar(Console(stderr=True), not args.json and len(sets) >= PROGRESS_MIN_SETS) as progress:
        task = progress.add_task("running examples", total=len(sets))
        for loaded in sets:
            library = validation.library_of(loaded.path)
            results.append(run_examples(loaded, matchers,
                                        library.derivations(loaded.criteria) if library is not None else None))
            progress.advance(task)
    vocabulary_results = [run_vocabulary_examples(v, validation.library_of(v.path), matchers)
                          for v in sorted(validation.vocabularies, key=lambda v: v.vocabulary.id)]
    failed = sum(len(r.failures) for r in results) + sum(len(r.failures) for r in vocabulary_results)
    examples = (sum(r.passed + len(r.failures) for r in results)
                + sum(r.passed + len(r.failures) for r in vocabulary_results))
    ok = failed == 0 and validation.ok
    if args.json:
        print(json.dumps({
            "sets": [{"file": str(r.loaded.path), "id": r.loaded.criteria.id, "version": r.loaded.criteria.version,
                      "passed": r.passed, "failed": len(r.failures),
                      "failures": [dataclasses.asdict(f) for f in r.failures]} for r in results],
            "vocabularies": [{"file": str(r.loaded.path), "id": r.loaded.vocabulary.id,
                              "version": r.loaded.vocabulary.version, "passed": r.passed, "failed": len(r.failures),
                              "failures": [dataclasses.asdict(f) for f in r.failures]} for r in vocabulary_results],
            "problems": [problem_json(e) for e in validation.problems],
            "examples": examples, "failed": failed}, indent=2))
        return EXIT_OK if ok else EXIT_SERVICE_ERROR
    table = Table(title=f"Examples of {len(results)} criteria set(s), through durable-rules and the reference "
                        "matcher", box=box.SIMPLE_HEAVY, pad_edge=False)
    table.add_column("criteria set", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("", no_wrap=True)
    for r in results:
        bad = len(r.failures)
        table.add_row(plain(r.loaded.criteria.id, "bold"), plain(r.loaded.criteria.version),
                      plain(f"{r.passed}/{r.passed + bad}"), plain(bad, "red" if bad else "dim"),
                      plain("FAIL", "bold red") if bad else plain("ok", "green"))
    for v in vocabulary_results:
        bad = len(v.failures)
        table.add_row(plain(f"vocabulary {v.loaded.vocabulary.id}", "bold"), plain(v.loaded.vocabulary.version),
                      plain(f"{v.passed}/{v.passed + bad}"), plain(bad, "red" if bad else "dim"),
                      plain("FAIL", "bold red") if bad else plain("ok", "green"))
    if results or vocabulary_results:
        console.print(table)
    all_failures = [f for r in results for f in r.failures] + [f for v in vocabulary_results for f in v.failures]
    for f in all_failures:
        console.print(Text.assemble((f"{f.set_key}: ", "bold"), (f"example {f.example!r} failed", "red")))
        console.print(indent(kv_grid([("expected", plain(f.expected)), ("got", plain(f.got, "red")),
                                      ("summary", plain(f.summary or "—"))])))
    if validation.problems:
        print_problems(console, validation.problems)
    verdict = (f"{examples - failed} of {examples} example(s) passed in {len(results)} set(s)"
               + (f" and {len(vocabulary_results)} vocabular{'y' if len(vocabulary_results) == 1 else 'ies'}"
                  if vocabulary_results else "")
               + (f"; {len(validation.problems)} file problem(s)" if validation.problems else ""))
    console.print(plain(verdict, "bold green" if ok else "bold red"))
    return EXIT_OK if ok else EXIT_SERVICE_ERROR
