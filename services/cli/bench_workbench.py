"""The workbench's page latency with a large queue: ``run()`` seeds review's database with
``tasks`` open tasks (10,000 by default), serves review over gRPC and the workbench over HTTP in
this process, signs a nurse in, and times ``rounds`` loads of the queue page and of a task page
through a real HTTP connection (urllib over loopback), each page making its real gRPC calls to
review, which reads its real database. Intake and authorization are answered from memory (their
latencies are theirs), so the figures are the workbench's and review's.

    python -m services.cli.bench_workbench [--tasks 10000] [--rounds 200] [--database-url URL]

Targets (issue 15): the queue page p95 under 200 ms, a task page p95 under 150 ms. ``make bench``
will call :func:`run`; it prints and returns the figures."""

from __future__ import annotations

import argparse
import datetime as dt
import http.cookiejar
import json
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.common.grpc_server import create_server
from services.common.listeners import bind_tcp as bind
from services.common.settings import ReviewSettings, WorkbenchSettings
from services.review import bootstrap as review_bootstrap
from services.review.domain.case import Case
from services.review.domain.criteria import LineEvaluation, LineFacts, Outcome
from services.review.domain.task import Task
from services.review.domain.workflow import Role, TaskStatus
from services.review.service_layer.ports import Evaluator, UnitOfWork
from services.workbench.adapters.platform_client import GrpcPlatform
from services.workbench.bootstrap import build as build_workbench

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "deploy" / "sample"
NURSE_TOKEN = "dev-only-token-rn-alvarez"  # noqa: S105 - the sample directory's development token
CONDITIONS = [("symptoms_six_weeks", "symptoms for at least 6 weeks", "symptom_duration_weeks=2 weeks"),
              ("conservative_therapy_six_weeks", "at least 6 weeks of conservative therapy",
               "conservative_therapy_weeks=1 weeks"),
              ("cauda_equina_suspected", "suspected cauda equina syndrome", "suspected_cauda_equina=false")]


class _NoCriteria(Evaluator):
    def evaluate(self, line: LineFacts) -> LineEvaluation | None:
        return None


class _MemoryDoors(GrpcPlatform):
    """Review over gRPC; intake's and authorization's answers from memory."""

    async def request(self, request_id: str) -> intake_pb2.RequestView:
        view = intake_pb2.RequestView(request_id=request_id, member_id="BENCH-MEMBER",
                                      line_of_business=types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,
                                      status=intake_pb2.REQUEST_STATUS_PENDED)
        view.lines.add().line.CopyFrom(types_pb2.ServiceLine(line_number=1, procedure_code="72148", units=1))
        return view

    async def member_authorizations(self, member_id: str) -> Sequence[types_pb2.Authorization]:
        return []


def _determination(request_id: str) -> bytes:
    det = types_pb2.Determination(request_id=request_id, determination_id=str(uuid.uuid4()))
    line = det.lines.add(line_number=1, procedure_code="72148", outcome=types_pb2.LINE_OUTCOME_REFER_TO_NURSE,
                         action_code=types_pb2.ACTION_CODE_PENDED, queued_for_review=True)
    ex = line.explanation
    ex.criteria_id, ex.criteria_version, ex.summary = "imaging-mri-lumbar-spine", "2026.1", "referred to a nurse"
    for cid, text, seen in CONDITIONS:
        ex.conditions.add(condition_id=cid, description=text, status=types_pb2.CONDITION_STATUS_UNMET, observed=[seen])
    return det.SerializeToString()


