"""urctl: talk to a running UR platform over gRPC.

    urctl submit request.yaml [--wait-ms 15000] [--json]
    urctl request show REQUEST_ID [--json]
    urctl authorization show UR26-8K3F-Q9ZD [--json]
    urctl authorization list --member MA100001 [--code 72148] [--json]
    urctl queue list [--limit 50] [--json]
    urctl settings [--markdown]

Where the services are comes from UR_INTAKE_TARGET, UR_REVIEW_TARGET and UR_AUTHORIZATION_TARGET
(see services/common/settings.py), or --intake/--review/--authorization HOST:PORT.

Exit status: 0 done; 1 a service answered with an error or could not be reached; 2 bad usage or an
input file that cannot be read or is not a SubmitRequestRequest. Expected errors are reported in one
or a few lines on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common import settings
from services.common.config_files import load_yaml

EXIT_OK = 0
EXIT_SERVICE_ERROR = 1
EXIT_USAGE = 2

DEFAULT_TIMEOUT_S = 10.0
QUEUE_PAGE_MAX = 500  # ListReviewQueue's page size limit

#: X12 278 HCR01 codes of the ActionCode enum values.
X12_ACTION: dict[int, str] = {
    types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL: "A1",
    types_pb2.ACTION_CODE_CERTIFIED_PARTIAL: "A2",
    types_pb2.ACTION_CODE_NOT_CERTIFIED: "A3",
    types_pb2.ACTION_CODE_PENDED: "A4",
    types_pb2.ACTION_CODE_MODIFIED: "A6",
    types_pb2.ACTION_CODE_CANCELLED: "C",
    types_pb2.ACTION_CODE_CONTACT_PAYER: "CT",
    types_pb2.ACTION_CODE_NO_ACTION_REQUIRED: "NA",
}
_CONDITION_STYLE: dict[int, tuple[str, str]] = {
    types_pb2.CONDITION_STATUS_MET: ("met", "green"),
    types_pb2.CONDITION_STATUS_UNMET: ("unmet", "red"),
    types_pb2.CONDITION_STATUS_MISSING: ("missing", "yellow"),
}
_OUTCOME_STYLE: dict[int, str] = {
    types_pb2.LINE_OUTCOME_MEETS_CRITERIA: "green",
    types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT: "green",
    types_pb2.LINE_OUTCOME_NO_ACTION_REQUIRED: "green",
    types_pb2.LINE_OUTCOME_REFER_TO_NURSE: "yellow",
    types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION: "yellow",
}
_STATUS_STYLE: dict[int, str] = {
    intake_pb2.REQUEST_STATUS_COMPLETE: "green",
    intake_pb2.REQUEST_STATUS_DECIDED: "green",
    intake_pb2.REQUEST_STATUS_PENDED: "yellow",
    intake_pb2.REQUEST_STATUS_IN_REVIEW: "cyan",
    intake_pb2.REQUEST_STATUS_INELIGIBLE: "red",
}


# -- errors --------------------------------------------------------------------------------------------

class CliError(Exception):
    """An expected failure: ``str(exc)`` is what the user reads, ``exit_code`` what the shell gets."""

    exit_code = EXIT_SERVICE_ERROR


class RequestFileError(CliError, ValueError):
    """A request file cannot be read or does not hold a SubmitRequestRequest. The message starts with
    the file's path and names the problem."""

    exit_code = EXIT_USAGE


class ServiceCallError(CliError):
    """A gRPC call failed; the message says which service, where, and what it answered."""

    def __init__(self, message: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message)
        self.code = code


