"""The Task aggregate on its own (no store): every transition of the state machine, every refusal
(role, state, lease), and the audit entry each change leaves."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest

from services.review.domain.criteria import Outcome
from services.review.domain.deadlines import ClockState, PendEffect
from services.review.domain.task import SYSTEM, DecisionInput, Task
from services.review.domain.workflow import (
    Action,
    AtCapacity,
    BadDecision,
    Conflict,
    Decision,
    InvalidInput,
    NotPermitted,
    Reviewer,
    Role,
    TaskStatus,
    check_capacity,
    check_may,
    roles_served,
)

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=10)
LOBS = frozenset({"commercial", "medicaid", "workers_comp"})


def person(rid: str, role: Role = Role.NURSE, *, states: tuple[str, ...] = ("TX",), active: bool = True,
           specialties: tuple[str, ...] = ("advanced_imaging",)) -> Reviewer:
    return Reviewer(rid, f"Reviewer {rid}", role, frozenset(specialties), frozenset(states), LOBS, 5,
                    "MD" if role is Role.PHYSICIAN else "RN", active)


NURSE, OTHER_NURSE = person("rn-1"), person("rn-2")
PHYSICIAN, SUPERVISOR, ADJUSTER = person("md-1", Role.PHYSICIAN), person("sup-1", Role.SUPERVISOR), person(
    "adj-1", Role.ADJUSTER)


def task(**changes: object) -> Task:
    base = Task(task_id="t-1", request_id="r-1", line_number=1, procedure_code="72148", line_of_business="commercial",
                member_state="TX", urgency="standard", outcome=Outcome.REFER_TO_NURSE, reasons=("2 weeks",),
                status=TaskStatus.OPEN, due_at=NOW + dt.timedelta(days=10), created_at=NOW,
                category="advanced_imaging", required_role=Role.NURSE, units=10, regime="erisa",
                clock_rule="15 days", at_risk_at=NOW + dt.timedelta(days=8))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def claimed(by: Reviewer = NURSE, **changes: object) -> Task:
    t = task(**changes)
    t.claim(by, NOW, LEASE)
    t.new_entries.clear()
    return t


def last(t: Task) -> tuple[str, str, str]:
    e = t.new_entries[-1]
    return e.actor, e.action, e.detail


# -- role rules outside a task ---------------------------------------------------------------------

@pytest.mark.parametrize(("action", "allowed"), [
    (Action.CLAIM, {Role.NURSE, Role.ADJUSTER, Role.PHYSICIAN}),
    (Action.REASSIGN, {Role.SUPERVISOR}),
    (Action.PEER_TO_PEER, {Role.PHYSICIAN}),
    (Action.EXTEND_DEADLINE, {Role.NURSE, Role.PHYSICIAN, Role.SUPERVISOR}),
    (Action.MANAGE_DIRECTORY, {Role.SUPERVISOR}),
])
def test_what_each_role_may_do(action: Action, allowed: set[Role]) -> None:
    for role in Role:
        if role in allowed:
            check_may(person("x", role), action)
        else:
            with pytest.raises(NotPermitted):
                check_may(person("x", role), action)


def test_capacity_and_the_roles_a_queue_draws_from() -> None:
    check_capacity(NURSE, 4)
    with pytest.raises(AtCapacity, match="you hold 5 task"):
        check_capacity(NURSE, 5)
    assert roles_served(ADJUSTER) == (Role.NURSE,)
    assert roles_served(PHYSICIAN) == (Role.PHYSICIAN,)


# -- claim ---------------------------------------------------------------------------------------

def test_claim_takes_an_open_task_under_a_lease() -> None:
    t = task()
    t.claim(NURSE, NOW, LEASE)
    assert (t.status, t.assigned_to, t.lease_expires_at, t.updated_at) == (
        TaskStatus.CLAIMED, "rn-1", NOW + LEASE, NOW)
    assert last(t) == ("rn-1", "claimed", "leased until 2026-11-25T15:10:00+00:00")


def test_a_task_whose_lease_ran_out_can_be_claimed_and_says_so() -> None:
    t = claimed()
    later = NOW + LEASE
    t.claim(OTHER_NURSE, later, LEASE)
    assert t.assigned_to == "rn-2"
    assert t.lease_expires_at == later + LEASE
    assert last(t)[2].endswith("(lease of rn-1 had expired)")


@pytest.mark.parametrize(("who", "t", "error", "match"), [
    (SUPERVISOR, task(), NotPermitted, "supervisor assigns"),
    (OTHER_NURSE, claimed(), Conflict, "task is claimed"),
    (NURSE, claimed(), Conflict, "task is claimed"),  # even its holder: the lease is live
    (NURSE, task(status=TaskStatus.DECIDED), Conflict, "task is decided"),
    (NURSE, task(status=TaskStatus.PENDED_INFORMATION), Conflict, "pended_information"),
    (NURSE, task(required_role=Role.PHYSICIAN), NotPermitted, "needs a physician"),
    (person("rn-ok", states=("OK",)), task(line_of_business="workers_comp"), NotPermitted, "licence in TX"),
    (person("rn-x", active=False), task(), NotPermitted, "inactive"),
])
def test_claim_refusals(who: Reviewer, t: Task, error: type[Exception], match: str) -> None:
    before = dataclasses.replace(t)
    with pytest.raises(error, match=match):
        t.claim(who, NOW, LEASE)
    assert t == before
    assert not t.new_entries


# -- release and reassign ------------------------------------------------------------------------

@pytest.mark.parametrize("who", [NURSE, SUPERVISOR])
def test_the_holder_or_a_supervisor_releases(who: Reviewer) -> None:
    t = claimed()
    t.release(who, NOW, "")
    assert (t.status, t.assigned_to, t.lease_expires_at) == (TaskStatus.OPEN, None, None)
    assert last(t) == (who.reviewer_id, "released", f"released by {who.reviewer_id}")


def test_release_refusals() -> None:
    with pytest.raises(NotPermitted, match="only the holder or a supervisor"):
        claimed().release(OTHER_NURSE, NOW)
    with pytest.raises(Conflict, match="task is open; only a claimed task"):
        task().release(SUPERVISOR, NOW)
    t = claimed()
    t.release(NURSE, NOW, "back to the pool")
    assert last(t)[2] == "back to the pool"


def test_a_supervisor_reassigns_open_or_claimed_tasks() -> None:
    t = task()
    t.reassign(SUPERVISOR, "rn-2", OTHER_NURSE, NOW, LEASE)
    assert (t.status, t.assigned_to, t.lease_expires_at) == (TaskStatus.CLAIMED, "rn-2", NOW + LEASE)
    assert last(t) == ("sup-1", "reassigned", "to rn-2")
    t.reassign(SUPERVISOR, "rn-1", NURSE, NOW, LEASE, "rn-2 is out")
    assert last(t) == ("sup-1", "reassigned", "to rn-1 (from rn-2): rn-2 is out")


@pytest.mark.parametrize(("who", "t", "target_id", "target", "error", "match"), [
    (NURSE, task(), "rn-2", OTHER_NURSE, NotPermitted, "only a supervisor reassigns"),
    (SUPERVISOR, task(status=TaskStatus.DECIDED), "rn-2", OTHER_NURSE, Conflict, "only open or claimed"),
    (SUPERVISOR, task(status=TaskStatus.DECIDED), "nobody", None, Conflict, "only open or claimed"),  # state first
    (SUPERVISOR, task(), "nobody", None, InvalidInput, "'nobody' is not in the directory"),
    (SUPERVISOR, task(), "md-1", PHYSICIAN, Conflict, "md-1 may not take this task: needs a nurse"),
])
def test_reassign_refusals(who: Reviewer, t: Task, target_id: str, target: Reviewer | None,
                           error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        t.reassign(who, target_id, target, NOW, LEASE)
    assert not t.new_entries


# -- decisions -----------------------------------------------------------------------------------

def test_approval_decides_the_task_and_keeps_the_decider() -> None:
    t = claimed()
    t.decide(NURSE, DecisionInput(Decision.APPROVE, note="therapy documented"), NOW)
    assert (t.status, t.assigned_to, t.lease_expires_at) == (TaskStatus.DECIDED, "rn-1", None)
    assert last(t) == ("rn-1", "approve", "therapy documented")


def test_a_referral_reopens_the_task_for_a_physician() -> None:
    t = claimed()
    t.decide(NURSE, DecisionInput(Decision.REFER_TO_PHYSICIAN), NOW)
    assert (t.status, t.required_role, t.assigned_to) == (TaskStatus.OPEN, Role.PHYSICIAN, None)
    with pytest.raises(NotPermitted):
        t.claim(OTHER_NURSE, NOW, LEASE)
    t.claim(PHYSICIAN, NOW, LEASE)


def test_a_request_for_information_pends_until_the_deadline_or_the_date_given() -> None:
    t = claimed()
    t.decide(NURSE, DecisionInput(Decision.REQUEST_INFORMATION, facts=(" therapy_weeks ", " ")), NOW)
    assert (t.status, t.assigned_to, t.lease_expires_at) == (TaskStatus.PENDED_INFORMATION, None, None)
    assert t.requested_facts == ("therapy_weeks",)
    assert t.information_due == t.due_at.date()
    assert last(t) == ("rn-1", "request_information", "facts:  therapy_weeks ,  ")
    t2 = claimed()
    t2.decide(NURSE, DecisionInput(Decision.REQUEST_INFORMATION, facts=("x",), needed_by=dt.date(2026, 11, 30)), NOW)
    assert t2.information_due == dt.date(2026, 11, 30)


@pytest.mark.parametrize("decision", [Decision.DENY, Decision.APPROVE_PARTIAL, Decision.MODIFY])
def test_a_physician_decides_adversely_with_reason_and_criterion(decision: Decision) -> None:
    t = claimed(PHYSICIAN, required_role=Role.PHYSICIAN)
    t.decide(PHYSICIAN, DecisionInput(decision, reason="not yet", criterion="c@1: x", approved_units=4), NOW)
    assert t.status is TaskStatus.DECIDED
    assert last(t)[1:] == (decision.value, "not yet; criterion c@1: x; 4 unit(s)")


@pytest.mark.parametrize("role", [Role.NURSE, Role.ADJUSTER, Role.SUPERVISOR])
@pytest.mark.parametrize("decision", [Decision.DENY, Decision.APPROVE_PARTIAL, Decision.MODIFY])
def test_only_a_physician_decides_adversely_whatever_the_tasks_state(role: Role, decision: Decision) -> None:
    t = task(status=TaskStatus.DECIDED)  # permission before state
    with pytest.raises(NotPermitted, match="only a physician"):
        t.decide(person("x", role), DecisionInput(decision, reason="r", criterion="c", approved_units=1), NOW)


@pytest.mark.parametrize(("t", "who", "d", "error", "match"), [
    (claimed(), SUPERVISOR, DecisionInput(Decision.APPROVE), NotPermitted, "supervisor may not approve"),
    (claimed(), NURSE, DecisionInput(Decision.REQUEST_INFORMATION), BadDecision, "facts"),
    (claimed(PHYSICIAN, required_role=Role.PHYSICIAN), PHYSICIAN, DecisionInput(Decision.DENY, criterion="c"),
     BadDecision, "reason"),
    (claimed(PHYSICIAN, required_role=Role.PHYSICIAN), PHYSICIAN,
     DecisionInput(Decision.APPROVE_PARTIAL, reason="r", criterion="c", approved_units=10), BadDecision,
     "fewer than the 10"),
    (task(), NURSE, DecisionInput(Decision.APPROVE), Conflict, "claim it first"),
    (claimed(), OTHER_NURSE, DecisionInput(Decision.APPROVE), Conflict, "held by another reviewer"),
    (task(status=TaskStatus.DECIDED, assigned_to="rn-1"), NURSE, DecisionInput(Decision.APPROVE), Conflict,
     "task is decided"),
])
def test_decision_refusals(t: Task, who: Reviewer, d: DecisionInput, error: type[Exception], match: str) -> None:
    before = dataclasses.replace(t)
    with pytest.raises(error, match=match):
        t.decide(who, d, NOW)
    assert t == before
    assert not t.new_entries


def test_a_decision_needs_a_live_lease() -> None:
    t = claimed()
    with pytest.raises(Conflict, match="lease on the task expired"):
        t.decide(NURSE, DecisionInput(Decision.APPROVE), NOW + LEASE)


def test_peer_to_peer_is_a_physicians_in_any_state() -> None:
    t = task(status=TaskStatus.DECIDED)
    t.record_peer_to_peer(PHYSICIAN, "held", NOW - dt.timedelta(hours=1), "Dr. Requester", "agreed", NOW)
    assert last(t) == ("md-1", "peer_to_peer_held", "2026-11-25T14:00+00:00 with Dr. Requester: agreed")
    with pytest.raises(NotPermitted, match="physician's"):
        t.record_peer_to_peer(NURSE, "held", NOW, "", "", NOW)
    with pytest.raises(InvalidInput, match="offered, held or declined"):
        t.record_peer_to_peer(PHYSICIAN, "shouted", NOW, "", "", NOW)


def test_a_deadline_extension_is_recorded_by_whoever_may_extend() -> None:
    t = task()
    t.record_deadline_extended(NURSE, "extended 14 days", NOW)
    assert last(t) == ("rn-1", "deadline_extended", "extended 14 days")
    with pytest.raises(NotPermitted, match="adjuster may not extend"):
        t.record_deadline_extended(ADJUSTER, "x", NOW)


# -- additional information ----------------------------------------------------------------------

@pytest.mark.parametrize("status", [TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.PENDED_INFORMATION])
def test_information_that_meets_criteria_approves_a_nurse_level_task(status: TaskStatus) -> None:
    t = task(status=status, assigned_to="rn-1" if status is TaskStatus.CLAIMED else None)
    t.approve_on_criteria(NOW)
    assert (t.status, t.assigned_to) == (TaskStatus.DECIDED, None)
    assert last(t) == (SYSTEM, "information_received", "criteria now met: approved by the rules engine")


def test_information_never_settles_a_physicians_or_a_decided_task() -> None:
    with pytest.raises(Conflict, match="decided by a person"):
        task(required_role=Role.PHYSICIAN).approve_on_criteria(NOW)
    actions: tuple[Callable[[Task], object], ...] = (
        lambda t: t.approve_on_criteria(NOW), lambda t: t.reopen_with(Outcome.REFER_TO_NURSE, (), "x", NOW))
    for action in actions:
        with pytest.raises(Conflict, match="only an undecided task"):
            action(task(status=TaskStatus.DECIDED))


def test_information_short_of_criteria_reopens_with_the_new_evaluation() -> None:
    t = task(status=TaskStatus.PENDED_INFORMATION)
    t.reopen_with(Outcome.REFER_TO_NURSE, ("re-evaluated", "3 weeks"), "3 weeks of therapy", NOW)
    assert (t.status, t.outcome, t.reasons) == (TaskStatus.OPEN, Outcome.REFER_TO_NURSE, ("re-evaluated", "3 weeks"))
    assert last(t) == (SYSTEM, "information_received", "reopened: 3 weeks of therapy")


# -- the clock and the monitor -------------------------------------------------------------------

def clock(due: dt.datetime | None, **changes: object) -> ClockState:
    base = ClockState(regime="erisa", rule="15 days", due_at=due, received_at=NOW, pend_effect=PendEffect.TOLL)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_tolled_clock_pauses_the_task_and_a_new_due_time_makes_escalation_moot() -> None:
    t = task(escalated_at=NOW)
    t.follow_clock(clock(None, rule="tolled", paused_at=NOW, remaining_s=3600.0), 0.2, NOW)
    assert t.clock_paused
    assert t.clock_rule == "tolled"
    assert t.at_risk_at is None
    assert t.escalated_at == NOW
    assert t.due_at == NOW + dt.timedelta(days=10)
    new_due = NOW + dt.timedelta(days=20)
    t.follow_clock(clock(new_due, rule="resumes"), 0.2, NOW)
    assert not t.clock_paused
    assert t.due_at == new_due
    assert t.escalated_at is None
    assert t.at_risk_at == new_due - dt.timedelta(days=4)  # a fifth of the 20 days since receipt
    assert not t.new_entries
    with pytest.raises(Conflict):
        task(status=TaskStatus.DECIDED).follow_clock(clock(new_due), 0.2, NOW)


def test_an_expired_lease_returns_the_task_to_the_queue() -> None:
    t = claimed()
    with pytest.raises(Conflict):
        t.expire_lease(NOW + LEASE - dt.timedelta(seconds=1))
    t.expire_lease(NOW + LEASE)
    assert (t.status, t.assigned_to, t.lease_expires_at) == (TaskStatus.OPEN, None, None)
    assert last(t) == (SYSTEM, "lease_expired", "rn-1's lease ran out")


@pytest.mark.parametrize(("lob", "deemed"), [("medicaid", True), ("commercial", False)])
def test_a_missed_deadline_is_recorded_once(lob: str, deemed: bool) -> None:
    t = task(line_of_business=lob)
    with pytest.raises(Conflict):
        t.miss_deadline(t.due_at - dt.timedelta(seconds=1))
    entry = t.miss_deadline(t.due_at)
    assert t.missed_at == t.due_at
    assert t.deemed_denial is deemed
    assert ("438.404(c)(5)" in entry.detail) is deemed
    assert entry.action == "deadline_missed"
    with pytest.raises(Conflict):
        t.miss_deadline(t.due_at)


def test_no_deadline_is_missed_while_the_clock_is_tolled_or_after_a_decision() -> None:
    late = NOW + dt.timedelta(days=30)
    for t in (task(clock_paused=True), task(status=TaskStatus.DECIDED)):
        assert not t.deadline_passed_unrecorded(late)
        assert not t.escalation_due(late)
        with pytest.raises(Conflict):
            t.miss_deadline(late)


def test_escalation_says_whether_anyone_holds_the_task() -> None:
    at_risk = NOW + dt.timedelta(days=8)
    t = task()
    with pytest.raises(Conflict):
        t.escalate(at_risk - dt.timedelta(seconds=1))
    assert t.escalate(at_risk).detail == "at risk and unassigned: 48.0 h left, no reviewer holds it"
    with pytest.raises(Conflict):
        t.escalate(at_risk)  # once
    held = task()
    held.claim(NURSE, at_risk, LEASE)
    assert held.escalate(at_risk).detail == "at risk: 48.0 h left, held by rn-1"
    with pytest.raises(Conflict):
        task(status=TaskStatus.PENDED_INFORMATION).escalate(at_risk)  # waiting for the provider
