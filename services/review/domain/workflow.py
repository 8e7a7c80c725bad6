"""The people's side of review: who may take a task, in which order, and what each role may decide.
Pure: no I/O.

Roles and what they may do (domain reference, section 1; CA Labor Code 4610(e); NCQA/URAC UM):

=============  ==========================================================================
nurse          approve; request information; refer to a physician
adjuster       the same, on workers' compensation lines only
physician      approve; approve in part; modify; deny (reason and criterion required);
               request information; peer-to-peer
supervisor     reassign and release tasks; manage the directory; oversee the queue;
               decides nothing
case manager   follows members across requests and writes case notes; decides nothing
=============  ==========================================================================

Nurses, physicians and supervisors may change a task's urgency, with a reason (an adjuster or a case
manager may not).

Only a physician's decision can be adverse; the server checks the authenticated reviewer's role
before anything is written (:func:`check_decision`), never the client. What else each role may do
is one table, :data:`MAY` (:func:`check_may`): claiming is for the roles that decide (a supervisor
assigns instead), reassigning and the directory are a supervisor's, peer-to-peer a physician's,
any role but an adjuster or a case manager may extend a deadline, the queue overview is a
supervisor's, and case notes are written by case managers, nurses and adjusters.

Eligibility for a task (:func:`eligibility`): the role the next action needs (a task referred to a
physician needs a physician; otherwise a nurse, or an adjuster on workers' comp), the line of
business, a specialty matching the criteria category ("general" covers lines no criteria set
covers), and, where the regime requires it, a licence in the member's state (:func:`licence_required`).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Role(enum.StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    ADJUSTER = "adjuster"
    SUPERVISOR = "supervisor"
    CASE_MANAGER = "case_manager"


#: Roles that take no task: they assign, oversee or follow members (no specialty or capacity).
NON_REVIEWING = frozenset({Role.SUPERVISOR, Role.CASE_MANAGER})


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    PENDED_INFORMATION = "pended_information"
    DECIDED = "decided"
    CANCELLED = "cancelled"


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REQUEST_INFORMATION = "request_information"
    REFER_TO_PHYSICIAN = "refer_to_physician"
    APPROVE_PARTIAL = "approve_partial"
    MODIFY = "modify"
    DENY = "deny"


# X12 278 HCR01 meaning of each decision (the determination's action code).
ACTION_OF: dict[Decision, str] = {
    Decision.APPROVE: "certified_in_total",
    Decision.REQUEST_INFORMATION: "pended",
    Decision.REFER_TO_PHYSICIAN: "pended",
    Decision.APPROVE_PARTIAL: "certified_partial",
    Decision.MODIFY: "modified",
    Decision.DENY: "not_certified",
}

ADVERSE = frozenset({Decision.APPROVE_PARTIAL, Decision.MODIFY, Decision.DENY})
# A person's last word on a line (what the provider's gold-card record counts): approval in full, or adverse.
FINAL = frozenset({Decision.APPROVE}) | ADVERSE
ALLOWED: dict[Role, frozenset[Decision]] = {
    Role.NURSE: frozenset({Decision.APPROVE, Decision.REQUEST_INFORMATION, Decision.REFER_TO_PHYSICIAN}),
    Role.ADJUSTER: frozenset({Decision.APPROVE, Decision.REQUEST_INFORMATION, Decision.REFER_TO_PHYSICIAN}),
    Role.PHYSICIAN: frozenset(Decision),
    Role.SUPERVISOR: frozenset(),
    Role.CASE_MANAGER: frozenset(),
}
GENERAL = "general"
# What a person's decision may carry: units as a service line has them, facts as criteria name them.
MAX_UNITS = 9999
MAX_REQUESTED_FACTS = 50
FACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class WorkflowError(Exception):
    """Base of the workflow's refusals; the service layer maps each to a service error
    (services/review/service_layer/refusals.py)."""


class NotPermitted(WorkflowError):
    """The caller's role may not do this (PermissionDenied)."""


class Conflict(WorkflowError):
    """The task is not in a state that allows this (FailedPrecondition)."""


class StaleTask(Conflict):
    """The task changed since it was read: saving it is a compare-and-set on its version, and
    another writer got there first."""

    def __init__(self, task_id: str = "") -> None:
        super().__init__("the task changed while you were acting on it; look again")
        self.task_id = task_id


class AtCapacity(WorkflowError):
    """The reviewer holds as many tasks as their capacity allows (ResourceExhausted)."""


