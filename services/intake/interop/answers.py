"""What a stored request says for each of its lines, in the terms PAS and X12 answer in.

Both doors read the ``RequestView`` intake's ``GetRequest`` returns. A line without a determination
yet is pended (A4): the guide's synchronous answer for "under review"; in a cancelled request a line
still pended is cancelled (C), as review's determination will say. A certified line carries its
authorization's number, units and validity when the authorization is issued, otherwise what the
determination certified. An ineligible request has no line answers: it is rejected as a whole
(``rejection_of``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.domain.codes import is_npi
from services.intake.interop.codes import ACTION_CODES, CERTIFIED

HUMAN_ROLES = frozenset({"nurse", "physician", "adjuster"})


@dataclass(frozen=True)
class Reviewer:
    """The person who decided: role, the credential text, an NPI when the reviewer id is one."""

    reviewer_id: str
    role: str
    name: str
    credential: str
    npi: str | None
    specialty: str | None  # "orthopedic surgery" from "MD (orthopedic surgery), licensed in CA"


@dataclass(frozen=True)
class LineAnswer:
    line_number: int
    procedure_code: str
    action: str  # X12 HCR01: A1 A2 A3 A4 A6 C CT NA
    action_display: str
    authorization_number: str | None
    reasons: tuple[str, ...]
    requested_units: int
    requested_start: dt.date | None
    requested_end: dt.date | None
    authorized_units: int | None  # certified lines only
    authorized_start: dt.date | None
    authorized_end: dt.date | None
    issued_on: dt.date | None  # the authorization's issue date
    reviewer: Reviewer | None  # a person decided this line

    @property
    def certified(self) -> bool:
        return self.action in CERTIFIED


@dataclass(frozen=True)
class Rejection:
    """A request the platform cannot review, in X12 AAA terms (PAS ClaimResponse.error uses the same
    codes). ``loop`` is where a 278 response carries it: 2010A payer, 2010B requester, 2010C
    subscriber, 2010D dependent, 2000E patient event, 2000F service line."""

    loop: str
    code: str  # AAA03, code list 901
    followup: str  # AAA04, code list 889
    message: str
    path: str = ""  # FHIRPath of the element in error (PAS errorPath)
    element: str = ""  # the X12 element in error, loop-segment+position ("2010C-NM109"; PAS errorElement)
    line: int = 0  # for loop 2000F: the service line (1-based) it concerns


def _date(value: types_pb2.Date, present: bool) -> dt.date | None:
    if not present:
        return None
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError:
        return None


def reviewer_of(decider: types_pb2.DeciderRef) -> Reviewer | None:
    if decider.role not in HUMAN_ROLES:
        return None
    specialty = None
    if "(" in decider.credential and ")" in decider.credential:
        inside = decider.credential.split("(", 1)[1].split(")", 1)[0].strip()
        specialty = inside or None
    return Reviewer(reviewer_id=decider.id, role=decider.role, name=decider.name, credential=decider.credential,
                    npi=decider.id if is_npi(decider.id) else None, specialty=specialty)


def line_answers(view: intake_pb2.RequestView) -> list[LineAnswer]:
    """One answer per line of the view, in line order."""
    answers = []
    for item in view.lines:
        line, det, auth = item.line, item.determination, item.authorization
        decided = item.HasField("determination") and det.action_code != types_pb2.ACTION_CODE_UNSPECIFIED
        action, display = ACTION_CODES[types_pb2.ACTION_CODE_PENDED]
        pended = not decided or det.action_code == types_pb2.ACTION_CODE_PENDED
        withdrawn = pended and view.status == intake_pb2.REQUEST_STATUS_CANCELLED
        if decided:
            action, display = ACTION_CODES.get(det.action_code, ACTION_CODES[types_pb2.ACTION_CODE_PENDED])
        if withdrawn:  # cancelled while under review: review's C for the line follows
            action, display = ACTION_CODES[types_pb2.ACTION_CODE_CANCELLED]
        has_auth = item.HasField("authorization") and bool(auth.authorization_number)
        units = start = end = None
        if action in CERTIFIED:
            if has_auth:
                units = auth.units or None
                start, end = _date(auth.valid_from, auth.HasField("valid_from")), _date(auth.valid_to,
                                                                                       auth.HasField("valid_to"))
            else:
                units = det.approved_units or None
                start = _date(det.approved_start, det.HasField("approved_start"))
                end = _date(det.approved_end, det.HasField("approved_end"))
        answers.append(LineAnswer(
            line_number=line.line_number,
            procedure_code=line.procedure_code,
            action=action,
            action_display=display,
            authorization_number=auth.authorization_number if has_auth and action in CERTIFIED else None,
            reasons=(view.status_reason or "cancelled by the submitter",) if withdrawn else (
                tuple(r for r in det.reasons if r.strip()) if decided else ("under review",)),
            requested_units=line.units,
            requested_start=_date(line.start_date, line.HasField("start_date")),
            requested_end=_date(line.end_date, line.HasField("end_date")),
            authorized_units=units,
            authorized_start=start,
            authorized_end=end,
            issued_on=auth.issued_at.ToDatetime().date() if has_auth and auth.HasField("issued_at") else None,
            reviewer=reviewer_of(det.decided_by) if decided else None,
        ))
    return answers


def deciding_reviewer(view: intake_pb2.RequestView) -> Reviewer | None:
    """The person whose decision is the latest among the lines (None when software decided all)."""
    latest: tuple[float, Reviewer] | None = None
    for item in view.lines:
        det = item.determination
        reviewer = reviewer_of(det.decided_by)
        if reviewer is None:
            continue
        at = det.decided_at.seconds + det.decided_at.nanos / 1e9
        if latest is None or at >= latest[0]:
            latest = (at, reviewer)
    if latest is None:
        return reviewer_of(view.decided_by)
    return latest[1]


def rejection_of(view: intake_pb2.RequestView) -> Rejection | None:
    """An ineligible request as an X12 reject reason: an unknown member is 75 (subscriber not found),
    coverage that does not fit (other line of business, state, dates) is 78 (not in the plan
    identified). The view's status reason is the only thing that tells them apart; it is kept as the
    message."""
    if view.status != intake_pb2.REQUEST_STATUS_INELIGIBLE:
        return None
    reason = view.status_reason or "not eligible"
    if reason.startswith("member not found"):
        return Rejection("2010C", "75", "C", reason, element="2010C-NM109")
    return Rejection("2010C", "78", "N", reason, element="2010C-NM109")