def seed(make_uow: Callable[[], UnitOfWork], tasks: int, now: dt.datetime) -> None:
    """``tasks`` open nurse-level lumbar MRI tasks (one case each), due over the next week."""
    batch = 1000
    for start in range(0, tasks, batch):
        cases, new = [], []
        for n in range(start, min(tasks, start + batch)):
            rid = str(uuid.uuid4())
            due = now + dt.timedelta(minutes=30 + n % 10_000)
            cases.append(Case(request_id=rid, determination_id=str(uuid.uuid4()), member_id=f"BENCH-{n % 500}",
                              line_of_business="medicare_advantage", member_state="CA", urgency="standard",
                              review_type="prospective", requesting_npi="1234567893", received_at=now, due_at=due,
                              regime="cms-0057-f", request=b"", determination=_determination(rid), created_at=now))
            new.append(Task(task_id=str(uuid.uuid4()), request_id=rid, line_number=1, procedure_code="72148",
                            line_of_business="medicare_advantage", member_state="CA",
                            urgency="expedited" if n % 7 == 0 else "standard", outcome=Outcome.REFER_TO_NURSE,
                            reasons=("referred to a nurse",), status=TaskStatus.OPEN, due_at=due, created_at=now,
                            category="advanced_imaging", required_role=Role.NURSE, units=1, regime="cms-0057-f",
                            clock_rule="standard: 7 calendar days from receipt", at_risk_at=due))
        with make_uow() as uow:
            uow.cases.add_many(cases)
            uow.tasks.add_many(new)
            uow.commit()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)
    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 1), "n": len(ordered)}


def _time(opener: urllib.request.OpenerDirector, url: str, rounds: int) -> tuple[list[float], str]:
    samples, body = [], ""
    for _ in range(rounds):
        began = time.perf_counter()
        with opener.open(url, timeout=30) as response:
            body = response.read().decode()
        samples.append(time.perf_counter() - began)
    return samples, body


def run(tasks: int = 10_000, rounds: int = 200, database_url: str | None = None) -> dict[str, object]:
    """Seed, serve, measure; the figures (also printed as JSON)."""
    with tempfile.TemporaryDirectory(prefix="ur-bench-workbench-") as tmp:
        settings = ReviewSettings(database_url=database_url or f"sqlite:///{Path(tmp) / 'review.db'}",
                                  grpc_listen="127.0.0.1:0", credentials_file=SAMPLE / "credentials.dev.yaml",
                                  reviewers_seed=SAMPLE / "reviewers.yaml", criteria_reload_s=0.0)
        review = review_bootstrap.build(settings, duplicates=None, evaluator=_NoCriteria())
        now = dt.datetime.now(dt.UTC)
        began = time.perf_counter()
        seed(review.uow, tasks, now)
        seeded_s = time.perf_counter() - began
        # The servicer as review wires it, with its access control, without the Kafka side.
        grpc_server = create_server("127.0.0.1:0", review.runtime.registrations,
                                    interceptors=review.runtime.interceptors)
        target = f"127.0.0.1:{grpc_server.port}"
        built = build_workbench(WorkbenchSettings(review_target=target, cookie_secure=False),
                                platform=_MemoryDoors(target, target, target))
        sock = bind("127.0.0.1:0")
        server = uvicorn.Server(uvicorn.Config(built.app, log_config=None, access_log=False))
        thread = threading.Thread(target=lambda: server.run(sockets=[sock]), name="workbench", daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            form = opener.open(f"{base}/signin", timeout=30).read().decode()
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            if csrf is None:
                raise RuntimeError("the sign-in form has no CSRF token")
            signin = urllib.request.Request(f"{base}/signin", method="POST", headers={"Origin": base},  # noqa: S310
                                            data=urllib.parse.urlencode({"csrf_token": csrf.group(1),
                                                                         "token": NURSE_TOKEN}).encode())
            opener.open(signin, timeout=30).read()
            queue_samples, body = _time(opener, f"{base}/queue", rounds)
            rows = body.count("<tr") - body.count("<thead")
            task_id = re.search(r'href="/tasks/([0-9a-f-]{36})"', body)
            if task_id is None:
                raise RuntimeError("the queue page lists no task")
            task_samples, _ = _time(opener, f"{base}/tasks/{task_id.group(1)}", rounds)
            long_samples, long_body = _time(opener, f"{base}/queue?more=1", max(1, rounds // 4))
            long_rows = long_body.count("<tr") - long_body.count("<thead")
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            grpc_server.stop(None)
            review.runtime.engine.dispose()
    result: dict[str, object] = {
        "open_tasks": tasks, "seed_s": round(seeded_s, 1), "queue_rows": rows,
        "queue_page": _percentiles(queue_samples), "task_page": _percentiles(task_samples),
        "queue_page_long": {"rows": long_rows, **_percentiles(long_samples)},
        "targets": {"queue_page_p95_ms": 200, "task_page_p95_ms": 150},
    }
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_workbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="review's database (default: SQLite in a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.tasks, args.rounds, args.database_url)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
