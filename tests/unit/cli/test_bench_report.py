"""services.cli.bench's report: CPU per request, flatness, RSS growth, the cluster's cost and issue 17's
targets, computed from hand-made figures (no Kafka, no PostgreSQL)."""

from __future__ import annotations

import copy
import io
import os
from typing import Any

import pytest
from rich.console import Console

from services.cli import bench
from tests.polling import wait_until


def _steady(count: int, per_s: float, start: float = 100.0) -> list[float]:
    return [start + i / per_s for i in range(count)]


# -- CPU per request -------------------------------------------------------------------------------

def test_cpu_ms_per_request_divides_each_process_and_adds_a_total_without_the_wall_time() -> None:
    used = {"intake": 2.5, "review": 1.5, "authorization": 1.0, "postgres": 1.4, "wall_s": 30.0}
    per = bench.cpu_ms_per_request(used, 1000)
    assert per == {"intake": 2.5, "review": 1.5, "authorization": 1.0, "postgres": 1.4, "total": 6.4}


def test_cpu_ms_per_request_without_requests_is_empty() -> None:
    assert bench.cpu_ms_per_request({"intake": 1.0, "wall_s": 1.0}, 0) == {}


# -- flatness --------------------------------------------------------------------------------------

def test_flatness_of_a_steady_rate_is_one() -> None:
    flat = bench.flatness(_steady(1000, 200.0))
    assert flat is not None
    assert flat["requests"] == 1000
    assert flat["tenth"] == 100
    # 100 settlements over the 99 intervals from the first to the hundredth: 100 / 0.495 s.
    assert flat["first_tenth_per_s"] == pytest.approx(202.0, abs=0.1)
    assert flat["last_tenth_per_s"] == flat["first_tenth_per_s"]
    assert flat["last_vs_first"] == 1.0


def test_flatness_starts_at_the_first_settlement_so_the_pipeline_fill_is_left_out() -> None:
    # The first request settles 5 s after the phase began; then 100/s throughout.
    flat = bench.flatness(_steady(500, 100.0, start=5.0))
    assert flat is not None
    assert flat["last_vs_first"] == 1.0


def test_flatness_sees_a_last_tenth_at_half_the_rate() -> None:
    times = _steady(900, 100.0) + _steady(100, 50.0, start=100.0 + 900 / 100.0)
    flat = bench.flatness(reversed(times))  # in any order
    assert flat is not None
    assert flat["first_tenth_per_s"] == pytest.approx(101.0, abs=0.1)
    assert flat["last_tenth_per_s"] == pytest.approx(50.5, abs=0.1)
    assert flat["last_vs_first"] == pytest.approx(0.5)


def test_flatness_leaves_out_what_settled_after_the_last_submission() -> None:
    during = _steady(900, 100.0)  # 100.0 to 108.99 at 100/s
    drained = [109.0 + i / 1000.0 for i in range(100)]  # a backlog drained at 1,000/s
    assert (bench.flatness(during + drained) or {})["last_vs_first"] > 1.5
    flat = bench.flatness(during + drained, submitted_until=109.0)
    assert flat is not None
    assert (flat["requests"], flat["tenth"], flat["drained"]) == (901, 90, 99)
    assert flat["last_vs_first"] == pytest.approx(1.0, abs=0.02)
    assert (bench.flatness(during, submitted_until=120.0) or {})["drained"] == 0
    assert bench.flatness(during, submitted_until=0.0) is None


def test_flatness_needs_two_settlements_a_tenth() -> None:
    assert bench.flatness(_steady(19, 10.0)) is None
    assert bench.flatness([]) is None
    assert bench.flatness(_steady(20, 10.0)) is not None


def test_flatness_of_a_tenth_stamped_at_one_instant_has_no_rate() -> None:
    times = [1.0] * 10 + _steady(90, 10.0, start=2.0)
    flat = bench.flatness(times)
    assert flat is not None
    assert flat["first_tenth_per_s"] is None
    assert flat["last_vs_first"] is None
    assert flat["last_tenth_per_s"] == pytest.approx(10 / 0.9, abs=0.1)


