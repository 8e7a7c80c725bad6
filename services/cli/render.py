"""How urctl shows the platform's protobufs to a person (rich renderables): requests and their lines'
determinations, authorizations, the review queue, criteria conditions; and the small formatting
helpers (dates, timestamps, X12 action codes, enum labels, key/value grids) every command uses.

Server-supplied text goes through :func:`plain`, never rich markup: field paths contain brackets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)

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


def plain(value: object, style: str = "") -> Text:
    """Server-supplied text, never interpreted as rich markup (field paths contain brackets)."""
    return Text(str(value), style=style)


def enum_label(enum: _EnumTypeWrapper[V], number: int) -> str:
    """``LINE_OUTCOME_MEETS_CRITERIA`` -> ``meets criteria`` (the enum's prefix dropped)."""
    names = enum.DESCRIPTOR.values_by_number
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
    """``A1 certified in total``: the X12 278 code and the ActionCode's label; ``—`` when unset."""
    if code == 0:
        return "—"
    return f"{X12_ACTION.get(code, '?')} {enum_label(types_pb2.ActionCode, code)}"


def kv_grid(rows: Sequence[tuple[str, RenderableType]]) -> Table:
    """Two columns: a bold key and its value, one row each."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def indent(renderable: RenderableType, bottom: int = 0) -> Padding:
    """``renderable`` two columns in, with ``bottom`` blank lines after it."""
    return Padding(renderable, (0, 0, bottom, 2), expand=False)


def _line_heading(view: intake_pb2.LineView) -> Text:
    line = view.line
    pos = enum_label(types_pb2.PlaceOfService, line.place_of_service)
    modifiers = f"-{'-'.join(line.modifiers)}" if line.modifiers else ""
    return Text.assemble(
        (f"Line {line.line_number}: ", "bold"), (f"{line.procedure_code}{modifiers}", "bold cyan"),
        f" x {line.units}  {format_date(line.start_date)} → {format_date(line.end_date)}  {pos}")


def conditions_table(explanation: types_pb2.Explanation) -> Table:
    """Each condition of a criteria evaluation: id and description, met/unmet/missing, what was observed."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("condition")
    table.add_column("status", no_wrap=True)
    table.add_column("observed", overflow="fold")
    for c in explanation.conditions:
        label, style = _CONDITION_STYLE.get(c.status, ("unspecified", ""))
        what = c.condition_id + (f": {c.description}" if c.description else "")
        table.add_row(plain(what), plain(label, style), plain(", ".join(c.observed) or "—"))
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
        return Group(_line_heading(view), indent(kv_grid(rows)))
    det = view.determination
    rows.append(("outcome", plain(enum_label(types_pb2.LineOutcome, det.outcome), _OUTCOME_STYLE.get(det.outcome, ""))))
    action = plain(format_action(det.action_code))
    if det.approved_units:
        action.append(f"  approved {det.approved_units} unit(s) "
                      f"{format_date(det.approved_start)} → {format_date(det.approved_end)}")
    rows.append(("action", action))
    if det.queued_for_review:
        rows.append(("queue", Text("waiting for a reviewer", style="yellow")))
    if det.reasons:
        rows.append(("reasons", Group(*(plain(f"• {reason}") for reason in det.reasons))))
    explanation = det.explanation
    if explanation.criteria_id:
        criteria = plain(f"{explanation.criteria_id} version {explanation.criteria_version or '?'}")
        if explanation.criteria_hash:
            criteria.append(f"  (hash {explanation.criteria_hash[:12]})", style="dim")
        rows.append(("criteria", criteria))
    else:
        rows.append(("criteria", Text("no criteria set applied", style="dim")))
    if explanation.conditions:
        rows.append(("conditions", conditions_table(explanation)))
    if explanation.missing_facts:
        rows.append(("missing facts", plain(", ".join(explanation.missing_facts), "yellow")))
    if explanation.flags:
        rows.append(("flags", Group(*(plain(f"• {f}", "yellow") for f in explanation.flags))))
    rows.append(("authorization", _authorization_text(view)))
    return Group(_line_heading(view), indent(kv_grid(rows)))


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
        rows.append(("reason", plain(view.status_reason, status_style)))
    rows += [
        ("idempotency key", plain(view.idempotency_key)),
        ("member", plain(f"{view.member_id}  ({enum_label(types_pb2.LineOfBusiness, view.line_of_business)})")),
        ("review", plain(f"{enum_label(types_pb2.ReviewType, view.review_type)}, "
                      f"{enum_label(types_pb2.Urgency, view.urgency)}")),
        ("received", plain(format_timestamp(view.received_at))),
    ]
    if view.HasField("decided_at"):
        latency = decision_latency_ms(view)
        decided = f"{format_timestamp(view.decided_at)}"
        if view.decided_by.id:
            decided += f" by {view.decided_by.id}" + (f" ({view.decided_by.role})" if view.decided_by.role else "")
        if latency is not None:
            decided += f"  [{latency:,.0f} ms after receipt]"
        rows.append(("decided", plain(decided)))
    if view.clock.regime:
        rows.append(("clock", plain(f"{view.clock.regime}: {view.clock.rule}; "
                                    f"due {format_timestamp(view.clock.due_at)}")))
    if view.determination_id:
        rows.append(("determination", plain(view.determination_id)))
    parts: list[RenderableType] = [title, indent(kv_grid(rows), bottom=1)]
    for line in view.lines:
        parts += [format_line(line, ineligible=view.status == intake_pb2.REQUEST_STATUS_INELIGIBLE), Text("")]
    return Group(*parts)


def format_authorization(auth: types_pb2.Authorization) -> RenderableType:
    """One authorization: number, status, what it covers and its validity."""
    return Group(
        Text.assemble(("Authorization ", "bold"), (auth.authorization_number, "bold green"), "  ",
                      (enum_label(types_pb2.AuthorizationStatus, auth.status).upper(), "bold")),
        indent(kv_grid([
            ("member", plain(auth.member_id)),
            ("service", plain(f"{auth.procedure_code} x {auth.units}")),
            ("used", plain(f"{auth.units_used} of {auth.units} {auth.unit or 'units'}, {auth.units_remaining} left")),
            ("servicing", plain(f"{auth.servicing_name} ({auth.servicing_npi})" if auth.servicing_npi else "—")),
            ("valid", plain(f"{format_date(auth.valid_from)} → {format_date(auth.valid_to)}")),
            ("decided by", plain(f"{auth.decided_by.name or auth.decided_by.id} ({auth.decided_by.role})"
                                 + (f", {auth.decided_by.criteria}" if auth.decided_by.criteria else "")
                                 if auth.decided_by.id else "—")),
            ("appeal", plain(f"approved after appeal {auth.appeal_id}" if auth.approved_after_appeal else "—")),
            ("request", plain(f"{auth.request_id} line {auth.line_number}")),
            ("determination", plain(auth.determination_id or "—")),
            ("issued", plain(format_timestamp(auth.issued_at))),
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
        table.add_row(plain(a.authorization_number, "bold"), plain(a.procedure_code), plain(a.units),
                      plain(f"{format_date(a.valid_from)} → {format_date(a.valid_to)}"),
                      plain(enum_label(types_pb2.AuthorizationStatus, a.status)),
                      plain(format_timestamp(a.issued_at)[:10]))
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
        parts += [heading, indent(detail)]
    return Group(*parts)


def progress_bar(console: Console, enabled: bool) -> Progress:
    """A progress bar (description, bar, done of total, time left) on ``console``, shown only when
    ``enabled`` and the console is a terminal; it disappears when done."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not (enabled and console.is_terminal))
