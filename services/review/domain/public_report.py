"""The figures CMS-0057-F makes impacted payers post on their website every year (by 31 March, for
the calendar year before): 42 CFR 422.122(c) for Medicare Advantage organizations, 438.210(f) for
Medicaid managed care plans (and 431.80, 457.732, 457.1230, 45 CFR 156.223 for the other programs
the rule covers). Pure: no I/O, no clock; the caller reads the requests (adapters/report_queries.py).

What is counted, and how (each choice is printed in the report's notes):

* **Who.** Requests of the impacted lines of business this platform serves: Medicare Advantage and
  Medicaid (:data:`IMPACTED`). Commercial (ERISA) and workers' compensation requests are not
  covered by the rule and not counted. With a contract, only requests of plans of that contract
  (:func:`contract_of`: ``H1234`` of plan ``H1234-002``; any other plan id is its own contract).
* **What.** Prior authorization requests: a request's lines that need no prior authorization
  (no-PA list, X12 ``NA``) are not part of it, and a request with only such lines is no prior
  authorization request at all. A request withdrawn by its submitter (every line cancelled,
  ``C``) was never decided and is not counted.
* **When.** A request counts in the year its determination was made: the last of its lines'
  first decisions (a later decision on appeal does not move it). A request with a line still
  waiting for a decision at the time of the report is not yet decided; the notes count them.
* **Outcome.** From each line's *first* decision (what an appeal later changed is the appeal
  figure): *approved* when every line was approved in full (``A1``); *denied* when every line
  was denied (``A3``, including a Medicaid deemed denial, 42 CFR 438.404(c)(5), decided at the
  missed deadline); otherwise *approved in part* (an ``A2`` or ``A6`` line, or lines decided
  differently), shown on its own row so the three add up to 100 %.
* **Approved after appeal.** A request with a line whose appeal overturned the decision in full
  (approved), as known when the report is made; its share is of the same standard requests.
* **Extended.** A request whose review timeframe was extended (the regulatory clock's one
  extension, 42 CFR 422.568(b), 422.572(b)) and that was then approved; its share is of every
  decided request, standard and expedited together.
* **Urgency.** Expedited when the request's clock ran as expedited (72 hours), whether the
  provider asked for it or the plan expedited it; standard otherwise.
* **Time to decision.** From the submission (intake's receipt) to the determination, in hours;
  the average and the median, per urgency.
"""

from __future__ import annotations

import datetime as dt
import enum
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IMPACTED = frozenset({"medicare_advantage", "medicaid"})
EXPEDITED = "expedited"

APPROVED_IN_FULL = "certified_in_total"
DENIED = "not_certified"
PARTIAL = frozenset({"certified_partial", "modified"})
UNDECIDED = frozenset({"pended", "contact_payer", "unspecified", ""})
NOT_REQUIRED = "no_action_required"
CANCELLED = "cancelled"
OVERTURNED = "overturned"


class Outcome(enum.StrEnum):
    APPROVED = "approved"
    APPROVED_IN_PART = "approved_in_part"
    DENIED = "denied"
    PENDING = "pending"  # a line still waits for its first decision
    WITHDRAWN = "withdrawn"  # cancelled by the submitter before it was decided
    NOT_REQUIRED = "not_required"  # no line needed prior authorization


@dataclass(frozen=True)
class ReportLine:
    """One line of a request: its first decision (the ActionCode's name) and when it was made, and
    the outcome of an appeal of it, if one was decided."""

    line_number: int
    action: str
    decided_at: dt.datetime | None
    appeal_outcome: str = ""
    procedure_code: str = ""


@dataclass(frozen=True)
class ReportRequest:
    """One request as the report sees it."""

    request_id: str
    line_of_business: str
    plan_id: str
    urgency: str  # what the clock ran on: standard | expedited
    received_at: dt.datetime
    extended: bool
    lines: tuple[ReportLine, ...]

    @property
    def prior_authorization_lines(self) -> tuple[ReportLine, ...]:
        return tuple(ln for ln in self.lines if ln.action != NOT_REQUIRED)

    @property
    def outcome(self) -> Outcome:
        lines = self.prior_authorization_lines
        if not lines:
            return Outcome.NOT_REQUIRED
        if all(ln.action == CANCELLED for ln in lines):
            return Outcome.WITHDRAWN
        actions = {ln.action for ln in lines if ln.action != CANCELLED}
        if actions & UNDECIDED or any(ln.decided_at is None for ln in lines if ln.action != CANCELLED):
            return Outcome.PENDING
        if actions == {APPROVED_IN_FULL}:
            return Outcome.APPROVED
        if actions == {DENIED}:
            return Outcome.DENIED
        return Outcome.APPROVED_IN_PART

    @property
    def decided_at(self) -> dt.datetime | None:
        """When the request was determined: the last of its lines' first decisions (None until then)."""
        if self.outcome not in DECIDED:
            return None
        times = [ln.decided_at for ln in self.prior_authorization_lines if ln.decided_at is not None
                 and ln.action != CANCELLED]
        return max(times) if times else None

    @property
    def approved_after_appeal(self) -> bool:
        return any(ln.appeal_outcome == OVERTURNED for ln in self.prior_authorization_lines)

    @property
    def hours_to_decision(self) -> float | None:
        decided = self.decided_at
        return None if decided is None else max(0.0, (decided - self.received_at).total_seconds() / 3600)


DECIDED = frozenset({Outcome.APPROVED, Outcome.APPROVED_IN_PART, Outcome.DENIED})