# -- RSS -------------------------------------------------------------------------------------------

def test_rss_growth_in_mib_and_percent_of_the_start() -> None:
    grown = bench.rss_growth({"intake": 102400, "review": 204800, "authorization": 51200},
                             {"intake": 112640, "review": 204800, "authorization": 48640})
    assert grown == {"intake": {"start": 100.0, "end": 110.0, "growth_pct": 10.0},
                     "review": {"start": 200.0, "end": 200.0, "growth_pct": 0.0},
                     "authorization": {"start": 50.0, "end": 47.5, "growth_pct": -5.0}}


def test_rss_growth_after_the_first_tenth_is_the_growth_and_from_the_start_is_shown_too() -> None:
    grown = bench.rss_growth({"review": 102400, "intake": 102400}, {"review": 122880, "intake": 104448},
                             {"review": 117760, "intake": None})
    assert grown["review"] == {"start": 100.0, "warm": 115.0, "end": 120.0, "growth_pct": 4.35,
                               "growth_from_start_pct": 20.0}
    assert grown["intake"] == {"start": 100.0, "end": 102.0, "growth_pct": 2.0}


def test_the_rss_sampler_answers_the_first_reading_at_or_after_a_moment() -> None:
    with bench.RssSampler({"me": os.getpid()}, every_s=0.01) as sampler:
        wait_until(lambda: len(sampler.samples) >= 3, 10, what="three RSS readings", interval_s=0.01)
    taken = [moment for moment, _ in sampler.samples]
    assert sampler.at(taken[1]) == sampler.samples[1][1]
    assert ((sampler.at(taken[0] - 1) or {}).get("me") or 0) > 0
    assert sampler.at(taken[-1] + 1) is None


def test_rss_growth_leaves_out_a_process_without_both_readings() -> None:
    grown = bench.rss_growth({"intake": 1024, "review": None, "authorization": 1024},
                             {"intake": 2048, "review": 1024})
    assert list(grown) == ["intake"]
    assert grown["intake"]["growth_pct"] == 100.0


def test_rss_kib_reads_a_live_process_and_none_for_a_gone_one() -> None:
    own = bench.rss_kib(os.getpid())
    assert own is not None
    assert own > 1024
    assert bench.rss_kib(2**22 + 1) is None  # above Linux's pid_max: never a live process


# -- the cluster -----------------------------------------------------------------------------------

def _run(per_s: float, p99: float) -> dict[str, Any]:
    return {"throughput": {"end_to_end_per_s": per_s},
            "latency_at_rate": {"offered_per_s": 500.0, "submit_to_authorization_ms": {"p99": p99}}}


def test_cluster_cost_is_the_share_of_the_rate_lost_with_the_partitions() -> None:
    cluster = bench.cluster_cost(2000, _run(1000.0, 200.0), _run(960.0, 230.0))
    assert cluster["unrelated_partitions"] == 2000
    assert (cluster["without_per_s"], cluster["with_per_s"], cluster["cost_pct"]) == (1000.0, 960.0, 4.0)
    assert (cluster["without_p99_at_rate_ms"], cluster["with_p99_at_rate_ms"]) == (200.0, 230.0)
    assert bench.cluster_cost(2000, _run(100.0, 1.0), _run(110.0, 1.0))["cost_pct"] == -10.0
    assert bench.cluster_cost(2000, _run(0.0, 1.0), _run(10.0, 1.0))["cost_pct"] is None


# -- issue 17's targets ----------------------------------------------------------------------------

