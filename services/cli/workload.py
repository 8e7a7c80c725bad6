"""Push the sample workload through intake and summarize what the platform made of it.

Used by ``make run``/``make demo`` (see :mod:`services.cli.platform`), and on its own:

    python -m services.cli.workload [--intake HOST:PORT] [--file deploy/sample/workload.json]

Two phases, each with a progress bar: submit every request (``IntakeService.SubmitRequest``,
``concurrency`` calls in flight), then poll ``GetRequest`` until every recorded request is settled
(PENDED, COMPLETE or INELIGIBLE; DECIDED still waits for authorizations) or the settle timeout
passes. The summary is computed from the last view of each request; nothing about members or
their clinical facts is logged or printed.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli.base import retry_hint
from services.cli.urctl import decision_latency_ms
from services.common import settings, tls
from services.common.config_files import ConfigFileError, kind, load_json, read_text
from services.common.errors import ConfigurationError
from services.common.tls import TransportSecurity, open_channel

DEFAULT_WORKLOAD = Path(__file__).resolve().parents[2] / "deploy" / "sample" / "workload.json"

#: Statuses after which a request's story does not move without a person (or never moves again).
SETTLED = frozenset({intake_pb2.REQUEST_STATUS_PENDED, intake_pb2.REQUEST_STATUS_COMPLETE,
                     intake_pb2.REQUEST_STATUS_INELIGIBLE})
APPROVED_OUTCOMES = frozenset({types_pb2.LINE_OUTCOME_MEETS_CRITERIA, types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT})
SUBMIT_TIMEOUT_S = 30.0
POLL_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.25
#: How long a submission intake answers RESOURCE_EXHAUSTED (the caller's rate limit) is sent again,
#: each time after the wait intake's retry hint asks for plus a jitter that grows with the attempts
#: (the hint is when the next call is admitted: many callers waking together take turns).
RATE_LIMITED_PATIENCE_S = 60.0
USABLE_AUTHORIZATIONS = frozenset({types_pb2.AUTHORIZATION_STATUS_APPROVED,
                                   types_pb2.AUTHORIZATION_STATUS_PARTIALLY_APPROVED,
                                   types_pb2.AUTHORIZATION_STATUS_MODIFIED})


class WorkloadFileError(ConfigFileError):
    """The workload file cannot be read, or an entry is not a SubmitRequestRequest:
    ``workload.json: [3]: not a SubmitRequestRequest: ...``."""


@dataclass
class WorkloadSummary:
    """What happened to a workload.

    ``submitted`` counts SubmitRequest calls. Of the answers, ``invalid`` were INVALID_ARGUMENT,
    ``replayed`` came back with ``replayed=True`` (not counted anywhere else), ``ineligible`` were
    first-time answers with status INELIGIBLE, and ``failed`` were any other error (by status code
    name in ``failures``). Line and request counts cover the other recorded requests, from their
    last view: a line is auto-approved when its outcome is MEETS_CRITERIA(_URGENT) and it is not
    queued for review; queued when ``queued_for_review``; ``pended_missing_info_lines`` are the
    queued lines whose outcome is PEND_MISSING_INFORMATION. A request is auto-approved when every
    line is, queued when any line is. ``authorizations_issued`` counts lines carrying a usable
    authorization (approved, in part or modified: pended and denied lines have records and reference
    numbers too). Decision latency is ``decided_at - received_at`` (server clocks) over
    decided requests, 0.0 when none was decided. ``unsettled`` requests had not reached
    PENDED/COMPLETE/INELIGIBLE when the settle timeout passed.
    """

    submitted: int
    auto_approved_lines: int
    auto_approved_requests: int
    queued_lines: int
    queued_requests: int
    pended_missing_info_lines: int
    invalid: int
    ineligible: int
    replayed: int
    authorizations_issued: int
    decision_latency_ms_p50: float
    decision_latency_ms_p95: float
    unsettled: int
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    recorded: int = 0
    decided: int = 0  # recorded requests with a decided_at (the latency sample)
    elapsed_s: float = 0.0


def load_workload(path: Path | None = None) -> list[intake_pb2.SubmitRequestRequest]:
    """The requests of a workload file (a JSON list of SubmitRequestRequest in protobuf JSON form);
    default :data:`DEFAULT_WORKLOAD`. Raises :class:`WorkloadFileError`."""
    path = DEFAULT_WORKLOAD if path is None else Path(path)
    text = read_text(path, WorkloadFileError)
    try:
        document = load_json(text)
    except ValueError as exc:  # json.JSONDecodeError too
        raise WorkloadFileError(path, "", f"not a JSON document: {exc}") from exc
    if not isinstance(document, list):
        raise WorkloadFileError(path, "", f"expected a JSON list of SubmitRequestRequest objects, got {kind(document)}")
    requests = []
    for i, entry in enumerate(document):
        request = intake_pb2.SubmitRequestRequest()
        try:
            # The protobuf schema is the model: unknown fields, wrong types and bad enum names are refused.
            json_format.ParseDict(entry, request)
        except json_format.ParseError as exc:
            raise WorkloadFileError(path, f"[{i}]", f"not a SubmitRequestRequest: {exc}") from exc
        requests.append(request)
    return requests


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class _Answers:
    invalid: int = 0
    ineligible: int = 0
    replayed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    views: dict[str, intake_pb2.RequestView] = field(default_factory=dict)  # first-time answers, by id


def summarize(submitted: int, answers: _Answers, views: Iterable[intake_pb2.RequestView], unsettled: int,
              elapsed_s: float = 0.0) -> WorkloadSummary:
    """The summary of the last views of the recorded requests (see :class:`WorkloadSummary`)."""
    lines_approved = requests_approved = lines_queued = requests_queued = lines_missing = issued = 0
    latencies: list[float] = []
    recorded = 0
    for view in views:
        recorded += 1
        if view.status == intake_pb2.REQUEST_STATUS_INELIGIBLE:
            continue
        approved_here = queued_here = 0
        for line in view.lines:
            det = line.determination
            if line.HasField("determination"):
                if det.queued_for_review:
                    queued_here += 1
                    if det.outcome == types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION:
                        lines_missing += 1
                elif det.outcome in APPROVED_OUTCOMES:
                    approved_here += 1
            if line.authorization.authorization_number and line.authorization.status in USABLE_AUTHORIZATIONS:
                issued += 1
        lines_approved += approved_here
        lines_queued += queued_here
        requests_approved += int(bool(view.lines) and approved_here == len(view.lines))
        requests_queued += int(queued_here > 0)
        latency = decision_latency_ms(view)
        if latency is not None:
            latencies.append(latency)
    return WorkloadSummary(
        submitted=submitted, auto_approved_lines=lines_approved, auto_approved_requests=requests_approved,
        queued_lines=lines_queued, queued_requests=requests_queued, pended_missing_info_lines=lines_missing,
        invalid=answers.invalid, ineligible=answers.ineligible, replayed=answers.replayed,
        authorizations_issued=issued, decision_latency_ms_p50=percentile(latencies, 50),
        decision_latency_ms_p95=percentile(latencies, 95), unsettled=unsettled,
        failed=sum(answers.failures.values()), failures=dict(answers.failures), recorded=recorded,
        decided=len(latencies), elapsed_s=elapsed_s)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _submit_all(stub: intake_pb2_grpc.IntakeServiceStub, requests: Sequence[intake_pb2.SubmitRequestRequest],
                concurrency: int, console: Console) -> _Answers:
    answers = _Answers()
    timeout = SUBMIT_TIMEOUT_S + max((r.wait_ms for r in requests), default=0) / 1000

    def submit(request: intake_pb2.SubmitRequestRequest) -> intake_pb2.SubmitRequestResponse | grpc.RpcError:
        attempts = 0
        first = time.monotonic()
        while True:
            try:
                response: intake_pb2.SubmitRequestResponse = stub.SubmitRequest(request, timeout=timeout)
            except grpc.RpcError as exc:
                attempts += 1
                wait_s = retry_hint(exc) if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED else None
                if wait_s is None or time.monotonic() - first > RATE_LIMITED_PATIENCE_S:
                    return exc
                # Paced by the caller's rate limit, as intake asks; the jitter spreads the callers out.
                time.sleep(wait_s + random.uniform(0, 0.02 * min(attempts, 50)))
                continue
            return response

    with _progress(console) as progress, ThreadPoolExecutor(max_workers=concurrency) as pool:
        task = progress.add_task("submitting", total=len(requests))
        # Submitted in order, so a replay normally starts after the request it repeats has been answered.
        for future in as_completed([pool.submit(submit, r) for r in requests]):
            result = future.result()
            if isinstance(result, grpc.RpcError):
                code = result.code() if callable(getattr(result, "code", None)) else None
                if code is grpc.StatusCode.INVALID_ARGUMENT:
                    answers.invalid += 1
                else:
                    answers.failures[code.name if code is not None else "UNKNOWN"] += 1
            elif result.replayed:
                answers.replayed += 1
            else:
                view = result.request
                if view.status == intake_pb2.REQUEST_STATUS_INELIGIBLE:
                    answers.ineligible += 1
                answers.views[view.request_id] = view
            progress.advance(task)
    return answers


def _settle(stub: intake_pb2_grpc.IntakeServiceStub, views: dict[str, intake_pb2.RequestView], concurrency: int,
            timeout_s: float, console: Console) -> int:
    """Poll GetRequest until every view is settled or ``timeout_s`` passes; updates ``views`` in
    place and returns how many are still unsettled. Failed polls are retried until the deadline."""
    pending = {rid for rid, view in views.items() if view.status not in SETTLED}
    deadline = time.monotonic() + timeout_s

    def get(request_id: str) -> intake_pb2.RequestView | None:
        try:
            view: intake_pb2.RequestView = stub.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id),
                                                           timeout=POLL_TIMEOUT_S).request
        except grpc.RpcError:
            return None
        return view

    with _progress(console) as progress, ThreadPoolExecutor(max_workers=concurrency) as pool:
        task = progress.add_task("settling", total=len(views), completed=len(views) - len(pending))
        while pending and time.monotonic() < deadline:
            batch = sorted(pending)
            for request_id, view in zip(batch, pool.map(get, batch), strict=True):
                if view is None:
                    continue
                views[request_id] = view
                if view.status in SETTLED:
                    pending.discard(request_id)
                    progress.advance(task)
            if pending:
                time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
    return len(pending)


def run_workload(intake_target: str, requests: Sequence[intake_pb2.SubmitRequestRequest], *,
                 concurrency: int = 16, wait_ms: int = 0, settle_timeout_s: float = 60,
                 console: Console | None = None, security: TransportSecurity | None = None,
                 token: str | None = None) -> WorkloadSummary:
    """Submit every request to intake at ``intake_target``, wait for the recorded ones to settle,
    and summarize (see :class:`WorkloadSummary`).

    ``wait_ms`` > 0 replaces each request's wait_ms (on copies; the caller's messages are not
    changed). Errors of individual calls are counted, never raised; an unreachable intake shows up
    as ``failed`` with ``failures == {"UNAVAILABLE": n}``. ``security``: TLS; None, plaintext.
    ``token``: the submitter's bearer token (UR_INTAKE_TOKEN); without one, intake refuses every call.
    """
    console = console or Console()
    concurrency = max(1, concurrency)
    if wait_ms > 0:
        copies = []
        for request in requests:
            copy = intake_pb2.SubmitRequestRequest()
            copy.CopyFrom(request)
            copy.wait_ms = wait_ms
            copies.append(copy)
        requests = copies
    started = time.monotonic()
    with open_channel(intake_target, security, token=token) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        answers = _submit_all(stub, requests, concurrency, console)
        views = dict(answers.views)
        unsettled = _settle(stub, views, concurrency, settle_timeout_s, console)
    return summarize(len(requests), answers, views.values(), unsettled, time.monotonic() - started)


def render_summary(summary: WorkloadSummary, console: Console) -> None:
    """Print the summary as a table (counts, shares of submitted requests, latency)."""

    def share(n: int, of: int) -> str:
        return f"{100 * n / of:.0f} %" if of else ""

    table = Table(title="Sample workload", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    n = summary.submitted
    table.add_row("requests submitted", str(n), "")
    table.add_row("  recorded (first submissions)", str(summary.recorded), share(summary.recorded, n))
    table.add_row("  rejected as invalid", str(summary.invalid), share(summary.invalid, n))
    table.add_row("  ineligible (no active coverage)", str(summary.ineligible), share(summary.ineligible, n))
    table.add_row("  replays of an earlier submission", str(summary.replayed), share(summary.replayed, n))
    if summary.failed:
        detail = ", ".join(f"{code} {count}" for code, count in sorted(summary.failures.items()))
        table.add_row(f"  [red]failed ({detail})[/red]", f"[red]{summary.failed}[/red]", share(summary.failed, n))
    reviewed = summary.recorded - summary.ineligible
    table.add_section()
    table.add_row("requests auto-approved (every line)", str(summary.auto_approved_requests),
                  share(summary.auto_approved_requests, reviewed))
    table.add_row("requests with a line queued for a person", str(summary.queued_requests),
                  share(summary.queued_requests, reviewed))
    table.add_row("lines auto-approved", str(summary.auto_approved_lines), "")
    table.add_row("lines queued for review", str(summary.queued_lines), "")
    table.add_row("  of which pended for missing information", str(summary.pended_missing_info_lines), "")
    table.add_row("authorizations issued", str(summary.authorizations_issued), "")
    table.add_section()
    def ms(value: float) -> str:
        return f"{value:,.0f} ms" if summary.decided else "—"

    table.add_row(f"decision latency p50 (received → decided, {summary.decided} requests)",
                  ms(summary.decision_latency_ms_p50), "")
    table.add_row("decision latency p95", ms(summary.decision_latency_ms_p95), "")
    style = "red" if summary.unsettled else ""
    table.add_row("unsettled when the wait ended", f"[{style}]{summary.unsettled}[/{style}]" if style else "0", "")
    console.print(table)
    console.print(f"shares of auto-approved/queued requests are of the {reviewed} eligible recorded requests; "
                  f"took {summary.elapsed_s:.1f} s", style="dim")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.cli.workload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intake", metavar="HOST:PORT", default=None, help="default: UR_INTAKE_TARGET")
    parser.add_argument("--file", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wait-ms", type=int, default=0)
    parser.add_argument("--settle-timeout", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--key-prefix", default=time.strftime("%Y%m%d%H%M%S"),
                        help="prepended to every idempotency key so that a rerun is new work, not replays "
                             "(default: the current time; '' to send the keys unchanged)")
    args = parser.parse_args(argv)
    console = Console()
    try:
        requests = load_workload(args.file)
        security = tls.for_clients()
    except (WorkloadFileError, ConfigurationError) as exc:
        print(f"workload: {exc}", file=sys.stderr)
        return 2
    if args.key_prefix:
        for request in requests:
            request.idempotency_key = f"{args.key_prefix}-{request.idempotency_key}"[:100]
    summary = run_workload(args.intake or settings.get("UR_INTAKE_TARGET"), requests, concurrency=args.concurrency,
                           wait_ms=args.wait_ms, settle_timeout_s=args.settle_timeout, console=console,
                           security=security, token=settings.get("UR_INTAKE_TOKEN") or None)
    render_summary(summary, console)
    if summary.failed and summary.failures.get("UNAVAILABLE") == summary.failed:
        print(f"workload: cannot reach intake at {args.intake or settings.get('UR_INTAKE_TARGET')} — "
              "is the platform running? (make run)", file=sys.stderr)
    if summary.failures.get("UNAUTHENTICATED") or summary.failures.get("PERMISSION_DENIED"):
        print("workload: intake refused the calls: set UR_INTAKE_TOKEN to a submitter's token "
              "(make run's: dev-only-token-sample-clinic)", file=sys.stderr)
    return 1 if summary.failed or summary.unsettled else 0


if __name__ == "__main__":
    sys.exit(main())
