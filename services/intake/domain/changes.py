"""What a submitter may do to a request after submitting it, and appeals. Pure: no I/O.

* **Cancel** or **revise** (X12 UM02 ``3`` / ``S``; Da Vinci PAS: updates go through ``$submit``
  again): only the submitter (the requesting provider, by NPI), only while the request is under
  review (in review or pended) and no line of it is decided; a decided request is not edited: a new
  request or an appeal is filed. A revision keeps the member, the coverage and the lines (their
  codes, units, dates, the diagnoses, facts and urgency may change).
* **Appeal** of a denied, partially approved or modified line, standard or expedited, by whom the
  line's appeal rights name (the member, a provider on the member's behalf; in workers' comp the
  injured worker or their representative), by the last day they name (``file_by``: the notice's
  date plus the regime's window, set by review with each adverse line), once per line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.errors import FailedPrecondition, FieldViolation, PermissionDenied, ValidationFailed
from services.intake.domain.model import UNDER_REVIEW, PriorAuthRequest, RequestStatus

ADVERSE_ACTIONS = frozenset({"not_certified", "certified_partial", "modified"})
APPELLANTS = ("member", "provider_on_behalf", "injured_worker", "representative")


def check_submitter(requesting_npi: str, submitted_npi: str) -> None:
    if not requesting_npi.strip():
        raise ValidationFailed([FieldViolation("requesting_npi", "required: the submitter's NPI")])
    if requesting_npi.strip() != submitted_npi:
        raise PermissionDenied("only the requesting provider who submitted the request may change it")


def check_changeable(status: RequestStatus, status_reason: str, decided_lines: Sequence[int], what: str) -> None:
    """A request still under review with no decided line; otherwise FailedPrecondition saying why."""
    if status not in UNDER_REVIEW:
        reason = f": {status_reason}" if status_reason else ""
        raise FailedPrecondition(f"the request is {status.value.replace('_', ' ')}{reason}; a request no longer "
                                 f"under review cannot be {what} (file a new request, or an appeal)")
    if decided_lines:
        lines = ", ".join(str(n) for n in decided_lines)
        raise FailedPrecondition(f"line(s) {lines} of the request are decided; a decided request is not edited "
                                 f"(file a new request, or an appeal), so it cannot be {what}")


@dataclass(frozen=True)
class Original:
    """What a revision must keep of the request it revises."""

    member_id: str
    line_of_business: str | None
    member_state: str
    line_count: int
    requesting_npi: str


def check_revision(original: Original, revision: PriorAuthRequest) -> list[FieldViolation]:
    """What a revision may not change."""
    v = []
    if revision.member_id != original.member_id:
        v.append(FieldViolation("revision.member_id", "a revision keeps the member"))
    if (revision.line_of_business, revision.member_state) != (original.line_of_business, original.member_state):
        v.append(FieldViolation("revision.coverage", "a revision keeps the coverage"))
    if len(revision.lines) != original.line_count:
        v.append(FieldViolation("revision.service_lines", f"a revision keeps the request's {original.line_count} "
                                                          "line(s); cancel and submit a new request to add or remove "
                                                          "lines"))
    if revision.requesting_npi != original.requesting_npi:
        v.append(FieldViolation("revision.requesting_provider.npi", "a revision keeps the requesting provider"))
    return v


@dataclass(frozen=True)
class LineRights:
    """What an adverse line's determination says about appealing it."""

    action: str  # the line's X12 action in lowercase
    file_by: dt.date | None
    window_days: int
    level: str
    who_may_file: tuple[str, ...]
    citation: str


def check_appeal(line_number: int, rights: LineRights | None, appellant: str, filed_on: dt.date,
                 already_appealed: bool) -> None:
    """Raise unless the line may be appealed now by ``appellant``."""
    if appellant not in APPELLANTS:
        raise ValidationFailed([FieldViolation("appellant", "member, provider_on_behalf, injured_worker or "
                                                            "representative")])
    if rights is None or rights.action not in ADVERSE_ACTIONS:
        raise FailedPrecondition(f"line {line_number} is not denied, partially approved or modified: there is "
                                 "nothing to appeal")
    if already_appealed:
        raise FailedPrecondition(f"line {line_number} is already appealed; its appeal decision names the next level")
    if rights.file_by is None:
        raise FailedPrecondition(f"line {line_number} carries no appeal rights")
    if filed_on > rights.file_by:
        raise FailedPrecondition(
            f"the appeal window closed on {rights.file_by.isoformat()}: {rights.level} must be asked for within "
            f"{rights.window_days} days of the notice ({rights.citation})")
    if appellant not in rights.who_may_file:
        raise PermissionDenied(f"a {appellant.replace('_', ' ')} may not file this appeal; it may be filed by: "
                               f"{', '.join(w.replace('_', ' ') for w in rights.who_may_file)}")