def _results_meeting_every_target() -> dict[str, Any]:
    return {
        "machine": {"cpus": 2},
        "transport": "plaintext",
        "throughput": {
            "requests": 100_000, "errors": 0, "settled": 100_000, "submit_per_s": 1500.0,
            "end_to_end_per_s": 1100.0,
            "flatness": {"requests": 100_000, "tenth": 10_000, "first_tenth_per_s": 1150.0,
                         "last_tenth_per_s": 1080.0, "last_vs_first": 0.939, "drained": 0},
            "rss_mb": {"intake": {"start": 100.0, "end": 104.0, "growth_pct": 4.0},
                       "review": {"start": 200.0, "end": 210.0, "growth_pct": 5.0},
                       "authorization": {"start": 90.0, "end": 90.5, "growth_pct": 0.56}},
        },
        "latency_at_rate": {"offered_per_s": 500.0, "requests": 10_000, "errors": 0, "settled": 10_000,
                            "authorized": 8000, "submit_to_authorization_ms": {"p50": 60.0, "p95": 150.0,
                                                                               "p99": 240.0}},
        "cluster": {"unrelated_partitions": 2000, "without_per_s": 1100.0, "with_per_s": 1080.0, "cost_pct": 1.8},
        "topics_deleted": {"plaintext": 12, "plaintext with unrelated partitions": 11, "unrelated": 20},
        "rule_evaluations": {"line_evals_per_s": 9000, "raw_per_s": 12000, "ratio_vs_raw": 0.75},
    }


def _verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    texts = {text: key for key, text in bench.TARGET_TEXTS.items()}
    return {texts[t["target"]]: t["met"] for t in bench.evaluate_targets(results)}


def test_every_target_met() -> None:
    targets = bench.evaluate_targets(_results_meeting_every_target())
    assert [t["target"] for t in targets] == list(bench.TARGET_TEXTS.values())
    assert all(t["met"] is True for t in targets), targets
    by_key = dict(zip(bench.TARGET_TEXTS, targets, strict=True))
    assert "1,100.0 req/s end to end" in by_key["throughput"]["measured"]
    assert "p99 240.0 ms at 500 req/s offered" in by_key["p99"]["measured"]
    assert "(on 100,000 requests: 100,000 settled while submissions came in)" in by_key["flatness"]["measured"]
    assert "target's run" not in by_key["flatness"]["measured"]
    assert "review 200.0 → 210.0 MB (+5.0 %)" in by_key["rss"]["measured"]
    assert "cost 1.8 %" in by_key["cluster"]["measured"]
    assert "unrelated: 20 deleted" in by_key["topics"]["measured"]
    assert ": 0.75" in by_key["rules"]["measured"]


def test_every_target_missed() -> None:
    results = _results_meeting_every_target()
    results["throughput"]["end_to_end_per_s"] = 999.9
    results["throughput"]["flatness"]["last_vs_first"] = 0.899
    results["throughput"]["rss_mb"]["review"]["growth_pct"] = 10.0
    results["latency_at_rate"]["submit_to_authorization_ms"]["p99"] = 250.1
    results["cluster"]["cost_pct"] = 5.0
    results["topics_deleted"]["unrelated"] = "error: NoBrokersAvailable"
    results["rule_evaluations"]["ratio_vs_raw"] = 0.49
    assert set(_verdicts(results).values()) == {False}


def test_the_p99_target_is_missed_when_requests_did_not_settle_whatever_the_others_p99() -> None:
    results = _results_meeting_every_target()
    results["latency_at_rate"].update(settled=9000, errors=500)
    [p99] = [t for t in bench.evaluate_targets(results) if t["target"] == bench.TARGET_TEXTS["p99"]]
    assert p99["met"] is False
    assert "1,000 refused or not settled" in p99["measured"]


def test_the_p99_target_is_missed_when_nothing_was_authorized() -> None:
    results = _results_meeting_every_target()
    results["latency_at_rate"].update(authorized=0, submit_to_authorization_ms={"p99": float("nan")})
    assert _verdicts(results)["p99"] is False


def test_targets_not_measured_in_a_run_without_their_conditions() -> None:
    results = _results_meeting_every_target()
    results["machine"]["cpus"] = 8
    results["latency_at_rate"]["offered_per_s"] = 200.0
    del results["cluster"]
    del results["rule_evaluations"]
    results["throughput"]["flatness"] = None
    results["throughput"]["rss_mb"] = {}
    verdicts = _verdicts(results)
    assert verdicts == {"throughput": None, "p99": None, "flatness": None, "rss": None, "cluster": None,
                        "topics": True, "rules": None}
    measured = {key: t["measured"] for key, t in zip(bench.TARGET_TEXTS, bench.evaluate_targets(results),
                                                        strict=True)}
    assert "not on 2 cores" in measured["throughput"]
    assert "not measured at 500 req/s" in measured["p99"]
    assert "--unrelated-partitions 2000" in measured["cluster"]