class InvalidInput(WorkflowError):
    """An input that lacks what it needs: ``field`` names it (ValidationFailed)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class BadDecision(InvalidInput):
    """A decision that lacks what it needs."""


class Action(enum.StrEnum):
    """What a reviewer may ask for besides a decision (decisions: :data:`ALLOWED`)."""

    CLAIM = "claim"
    REASSIGN = "reassign"
    PEER_TO_PEER = "peer_to_peer"
    EXTEND_DEADLINE = "extend_deadline"
    MANAGE_DIRECTORY = "manage_directory"
    SET_URGENCY = "set_urgency"
    OVERSEE_QUEUE = "oversee_queue"
    WRITE_CASE_NOTE = "write_case_note"


# Action -> (the roles that may, the refusal for the others; {role} names the caller's role).
MAY: dict[Action, tuple[frozenset[Role], str]] = {
    Action.CLAIM: (frozenset({Role.NURSE, Role.ADJUSTER, Role.PHYSICIAN}),
                   "a supervisor assigns tasks but does not claim them"),
    Action.REASSIGN: (frozenset({Role.SUPERVISOR}), "only a supervisor reassigns tasks"),
    Action.PEER_TO_PEER: (frozenset({Role.PHYSICIAN}), "peer-to-peer conversations are a physician's"),
    Action.EXTEND_DEADLINE: (frozenset({Role.PHYSICIAN, Role.SUPERVISOR, Role.NURSE}),
                             "a {role} may not extend a deadline"),
    Action.MANAGE_DIRECTORY: (frozenset({Role.SUPERVISOR}), "only a supervisor manages the reviewer directory"),
    Action.SET_URGENCY: (frozenset({Role.NURSE, Role.PHYSICIAN, Role.SUPERVISOR}),
                         "only a nurse, physician or supervisor may change a task's urgency, not the {role}"),
    Action.OVERSEE_QUEUE: (frozenset({Role.SUPERVISOR}), "the queue overview is a supervisor's"),
    Action.WRITE_CASE_NOTE: (frozenset({Role.CASE_MANAGER, Role.NURSE, Role.ADJUSTER}),
                             "case notes are written by case managers, nurses and adjusters, not a {role}"),
}


@dataclass(frozen=True)
class Reviewer:
    reviewer_id: str
    name: str
    role: Role
    specialties: frozenset[str]
    licence_states: frozenset[str]
    lines_of_business: frozenset[str]
    capacity: int
    credential: str
    active: bool = True

    def describe(self) -> str:
        """"RN, licensed in CA, TX" — what a determination records about its decider."""
        states = ", ".join(sorted(self.licence_states))
        return f"{self.credential}, licensed in {states}" if states else self.credential


@dataclass(frozen=True)
class TaskFacts:
    """What routing needs to know about a task."""

    task_id: str
    line_of_business: str
    member_state: str
    category: str  # criteria category, or "general"
    required_role: Role  # nurse (first level) or physician (after a referral)
    urgency: str  # "standard" | "expedited"
    due_at: dt.datetime
    regime: str
    # Reviewers who may never take it: on an appeal, whoever made the decision appealed.
    excluded: frozenset[str] = frozenset()


def check_may(reviewer: Reviewer, action: Action) -> None:
    """Raise NotPermitted unless ``reviewer``'s role may do ``action`` (:data:`MAY`)."""
    roles, refusal = MAY[action]
    if reviewer.role not in roles:
        raise NotPermitted(refusal.format(role=reviewer.role.value))


def check_capacity(reviewer: Reviewer, held: int) -> None:
    """Raise AtCapacity when ``reviewer`` already holds ``held`` tasks, their capacity."""
    if held >= reviewer.capacity:
        raise AtCapacity(f"you hold {held} task(s), your capacity; decide or release one first")


def roles_served(reviewer: Reviewer) -> tuple[Role, ...]:
    """The required roles of the tasks a reviewer's queue draws from: an adjuster takes nurse-level
    tasks (on workers' comp lines, which :func:`eligibility` checks)."""
    if reviewer.role is Role.ADJUSTER:
        return (Role.NURSE,)
    return (reviewer.role,)


def licence_required(regime: str, line_of_business: str, member_state: str, role: Role) -> bool:
    """Whether the reviewer must be licensed in the member's state.

    * Texas workers' compensation: UR agents' personnel must hold Texas licences (28 TAC 10.101
      and 19.2005 for health care providers making determinations).
    * California workers' compensation: the reviewer's licence must be valid and, for physicians,
      the UR plan's medical director holds a California licence (8 CCR 9792.7, Labor Code 4610).
    * Physicians deciding for Medicaid managed care follow the state's licensure rules; this
      platform requires a licence in the member's state for every Medicaid physician review.
    Elsewhere the regime sets no state-licence condition; plans may add their own."""
    if line_of_business == "workers_comp" and member_state in ("TX", "CA"):
        return True
    return line_of_business == "medicaid" and role is Role.PHYSICIAN


