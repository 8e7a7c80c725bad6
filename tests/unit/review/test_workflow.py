"""Routing eligibility (role, licence, specialty, line of business), ordering, capacity, and what
each role may decide."""

from __future__ import annotations

import datetime as dt

import pytest

from services.review.domain.workflow import (
    BadDecision,
    Conflict,
    Decision,
    NotPermitted,
    Reviewer,
    Role,
    TaskFacts,
    TaskStatus,
    check_can_act,
    check_decision,
    eligibility,
    next_for,
)

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)


def reviewer(role: Role = Role.NURSE, *, specialties: tuple[str, ...] = ("advanced_imaging",),
             states: tuple[str, ...] = ("TX",), lobs: tuple[str, ...] = ("commercial", "workers_comp", "medicaid"),
             capacity: int = 5, active: bool = True, rid: str = "r1") -> Reviewer:
    return Reviewer(rid, "Pat Reviewer", role, frozenset(specialties), frozenset(states), frozenset(lobs),
                    capacity, "RN" if role is Role.NURSE else "MD", active)


def task(*, lob: str = "commercial", state: str = "TX", category: str = "advanced_imaging",
         role: Role = Role.NURSE, urgency: str = "standard", due_h: int = 48, tid: str = "t1") -> TaskFacts:
    return TaskFacts(tid, lob, state, category, role, urgency, NOW + dt.timedelta(hours=due_h), "any")


# (reviewer, task, eligible, reason fragment)
MATRIX = [
    (reviewer(), task(), True, "specialty: advanced_imaging"),
    (reviewer(Role.PHYSICIAN), task(), False, "needs a nurse"),
    (reviewer(), task(role=Role.PHYSICIAN), False, "needs a physician"),
    (reviewer(Role.PHYSICIAN, states=("CA",)), task(role=Role.PHYSICIAN), True, "role: physician"),
    (reviewer(Role.ADJUSTER), task(lob="workers_comp"), True, "role: adjuster"),
    (reviewer(Role.ADJUSTER), task(lob="commercial"), False, "needs a nurse"),
    (reviewer(Role.SUPERVISOR), task(), False, "needs a nurse"),
    (reviewer(lobs=("medicare_advantage",)), task(), False, "does not cover commercial"),
    (reviewer(specialties=("sleep_medicine",)), task(), False, "specialty advanced_imaging not among"),
    (reviewer(specialties=("general",)), task(category="general"), True, "specialty: general"),
    (reviewer(specialties=("general",)), task(), False, "specialty advanced_imaging"),
    (reviewer(states=("OK",)), task(lob="workers_comp", state="TX"), False, "licence in TX"),
    (reviewer(states=("TX",)), task(lob="workers_comp", state="TX"), True, "licensed in TX"),
    (reviewer(states=("TX",)), task(lob="workers_comp", state="CA"), False, "licence in CA"),
    (reviewer(states=("TX",)), task(lob="workers_comp", state="NV"), True, "line of business: workers comp"),
    (reviewer(states=("TX",)), task(lob="commercial", state="CA"), True, "role: nurse"),
    (reviewer(Role.PHYSICIAN, states=("TX",)), task(lob="medicaid", state="OH", role=Role.PHYSICIAN), False,
     "licence in OH"),
    (reviewer(states=("TX",)), task(lob="medicaid", state="OH"), True, "role: nurse"),
    (reviewer(active=False), task(), False, "inactive"),
]


@pytest.mark.parametrize(("who", "what", "eligible", "fragment"), MATRIX)
def test_eligibility_matrix(who: Reviewer, what: TaskFacts, eligible: bool, fragment: str) -> None:
    ok, reasons = eligibility(who, what)
    assert ok is eligible
    assert any(fragment in r for r in reasons), reasons


def test_expedited_first_then_earliest_due_and_capacity() -> None:
    tasks = [task(tid="late", due_h=70), task(tid="soon", due_h=5), task(tid="exp", urgency="expedited", due_h=60),
             task(tid="other", category="sleep_medicine", due_h=1)]
    assert [t.task_id for t in next_for(reviewer(), tasks, held=0)] == ["exp", "soon", "late"]
    assert next_for(reviewer(capacity=2), tasks, held=2) == []


@pytest.mark.parametrize("decision", [Decision.DENY, Decision.APPROVE_PARTIAL, Decision.MODIFY])
@pytest.mark.parametrize("role", [Role.NURSE, Role.ADJUSTER, Role.SUPERVISOR])
def test_only_a_physician_may_decide_adversely(role: Role, decision: Decision) -> None:
    with pytest.raises(NotPermitted, match="only a physician"):
        check_decision(reviewer(role), decision, reason="r", criterion="c", approved_units=1, requested_units=5)


def test_a_physician_denial_needs_reason_and_criterion() -> None:
    doc = reviewer(Role.PHYSICIAN)
    with pytest.raises(BadDecision) as e:
        check_decision(doc, Decision.DENY, criterion="x@1: c")
    assert e.value.field == "reason"
    with pytest.raises(BadDecision) as e:
        check_decision(doc, Decision.DENY, reason="no imaging before six weeks of therapy")
    assert e.value.field == "criterion"
    check_decision(doc, Decision.DENY, reason="no imaging before six weeks of therapy", criterion="x@1: c")


def test_partial_approval_must_approve_less_than_requested() -> None:
    doc = reviewer(Role.PHYSICIAN)
    with pytest.raises(BadDecision, match="fewer than the 10"):
        check_decision(doc, Decision.APPROVE_PARTIAL, reason="r", criterion="c", approved_units=10, requested_units=10)
    check_decision(doc, Decision.APPROVE_PARTIAL, reason="r", criterion="c", approved_units=6, requested_units=10)


def test_nurse_may_approve_request_information_and_refer() -> None:
    nurse = reviewer()
    check_decision(nurse, Decision.APPROVE)
    check_decision(nurse, Decision.REFER_TO_PHYSICIAN)
    check_decision(nurse, Decision.REQUEST_INFORMATION, facts=["conservative_therapy_weeks"])
    with pytest.raises(BadDecision) as e:
        check_decision(nurse, Decision.REQUEST_INFORMATION, facts=[" "])
    assert e.value.field == "facts"
    with pytest.raises(NotPermitted):
        check_decision(reviewer(Role.SUPERVISOR), Decision.APPROVE)


def test_acting_needs_a_live_lease_held_by_the_caller() -> None:
    nurse = reviewer()
    later = NOW + dt.timedelta(minutes=5)
    check_can_act(nurse, TaskStatus.CLAIMED, "r1", later, NOW)
    with pytest.raises(Conflict, match="claim it first"):
        check_can_act(nurse, TaskStatus.OPEN, None, None, NOW)
    with pytest.raises(Conflict, match="another reviewer"):
        check_can_act(nurse, TaskStatus.CLAIMED, "r2", later, NOW)
    with pytest.raises(Conflict, match="expired"):
        check_can_act(nurse, TaskStatus.CLAIMED, "r1", NOW, NOW)
