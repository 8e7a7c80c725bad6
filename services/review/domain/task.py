"""The review task: one service line software did not settle, waiting for a person. Pure: no I/O.

A :class:`Task` is an aggregate. Every change goes through one of its methods, which enforces the
state machine and the role rules (services/review/domain/workflow.py) and raises a
:class:`~services.review.domain.workflow.WorkflowError` when it refuses; each change is written to
the task's audit trail (:attr:`Task.new_entries`, stored with the task). The repository saves a task
with a compare-and-set on :attr:`Task.version`, so of two writers that read the same version only
the first succeeds (:class:`~services.review.domain.workflow.StaleTask`).

=======================  ==========================================  ==========================
from                     by                                          to
=======================  ==========================================  ==========================
open                     claim; reassign (a supervisor)              claimed
claimed, lease ran out   claim, reassign                             claimed, new lease
claimed, lease live      reassign                                    claimed, new lease
claimed                  release (holder, supervisor), lease expiry  open
claimed, by the decider  approve; approve_partial, modify, deny      decided
                         (a physician only)
claimed, by the decider  refer_to_physician                          open, for a physician
claimed, by the decider  request_information                         pended_information
open, claimed, pended    information received, criteria now met      decided (nurse level only)
open, claimed, pended    information received, otherwise             open, new evaluation
open, claimed, pended    the request is cancelled (withdrawn)        cancelled
=======================  ==========================================  ==========================

An appeal's task (:meth:`Task.open_for_appeal`) starts open for a physician, on the appeal's own
clock, naming the reviewer who made the decision appealed in :attr:`Task.excluded_reviewers`: they
are never eligible for it (:func:`~services.review.domain.workflow.eligibility`), so it is neither
offered to them, nor claimable, nor assignable to them.

Beside the state, a task's urgency (its place in the queue) may be changed by a nurse, physician
or supervisor with a reason (:meth:`Task.set_urgency`), or by the system when its request's clock
changes or new information raises a red flag (:meth:`Task.follow_urgency`); the reason leads the
task's reasons (``urgency expedited: ...``) and the change is in its history.

Beside the state, the deadline monitor marks a task escalated (at risk of missing its deadline) and
missed (deadline passed undecided; for Medicaid a deemed denial), each once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from services.review.domain.criteria import Outcome
from services.review.domain.deadlines import ClockEngine, ClockState
from services.review.domain.workflow import (
    Action,
    Conflict,
    Decision,
    InvalidInput,
    NotPermitted,
    Reviewer,
    Role,
    TaskFacts,
    TaskStatus,
    check_can_act,
    check_decision,
    check_may,
    eligibility,
)

SYSTEM = "system"
"""The actor of the changes no person made (the monitor, the rules engine)."""

URGENCIES = ("standard", "expedited")
_URGENCY_NOTES = tuple(f"urgency {u}: " for u in URGENCIES)


def urgency_note(urgency: str, why: str) -> str:
    """The reason that says why a task has its urgency: ``urgency expedited: <why>``."""
    return f"urgency {urgency}: {why}"

UNDECIDED = frozenset({TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.PENDED_INFORMATION})
PEER_TO_PEER_KINDS = ("offered", "held", "declined")


@dataclass(frozen=True)
class AuditEntry:
    """One attributed action on a task: the trail a reviewer's view and regulators read."""

    at: dt.datetime
    actor: str  # a reviewer id, or SYSTEM
    action: str
    detail: str


@dataclass(frozen=True)
class DecisionInput:
    """A reviewer's decision on a task and its particulars (which ones a decision needs:
    :func:`~services.review.domain.workflow.check_decision`)."""

    decision: Decision
    note: str = ""
    reason: str = ""
    criterion: str = ""
    approved_units: int | None = None
    approved_start: dt.date | None = None
    approved_end: dt.date | None = None
    facts: tuple[str, ...] = ()
    needed_by: dt.date | None = None

    @property
    def requested_facts(self) -> tuple[str, ...]:
        return tuple(f.strip() for f in self.facts if f.strip())

    def detail(self) -> str:
        """What the audit trail says about the decision."""
        parts = [p for p in (self.note, self.reason, f"criterion {self.criterion}" if self.criterion else "",
                             f"{self.approved_units} unit(s)" if self.approved_units else "",
                             f"facts: {', '.join(self.facts)}" if self.facts else "") if p]
        return "; ".join(parts)


