"""A scripted shift of reviewers, for ``make run``/``make demo``: shows the queue, then nurses and
a physician work through part of it over the authenticated gRPC API, as people would.

What the script decides is deliberately simple and never adverse on its own: a nurse approves a
line whose only problem is a missing fact she can see was answered, otherwise requests the missing
information or refers to the physician; the physician offers a peer-to-peer conversation and
decides. Every decision is made through the same calls ``urctl review`` uses, so the server's
permission checks apply to it too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import grpc
from rich import box
from rich.console import Console
from rich.table import Table
from ur.common.v1 import types_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common.tls import TransportSecurity, open_channel

NURSES = (("rn-alvarez", "dev-only-token-rn-alvarez"), ("rn-okafor", "dev-only-token-rn-okafor"),
          ("adj-chen", "dev-only-token-adj-chen"))
PHYSICIAN = ("md-patel", "dev-only-token-md-patel")


@dataclass
class ShiftReport:
    actions: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # who, task, code, action, why
    refused: list[str] = field(default_factory=list)


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _claim(stub: review_pb2_grpc.ReviewServiceStub, token: str) -> review_pb2.TaskView | None:
    try:
        response: review_pb2.ClaimNextTaskResponse = stub.ClaimNextTask(
            review_pb2.ClaimNextTaskRequest(), metadata=_md(token), timeout=10)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED):
            return None
        raise
    return response.task


def _first_unmet(view: review_pb2.TaskView) -> types_pb2.ConditionResult | None:
    for c in view.determination.explanation.conditions:
        if c.status == types_pb2.CONDITION_STATUS_UNMET:
            return c
    return None


def nurse_step(stub: review_pb2_grpc.ReviewServiceStub, who: str, token: str, view: review_pb2.TaskView,
               n: int, report: ShiftReport) -> None:
    t = view.task
    explanation = view.determination.explanation
    if explanation.missing_facts:
        facts = list(explanation.missing_facts)
        stub.DecideTask(review_pb2.DecideTaskRequest(
            task_id=t.task_id, request_information=review_pb2.DecideTaskRequest.RequestInformation(
                facts=facts, note="please send the clinical notes that state these")), metadata=_md(token), timeout=10)
        report.actions.append((who, t.task_id[:8], t.procedure_code, "requested information", ", ".join(facts)))
    elif n % 3 == 0 and explanation.criteria_id:
        # The nurse reads the notes and finds the criteria met after all (what software could not see).
        stub.DecideTask(review_pb2.DecideTaskRequest(task_id=t.task_id, approve=review_pb2.DecideTaskRequest.Approve(
            note="clinical notes document the criteria")), metadata=_md(token), timeout=10)
        report.actions.append((who, t.task_id[:8], t.procedure_code, "approved", "notes document the criteria"))
    else:
        stub.DecideTask(review_pb2.DecideTaskRequest(
            task_id=t.task_id, refer_to_physician=review_pb2.DecideTaskRequest.ReferToPhysician(
                note="does not clearly meet criteria")), metadata=_md(token), timeout=10)
        unmet = _first_unmet(view)
        report.actions.append((who, t.task_id[:8], t.procedure_code, "referred to physician",
                               unmet.description if unmet else (t.reasons[0] if t.reasons else "")))
    if n == 0:
        # The server, not this client, refuses a nurse's denial.
        try:
            stub.DecideTask(review_pb2.DecideTaskRequest(task_id=t.task_id, deny=review_pb2.DecideTaskRequest.Deny(
                reason="test", criterion="test")), metadata=_md(token), timeout=10)
        except grpc.RpcError as exc:
            report.refused.append(f"{who} tried to deny: {exc.code().name} ({exc.details()})")


def physician_step(stub: review_pb2_grpc.ReviewServiceStub, view: review_pb2.TaskView, n: int,
                   report: ShiftReport) -> None:
    who, token = PHYSICIAN
    t = view.task
    stub.RecordPeerToPeer(review_pb2.RecordPeerToPeerRequest(
        task_id=t.task_id, kind=review_pb2.RecordPeerToPeerRequest.KIND_OFFERED,
        provider_contact="requesting provider's office", note="offered before the decision"),
        metadata=_md(token), timeout=10)
    unmet = _first_unmet(view)
    explanation = view.determination.explanation
    if n % 2 == 1 and unmet is not None:
        criterion = f"{explanation.criteria_id}@{explanation.criteria_version}: {unmet.condition_id}"
        stub.DecideTask(review_pb2.DecideTaskRequest(task_id=t.task_id, deny=review_pb2.DecideTaskRequest.Deny(
            reason=f"The request does not show {unmet.description}, which the criteria require before this "
                   "service; it can be requested again once it does.", criterion=criterion)),
            metadata=_md(token), timeout=10)
        report.actions.append((who, t.task_id[:8], t.procedure_code, "denied", criterion))
    else:
        stub.DecideTask(review_pb2.DecideTaskRequest(task_id=t.task_id, approve=review_pb2.DecideTaskRequest.Approve(
            note="medically necessary on physician review")), metadata=_md(token), timeout=10)
        report.actions.append((who, t.task_id[:8], t.procedure_code, "approved", "physician review"))


def run_shift(review_target: str, console: Console, *, nurse_tasks: int = 12, physician_tasks: int = 4,
              security: TransportSecurity | None = None) -> ShiftReport:
    report = ShiftReport()
    with open_channel(review_target, security) as channel:
        stub = review_pb2_grpc.ReviewServiceStub(channel)
        queue = stub.ListReviewQueue(review_pb2.ListReviewQueueRequest(page_size=500), timeout=10)
        console.print(f"\n[bold]Review queue[/bold]: {queue.total} lines wait for a person "
                      f"({sum(1 for t in queue.tasks if t.urgency == types_pb2.URGENCY_EXPEDITED)} expedited)")
        done = 0
        for who, token in NURSES:
            while done < nurse_tasks:
                view = _claim(stub, token)
                if view is None:
                    break
                nurse_step(stub, who, token, view, done, report)
                done += 1
        for n in range(physician_tasks):
            view = _claim(stub, PHYSICIAN[1])
            if view is None:
                break
            physician_step(stub, view, n, report)
        mine = stub.ListMyTasks(review_pb2.ListMyTasksRequest(limit=5), metadata=_md(NURSES[0][1]), timeout=10)
    render(report, mine, console)
    return report


def render(report: ShiftReport, mine: review_pb2.ListMyTasksResponse, console: Console) -> None:
    table = Table(title="A scripted shift (nurses, adjuster, physician)", box=box.SIMPLE_HEAVY)
    for column in ("reviewer", "task", "code", "action", "why"):
        table.add_column(column)
    for row in report.actions:
        table.add_row(*row)
    console.print(table)
    for line in report.refused:
        console.print(f"[yellow]refused by the server[/yellow]: {line}")
    if mine.available:
        nxt = Table(title="Next in rn-alvarez's queue", box=box.SIMPLE)
        for column in ("task", "code", "due", "why hers"):
            nxt.add_column(column)
        now = dt.datetime.now(dt.UTC)
        for v in mine.available:
            due = v.task.due_at.ToDatetime(tzinfo=dt.UTC)
            nxt.add_row(v.task.task_id[:8], v.task.procedure_code, f"in {(due - now).total_seconds() / 3600:.0f} h",
                        "; ".join(v.why_eligible))
        console.print(nxt)
    console.print("Work the queue yourself: [bold]UR_REVIEWER_TOKEN=dev-only-token-rn-alvarez .venv/bin/urctl "
                  "review claim[/bold] (tokens in deploy/sample/credentials.dev.yaml).")


def summarize(report: ShiftReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, _, _, action, _ in report.actions:
        counts[action] = counts.get(action, 0) + 1
    return counts