def field_violations(exc: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of every google.rpc.BadRequest field violation in the error's rich
    status details; empty when the error carries none."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # trailers disagree with the call's code/message
        return []
    if status is None:
        return []
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found


def describe_rpc_error(exc: grpc.RpcError, service: str, target: str, timeout_s: float | None = None,
                       subject: str = "the request") -> ServiceCallError:
    """Translate a failed call into the message a person needs (one line per field violation)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(exc)
        if not violations:
            return ServiceCallError(f"{service} rejected {subject}: {details or 'invalid argument'}", code)
        lines = [f"{service} rejected {subject} ({len(violations)} problem{'s' if len(violations) != 1 else ''}):"]
        lines += [f"  {field}: {description}" for field, description in violations]
        return ServiceCallError("\n".join(lines), code)
    if code is grpc.StatusCode.UNAVAILABLE:
        return ServiceCallError(f"cannot reach {service} at {target} — is the platform running? (make run)", code)
    if code is grpc.StatusCode.NOT_FOUND:
        return ServiceCallError(f"not found: {details or 'no such object'} ({service} at {target})", code)
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return ServiceCallError(f"{service} refused {subject}: {details}", code)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        within = f" within {timeout_s:g} s" if timeout_s is not None else " in time"
        return ServiceCallError(f"{service} at {target} did not answer{within} (try --timeout)", code)
    name = code.name if code is not None else "an unknown error"
    return ServiceCallError(f"{service} at {target} answered {name}: {details or '(no details)'}", code)


# -- request files -------------------------------------------------------------------------------------

def _parse_document(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith(("{", "["))):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") \
                from exc
    try:
        return load_yaml(text)  # duplicate keys refused
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RequestFileError(f"{path}: invalid YAML{where}: {problem}") from exc


def load_request_file(path: str | Path) -> intake_pb2.SubmitRequestRequest:
    """Read one SubmitRequestRequest from a JSON or YAML file in protobuf JSON form (snake_case or
    camelCase field names, enum names or numbers).

    ``.json`` files are read as JSON, ``.yaml``/``.yml`` as YAML; other names are read as JSON when
    they start with ``{`` and as YAML otherwise. Raises :class:`RequestFileError` whose message
    starts with the path and names the problem (missing file, syntax error with its line, a
    document that is not one mapping, an unknown field or a wrongly typed value).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RequestFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise RequestFileError(f"{path}: is a directory, not a request file") from exc
    except UnicodeDecodeError as exc:
        raise RequestFileError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise RequestFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    document = _parse_document(path, text)
    if document is None:
        raise RequestFileError(f"{path}: is empty; expected one SubmitRequestRequest")
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        raise RequestFileError(f"{path}: holds {kind}; expected one SubmitRequestRequest object (a mapping)")
    request = intake_pb2.SubmitRequestRequest()
    try:
        json_format.ParseDict(document, request)
    except json_format.ParseError as exc:
        hint = ""
        if "string" in str(exc).lower() and path.suffix.lower() in (".yaml", ".yml"):
            hint = ' (quote values that are strings of digits, e.g. npi: "1234567893")'
        raise RequestFileError(f"{path}: not a valid SubmitRequestRequest: {exc}{hint}") from exc
    return request


# -- rendering -----------------------------------------------------------------------------------------

def _t(value: object, style: str = "") -> Text:
    """Server-supplied text, never interpreted as rich markup (field paths contain brackets)."""
    return Text(str(value), style=style)


def enum_label(enum: Any, number: int) -> str:
    """``LINE_OUTCOME_MEETS_CRITERIA`` -> ``meets criteria`` (the enum's prefix dropped)."""
    names = enum.DESCRIPTOR.values_by_number if hasattr(enum, "DESCRIPTOR") else enum.values_by_number
    value = names.get(number)
    if value is None:
        return f"unknown ({number})"
    prefix = names[0].name[: -len("UNSPECIFIED")]
    label = value.name[len(prefix):] if value.name.startswith(prefix) else value.name
    return "unspecified" if number == 0 else label.lower().replace("_", " ")


def format_date(date: types_pb2.Date) -> str:
    """ISO date, or ``—`` when unset."""
    if date.year == 0:
        return "—"
    return f"{date.year:04d}-{date.month:02d}-{date.day:02d}"


def format_timestamp(ts: Timestamp) -> str:
    """UTC, to the millisecond, or ``—`` when unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return "—"
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def format_action(code: int) -> str:
    if code == 0:
        return "—"
    return f"{X12_ACTION.get(code, '?')} {enum_label(types_pb2.ActionCode, code)}"


def _kv_grid(rows: Sequence[tuple[str, RenderableType]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def _indent(renderable: RenderableType, bottom: int = 0) -> Padding:
    return Padding(renderable, (0, 0, bottom, 2), expand=False)


def _line_heading(view: intake_pb2.LineView) -> Text:
    line = view.line
    pos = enum_label(types_pb2.PlaceOfService, line.place_of_service)
    modifiers = f"-{'-'.join(line.modifiers)}" if line.modifiers else ""
    return Text.assemble(
        (f"Line {line.line_number}: ", "bold"), (f"{line.procedure_code}{modifiers}", "bold cyan"),
        f" x {line.units}  {format_date(line.start_date)} → {format_date(line.end_date)}  {pos}")


def _conditions_table(explanation: types_pb2.Explanation) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("condition")
    table.add_column("status", no_wrap=True)
    table.add_column("observed", overflow="fold")
    for c in explanation.conditions:
        label, style = _CONDITION_STYLE.get(c.status, ("unspecified", ""))
        what = c.condition_id + (f": {c.description}" if c.description else "")
        table.add_row(_t(what), _t(label, style), _t(", ".join(c.observed) or "—"))
    return table


def _authorization_text(view: intake_pb2.LineView) -> Text:
    auth = view.authorization
    if auth.authorization_number:
        status = enum_label(types_pb2.AuthorizationStatus, auth.status)
        return Text.assemble((auth.authorization_number, "bold green"),
                             f"  valid {format_date(auth.valid_from)} → {format_date(auth.valid_to)}"
                             f"  {auth.units} unit(s)  {status}")
    det = view.determination
    if det.action_code in (types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL,
                           types_pb2.ACTION_CODE_MODIFIED):
        return Text("being issued", style="cyan")
    return Text("none", style="dim")


def format_line(view: intake_pb2.LineView, *, ineligible: bool = False) -> RenderableType:
    """One service line: its determination (outcome, X12 action code, reasons, criteria id and
    version, each condition met/unmet/missing, missing facts, flags) and its authorization.
    ``ineligible``: the request was never reviewed, so the line has no determination to wait for."""
    rows: list[tuple[str, RenderableType]] = []
    if not view.HasField("determination"):
        rows.append(("outcome", Text("not reviewed (the member is not eligible)", style="red") if ineligible
                     else Text("not decided yet", style="cyan")))
        return Group(_line_heading(view), _indent(_kv_grid(rows)))
    det = view.determination
    rows.append(("outcome", _t(enum_label(types_pb2.LineOutcome, det.outcome), _OUTCOME_STYLE.get(det.outcome, ""))))
    action = _t(format_action(det.action_code))
    if det.approved_units:
        action.append(f"  approved {det.approved_units} unit(s) "
                      f"{format_date(det.approved_start)} → {format_date(det.approved_end)}")
    rows.append(("action", action))
    if det.queued_for_review:
        rows.append(("queue", Text("waiting for a reviewer", style="yellow")))
    if det.reasons:
        rows.append(("reasons", Group(*(_t(f"• {reason}") for reason in det.reasons))))
    explanation = det.explanation
    if explanation.criteria_id:
        criteria = _t(f"{explanation.criteria_id} version {explanation.criteria_version or '?'}")
        if explanation.criteria_hash:
            criteria.append(f"  (hash {explanation.criteria_hash[:12]})", style="dim")
        rows.append(("criteria", criteria))
    else:
        rows.append(("criteria", Text("no criteria set applied", style="dim")))
    if explanation.conditions:
        rows.append(("conditions", _conditions_table(explanation)))
    if explanation.missing_facts:
        rows.append(("missing facts", _t(", ".join(explanation.missing_facts), "yellow")))
    if explanation.flags:
        rows.append(("flags", Group(*(_t(f"• {f}", "yellow") for f in explanation.flags))))
    rows.append(("authorization", _authorization_text(view)))
    return Group(_line_heading(view), _indent(_kv_grid(rows)))


def decision_latency_ms(view: intake_pb2.RequestView) -> float | None:
    """Milliseconds from received_at to decided_at (both server clocks), or None if undecided."""
    if not (view.HasField("received_at") and view.HasField("decided_at")):
        return None
    received = view.received_at.seconds * 1000 + view.received_at.nanos / 1e6
    decided = view.decided_at.seconds * 1000 + view.decided_at.nanos / 1e6
    return decided - received


def format_request(view: intake_pb2.RequestView, *, replayed: bool = False) -> RenderableType:
    """A request's whole story as a rich renderable: status, coverage, clock, and every line."""
    status_style = _STATUS_STYLE.get(view.status, "")
    title = Text.assemble(("Request ", "bold"), (view.request_id or "?", "bold"), "  ",
                          (enum_label(intake_pb2.RequestStatus, view.status).upper(), f"bold {status_style}"))
    rows: list[tuple[str, RenderableType]] = []
    if replayed:
        rows.append(("note", Text("replayed: this idempotency key was already used with this payload; "
                                  "this is the original answer", style="cyan")))
    if view.status_reason:
        rows.append(("reason", _t(view.status_reason, status_style)))
    rows += [
        ("idempotency key", _t(view.idempotency_key)),
        ("member", _t(f"{view.member_id}  ({enum_label(types_pb2.LineOfBusiness, view.line_of_business)})")),
        ("review", _t(f"{enum_label(types_pb2.ReviewType, view.review_type)}, "
                      f"{enum_label(types_pb2.Urgency, view.urgency)}")),
        ("received", _t(format_timestamp(view.received_at))),
    ]
    if view.HasField("decided_at"):
        latency = decision_latency_ms(view)
        decided = f"{format_timestamp(view.decided_at)}"
        if view.decided_by.id:
            decided += f" by {view.decided_by.id}" + (f" ({view.decided_by.role})" if view.decided_by.role else "")
        if latency is not None:
            decided += f"  [{latency:,.0f} ms after receipt]"
        rows.append(("decided", _t(decided)))
    if view.clock.regime:
        rows.append(("clock", _t(f"{view.clock.regime}: {view.clock.rule}; due {format_timestamp(view.clock.due_at)}")))
    if view.determination_id:
        rows.append(("determination", _t(view.determination_id)))
    parts: list[RenderableType] = [title, _indent(_kv_grid(rows), bottom=1)]
    for line in view.lines:
        parts += [format_line(line, ineligible=view.status == intake_pb2.REQUEST_STATUS_INELIGIBLE), Text("")]
    return Group(*parts)


def format_authorization(auth: types_pb2.Authorization) -> RenderableType:
    """One authorization: number, status, what it covers and its validity."""
    return Group(
        Text.assemble(("Authorization ", "bold"), (auth.authorization_number, "bold green"), "  ",
                      (enum_label(types_pb2.AuthorizationStatus, auth.status).upper(), "bold")),
        _indent(_kv_grid([
            ("member", _t(auth.member_id)),
            ("service", _t(f"{auth.procedure_code} x {auth.units}")),
            ("valid", _t(f"{format_date(auth.valid_from)} → {format_date(auth.valid_to)}")),
            ("request", _t(f"{auth.request_id} line {auth.line_number}")),
            ("determination", _t(auth.determination_id or "—")),
            ("issued", _t(format_timestamp(auth.issued_at))),
        ])))


def format_authorizations(auths: Sequence[types_pb2.Authorization], title: str = "") -> RenderableType:
    """A table of authorizations: number, code, units, validity, status and issue date (the request
    each came from is in ``authorization show NUMBER`` and in ``--json``)."""
    if not auths:
        return Text("no authorizations", style="dim")
    table = Table(title=title or None, box=box.SIMPLE_HEAVY, pad_edge=False)
    table.add_column("number", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("units", justify="right", no_wrap=True)
    table.add_column("valid", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("issued", no_wrap=True)
    for a in auths:
        table.add_row(_t(a.authorization_number, "bold"), _t(a.procedure_code), _t(a.units),
                      _t(f"{format_date(a.valid_from)} → {format_date(a.valid_to)}"),
                      _t(enum_label(types_pb2.AuthorizationStatus, a.status)), _t(format_timestamp(a.issued_at)[:10]))
    return table


_LOB_SHORT: dict[int, str] = {
    types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE: "MA",
    types_pb2.LINE_OF_BUSINESS_MEDICAID: "Medicaid",
    types_pb2.LINE_OF_BUSINESS_COMMERCIAL: "Commercial",
    types_pb2.LINE_OF_BUSINESS_WORKERS_COMP: "WC",
}


def format_queue(tasks: Sequence[review_pb2.ReviewTask], total: int) -> RenderableType:
    """The review queue in the order the review service gave it (most urgent first). Each task takes
    two lines: when it is due, urgency, request and line, code and coverage; then outcome and reasons.
    (A list rather than a table: request ids stay whole and copyable at any terminal width.)"""
    if not tasks:
        return Text("the review queue is empty", style="dim")
    parts: list[RenderableType] = [Text(f"Review queue: showing {len(tasks)} of {total}", style="bold")]
    for t in tasks:
        expedited = t.urgency == types_pb2.URGENCY_EXPEDITED
        heading = Text.assemble(
            (f"due {format_timestamp(t.due_at)[:16]}", "bold"), "  ",
            ("EXPEDITED" if expedited else "standard", "bold red" if expedited else ""), "  ",
            (t.request_id, "cyan"), f" line {t.line_number}  ", (t.procedure_code, "bold"),
            f"  {_LOB_SHORT.get(t.line_of_business, '?')} {t.member_state}")
        detail = Text(enum_label(types_pb2.LineOutcome, t.outcome), style="yellow")
        for reason in t.reasons:
            detail.append(f"\n• {reason}")
        parts += [heading, _indent(detail)]
    return Group(*parts)


def to_json(message: Message) -> str:
    """Protobuf JSON with proto field names (what ``--json`` prints)."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


# -- commands ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Targets:
    intake: str
    review: str
    authorization: str


def _call(service: str, target: str, timeout_s: float, subject: str,
          invoke: Callable[[grpc.Channel], Any]) -> Any:
    """Run ``invoke`` on a fresh channel; translate gRPC failures into :class:`ServiceCallError`."""
    with grpc.insecure_channel(target) as channel:
        try:
            return invoke(channel)
        except grpc.RpcError as exc:
            raise describe_rpc_error(exc, service, target, timeout_s, subject) from exc


def _emit(console: Console, args: argparse.Namespace, message: Message, human: Callable[[], RenderableType]) -> None:
    if args.json:
        print(to_json(message))
    else:
        console.print(human())


def cmd_submit(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = load_request_file(args.file)
    if args.wait_ms is not None:
        request.wait_ms = args.wait_ms
    timeout = args.timeout + request.wait_ms / 1000
    response = _call("intake", targets.intake, timeout, str(args.file), lambda channel: intake_pb2_grpc.
                     IntakeServiceStub(channel).SubmitRequest(request, timeout=timeout))
    _emit(console, args, response, lambda: format_request(response.request, replayed=response.replayed))
    return EXIT_OK


def cmd_request_show(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = _call("intake", targets.intake, args.timeout, "the lookup", lambda channel: intake_pb2_grpc.
                     IntakeServiceStub(channel).GetRequest(intake_pb2.GetRequestRequest(request_id=args.request_id),
                                                           timeout=args.timeout))
    _emit(console, args, response, lambda: format_request(response.request))
    return EXIT_OK


def cmd_authorization_show(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.GetAuthorizationRequest(authorization_number=args.number)
    response = _call("authorization", targets.authorization, args.timeout, "the lookup",
                     lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                     .GetAuthorization(request, timeout=args.timeout))
    _emit(console, args, response, lambda: format_authorization(response.authorization))
    return EXIT_OK


def cmd_authorization_list(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.ListMemberAuthorizationsRequest(member_id=args.member, procedure_code=args.code or "")
    response = _call("authorization", targets.authorization, args.timeout, "the lookup",
                     lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                     .ListMemberAuthorizations(request, timeout=args.timeout))
    title = f"Authorizations of {args.member}" + (f" for {args.code}" if args.code else "")
    _emit(console, args, response, lambda: format_authorizations(response.authorizations, title))
    return EXIT_OK


def cmd_queue_list(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")

    def fetch(channel: grpc.Channel) -> review_pb2.ListReviewQueueResponse:
        stub = review_pb2_grpc.ReviewServiceStub(channel)
        merged = review_pb2.ListReviewQueueResponse()
        token = ""
        while len(merged.tasks) < args.limit:
            page = stub.ListReviewQueue(review_pb2.ListReviewQueueRequest(
                page_size=min(args.limit - len(merged.tasks), QUEUE_PAGE_MAX), page_token=token),
                timeout=args.timeout)
            merged.tasks.extend(page.tasks)
            merged.total = page.total
            token = merged.next_page_token = page.next_page_token
            if not token or not page.tasks:
                break
        return merged

    response = _call("review", targets.review, args.timeout, "the listing", fetch)
    _emit(console, args, response, lambda: format_queue(response.tasks, response.total))
    return EXIT_OK


def _used_by(setting: settings.Setting) -> str:
    return "all services" if setting.used_by == ("*",) else ", ".join(setting.used_by)


def cmd_settings(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    """The declared settings; ``--markdown`` prints the README's configuration table."""
    if args.markdown:
        print(settings.markdown_table())
        return EXIT_OK
    table = Table(title="Settings (environment variables)", box=box.SIMPLE_HEAVY)
    for column in ("variable", "value", "default", "used by", "meaning"):
        table.add_column(column)
    for s in settings.SETTINGS:
        table.add_row(_t(s.name, "bold"), _t(settings.get(s.name)), _t(s.default), _t(_used_by(s)), _t(s.help))
    console.print(table)
    return EXIT_OK


# -- entry point ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the subcommand; SUPPRESS keeps a subcommand's
    # absent option from overwriting one given before it.
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--intake", metavar="HOST:PORT", default=argparse.SUPPRESS,
                            help="intake service (default: UR_INTAKE_TARGET)")
    connection.add_argument("--review", metavar="HOST:PORT", default=argparse.SUPPRESS,
                            help="review service (default: UR_REVIEW_TARGET)")
    connection.add_argument("--authorization", metavar="HOST:PORT", default=argparse.SUPPRESS,
                            help="authorization service (default: UR_AUTHORIZATION_TARGET)")
    connection.add_argument("--timeout", metavar="SECONDS", type=float, default=argparse.SUPPRESS,
                            help=f"deadline of each call (default {DEFAULT_TIMEOUT_S:g}; submit adds --wait-ms)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print protobuf JSON instead of tables")

    parser = argparse.ArgumentParser(prog="urctl", description=__doc__, parents=[connection],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[connection, output],
                                 help="submit one request from a JSON or YAML file")
    submit.add_argument("file", type=Path, metavar="FILE", help="one SubmitRequestRequest (protobuf JSON form)")
    submit.add_argument("--wait-ms", type=int, metavar="N", default=None,
                        help="wait up to N ms for the determination (default: the file's wait_ms, else 0)")
    submit.set_defaults(handler=cmd_submit)

    request = commands.add_parser("request", help="requests").add_subparsers(dest="action", required=True,
                                                                              metavar="ACTION")
    show = request.add_parser("show", parents=[connection, output], help="a request's status, lines and decisions")
    show.add_argument("request_id", metavar="REQUEST_ID")
    show.set_defaults(handler=cmd_request_show)

    authorization = commands.add_parser("authorization", help="authorizations").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    auth_show = authorization.add_parser("show", parents=[connection, output], help="one authorization")
    auth_show.add_argument("number", metavar="NUMBER")
    auth_show.set_defaults(handler=cmd_authorization_show)
    auth_list = authorization.add_parser("list", parents=[connection, output], help="a member's authorizations")
    auth_list.add_argument("--member", required=True, metavar="ID")
    auth_list.add_argument("--code", metavar="CPT", help="only this procedure code")
    auth_list.set_defaults(handler=cmd_authorization_list)

    queue = commands.add_parser("queue", help="the review queue").add_subparsers(dest="action", required=True,
                                                                                metavar="ACTION")
    queue_list = queue.add_parser("list", parents=[connection, output], help="lines waiting for a person")
    queue_list.add_argument("--limit", type=int, default=50, metavar="N", help="at most N tasks (default 50)")
    queue_list.set_defaults(handler=cmd_queue_list)

    from services.cli import criteria, reviewer  # imported here: they import this module

    reviewer.add_commands(commands, request, connection, output)
    criteria.add_criteria_commands(commands, connection, output)

    settings_cmd = commands.add_parser("settings", help="the environment variables the platform reads")
    settings_cmd.add_argument("--markdown", action="store_true", help="as a Markdown table (for the README)")
    settings_cmd.set_defaults(handler=cmd_settings, json=False)
    return parser


def targets_from(args: argparse.Namespace) -> Targets:
    """Command-line flags first, then the settings (environment, then defaults)."""
    return Targets(
        intake=getattr(args, "intake", None) or settings.get("UR_INTAKE_TARGET"),
        review=getattr(args, "review", None) or settings.get("UR_REVIEW_TARGET"),
        authorization=getattr(args, "authorization", None) or settings.get("UR_AUTHORIZATION_TARGET"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run urctl with ``argv`` (default: sys.argv[1:]); returns the exit status (see the module doc)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help already
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not hasattr(args, "timeout"):
        args.timeout = DEFAULT_TIMEOUT_S
    console = Console(highlight=False)
    try:
        return int(args.handler(args, targets_from(args), console))
    except CliError as exc:
        print(f"urctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("urctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: the command modules raise
    # services.cli.urctl.CliError, which a __main__.CliError handler would not catch.
    from services.cli import urctl as _canonical  # noqa: PLW0406 - deliberately the importable copy

    sys.exit(_canonical.main())
