"""services.cli.bench_rules: the report's shape and sanity on a small count, in-process and as the
command ``make bench`` runs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from services.cli import bench_rules
from services.review.domain.criteria import Outcome, example_line
from services.review.domain.vocabulary import example_of
from tests.unit.review.builders import SHIPPED_DIR, shipped_library

REPO = Path(__file__).resolve().parents[3]


def _criteria_files() -> int:
    return sum(1 for p in SHIPPED_DIR.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _check_report(report: dict[str, Any], evaluations: int) -> None:
    files = _criteria_files()
    assert report["criteria_files"] == files
    assert report["criteria_sets_loaded"] == files  # one set per file
    assert report["evaluations"] == evaluations
    assert report["line_evals_per_s"] > 0
    assert report["raw_per_s"] > 0
    assert report["raw_fixed_fact_per_s"] > 0
    assert report["ratio_vs_raw"] == pytest.approx(report["line_evals_per_s"] / report["raw_per_s"], abs=0.002)
    assert report["rss_kib_before"] > 0
    assert report["rss_kib_after"] > 0
    growth = 100 * (report["rss_kib_after"] - report["rss_kib_before"]) / report["rss_kib_before"]
    assert report["rss_growth_pct"] == pytest.approx(growth, abs=0.01)
    assert "assert_fact" in report["raw_measures"]
    assert "delete_state" in report["raw_measures"]
    assert report["lines_in_rotation"] > report["criteria_sets_current"]
    assert 0 < report["uncovered_lines_in_rotation"] < report["lines_in_rotation"]
    assert set(report["rotation_outcomes"]) <= {o.value for o in Outcome}
    assert sum(report["rotation_outcomes"].values()) + report["uncovered_lines_in_rotation"] \
        == report["lines_in_rotation"]
    assert set(report["targets"]) == {"ratio_vs_raw_min", "rss_growth_pct_max", "ratio_met", "rss_met"}


def test_rotation_covers_every_example_and_some_uncovered_lines() -> None:
    """Every criteria example and every worked example of the vocabulary (lines from which facts are
    derived), each with its shifted twin, and some lines no set covers."""
    library = shipped_library()
    lines = bench_rules.line_rotation(library)
    current = {c.id: c for c in library.current()}
    for c in current.values():
        for ex in c.examples:
            assert example_line(c, ex) in lines, (c.key, ex.name)
    worked = [(current[e.criteria], e) for v in library.vocabularies for e in v.examples]
    for c, e in worked:
        assert example_of(c, e) in lines, (c.key, e.name)
    selected = [library.select(line) for line in lines]
    uncovered = sum(1 for c in selected if c is None)
    assert 0 < uncovered <= len(lines) // bench_rules.UNCOVERED_EVERY + 1
    examples = sum(len(c.examples) for c in current.values()) + len(worked)
    assert len(lines) - uncovered == 2 * examples  # each example, and its shifted twin


def test_report_in_process() -> None:
    out = io.StringIO()
    report = bench_rules.run(2_000, raw_evaluations=2_000, warmup=200, criteria_dir=SHIPPED_DIR,
                             console=Console(file=out, width=120))
    _check_report(report, 2_000)
    bench_rules.render(report, Console(file=out, width=160))
    assert "line evaluations/s, whole library" in out.getvalue()


def test_command_writes_the_json_report(tmp_path: Path) -> None:
    target = tmp_path / "rules.json"
    done = subprocess.run([sys.executable, "-m", "services.cli.bench_rules", "--evaluations", "2000",
                           "--raw-evaluations", "2000", "--warmup", "200", "--json", str(target)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    _check_report(json.loads(target.read_text()), 2_000)
    assert "criteria library vs raw durable-rules" in done.stdout


def test_nonsense_counts_are_refused() -> None:
    with pytest.raises(SystemExit):
        bench_rules.main(["--evaluations", "0"])
