"""urctl commands for reviewers and supervisors (``urctl review ...``) and for providers answering
a request for information (``urctl request add-info``).

Every review command authenticates with a bearer token: ``--token`` or UR_REVIEWER_TOKEN. The
server decides what the token's reviewer may do; this client only shows its answers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.base import EXIT_OK, CliError, Parsers, Targets, UsageError, call, emit
from services.cli.render import conditions_table, enum_label, format_date, format_timestamp, kv_grid
from services.common import settings
from services.common.config_files import parse, read_yaml
from services.common.proto_enums import to_number
from services.review.adapters.reviewers_loader import ReviewerEntry, ReviewerFileError

T = TypeVar("T")

ROLE = review_pb2.ReviewerRole
LOB = types_pb2.LineOfBusiness
P2P = {"offered": review_pb2.RecordPeerToPeerRequest.KIND_OFFERED,
       "held": review_pb2.RecordPeerToPeerRequest.KIND_HELD,
       "declined": review_pb2.RecordPeerToPeerRequest.KIND_DECLINED}


def _token(args: argparse.Namespace) -> str:
    token = getattr(args, "token", None) or settings.get("UR_REVIEWER_TOKEN")
    if not token:
        raise CliError("review commands need a reviewer token: --token or UR_REVIEWER_TOKEN")
    return str(token)


def _review(args: argparse.Namespace, targets: Targets, subject: str,
            invoke: Callable[[review_pb2_grpc.ReviewServiceStub, tuple[tuple[str, str], ...]], T]) -> T:
    metadata = (("authorization", f"Bearer {_token(args)}"),)
    return call("review", targets.review, args.timeout, subject,
                lambda channel: invoke(review_pb2_grpc.ReviewServiceStub(channel), metadata))


# -- rendering -------------------------------------------------------------------------------------

def _when(ts: Timestamp) -> str:
    return format_timestamp(ts) if ts.seconds else "—"


def _due_in(ts: Timestamp, now: dt.datetime | None = None) -> str:
    due = ts.ToDatetime(tzinfo=dt.UTC)
    left = due - (now or dt.datetime.now(dt.UTC))
    hours = left.total_seconds() / 3600
    return f"overdue {-hours:.1f} h" if hours < 0 else f"in {hours:.1f} h"


def format_task(view: review_pb2.TaskView) -> RenderableType:
    t = view.task
    role = enum_label(review_pb2.ReviewerRole, t.required_role)
    rows: list[tuple[str, RenderableType]] = [
        ("task", Text(t.task_id, style="bold")),
        ("request", Text(f"{t.request_id}  line {t.line_number}  {t.procedure_code}")),
        ("member", Text(f"{enum_label(types_pb2.LineOfBusiness, t.line_of_business)}, {t.member_state}")),
        ("status", Text(t.status + (f" (held by {t.assigned_to} until {_when(t.lease_expires_at)})"
                                    if t.assigned_to else ""), style="yellow" if t.escalated else "")),
        ("needs", Text(f"a {role}; category {t.category}")),
        ("urgency", Text(enum_label(types_pb2.Urgency, t.urgency) + (f": {t.urgency_reason}" if t.urgency_reason
                                                                     else ""),
                         style="bold magenta" if t.urgency == types_pb2.URGENCY_EXPEDITED else "")),
        ("due", Text(f"{_when(t.due_at)} ({_due_in(t.due_at)})" + ("  ESCALATED" if t.escalated else ""),
                     style="red" if t.escalated else "")),
        ("clock", Text(f"{t.clock.regime}: {t.clock.rule}")),
    ]
    if t.requested_facts:
        rows.append(("requested", Text(", ".join(t.requested_facts) + f" by {format_date(t.information_due)}")))
    if view.why_eligible:
        rows.append(("why yours", Text("; ".join(view.why_eligible))))
    parts: list[RenderableType] = [kv_grid(rows)]
    reasons = list(t.reasons)
    if reasons:
        parts.append(Text("reasons:\n" + "\n".join(f"  • {r}" for r in reasons)))
    if view.determination.explanation.criteria_id:
        parts.append(conditions_table(view.determination.explanation))
    if view.history:
        history = Table(box=box.SIMPLE, title="history", title_justify="left")
        for column in ("when", "who", "what", "detail"):
            history.add_column(column)
        for h in view.history:
            history.add_row(_when(h.at), h.actor, h.action, h.detail)
        parts.append(history)
    return Group(*parts)


def format_my_tasks(response: review_pb2.ListMyTasksResponse) -> RenderableType:
    table = Table(title="My queue", box=box.SIMPLE_HEAVY)
    for column in ("", "task", "request / line", "code", "urgency", "due", "status", "why yours"):
        table.add_column(column)
    for mark, views in (("held", response.held), ("open", response.available)):
        for v in views:
            t = v.task
            table.add_row(mark, t.task_id[:8], f"{t.request_id[:8]} / {t.line_number}", t.procedure_code,
                          enum_label(types_pb2.Urgency, t.urgency),
                          _due_in(t.due_at) + (" !" if t.escalated else ""),
                          t.status, "; ".join(v.why_eligible))
    if not response.held and not response.available:
        return Text("Nothing in your queue.")
    return table


def format_reviewers(reviewers: Sequence[review_pb2.Reviewer]) -> RenderableType:
    table = Table(title="Reviewers", box=box.SIMPLE_HEAVY)
    for column in ("id", "name", "role", "credential", "specialties", "licences", "lines of business", "capacity"):
        table.add_column(column)
    for r in reviewers:
        table.add_row(r.reviewer_id, r.name, enum_label(review_pb2.ReviewerRole, r.role), r.credential,
                      ", ".join(r.specialties), ", ".join(r.licence_states),
                      ", ".join(enum_label(types_pb2.LineOfBusiness, lob) for lob in r.lines_of_business),
                      str(r.capacity) + ("" if r.active else " (inactive)"))
    return table


# -- commands --------------------------------------------------------------------------------------

def cmd_whoami(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    me = _review(args, targets, "who am I", lambda s, md: s.WhoAmI(review_pb2.WhoAmIRequest(), metadata=md,
                                                                    timeout=args.timeout))
    emit(console, args, me, lambda: format_reviewers([me]))
    return EXIT_OK


def cmd_reviewers(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = _review(args, targets, "the directory", lambda s, md: s.ListReviewers(
        review_pb2.ListReviewersRequest(), metadata=md, timeout=args.timeout))
    emit(console, args, response, lambda: format_reviewers(response.reviewers))
    return EXIT_OK


def cmd_put_reviewer(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    """One reviewer from a YAML file, in the directory seed's shape (one entry, without the list)."""
    try:
        entry = parse(ReviewerEntry, read_yaml(args.file, ReviewerFileError), args.file, ReviewerFileError).to_domain()
    except ReviewerFileError as exc:
        raise CliError(str(exc)) from exc
    reviewer = review_pb2.Reviewer(
        reviewer_id=entry.reviewer_id, name=entry.name,
        role=to_number(ROLE, entry.role.value),
        specialties=sorted(entry.specialties), licence_states=sorted(entry.licence_states),
        lines_of_business=[to_number(LOB, lob) for lob in sorted(entry.lines_of_business)],
        capacity=entry.capacity, credential=entry.credential, active=entry.active)
    saved = _review(args, targets, "the directory update", lambda s, md: s.PutReviewer(
        review_pb2.PutReviewerRequest(reviewer=reviewer), metadata=md, timeout=args.timeout))
    emit(console, args, saved, lambda: format_reviewers([saved]))
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = _review(args, targets, "your queue", lambda s, md: s.ListMyTasks(
        review_pb2.ListMyTasksRequest(limit=args.limit), metadata=md, timeout=args.timeout))
    emit(console, args, response, lambda: format_my_tasks(response))
    return EXIT_OK


