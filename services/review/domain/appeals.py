"""Appeals of adverse decisions: the rights a notice states (by regime, kept as data in
``services/review/policy/appeal-rights.yaml``) and the appeal itself. Pure: no I/O.

An appeal is decided by a physician of the same or a similar specialty who did not make the
decision appealed (NCQA UM; 42 CFR 422.590(h)(2) for Medicare Advantage, 438.406(b)(2) for
Medicaid, 29 CFR 2560.503-1(h)(3)(ii), (v) for ERISA plans): its task names that reviewer as
excluded, and :func:`~services.review.domain.workflow.eligibility` never offers or gives it to them.
Its outcome is *overturned* (approved), *partially overturned* (approved in part or modified) or
*upheld* (denied again). Where the regime sends an adverse reconsideration on by itself (Medicare
Advantage: to the independent review entity, 422.590(a)(2)), the appeal records that it was
forwarded.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from services.review.domain.deadlines import ClockState

APPELLANTS = frozenset({"member", "provider_on_behalf", "injured_worker", "representative"})
LINES_OF_BUSINESS = frozenset({"medicare_advantage", "medicaid", "commercial", "workers_comp"})


class InvalidAppealRights(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class AppealRight:
    """One regime's appeal rights, as the notice states them."""

    regime: str
    line_of_business: str
    states: frozenset[str]  # empty: every state
    level: str
    filing_window_days: int
    who_may_file: tuple[str, ...]
    decision_time: str
    next_level: str
    file_with: str
    citation: str
    forwards_upheld_to: str = ""

    def file_by(self, notice_date: dt.date) -> dt.date:
        """The last day to file: the notice's date plus the window (calendar days)."""
        return notice_date + dt.timedelta(days=self.filing_window_days)


class AppealRights:
    """The table of rights; the entry naming the member's state wins over one for every state."""

    def __init__(self, rights: Sequence[AppealRight]) -> None:
        seen: set[tuple[str, str]] = set()
        for i, right in enumerate(rights):
            if right.line_of_business not in LINES_OF_BUSINESS:
                raise InvalidAppealRights(f"regimes[{i}].line_of_business", f"{right.line_of_business!r} is unknown")
            if right.filing_window_days < 1:
                raise InvalidAppealRights(f"regimes[{i}].filing_window_days", "at least 1")
            unknown = [w for w in right.who_may_file if w not in APPELLANTS]
            if unknown or not right.who_may_file:
                raise InvalidAppealRights(f"regimes[{i}].who_may_file",
                                          f"one or more of {', '.join(sorted(APPELLANTS))}")
            for state in right.states or frozenset({"*"}):
                if (right.line_of_business, state) in seen:
                    raise InvalidAppealRights(f"regimes[{i}].states",
                                              f"{right.line_of_business} in {state} already has appeal rights")
                seen.add((right.line_of_business, state))
        self._rights = tuple(rights)
        for lob in LINES_OF_BUSINESS:
            if (lob, "*") not in seen:
                raise InvalidAppealRights("regimes", f"no entry for {lob} in every state")

    def all(self) -> tuple[AppealRight, ...]:
        return self._rights

    def for_line(self, line_of_business: str, member_state: str) -> AppealRight:
        state = member_state.upper()
        specific = [r for r in self._rights if r.line_of_business == line_of_business and state in r.states]
        if specific:
            return specific[0]
        return next(r for r in self._rights if r.line_of_business == line_of_business and not r.states)


class AppealStatus(enum.StrEnum):
    OPEN = "open"
    DECIDED = "decided"


class AppealOutcome(enum.StrEnum):
    OVERTURNED = "overturned"
    PARTIALLY_OVERTURNED = "partially_overturned"
    UPHELD = "upheld"


@dataclass
class Appeal:
    """An appeal of one adverse line, on its own clock, for a reviewer other than the original one."""

    appeal_id: str
    request_id: str
    line_number: int
    member_id: str
    urgency: str  # standard | expedited
    appellant: str
    appellant_name: str
    filed_at: dt.datetime
    reason: str
    regime: str  # the appeal rights' regime, e.g. "ma-reconsideration"
    clock: ClockState
    original_decider: str  # the reviewer id that made the decision appealed ("" when software did)
    task_id: str
    status: AppealStatus = AppealStatus.OPEN
    outcome: AppealOutcome | None = None
    decided_by: str = ""
    decided_at: dt.datetime | None = None
    forwarded_to: str = ""

    def decide(self, outcome: AppealOutcome, by: str, at: dt.datetime, forwards_upheld_to: str = "") -> None:
        """Record the outcome; an adverse one goes on to ``forwards_upheld_to`` where the regime
        names one (Medicare Advantage: affirmed in whole or in part, 42 CFR 422.590(a)(2))."""
        if self.status is AppealStatus.DECIDED:
            raise ValueError(f"appeal {self.appeal_id} is already decided")
        if by == self.original_decider and by:
            raise ValueError("the reviewer who made the decision appealed may not decide the appeal")
        self.status = AppealStatus.DECIDED
        self.outcome = outcome
        self.decided_by = by
        self.decided_at = at
        if forwards_upheld_to and outcome is not AppealOutcome.OVERTURNED:
            self.forwarded_to = forwards_upheld_to
