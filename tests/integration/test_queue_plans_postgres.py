"""Review's queue queries on PostgreSQL at 50,000 open tasks (and as many decided ones): claim-next,
the queue listing, a reviewer's held tasks and the deadline monitor read through indexes and sort
at most a page of rows, never the whole queue; `make bench` times claim-next at this size (services/cli/bench_queue.py).

The plans are PostgreSQL's own (``EXPLAIN (ANALYZE, FORMAT JSON)``) for the exact statements the
repositories send, captured as they run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from services.cli.bench_queue import populate
from services.common.metrics import Metrics
from services.review.adapters.metrics import QueueSampler
from services.review.adapters.repository import SqlTaskRepository
from services.review.domain.workflow import Role
from services.review.service_layer.queue import CLAIM_FIRST_LOOK
from tests.integration.test_review_workflow import T0, Review, build, reviewer

pytestmark = pytest.mark.integration

OPEN = 50_000
#: Claims timed, by as many reviewers as take two each (a reviewer holds a few tasks, not dozens).
CLAIMS = 40



@pytest.fixture(scope="module")
def review(make_database: Callable[[str], str]) -> Iterator[Review]:
    r = build(make_database("queue_plans"))
    r.workflow.directory.seed([reviewer(f"rn-{n}", states=("TX", "CA"),
                                        specialties=("advanced_imaging", "general", "spine_surgery"))
                               for n in range(CLAIMS // 2)] + [reviewer("md-0", Role.PHYSICIAN, states=("TX",))])
    populate(r.engine, OPEN)
    yield r
    r.engine.dispose()


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) sent to the database inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan_of(conn: Connection, statement: str, parameters: Any) -> dict[str, Any]:
    """PostgreSQL's executed plan of ``statement`` (rolled back: claims change rows): its "Plan" tree
    and "Execution Time" (ms)."""
    with conn.begin() as tx:
        found = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters).scalar_one()
        tx.rollback()
    plan: dict[str, Any] = found[0]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def assert_index_backed(plan: dict[str, Any], *, most_sorted: int, what: str) -> set[str]:
    """No sequential scan of review_tasks, every sort over at most ``most_sorted`` rows; returns the
    indexes read."""
    every = list(nodes(plan))
    shown = f"{what}: {[(n['Node Type'], n.get('Index Name'), n.get('Actual Rows')) for n in every]}"
    scans = [n for n in every if n.get("Relation Name") == "review_tasks"]
    assert scans, shown
    assert not [n for n in scans if n["Node Type"] == "Seq Scan"], f"a sequential scan of the tasks in {shown}"
    for sort in (n for n in every if n["Node Type"] in ("Sort", "Incremental Sort")):
        sorted_rows = sum(c["Actual Rows"] * c.get("Actual Loops", 1) for c in sort.get("Plans", ()))
        assert sorted_rows <= most_sorted, f"{sorted_rows} rows sorted in {shown}"
    used = {str(n["Index Name"]) for n in every if n.get("Index Name")}
    assert used, f"no index read in {shown}"
    return used


def test_claim_next_reads_the_queue_index(review: Review) -> None:
    """The plan, not the time: `make bench` (services/cli/bench_queue.py) measures claim-next at this
    size; a test asserts what makes it fast, the index that lets the query stop after a page."""
    statements: list[tuple[str, Any]] = []
    for n in range(CLAIMS):
        with captured(review.engine) as seen:
            view = review.workflow.queue.claim_next(f"rn-{n % (CLAIMS // 2)}")
        statements = seen
        assert view.task.urgency == "expedited"  # the most urgent first: 5,000 of them are
    claimable = [s for s in statements if "UNION ALL" in s[0]]
    assert len(claimable) == 1
    with review.engine.connect() as conn:
        plan = plan_of(conn, *claimable[0])
    used = assert_index_backed(plan["Plan"], most_sorted=2 * CLAIM_FIRST_LOOK, what="claimable")
    assert "ix_review_tasks_queue_order" in used


def test_the_queue_listing_and_held_tasks_read_the_queue_index(review: Review) -> None:
    with captured(review.engine) as seen, review.engine.connect() as conn:
        tasks = SqlTaskRepository(conn)
        page, total = tasks.open_tasks(50, 100)
        held = tasks.held_by("rn-other", T0)
    assert total >= OPEN - OPEN // 500 - CLAIMS
    assert len(page) == 50
    assert held
    listing = next(s for s in seen if "OFFSET" in s[0])
    held_query = next(s for s in seen if "assigned_to" in s[0] and "lease_expires_at >" in s[0])
    with review.engine.connect() as conn:
        used = assert_index_backed(plan_of(conn, *listing)["Plan"], most_sorted=500, what="open_tasks")
        assert "ix_review_tasks_queue_order" in used
        assert_index_backed(plan_of(conn, *held_query)["Plan"], most_sorted=500, what="held_by")


def test_the_deadline_monitor_reads_only_what_it_must_act_on(review: Review) -> None:
    now = T0 + dt.timedelta(hours=1)
    with captured(review.engine) as seen, review.engine.connect() as conn:
        attention = SqlTaskRepository(conn).needing_attention(now)
        lapsed = SqlTaskRepository(conn).expired_leases(now)
    assert attention
    assert all(t.missed_at is None or t.escalated_at is None for t in attention)
    assert lapsed
    monitor = next(s for s in seen if "missed_at IS NULL" in s[0])
    leases = next(s for s in seen if "lease_expires_at <=" in s[0] and "UNION" not in s[0])
    with review.engine.connect() as conn:
        used = assert_index_backed(plan_of(conn, *monitor)["Plan"], most_sorted=1000, what="needing_attention")
        assert {"ix_review_tasks_due_unmissed", "ix_review_tasks_at_risk_unescalated"} <= used
        assert_index_backed(plan_of(conn, *leases)["Plan"], most_sorted=1000, what="expired_leases")


def test_the_queue_metrics_are_counted_from_indexes_alone(review: Review) -> None:
    """The metrics' periodic pass (services/review/adapters/metrics.py): three counts that indexes
    answer without reading a task, and the figures those counts say."""
    metrics = Metrics(process_collectors=False)
    sampler = QueueSampler(review.engine, metrics, clock=lambda: T0)
    with captured(review.engine) as seen:
        sampler.sample()
    assert len(seen) == 3
    with review.engine.connect() as conn:
        for statement, parameters in seen:
            plan = plan_of(conn, statement, parameters)["Plan"]
            used = assert_index_backed(plan, most_sorted=OPEN, what=statement)
            assert used <= {"ix_review_tasks_queue_order", "ix_review_tasks_status_at_risk"}, used
            scans = [n for n in nodes(plan) if n.get("Relation Name") == "review_tasks"]
            assert all(n["Node Type"] == "Index Only Scan" for n in scans), [n["Node Type"] for n in scans]
        expected: dict[str, int] = {name: count for name, count in conn.execute(text(
            "SELECT 'depth', count(*) FROM review_tasks WHERE status IN ('open', 'claimed', 'pended_information') "
            "UNION ALL SELECT 'at_risk', count(*) FROM review_tasks WHERE status IN ('open', 'claimed', "
            "'pended_information') AND at_risk_at <= :t0 UNION ALL SELECT 'overdue', count(*) FROM review_tasks "
            "WHERE status IN ('open', 'claimed') AND due_at <= :t0"), {"t0": T0})}
    shown = {name: sum(s.value for family in metrics.registry.collect() if family.name == f"ur_review_{name}"
                       for s in family.samples)
             for name in ("queue_depth", "tasks_at_risk", "tasks_overdue")}
    assert shown == {"queue_depth": expected["depth"], "tasks_at_risk": expected["at_risk"],
                     "tasks_overdue": expected["overdue"]}
    assert shown["queue_depth"] == OPEN
