"""Review's claim-next on PostgreSQL with a large queue: ``run()`` builds review on a fresh database, fills
it with ``open_tasks`` open tasks (50,000 by default) and as many decided ones, and times ``claims``
claim-next use cases (after :data:`WARM_UP` untimed ones, the first of them reported apart) by reviewers who take
two tasks each, as the gRPC servicer calls them (the whole use case: identity, capacity, the claimable
query, the compare-and-set, the audit entry, the view), plus PostgreSQL's own execution time of the
claimable query (``EXPLAIN ANALYZE``).

    python -m services.cli.bench_queue --database-url postgresql+psycopg://.../db [--open 50000]

Target (issue 11): claim-next under 5 ms at 50,000 open tasks. ``make bench`` runs it in a process of
its own on a throw-away database and quotes the figures."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from services.common.settings import ReviewSettings
from services.review import bootstrap
from services.review.domain.workflow import Reviewer, Role
from services.review.service_layer.ports import DuplicateChecker, LineQuery

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
TARGET_MS = 5.0
ALL_LOBS = frozenset({"medicare_advantage", "medicaid", "commercial", "workers_comp"})
CATEGORIES = ("advanced_imaging", "general", "spine_surgery")

# Open tasks: 10 % expedited, deadlines spread from two days past to four weeks ahead, four lines of
# business, three categories, one in seven for a physician, one in five out of state, one in 500
# claimed (half of those leases lapsed). As many decided tasks: the history a queue query must not
# read. The monitor's backlog is what a running monitor leaves: tasks at risk or overdue were
# escalated or recorded by earlier passes, all but the few that got there since the last one.
POPULATE = """
INSERT INTO review_tasks (task_id, request_id, line_number, procedure_code, line_of_business, member_state,
    urgency, urgency_rank, outcome, reasons, status, due_at, created_at, category, required_role, units, regime,
    clock_rule, assigned_to, lease_expires_at, version, escalated_at, missed_at, deemed_denial, clock_paused,
    at_risk_at)
SELECT 'task-' || i, 'req-' || i, 1, '72148',
    (ARRAY['medicare_advantage', 'medicaid', 'commercial', 'workers_comp'])[1 + i % 4],
    CASE WHEN i % 5 = 0 THEN 'CA' ELSE 'TX' END,
    CASE WHEN i % 10 = 0 THEN 'expedited' ELSE 'standard' END, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END,
    'refer_to_nurse', '[]',
    CASE WHEN i > :open THEN 'decided' WHEN i % 500 = 1 THEN 'claimed' ELSE 'open' END,
    due, :t0 - make_interval(secs => i), (ARRAY['advanced_imaging', 'general', 'spine_surgery'])[1 + i % 3],
    CASE WHEN i % 7 = 0 THEN 'physician' ELSE 'nurse' END, 1, 'medicare_advantage', '',
    CASE WHEN i % 500 = 1 THEN 'rn-other' END,
    CASE WHEN i % 1000 = 1 THEN :t0 - interval '1 hour' WHEN i % 500 = 1 THEN :t0 + interval '1 hour' END,
    0,
    CASE WHEN at_risk <= :t0 AND i % 97 <> 0 THEN at_risk END,
    CASE WHEN due <= :t0 AND i % 89 <> 0 THEN due END,
    false, false, at_risk
FROM (SELECT i, :t0 + make_interval(mins => (i * 37) % 43200) - interval '2 days' AS due,
             :t0 + make_interval(mins => (i * 37) % 43200) - interval '5 days' AS at_risk
      FROM generate_series(1, 2 * :open) AS i) AS spread
"""


class _NoAuthorizations(DuplicateChecker):
    """No member holds an authorization (claim-next never asks; review's consumer would)."""

    def overlapping(self, requests: Sequence[tuple[str, Sequence[LineQuery]]]) -> list[dict[int, list[str]]]:
        return [{} for _ in requests]


def nurse(reviewer_id: str) -> Reviewer:
    return Reviewer(reviewer_id, f"Reviewer {reviewer_id}", Role.NURSE, frozenset(CATEGORIES), frozenset({"TX", "CA"}),
                    ALL_LOBS, 10, "RN")


def populate(engine: Engine, open_tasks: int) -> None:
    """``open_tasks`` open and as many decided tasks (:data:`POPULATE`), then fresh statistics."""
    with engine.begin() as conn:
        conn.execute(text(POPULATE), {"open": open_tasks, "t0": T0})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE review_tasks"))


#: Claims made before the timed ones (and reported apart): a fresh process's first claims pay for
#: compiling statements and for the driver preparing them, once per process, not per claim.
WARM_UP = 10


def run(database_url: str, open_tasks: int = 50_000, claims: int = 200) -> dict[str, Any]:
    app = bootstrap.build(ReviewSettings(database_url=database_url, lease_s=600.0), clock=lambda: T0,
                          duplicates=_NoAuthorizations())
    engine = app.runtime.engine
    try:
        reviewers = max(1, (claims + WARM_UP) // 2)
        app.workflow.directory.seed([nurse(f"rn-{n}") for n in range(reviewers)])
        started = time.monotonic()
        populate(engine, open_tasks)
        seeded_s = time.monotonic() - started
        durations: list[float] = []
        claimable: list[tuple[str, Any]] = []

        def record(_conn: object, _cursor: object, statement: str, parameters: Any, _context: object,
                   _many: bool) -> None:
            if "UNION ALL" in statement:
                claimable.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        try:
            warm: list[float] = []
            for n in range(WARM_UP + claims):
                t = time.perf_counter()
                app.workflow.queue.claim_next(f"rn-{n % reviewers}")
                (warm if n < WARM_UP else durations).append((time.perf_counter() - t) * 1000)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        query_ms = None
        if claimable:
            with engine.connect() as conn, conn.begin() as tx:
                plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {claimable[-1][0]}",
                                            claimable[-1][1]).scalar_one()
                tx.rollback()
            query_ms = round(float(plan[0]["Execution Time"]), 3)
    finally:
        engine.dispose()
    ordered = sorted(durations)
    return {"open_tasks": open_tasks, "claims": claims, "seed_s": round(seeded_s, 1),
            "warm_up_claims": WARM_UP, "first_claim_ms": round(warm[0], 2) if warm else None,
            "claim_next_ms": {"p50": round(statistics.median(ordered), 2),
                              "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
                              "max": round(ordered[-1], 2)},
            "claimable_query_db_ms": query_ms, "target_ms": TARGET_MS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_queue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of its own (it is filled)")
    parser.add_argument("--open", type=int, default=50_000, dest="open_tasks")
    parser.add_argument("--claims", type=int, default=200, help=f"timed claims, after {WARM_UP} warm-up ones")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.database_url, args.open_tasks, args.claims)
    text_out = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.write_text(text_out)
    print(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
