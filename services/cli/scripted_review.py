"""A scripted shift of reviewers, for ``make run``/``make demo``: shows the queue, then nurses and
a physician work through part of it over the authenticated gRPC API, as people would.

What the script decides is deliberately simple and never adverse on its own: a nurse approves a
line whose only problem is a missing fact she can see was answered, otherwise requests the missing
information or refers to the physician; the physician offers a peer-to-peer conversation and
decides (denying with the specific reason the criteria's nearest path gives, approving in part or
modifying where there is more than one unit). Every decision is made through the same calls
``urctl review`` uses, so the server's permission checks apply to it too. What follows a decision
(an appeal, an extension, the notices) is :mod:`services.cli.lifecycle`'s.
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
    #: task id -> request id, of the lines decided adversely (denied, in part, modified), by kind
    adverse: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # kind -> (task, request, line)
    decided_requests: list[str] = field(default_factory=list)


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
        report.decided_requests.append(t.request_id)
    elif n % 3 == 0 and explanation.criteria_id:
        # The nurse reads the notes and finds the criteria met after all (what software could not see).
        stub.DecideTask(review_pb2.DecideTaskRequest(task_id=t.task_id, approve=review_pb2.DecideTaskRequest.Approve(
            note="clinical notes document the criteria")), metadata=_md(token), timeout=10)
        report.actions.append((who, t.task_id[:8], t.procedure_code, "approved", "notes document the criteria"))
        report.decided_requests.append(t.request_id)
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


def _nearest_shortfall(view: review_pb2.TaskView) -> types_pb2.ConditionResult | None:
    """The condition of the criteria's nearest path that is unmet (or missing): the specific reason
    of an adverse decision, never an alternative that merely did not apply."""
    nearest = view.determination.explanation.nearest
    for c in (*nearest.unmet, *nearest.missing):
        return c
    return None


def physician_step(stub: review_pb2_grpc.ReviewServiceStub, view: review_pb2.TaskView, n: int,
                   report: ShiftReport) -> None:
    who, token = PHYSICIAN
    t = view.task
    stub.RecordPeerToPeer(review_pb2.RecordPeerToPeerRequest(
        task_id=t.task_id, kind=review_pb2.RecordPeerToPeerRequest.KIND_OFFERED,
        provider_contact="requesting provider's office", note="offered before the decision"),
        metadata=_md(token), timeout=10)
    shortfall = _nearest_shortfall(view)
    explanation = view.determination.explanation
    criterion = (f"{explanation.criteria_id}@{explanation.criteria_version}: {shortfall.condition_id}"
                 if shortfall is not None else "")
    request = review_pb2.DecideTaskRequest(task_id=t.task_id)
    reason = ""
    if shortfall is not None:
        stated = f" ({', '.join(o.split('=', 1)[-1] for o in shortfall.observed)} stated)" if shortfall.observed \
            else ""
        reason = (f"The request does not show {shortfall.description}{stated}, which the criteria need on the "
                  "path this request is on; it can be requested again once it does")
    # One of each adverse kind, in turn, on tasks whose criteria name a shortfall; the rest approved.
    made = sum(len(v) for v in report.adverse.values())
    kind = ("denied", "approved in part", "modified")[made] if shortfall is not None and made < 3 else "approved"
    del n
    if kind == "denied":
        request.deny.CopyFrom(review_pb2.DecideTaskRequest.Deny(reason=reason, criterion=criterion))
    elif kind == "approved in part":
        request.approve_partial.CopyFrom(review_pb2.DecideTaskRequest.ApprovePartial(
            approved_units=1, reason=reason, criterion=criterion))
    elif kind == "modified":
        request.modify.CopyFrom(review_pb2.DecideTaskRequest.Modify(approved_units=1, reason=reason,
                                                                    criterion=criterion))
    else:
        request.approve.CopyFrom(review_pb2.DecideTaskRequest.Approve(note="medically necessary on physician review"))
    try:
        stub.DecideTask(request, metadata=_md(token), timeout=10)
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.INVALID_ARGUMENT or kind != "approved in part":
            raise
        # One unit was asked for: nothing to approve in part; the physician denies instead.
        kind = "denied"
        request.deny.CopyFrom(review_pb2.DecideTaskRequest.Deny(reason=reason, criterion=criterion))
        stub.DecideTask(request, metadata=_md(token), timeout=10)
    report.actions.append((who, t.task_id[:8], t.procedure_code, kind, criterion or "physician review"))
    report.decided_requests.append(t.request_id)
    if kind != "approved":
        report.adverse.setdefault(kind, []).append((t.task_id, t.request_id, t.line_number))


def run_shift(review_target: str, console: Console, *, nurse_tasks: int = 12, physician_tasks: int = 5,
              security: TransportSecurity | None = None, service_token: str | None = None) -> ShiftReport:
    """``service_token``: what calls made on no reviewer's behalf send (the queue's listing: ``review:read``)."""
    report = ShiftReport()
    with open_channel(review_target, security, token=service_token) as channel:
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