def cmd_claim(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = _review(args, targets, "the claim", lambda s, md: s.ClaimNextTask(
        review_pb2.ClaimNextTaskRequest(), metadata=md, timeout=args.timeout))
    emit(console, args, response, lambda: format_task(response.task))
    return EXIT_OK


def cmd_show(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    view = _review(args, targets, "the task", lambda s, md: s.GetTask(
        review_pb2.GetTaskRequest(task_id=args.task_id), metadata=md, timeout=args.timeout))
    emit(console, args, view, lambda: format_task(view))
    return EXIT_OK


def _date_arg(value: str | None, flag: str) -> types_pb2.Date | None:
    if not value:
        return None
    try:
        d = dt.date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{flag} must be a date (YYYY-MM-DD), got {value!r}") from None
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def cmd_decide(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = review_pb2.DecideTaskRequest(task_id=args.task_id)
    kind = args.decision
    if kind == "approve":
        request.approve.note = args.note or ""
    elif kind == "request-info":
        request.request_information.facts.extend(args.fact)
        request.request_information.note = args.note or ""
        due = _date_arg(args.needed_by, "--needed-by")
        if due is not None:
            request.request_information.needed_by.CopyFrom(due)
    elif kind == "refer":
        request.refer_to_physician.note = args.note or ""
    elif kind == "deny":
        request.deny.reason = args.reason
        request.deny.criterion = args.criterion
    else:
        part = request.approve_partial if kind == "partial" else request.modify
        part.approved_units = args.units
        part.reason = args.reason
        part.criterion = args.criterion
        for flag, value, target in (("--start", args.start, part.approved_start), ("--end", args.end,
                                                                                   part.approved_end)):
            parsed = _date_arg(value, flag)
            if parsed is not None:
                target.CopyFrom(parsed)
    response = _review(args, targets, "the decision", lambda s, md: s.DecideTask(request, metadata=md,
                                                                                timeout=args.timeout))
    emit(console, args, response, lambda: format_task(response.task))
    return EXIT_OK


def cmd_p2p(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = review_pb2.RecordPeerToPeerRequest(task_id=args.task_id, kind=P2P[args.kind],
                                                 provider_contact=args.contact or "", note=args.note or "")
    view = _review(args, targets, "the peer-to-peer record", lambda s, md: s.RecordPeerToPeer(
        request, metadata=md, timeout=args.timeout))
    emit(console, args, view, lambda: format_task(view))
    return EXIT_OK


def cmd_extend(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    view = _review(args, targets, "the extension", lambda s, md: s.ExtendDeadline(
        review_pb2.ExtendDeadlineRequest(task_id=args.task_id, ground=args.ground, notice_sent=args.notice_sent),
        metadata=md, timeout=args.timeout))
    emit(console, args, view, lambda: format_task(view))
    return EXIT_OK


def cmd_release(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    view = _review(args, targets, "the release", lambda s, md: s.ReleaseTask(
        review_pb2.ReleaseTaskRequest(task_id=args.task_id, note=args.note or ""), metadata=md, timeout=args.timeout))
    emit(console, args, view, lambda: format_task(view))
    return EXIT_OK


def cmd_reassign(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    view = _review(args, targets, "the reassignment", lambda s, md: s.ReassignTask(
        review_pb2.ReassignTaskRequest(task_id=args.task_id, reviewer_id=args.to, note=args.note or ""),
        metadata=md, timeout=args.timeout))
    emit(console, args, view, lambda: format_task(view))
    return EXIT_OK


def cmd_urgency(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    urgency = types_pb2.URGENCY_EXPEDITED if args.urgency == "expedited" else types_pb2.URGENCY_STANDARD
    view = _review(args, targets, "the change of urgency", lambda s, md: s.SetTaskUrgency(
        review_pb2.SetTaskUrgencyRequest(task_id=args.task_id, urgency=urgency, reason=args.reason),
        metadata=md, timeout=args.timeout))
    emit(console, args, view, lambda: format_task(view))
    return EXIT_OK


def parse_fact(text: str) -> types_pb2.ClinicalFact:
    """``name=value`` or ``name=value:unit``: true/false, numbers, ISO dates, else text."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise CliError(f"--fact {text!r}: expected name=value (or name=value:unit)")
    value, unit = raw, ""
    head, colon, tail = raw.rpartition(":")
    if colon and tail.strip() and " " not in tail.strip() and not tail.strip()[0].isdigit() and _is_number(head):
        value, unit = head, tail.strip()  # units belong to numbers only
    fact = types_pb2.ClinicalFact(name=name.strip(), unit=unit)
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        fact.bool_value = lowered == "true"
        return fact
    try:
        fact.number_value = float(value)
    except ValueError:
        pass
    else:
        return fact
    try:
        d = dt.date.fromisoformat(value.strip())
        fact.date_value.CopyFrom(types_pb2.Date(year=d.year, month=d.month, day=d.day))
    except ValueError:
        fact.text_value = value
    return fact


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cmd_add_info(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    if not args.fact:
        raise UsageError("give at least one --fact name=value")
    request = intake_pb2.SubmitAdditionalInformationRequest(
        request_id=args.request_id, idempotency_key=args.key or f"info-{uuid.uuid4()}", note=args.note or "",
        clinical_facts=[parse_fact(f) for f in args.fact])
    response = _call_intake(args, targets, request)
    emit(console, args, response, lambda: Text(
        f"information {response.information_id} recorded for request {args.request_id}"
        + (" (replayed)" if response.replayed else "") + "; review re-runs the criteria"))
    return EXIT_OK


def _call_intake(args: argparse.Namespace, targets: Targets,
                 request: intake_pb2.SubmitAdditionalInformationRequest
                 ) -> intake_pb2.SubmitAdditionalInformationResponse:
    def invoke(channel: grpc.Channel) -> intake_pb2.SubmitAdditionalInformationResponse:
        return intake_pb2_grpc.IntakeServiceStub(channel).SubmitAdditionalInformation(request, timeout=args.timeout)
    return call("intake", targets.intake, args.timeout, "the information", invoke)


def add_commands(parsers: Parsers) -> None:
    """``request add-info`` and ``review ...``."""
    connection, output = parsers.connection, parsers.output
    auth = argparse.ArgumentParser(add_help=False)
    auth.add_argument("--token", default=argparse.SUPPRESS, help="reviewer bearer token (default: UR_REVIEWER_TOKEN)")
    parents = [connection, output, auth]

    add_info = parsers.group("request", "requests").add_parser("add-info", parents=[connection, output],
                                        help="send additional clinical facts for a request under review")
    add_info.add_argument("request_id", metavar="REQUEST_ID")
    add_info.add_argument("--fact", action="append", default=[], metavar="NAME=VALUE[:UNIT]")
    add_info.add_argument("--note", metavar="TEXT")
    add_info.add_argument("--key", metavar="KEY", help="idempotency key (default: a new one)")
    add_info.set_defaults(handler=cmd_add_info)

    review = parsers.group("review", "reviewer work: queue, claim, decide")
    review.add_parser("whoami", parents=parents, help="your directory entry").set_defaults(handler=cmd_whoami)
    review.add_parser("reviewers", parents=parents, help="the reviewer directory").set_defaults(
        handler=cmd_reviewers)
    put = review.add_parser("put-reviewer", parents=parents, help="supervisor: add or update a reviewer (YAML)")
    put.add_argument("file", metavar="FILE")
    put.set_defaults(handler=cmd_put_reviewer)
    tasks = review.add_parser("tasks", parents=parents, help="your queue: held and eligible tasks, with why")
    tasks.add_argument("--limit", type=int, default=20, metavar="N")
    tasks.set_defaults(handler=cmd_tasks)
    review.add_parser("claim", parents=parents, help="lease the most urgent task you may take").set_defaults(
        handler=cmd_claim)
    show = review.add_parser("show", parents=parents, help="one task with its history")
    show.add_argument("task_id", metavar="TASK_ID")
    show.set_defaults(handler=cmd_show)

    def decision(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = review.add_parser(name, parents=parents, help=help_text)
        p.add_argument("task_id", metavar="TASK_ID")
        p.set_defaults(handler=cmd_decide, decision=name)
        return p

    decision("approve", "approve the line").add_argument("--note", metavar="TEXT")
    info = decision("request-info", "pend for information from the provider")
    info.add_argument("--fact", action="append", default=[], required=True, metavar="NAME")
    info.add_argument("--needed-by", metavar="YYYY-MM-DD")
    info.add_argument("--note", metavar="TEXT")
    decision("refer", "refer to a physician").add_argument("--note", metavar="TEXT")
    deny = decision("deny", "physician: deny, with the reason and criterion")
    deny.add_argument("--reason", required=True, metavar="TEXT")
    deny.add_argument("--criterion", required=True, metavar="ID@VERSION: CONDITION")
    for name, text in (("partial", "physician: approve part of the request"),
                       ("modify", "physician: approve a modified service")):
        p = decision(name, text)
        p.add_argument("--units", type=int, required=True)
        p.add_argument("--start", metavar="YYYY-MM-DD")
        p.add_argument("--end", metavar="YYYY-MM-DD")
        p.add_argument("--reason", required=True, metavar="TEXT")
        p.add_argument("--criterion", required=True, metavar="ID@VERSION: CONDITION")
    p2p = review.add_parser("p2p", parents=parents, help="physician: record a peer-to-peer conversation")
    p2p.add_argument("task_id", metavar="TASK_ID")
    p2p.add_argument("kind", choices=sorted(P2P))
    p2p.add_argument("--contact", metavar="WHO")
    p2p.add_argument("--note", metavar="TEXT")
    p2p.set_defaults(handler=cmd_p2p)
    extend = review.add_parser("extend", parents=parents, help="extend the deadline where the regime allows it")
    extend.add_argument("task_id", metavar="TASK_ID")
    extend.add_argument("--ground", required=True,
                        choices=["enrollee_request", "information_needed_in_enrollee_interest", "beyond_plan_control"])
    extend.add_argument("--notice-sent", action="store_true", help="the required written notice was sent")
    extend.set_defaults(handler=cmd_extend)
    release = review.add_parser("release", parents=parents, help="give a held task back to the queue")
    release.add_argument("task_id", metavar="TASK_ID")
    release.add_argument("--note", metavar="TEXT")
    release.set_defaults(handler=cmd_release)
    reassign = review.add_parser("reassign", parents=parents, help="supervisor: hand a task to a reviewer")
    reassign.add_argument("task_id", metavar="TASK_ID")
    reassign.add_argument("--to", required=True, metavar="REVIEWER_ID")
    reassign.add_argument("--note", metavar="TEXT")
    reassign.set_defaults(handler=cmd_reassign)
    urgency = review.add_parser("urgency", parents=parents,
                                help="nurse, physician or supervisor: expedite a task or make it standard, saying why")
    urgency.add_argument("task_id", metavar="TASK_ID")
    urgency.add_argument("urgency", choices=["expedited", "standard"])
    urgency.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded in the task's history)")
    urgency.set_defaults(handler=cmd_urgency)