def test_nothing_measured_at_all() -> None:
    assert set(_verdicts({}).values()) == {None}


def test_a_shorter_run_is_judged_and_says_on_how_many_requests() -> None:
    results = _results_meeting_every_target()
    results["throughput"]["requests"] = 600
    results["throughput"]["flatness"]["requests"] = 598
    by_key = dict(zip(bench.TARGET_TEXTS, bench.evaluate_targets(results), strict=True))
    assert by_key["flatness"]["met"] is True
    assert "on 600 requests; the target's run is 100,000: 598 settled" in by_key["flatness"]["measured"]
    assert "drained" not in by_key["flatness"]["measured"]
    assert by_key["rss"]["met"] is True
    assert "on 600 requests; the target's run is 100,000" in by_key["rss"]["measured"]


def test_the_flatness_target_says_how_many_settled_after_the_submissions_and_were_left_out() -> None:
    results = _results_meeting_every_target()
    results["throughput"]["flatness"].update(requests=71_000, tenth=7_100, drained=29_000)
    [flat] = [t for t in bench.evaluate_targets(results) if t["target"] == bench.TARGET_TEXTS["flatness"]]
    assert flat["met"] is True
    assert "on 100,000 requests: 71,000 settled while submissions came in; 29,000 more drained after them" in (
        flat["measured"])


def test_a_cluster_of_other_size_is_judged_and_says_so() -> None:
    results = _results_meeting_every_target()
    results["cluster"]["unrelated_partitions"] = 200
    [cluster] = [t for t in bench.evaluate_targets(results) if t["target"] == bench.TARGET_TEXTS["cluster"]]
    assert cluster["met"] is True
    assert "with 200 unrelated partitions" in cluster["measured"]
    assert "the target's broker has 2,000" in cluster["measured"]


def test_a_service_without_rss_readings_misses_the_rss_target() -> None:
    results = _results_meeting_every_target()
    del results["throughput"]["rss_mb"]["review"]
    assert _verdicts(results)["rss"] is False


def test_evaluate_targets_does_not_change_the_results() -> None:
    results = _results_meeting_every_target()
    before = copy.deepcopy(results)
    bench.evaluate_targets(results)
    assert results == before


# -- the tables ------------------------------------------------------------------------------------

def test_the_tables_show_the_new_figures_and_the_targets() -> None:
    results = _results_meeting_every_target()
    results["throughput"].update(submit_to_authorization_ms={"p50": 1.0, "p95": 2.0, "p99": 3.0},
                                 cpu_seconds={"intake": 2.5, "wall_s": 10.0},
                                 cpu_ms_per_request={"intake": 0.03, "total": 0.03})
    results["latency_at_rate"].update(cpu_seconds={"intake": 1.0, "wall_s": 20.0},
                                      cpu_ms_per_request={"intake": 0.1, "total": 0.1})
    results["cluster"].update(without_p99_at_rate_ms=240.0, with_p99_at_rate_ms=245.0, offered_per_s=500.0)
    results["throughput"]["requests"] = 100_000
    results["rule_evaluations"] = None  # the rules rows need the full report; not this test's subject
    out = io.StringIO()
    console = Console(file=out, width=250)
    bench.render(results, console)
    bench.render_targets(bench.evaluate_targets(results), console)
    text = out.getvalue()
    assert "phase 1 CPU ms per request by process" in text
    assert "intake 0.03, total 0.03" in text
    assert "phase 2 CPU ms per request by process" in text
    assert "first / last tenth of the 100,000 settled while submitting" in text
    assert "1150.0 / 1080.0; 0.939; 0" in text
    assert "intake 100.0 → 104.0 MB (+4.0 %)" in text
    assert "without / with 2,000 unrelated partitions" in text
    assert "1100.0 / 1080.0; 1.8 %" in text
    assert "issue 17 targets" in text
    assert "NOT met" not in text
    assert "not measured" in text  # the rules target, its phase skipped