def eligibility(reviewer: Reviewer, task: TaskFacts) -> tuple[bool, tuple[str, ...]]:
    """(eligible, reasons): on success the reasons say why the task is the reviewer's; on failure
    the first reason says why not."""
    why: list[str] = []
    if not reviewer.active:
        return False, ("reviewer is inactive",)
    if reviewer.reviewer_id in task.excluded:
        return False, ("made the decision under appeal: an appeal goes to another reviewer",)
    role_ok = reviewer.role is task.required_role or (
        task.required_role is Role.NURSE and reviewer.role is Role.ADJUSTER
        and task.line_of_business == "workers_comp")
    if not role_ok:
        return False, (f"needs a {task.required_role.value}, reviewer is a {reviewer.role.value}",)
    why.append(f"role: {reviewer.role.value} (task needs a {task.required_role.value})")
    if task.line_of_business not in reviewer.lines_of_business:
        return False, (f"reviewer does not cover {task.line_of_business.replace('_', ' ')}",)
    why.append(f"line of business: {task.line_of_business.replace('_', ' ')}")
    if task.category in reviewer.specialties:
        why.append(f"specialty: {task.category}")
    elif GENERAL in reviewer.specialties and task.category == GENERAL:
        why.append("specialty: general (no criteria category)")
    else:
        return False, (f"specialty {task.category} not among {', '.join(sorted(reviewer.specialties)) or 'none'}",)
    if licence_required(task.regime, task.line_of_business, task.member_state, reviewer.role):
        if task.member_state not in reviewer.licence_states:
            return False, (f"regime requires a licence in {task.member_state}",)
        why.append(f"licensed in {task.member_state} (required by {task.regime})")
    return True, tuple(why)


def priority(task: TaskFacts) -> tuple[int, dt.datetime, str]:
    """Sort key: expedited before standard, then earliest due, then id (stable)."""
    return (0 if task.urgency == "expedited" else 1, task.due_at, task.task_id)


def next_for(reviewer: Reviewer, candidates: Iterable[TaskFacts], held: int) -> list[TaskFacts]:
    """The tasks ``reviewer`` could claim now, most urgent first; empty at capacity."""
    if held >= reviewer.capacity:
        return []
    return sorted((t for t in candidates if eligibility(reviewer, t)[0]), key=priority)


def check_decision(reviewer: Reviewer, decision: Decision, *, reason: str = "", criterion: str = "",
                   approved_units: int | None = None, requested_units: int = 0,
                   facts: Sequence[str] = ()) -> None:
    """Raise unless ``reviewer`` may make ``decision`` with these particulars."""
    if decision not in ALLOWED[reviewer.role]:
        if decision in ADVERSE:
            raise NotPermitted(f"a {reviewer.role.value} may not {decision.value.replace('_', ' ')}: only a "
                               "physician may deny, reduce or modify a request")
        raise NotPermitted(f"a {reviewer.role.value} may not {decision.value.replace('_', ' ')}")
    if decision in ADVERSE:
        if not reason.strip():
            raise BadDecision("reason", "an adverse decision states its reason in plain language")
        if not criterion.strip():
            raise BadDecision("criterion", "an adverse decision names the criterion it rests on")
    if decision in (Decision.APPROVE_PARTIAL, Decision.MODIFY):
        if approved_units is None or not 1 <= approved_units <= MAX_UNITS:
            raise BadDecision("approved_units", f"between 1 and {MAX_UNITS}")
        if decision is Decision.APPROVE_PARTIAL and requested_units and approved_units >= requested_units:
            raise BadDecision("approved_units", f"a partial approval approves fewer than the {requested_units} "
                                                "requested (approve it instead)")
    if decision is Decision.REQUEST_INFORMATION and not [f for f in facts if f.strip()]:
        raise BadDecision("facts", "name at least one fact the provider must send")
    _check_requested_facts(facts)


def _check_requested_facts(facts: Sequence[str]) -> None:
    if len(facts) > MAX_REQUESTED_FACTS:
        raise BadDecision("facts", f"at most {MAX_REQUESTED_FACTS} facts")
    for fact in facts:
        if fact.strip() and not FACT_NAME.fullmatch(fact.strip()):
            raise BadDecision("facts", f"{fact[:70]!r} is not a fact name (snake_case ASCII, at most 64 characters)")


def check_can_act(reviewer: Reviewer, status: TaskStatus, assigned_to: str | None, lease_expires_at: dt.datetime | None,
                  now: dt.datetime) -> None:
    """A decision needs a task the caller holds under a live lease."""
    if status is not TaskStatus.CLAIMED:
        raise Conflict(f"the task is {status.value}, not claimed; claim it first")
    if assigned_to != reviewer.reviewer_id:
        raise Conflict("the task is held by another reviewer")
    if lease_expires_at is not None and lease_expires_at <= now:
        raise Conflict("your lease on the task expired; claim it again")