def contract_of(plan_id: str) -> str:
    """The contract a plan belongs to: a Medicare Advantage plan id is contract-PBP (``H1234-002``:
    contract ``H1234``); any other plan id is a contract of its own."""
    head, sep, _ = plan_id.partition("-")
    if sep and len(head) == 5 and head[0] in "HRS" and head[1:].isdigit():
        return head
    return plan_id


def share(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent (None when there is no whole)."""
    return None if whole == 0 else 100.0 * part / whole


@dataclass(frozen=True)
class UrgencyFigures:
    """The counts of one urgency's decided requests, and their times to decision (hours)."""

    decided: int
    approved: int
    approved_in_part: int
    denied: int
    approved_after_appeal: int
    mean_hours: float | None
    median_hours: float | None

    @property
    def approved_pct(self) -> float | None:
        return share(self.approved, self.decided)

    @property
    def approved_in_part_pct(self) -> float | None:
        return share(self.approved_in_part, self.decided)

    @property
    def denied_pct(self) -> float | None:
        return share(self.denied, self.decided)

    @property
    def approved_after_appeal_pct(self) -> float | None:
        return share(self.approved_after_appeal, self.decided)


@dataclass(frozen=True)
class Figures:
    """Everything the report posts for one year (and contract, when given)."""

    year: int
    contract: str | None
    standard: UrgencyFigures
    expedited: UrgencyFigures
    extended: int  # decided requests whose timeframe was extended
    extended_then_approved: int
    pending: int  # received in the year, not decided when the report was made
    withdrawn: int  # received in the year, withdrawn by the submitter before a decision

    @property
    def decided(self) -> int:
        return self.standard.decided + self.expedited.decided

    @property
    def extended_then_approved_pct(self) -> float | None:
        return share(self.extended_then_approved, self.decided)


def _urgency_figures(requests: Sequence[ReportRequest]) -> UrgencyFigures:
    hours = [h for r in requests if (h := r.hours_to_decision) is not None]
    return UrgencyFigures(
        decided=len(requests),
        approved=sum(1 for r in requests if r.outcome is Outcome.APPROVED),
        approved_in_part=sum(1 for r in requests if r.outcome is Outcome.APPROVED_IN_PART),
        denied=sum(1 for r in requests if r.outcome is Outcome.DENIED),
        approved_after_appeal=sum(1 for r in requests if r.approved_after_appeal),
        mean_hours=statistics.fmean(hours) if hours else None,
        median_hours=statistics.median(hours) if hours else None)


def in_scope(request: ReportRequest, contract: str | None) -> bool:
    """An impacted line of business (and the contract, when one is asked for)."""
    return request.line_of_business in IMPACTED and (contract is None or contract_of(request.plan_id) == contract)


def figures(requests: Iterable[ReportRequest], year: int, contract: str | None = None) -> Figures:
    """The year's figures over ``requests`` (any others, of other years or lines of business, are
    left out here)."""
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    scoped = [r for r in requests if in_scope(r, contract)]
    decided = decided_in(scoped, year, contract)
    standard = [r for r in decided if r.urgency != EXPEDITED]
    expedited = [r for r in decided if r.urgency == EXPEDITED]
    extended = [r for r in decided if r.extended]
    received = [r for r in scoped if start <= r.received_at < end]
    return Figures(
        year=year, contract=contract, standard=_urgency_figures(standard), expedited=_urgency_figures(expedited),
        extended=len(extended), extended_then_approved=sum(1 for r in extended if r.outcome is Outcome.APPROVED),
        pending=sum(1 for r in received if r.outcome is Outcome.PENDING),
        withdrawn=sum(1 for r in received if r.outcome is Outcome.WITHDRAWN))


def decided_in(requests: Iterable[ReportRequest], year: int, contract: str | None = None) -> list[ReportRequest]:
    """The requests in scope whose determination was made in ``year``."""
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    return [r for r in requests if in_scope(r, contract) and (at := r.decided_at) is not None and start <= at < end]


@dataclass(frozen=True)
class RequiredService:
    """An item or service that needs prior authorization: its code and what the criteria call it."""

    code: str
    description: str
    criteria: str  # id@version of the criteria set it is reviewed against ("" for none)
    lines_of_business: tuple[str, ...]


def services_requiring_authorization(covered: Iterable[RequiredService], requested: Iterable[tuple[str, str]],
                                     no_prior_auth: Iterable[tuple[str, str]]) -> list[RequiredService]:
    """The list to post: every code a criteria set covers for an impacted line of business
    (``covered``), and every other code requested in the year for which prior authorization was
    required (``requested``: (code, line of business); those on the no-prior-authorization list for
    that line of business, ``no_prior_auth``, were not). By code."""
    exempt = set(no_prior_auth)
    listed: dict[str, RequiredService] = {}
    for s in covered:
        lobs = tuple(sorted(set(s.lines_of_business) & IMPACTED))
        if lobs and s.code not in listed:
            listed[s.code] = RequiredService(s.code, s.description, s.criteria, lobs)
    others: dict[str, set[str]] = {}
    for code, lob in requested:
        if lob in IMPACTED and (code, lob) not in exempt and code not in listed:
            others.setdefault(code, set()).add(lob)
    for code, seen in others.items():
        listed[code] = RequiredService(code, "reviewed for medical necessity without a criteria set", "",
                                       tuple(sorted(seen)))
    return sorted(listed.values(), key=lambda s: s.code)