def check_peer_to_peer_kind(kind: str) -> None:
    if kind not in PEER_TO_PEER_KINDS:
        raise InvalidInput("kind", "offered, held or declined")


@dataclass
class Task:
    """A service line queued for review, with its routing facts, its lease and its deadline.

    Times are aware UTC datetimes. ``version`` counts the saved changes; the repository bumps it
    on every successful save."""

    task_id: str
    request_id: str
    line_number: int
    procedure_code: str
    line_of_business: str
    member_state: str
    urgency: str  # "standard" | "expedited"
    outcome: Outcome  # what software concluded for the line
    reasons: tuple[str, ...]
    status: TaskStatus
    due_at: dt.datetime
    created_at: dt.datetime
    category: str  # criteria category, or "general"
    required_role: Role  # nurse (first level) or physician (after a referral)
    units: int
    regime: str
    clock_rule: str
    assigned_to: str | None = None
    lease_expires_at: dt.datetime | None = None
    version: int = 0
    requested_facts: tuple[str, ...] = ()  # while (and after being) pended for information
    information_due: dt.date | None = None
    escalated_at: dt.datetime | None = None
    missed_at: dt.datetime | None = None
    deemed_denial: bool = False
    updated_at: dt.datetime | None = None
    clock_paused: bool = False  # the regime stops the clock while information is awaited (ERISA)
    at_risk_at: dt.datetime | None = None  # from when it is at risk; None while the clock is tolled
    appeal_id: str = ""  # set on an appeal's task
    excluded_reviewers: tuple[str, ...] = ()  # who may never take it (the decision appealed was theirs)
    new_entries: list[AuditEntry] = field(default_factory=list, compare=False, repr=False)
    """Audit entries recorded since the task was read; the repository stores them when it saves."""

    @classmethod
    def open_for_review(cls, *, task_id: str, request_id: str, line_number: int, procedure_code: str,
                        line_of_business: str, member_state: str, urgency: str, outcome: Outcome,
                        reasons: tuple[str, ...], clock: ClockState, category: str, units: int,
                        now: dt.datetime, at_risk_fraction: float, urgency_reason: str = "") -> Task:
        """A new task for a nurse, on the request's regulatory clock (which must be running).
        ``urgency_reason``: why software gave it an urgency other than the provider asked for (a red
        flag, a met urgent rule); it leads the reasons and is the first entry of the history."""
        if clock.due_at is None:
            raise ValueError(f"task for {request_id} line {line_number}: the clock has no due time")
        task = cls(task_id=task_id, request_id=request_id, line_number=line_number, procedure_code=procedure_code,
                   line_of_business=line_of_business, member_state=member_state, urgency=urgency, outcome=outcome,
                   reasons=(urgency_note(urgency, urgency_reason), *reasons) if urgency_reason else reasons,
                   status=TaskStatus.OPEN, due_at=clock.due_at, created_at=now, category=category,
                   required_role=Role.NURSE, units=units, regime=clock.regime, clock_rule=clock.rule,
                   at_risk_at=ClockEngine.at_risk_from(clock, at_risk_fraction))
        if urgency_reason:
            task._record(now, SYSTEM, urgency, urgency_reason)
        return task

    @classmethod
    def open_for_appeal(cls, *, task_id: str, appeal_id: str, request_id: str, line_number: int, procedure_code: str,
                        line_of_business: str, member_state: str, urgency: str, reasons: tuple[str, ...],
                        clock: ClockState, category: str, units: int, excluded: tuple[str, ...],
                        now: dt.datetime, at_risk_fraction: float) -> Task:
        """An appeal's task: for a physician (of the line's specialty) other than ``excluded``, on the
        appeal's clock (which must be running)."""
        if clock.due_at is None:
            raise ValueError(f"appeal {appeal_id}: the clock has no due time")
        task = cls(task_id=task_id, request_id=request_id, line_number=line_number, procedure_code=procedure_code,
                   line_of_business=line_of_business, member_state=member_state, urgency=urgency,
                   outcome=Outcome.REFER_TO_NURSE, reasons=reasons, status=TaskStatus.OPEN, due_at=clock.due_at,
                   created_at=now, category=category, required_role=Role.PHYSICIAN, units=units, regime=clock.regime,
                   clock_rule=clock.rule, at_risk_at=ClockEngine.at_risk_from(clock, at_risk_fraction),
                   appeal_id=appeal_id, excluded_reviewers=tuple(e for e in excluded if e))
        task._record(now, SYSTEM, "appeal_filed", f"appeal {appeal_id}; not for "
                     + (", ".join(task.excluded_reviewers) or "software (no reviewer decided it)"))
        return task

    # -- what the task is ---------------------------------------------------------------------
    def facts(self) -> TaskFacts:
        """What routing needs to know (:func:`~services.review.domain.workflow.eligibility`)."""
        return TaskFacts(task_id=self.task_id, line_of_business=self.line_of_business,
                         member_state=self.member_state, category=self.category, required_role=self.required_role,
                         urgency=self.urgency, due_at=self.due_at, regime=self.regime,
                         excluded=frozenset(self.excluded_reviewers))

    @property
    def is_appeal(self) -> bool:
        return bool(self.appeal_id)

    @property
    def undecided(self) -> bool:
        return self.status in UNDECIDED

    @property
    def urgency_reason(self) -> str:
        """Why the task has its urgency, when software or a person set it; empty otherwise."""
        note = f"urgency {self.urgency}: "
        return next((r[len(note):] for r in self.reasons if r.startswith(note)), "")

    @property
    def approvable_on_criteria(self) -> bool:
        """Whether the rules engine may still approve it: undecided and at nurse level (once a
        physician is asked, a physician decides)."""
        return self.undecided and self.required_role is Role.NURSE

    def claimable(self, now: dt.datetime) -> bool:
        """Open, or claimed under a lease that ran out."""
        return self.status is TaskStatus.OPEN or self.lease_expired(now)

    def lease_expired(self, now: dt.datetime) -> bool:
        return (self.status is TaskStatus.CLAIMED and self.lease_expires_at is not None
                and self.lease_expires_at <= now)

    def held(self, now: dt.datetime) -> bool:
        """Claimed under a live lease."""
        return (self.status is TaskStatus.CLAIMED and self.lease_expires_at is not None
                and self.lease_expires_at > now)

    def deadline_passed_unrecorded(self, now: dt.datetime) -> bool:
        """The deadline passed while the clock ran and nobody recorded it yet (:meth:`miss_deadline`)."""
        return self.undecided and not self.clock_paused and self.due_at <= now and self.missed_at is None

    def escalation_due(self, now: dt.datetime) -> bool:
        """At risk (measured over the regulatory clock, :attr:`at_risk_at`), not escalated yet, and
        waiting for a reviewer rather than for the provider (:meth:`escalate`)."""
        return (self.undecided and not self.clock_paused and self.status is not TaskStatus.PENDED_INFORMATION
                and self.escalated_at is None and self.at_risk_at is not None and now >= self.at_risk_at)

    # -- a person's actions -------------------------------------------------------------------
    def claim(self, reviewer: Reviewer, now: dt.datetime, lease: dt.timedelta) -> None:
        """Take the task under a lease until ``now + lease``. Refused to a supervisor, to a reviewer
        the task is not eligible for, and while another reviewer's lease is live."""
        check_may(reviewer, Action.CLAIM)
        if not self.claimable(now):
            raise Conflict(f"task is {self.status.value}; only an open task or one whose lease ran out can be "
                           "claimed")
        eligible, reasons = eligibility(reviewer, self.facts())
        if not eligible:
            raise NotPermitted(f"{reviewer.reviewer_id} may not take this task: {reasons[0]}")
        previous = f" (lease of {self.assigned_to} had expired)" if self.status is TaskStatus.CLAIMED else ""
        self._hold(reviewer.reviewer_id, now + lease, now)
        self._record(now, reviewer.reviewer_id, "claimed",
                     f"leased until {(now + lease).isoformat(timespec='seconds')}{previous}")

    def release(self, by: Reviewer, now: dt.datetime, note: str = "") -> None:
        """Give a claimed task back to the queue: its holder, or a supervisor."""
        if self.status is not TaskStatus.CLAIMED:
            raise Conflict(f"task is {self.status.value}; only a claimed task can be released")
        if self.assigned_to != by.reviewer_id and by.role is not Role.SUPERVISOR:
            raise NotPermitted("only the holder or a supervisor may release a task")
        self._reopen(now)
        self._record(now, by.reviewer_id, "released", note or f"released by {by.reviewer_id}")

    def reassign(self, by: Reviewer, reviewer_id: str, target: Reviewer | None, now: dt.datetime,
                 lease: dt.timedelta, note: str = "") -> None:
        """A supervisor hands an open or claimed task to ``reviewer_id`` under a new lease.
        ``target`` is the directory's entry for ``reviewer_id``, None when it has none."""
        check_may(by, Action.REASSIGN)
        if self.status not in (TaskStatus.OPEN, TaskStatus.CLAIMED):
            raise Conflict(f"task is {self.status.value}; only open or claimed tasks can be reassigned")
        if target is None:
            raise InvalidInput("reviewer_id", f"{reviewer_id!r} is not in the directory")
        eligible, reasons = eligibility(target, self.facts())
        if not eligible:
            raise Conflict(f"{reviewer_id} may not take this task: {reasons[0]}")
        previous = self.assigned_to
        self._hold(reviewer_id, now + lease, now)
        self._record(now, by.reviewer_id, "reassigned",
                     f"to {reviewer_id}" + (f" (from {previous})" if previous else "") + (f": {note}" if note else ""))

    def decide(self, by: Reviewer, d: DecisionInput, now: dt.datetime) -> None:
        """A decision by the reviewer holding the task under a live lease. Permission comes before
        state: a nurse learns she may not deny whatever the task's state.

        Approve and the adverse decisions close the task; a referral reopens it for a physician;
        a request for information pends it until the provider answers (needed by ``d.needed_by``,
        else by the decision deadline's date)."""
        check_decision(by, d.decision, reason=d.reason, criterion=d.criterion, approved_units=d.approved_units,
                       requested_units=self.units, facts=d.facts)
        if by.reviewer_id in self.excluded_reviewers:
            raise NotPermitted("the decision under appeal was yours: another physician decides the appeal")
        if self.is_appeal and d.decision is Decision.REFER_TO_PHYSICIAN:
            raise Conflict("an appeal is already with a physician: decide it")
        check_can_act(by, self.status, self.assigned_to, self.lease_expires_at, now)
        if d.decision is Decision.REQUEST_INFORMATION:
            self.status = TaskStatus.PENDED_INFORMATION
            self.assigned_to = None
            self.requested_facts = d.requested_facts
            self.information_due = d.needed_by or self.due_at.date()
        elif d.decision is Decision.REFER_TO_PHYSICIAN:
            self.status = TaskStatus.OPEN
            self.required_role = Role.PHYSICIAN
            self.assigned_to = None
        else:
            self.status = TaskStatus.DECIDED  # the decider stays named on the task
        self.lease_expires_at = None
        self.updated_at = now
        self._record(now, by.reviewer_id, d.decision.value, d.detail())

    def record_peer_to_peer(self, by: Reviewer, kind: str, at: dt.datetime, contact: str, note: str,
                            now: dt.datetime) -> None:
        """A physician's peer-to-peer conversation with the requesting provider (offered, held or
        declined), in whatever state the task is."""
        check_peer_to_peer_kind(kind)
        check_may(by, Action.PEER_TO_PEER)
        self._record(now, by.reviewer_id, f"peer_to_peer_{kind}",
                     at.isoformat(timespec="minutes") + (f" with {contact}" if contact else "")
                     + (f": {note}" if note else ""))

    def set_urgency(self, by: Reviewer, urgency: str, reason: str, now: dt.datetime, clock_note: str = "") -> None:
        """A person changes the task's urgency (its place in the queue), saying why; ``clock_note``
        says what that did to the request's clock (:func:`~services.review.domain.urgency.person_clock_change`).
        Refused to an adjuster or a case manager, without a reason, on a decided task, and to the urgency it has."""
        check_may(by, Action.SET_URGENCY)
        if urgency not in URGENCIES:
            raise InvalidInput("urgency", "standard or expedited")
        why = reason.strip()
        if not why:
            raise InvalidInput("reason", "say why the urgency changes")
        self._check_undecided("given another urgency")
        if urgency == self.urgency:
            raise Conflict(f"the task is already {urgency}")
        before = self.urgency
        self._change_urgency(urgency, f"set by {by.reviewer_id}: {why}", now)
        self._record(now, by.reviewer_id, "urgency_changed",
                     f"{before} → {urgency}: {why}" + (f" ({clock_note})" if clock_note else ""))

    def follow_urgency(self, urgency: str, why: str, now: dt.datetime) -> bool:
        """The system gives an undecided task ``urgency`` (its request's clock changed, or new
        information raised a red flag), saying why; False when it has it already or is decided."""
        if urgency not in URGENCIES:
            raise InvalidInput("urgency", "standard or expedited")
        if not self.undecided or urgency == self.urgency:
            return False
        before = self.urgency
        self._change_urgency(urgency, why, now)
        self._record(now, SYSTEM, "urgency_changed", f"{before} → {urgency}: {why}")
        return True

    def record_deadline_extended(self, by: Reviewer, rule: str, now: dt.datetime) -> None:
        """The request's deadline was extended from this task (the clock itself: :meth:`follow_clock`)."""
        check_may(by, Action.EXTEND_DEADLINE)
        self._record(now, by.reviewer_id, "deadline_extended", rule)

    # -- the system's actions -----------------------------------------------------------------
    def approve_on_criteria(self, now: dt.datetime) -> None:
        """The provider's additional information made the line meet criteria: the rules engine
        approves it (only at nurse level; a physician's task stays with a physician)."""
        self._check_undecided("approved on criteria")
        if not self.approvable_on_criteria:
            raise Conflict(f"a task for a {self.required_role.value} is decided by a person")
        self.status = TaskStatus.DECIDED
        self.assigned_to = None
        self.lease_expires_at = None
        self.updated_at = now
        self._record(now, SYSTEM, "information_received", "criteria now met: approved by the rules engine")

    def reopen_with(self, outcome: Outcome, reasons: tuple[str, ...], why: str, now: dt.datetime) -> None:
        """The provider's additional information was evaluated and a person still decides: back to
        the queue with the new evaluation."""
        self._check_undecided("reopened")
        self._reopen(now)
        self.outcome = outcome
        # Why the task has its urgency stays with it whatever the new evaluation says.
        self.reasons = (*(r for r in self.reasons if r.startswith(_URGENCY_NOTES)), *reasons)
        self._record(now, SYSTEM, "information_received", f"reopened: {why}")

    def follow_clock(self, clock: ClockState, at_risk_fraction: float, now: dt.datetime) -> None:
        """Carry the request's regulatory clock to the task: its rule, whether it is tolled, when the
        task is at risk, and a new due time (which makes a past escalation moot)."""
        self._check_undecided("given a new clock")
        self.clock_rule = clock.rule
        self.clock_paused = clock.tolled
        self.at_risk_at = ClockEngine.at_risk_from(clock, at_risk_fraction)
        self.updated_at = now
        if clock.due_at is not None and clock.due_at != self.due_at:
            self.due_at = clock.due_at
            self.escalated_at = None

    def withdraw(self, why: str, now: dt.datetime) -> None:
        """The submitter cancelled the request: the task leaves the queue, undecided."""
        self._check_undecided("withdrawn")
        self.status = TaskStatus.CANCELLED
        self.assigned_to = None
        self.lease_expires_at = None
        self.updated_at = now
        self._record(now, SYSTEM, "withdrawn", why)

    def revise(self, procedure_code: str, units: int, urgency: str, now: dt.datetime) -> None:
        """The submitter revised the request: the line's code, units and urgency as they now read."""
        self._check_undecided("revised")
        changes = [f"{name} {old} -> {new}" for name, old, new in (
            ("code", self.procedure_code, procedure_code), ("units", self.units, units),
            ("urgency", self.urgency, urgency)) if old != new]
        self.procedure_code, self.units, self.urgency = procedure_code, units, urgency
        self.updated_at = now
        self._record(now, SYSTEM, "revised", "; ".join(changes) or "request revised")

    def expire_lease(self, now: dt.datetime) -> None:
        """The holder's lease ran out: the task goes back to the queue."""
        if not self.lease_expired(now):
            raise Conflict("the task is not held under an expired lease")
        holder = self.assigned_to
        self._reopen(now)
        self._record(now, SYSTEM, "lease_expired", f"{holder}'s lease ran out")

    def miss_deadline(self, now: dt.datetime) -> AuditEntry:
        """Record that the deadline passed without a decision; under Medicaid managed care that is
        an adverse decision the member may appeal (42 CFR 438.404(c)(5))."""
        if not self.deadline_passed_unrecorded(now):
            raise Conflict("the task's deadline has not passed unrecorded")
        self.missed_at = now
        self.deemed_denial = self.line_of_business == "medicaid"
        self.updated_at = now
        return self._record(now, SYSTEM, "deadline_missed", "deadline passed without a decision" + (
            "; under 42 CFR 438.404(c)(5) this counts as an adverse decision (deemed denial), "
            "which the member may appeal" if self.deemed_denial else ""))

    def escalate(self, now: dt.datetime) -> AuditEntry:
        """Mark the task at risk, once: held (its holder is warned) or unassigned (nobody is on it)."""
        if not self.escalation_due(now):
            raise Conflict("the task is not due for escalation")
        hours = (self.due_at - now).total_seconds() / 3600
        detail = (f"at risk: {hours:.1f} h left, held by {self.assigned_to}" if self.held(now)
                  else f"at risk and unassigned: {hours:.1f} h left, no reviewer holds it")
        self.escalated_at = now
        self.updated_at = now
        return self._record(now, SYSTEM, "escalated", detail)

    # -- helpers ------------------------------------------------------------------------------
    def _hold(self, reviewer_id: str, until: dt.datetime, now: dt.datetime) -> None:
        self.status = TaskStatus.CLAIMED
        self.assigned_to = reviewer_id
        self.lease_expires_at = until
        self.updated_at = now

    def _reopen(self, now: dt.datetime) -> None:
        self.status = TaskStatus.OPEN
        self.assigned_to = None
        self.lease_expires_at = None
        self.updated_at = now

    def _change_urgency(self, urgency: str, why: str, now: dt.datetime) -> None:
        self.reasons = (urgency_note(urgency, why), *(r for r in self.reasons if not r.startswith(_URGENCY_NOTES)))
        self.urgency = urgency
        self.updated_at = now

    def _check_undecided(self, what: str) -> None:
        if not self.undecided:
            raise Conflict(f"task is {self.status.value}; only an undecided task can be {what}")

    def _record(self, at: dt.datetime, actor: str, action: str, detail: str) -> AuditEntry:
        entry = AuditEntry(at, actor, action, detail)
        self.new_entries.append(entry)
        return entry
