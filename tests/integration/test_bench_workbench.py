"""The workbench benchmark (services/cli/bench_workbench.py) runs end to end on a small queue: it
seeds review, serves review and the workbench in process and times real page loads."""

from __future__ import annotations

from services.cli.bench_workbench import run


def test_the_workbench_bench_measures_both_pages() -> None:
    result = run(tasks=120, rounds=3)
    assert result["open_tasks"] == 120
    assert result["queue_rows"] == 50
    for page in ("queue_page", "task_page"):
        figures = result[page]
        assert isinstance(figures, dict)
        assert figures["n"] == 3
        assert figures["p95_ms"] > 0
