"""Review's use cases for people on the in-memory fakes (tests/fakes/review.py): every task
transition through the service layer, and every refusal (identity, role, state, lease, and a
compare-and-set lost to another writer) with nothing written when refused. No database: each test
runs in milliseconds."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.consumer import PoisonMessage, TransientError
from services.common.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ValidationFailed,
)
from services.common.events import IncomingEvent
from services.common.topics import Topics
from services.review.adapters.holiday_calendars import load_calendars
from services.review.domain.deadlines import ClockEngine
from services.review.domain.task import DecisionInput, Task
from services.review.domain.workflow import Decision, Reviewer, Role, TaskStatus, eligibility
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.queue import CLAIM_FIRST_LOOK
from services.review.service_layer.workflow import ReviewWorkflow
from tests.factories import fact, lumbar_mri, submitted_event
from tests.fakes.review import FakeDuplicateChecker, FakeEvaluator, FakeUnitOfWork, FixedClock, ReviewStore

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=10)
ALL_LOBS = frozenset({"medicare_advantage", "medicaid", "commercial", "workers_comp"})
COMMERCIAL = types_pb2.LINE_OF_BUSINESS_COMMERCIAL
WORKERS_COMP = types_pb2.LINE_OF_BUSINESS_WORKERS_COMP
APPROVE = DecisionInput(Decision.APPROVE)
DENY = DecisionInput(Decision.DENY, reason="MRI is not indicated before six weeks of conservative therapy",
                     criterion="imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks")


def reviewer(rid: str, role: Role = Role.NURSE, *, capacity: int = 10, active: bool = True,
             lobs: frozenset[str] = ALL_LOBS) -> Reviewer:
    specialties = frozenset() if role is Role.SUPERVISOR else frozenset({"advanced_imaging", "general"})
    return Reviewer(rid, f"Reviewer {rid}", role, specialties, frozenset({"TX"}), lobs, capacity,
                    "MD" if role is Role.PHYSICIAN else "RN", active)


@pytest.fixture(scope="module")
def clocks() -> ClockEngine:
    return ClockEngine(load_calendars())


@dataclass
class Review:
    store: ReviewStore
    clock: FixedClock
    handlers: ReviewHandlers
    workflow: ReviewWorkflow

    def submit(self, *, meets: bool = False, lob: types_pb2.LineOfBusiness.ValueType = COMMERCIAL,
               state: str = "TX", urgency: types_pb2.Urgency.ValueType = types_pb2.URGENCY_STANDARD,
               start: dt.date | None = None) -> str:
        request_id = str(uuid.uuid4())
        request = lumbar_mri(meets=meets, lob=lob, state=state, urgency=urgency, start=start)
        self.handlers.handle_batch([submitted_event(request, request_id, self.clock())])
        return request_id

    def task_of(self, request_id: str) -> Task:
        [task] = [t for t in self.store.tasks.values() if t.request_id == request_id]
        return task

    def task(self, task_id: str) -> Task:
        return self.store.tasks[task_id]

    def actions(self, task_id: str) -> list[str]:
        return [e.action for _, tid, e in self.store.history if tid == task_id]

    def determinations(self) -> list[types_pb2.Determination]:
        return [m.determination for m in self.store.events(events_pb2.DeterminationMade)]  # type: ignore[attr-defined]

    def alerts(self) -> list[events_pb2.ReviewAlert]:
        return self.store.events(events_pb2.ReviewAlert)  # type: ignore[return-value]

    def information(self, request_id: str, **facts: float) -> IncomingEvent:
        message = events_pb2.AdditionalInformationReceived(
            request_id=request_id, information_id=str(uuid.uuid4()),
            clinical_facts=[fact(name, value, "weeks") for name, value in facts.items()])
        return IncomingEvent(event_id=str(uuid.uuid4()), event_type="AdditionalInformationReceived",
                             schema_version="1", key=request_id, message=message, topic="t", partition=0, offset=0)

    def meanwhile(self, write: Callable[[], object]) -> None:
        """Let another writer in just before the next task save (the read is already done)."""
        self.store.before_task_save.append(lambda _task: write())

    def snapshot(self) -> tuple[object, ...]:
        return (dict(self.store.tasks), len(self.store.history), len(self.store.outbox),
                dict(self.store.outcomes), dict(self.store.cases))


@pytest.fixture
def review(clocks: ClockEngine) -> Review:
    store = ReviewStore()
    clock = FixedClock(T0)
    evaluator = FakeEvaluator()

    def uow() -> FakeUnitOfWork:
        return FakeUnitOfWork(store)

    handlers = ReviewHandlers(uow, Topics("t"), evaluator, FakeDuplicateChecker(), clocks, clock=clock)
    workflow = ReviewWorkflow(uow, Topics("t"), lambda: evaluator, clocks, lease_s=LEASE.total_seconds(),
                              clock=clock)
    workflow.directory.seed([reviewer("rn-1"), reviewer("rn-2"), reviewer("md-1", Role.PHYSICIAN),
                             reviewer("sup-1", Role.SUPERVISOR), reviewer("rn-off", active=False),
                             reviewer("adj-1", Role.ADJUSTER, lobs=frozenset({"workers_comp"}))])
    return Review(store, clock, handlers, workflow)


# -- identity and the directory ------------------------------------------------------------------

def test_callers_outside_the_directory_or_inactive_are_refused(review: Review) -> None:
    assert review.workflow.directory.whoami("rn-1").role is Role.NURSE
    for who, why in (("nobody", "not in the reviewer directory"), ("rn-off", "inactive")):
        with pytest.raises(PermissionDenied, match=why):
            review.workflow.directory.whoami(who)
        with pytest.raises(PermissionDenied, match=why):
            review.workflow.queue.claim_next(who)


def test_only_a_supervisor_manages_the_directory(review: Review) -> None:
    newcomer = reviewer("rn-3")
    with pytest.raises(PermissionDenied, match="only a supervisor manages"):
        review.workflow.directory.put_reviewer("rn-1", newcomer)
    assert "rn-3" not in review.store.reviewers
    review.workflow.directory.put_reviewer("sup-1", newcomer)
    assert [r.reviewer_id for r in review.workflow.directory.list_reviewers("rn-3")] == [
        "adj-1", "md-1", "rn-1", "rn-2", "rn-3", "rn-off", "sup-1"]
    with pytest.raises(ValidationFailed, match=r"reviewer\.capacity"):  # checked before anything else
        review.workflow.directory.put_reviewer("nobody", reviewer("rn-4", capacity=0))


# -- the queue -----------------------------------------------------------------------------------

def test_a_claim_takes_the_most_urgent_eligible_task(review: Review) -> None:
    review.submit()
    urgent = review.task_of(review.submit(urgency=types_pb2.URGENCY_EXPEDITED))
    review.submit(meets=True)  # approved by criteria: no task
    view = review.workflow.queue.claim_next("rn-1")
    assert view.task.task_id == urgent.task_id
    assert view.task.assigned_to == "rn-1"
    assert view.task.lease_expires_at == T0 + LEASE
    assert view.task.version == 1
    assert "role: nurse (task needs a nurse)" in view.why_eligible
    assert [h.action for h in view.history] == ["claimed"]
    assert view.determination is not None
    assert view.determination.queued_for_review
    assert review.task(urgent.task_id) == view.task


def test_claim_refusals(review: Review) -> None:
    with pytest.raises(NotFound, match="no open task you are eligible for"):
        review.workflow.queue.claim_next("rn-1")
    review.submit()
    with pytest.raises(PermissionDenied, match="supervisor assigns"):
        review.workflow.queue.claim_next("sup-1")
    with pytest.raises(NotFound):
        review.workflow.queue.claim_next("md-1")  # a nurse's task
    with pytest.raises(NotFound):
        review.workflow.queue.claim_next("adj-1")  # an adjuster takes nurse tasks on workers' comp only
    review.workflow.directory.put_reviewer("sup-1", reviewer("rn-1", capacity=1))
    review.submit()
    review.workflow.queue.claim_next("rn-1")
    with pytest.raises(ResourceExhausted, match="you hold 1 task"):
        review.workflow.queue.claim_next("rn-1")


def test_a_claim_looks_past_a_first_window_of_tasks_the_reviewer_may_not_take(review: Review) -> None:
    # More expedited tasks needing a licence in CA (workers' comp) than a claim reads first; the reviewer
    # is licensed in TX only.
    out_of_state = [review.submit(urgency=types_pb2.URGENCY_EXPEDITED, state="CA", lob=WORKERS_COMP)
                    for _ in range(CLAIM_FIRST_LOOK + 2)]
    assert not eligibility(reviewer("rn-1"), review.task_of(out_of_state[0]).facts())[0]
    mine = review.task_of(review.submit(state="TX"))
    assert review.workflow.queue.claim_next("rn-1").task.task_id == mine.task_id


def test_a_claim_that_loses_the_race_moves_on_to_the_next_task(review: Review) -> None:
    first = review.task_of(review.submit(urgency=types_pb2.URGENCY_EXPEDITED))
    second = review.task_of(review.submit())
    review.meanwhile(lambda: review.workflow.queue.claim_next("rn-2"))
    assert review.workflow.queue.claim_next("rn-1").task.task_id == second.task_id
    assert review.task(first.task_id).assigned_to == "rn-2"
    assert review.actions(first.task_id) == ["claimed"]  # rn-2's only


def test_a_claim_that_loses_every_race_finds_nothing(review: Review) -> None:
    only = review.task_of(review.submit())
    review.meanwhile(lambda: review.workflow.queue.claim_next("rn-2"))
    with pytest.raises(NotFound):
        review.workflow.queue.claim_next("rn-1")
    assert review.task(only.task_id).assigned_to == "rn-2"


def test_my_tasks_lists_what_i_hold_and_what_i_could_take(review: Review) -> None:
    ids = [review.task_of(review.submit()).task_id for _ in range(3)]
    held = review.workflow.queue.claim_next("rn-1").task.task_id
    mine, available = review.workflow.queue.my_tasks("rn-1", 1)
    assert [v.task.task_id for v in mine] == [held]
    assert len(available) == 1
    assert available[0].task.task_id in set(ids) - {held}
    assert len(review.workflow.queue.my_tasks("rn-2", 0)[1]) == 2
    assert review.workflow.queue.my_tasks("md-1", 0) == ([], [])
    with pytest.raises(ValidationFailed, match="limit"):
        review.workflow.queue.my_tasks("rn-1", 201)
    with pytest.raises(NotFound):
        review.workflow.queue.get_task("rn-1", "no-such-task")


def test_the_holder_or_a_supervisor_releases(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    with pytest.raises(FailedPrecondition, match="only a claimed task can be released"):
        review.workflow.queue.release("rn-1", task_id, "")
    review.workflow.queue.claim_next("rn-1")
    with pytest.raises(PermissionDenied, match="only the holder or a supervisor"):
        review.workflow.queue.release("rn-2", task_id, "")
    view = review.workflow.queue.release("rn-1", task_id, "")
    assert view.task.status is TaskStatus.OPEN
    assert view.task.assigned_to is None
    review.workflow.queue.claim_next("rn-2")
    review.workflow.queue.release("sup-1", task_id, "rn-2 is out today")
    assert review.actions(task_id) == ["claimed", "released", "claimed", "released"]
    assert review.task(task_id).status is TaskStatus.OPEN


def test_a_release_of_a_task_changed_meanwhile_is_refused_and_writes_nothing(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    review.meanwhile(lambda: review.workflow.queue.reassign("sup-1", task_id, "rn-2", ""))
    with pytest.raises(FailedPrecondition, match="the task changed while you were acting on it"):
        review.workflow.queue.release("rn-1", task_id, "")
    assert review.task(task_id).assigned_to == "rn-2"
    assert review.actions(task_id) == ["claimed", "reassigned"]


def test_a_supervisor_reassigns(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    view = review.workflow.queue.reassign("sup-1", task_id, "rn-2", "rn-1 is out")
    assert view.task.assigned_to == "rn-2"
    assert view.task.lease_expires_at == T0 + LEASE
    assert view.why_eligible  # the new holder's reasons
    assert view.history[-1].detail == "to rn-2 (from rn-1): rn-1 is out"


def test_reassign_refusals(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    with pytest.raises(PermissionDenied, match="only a supervisor reassigns"):
        review.workflow.queue.reassign("rn-1", "no-such-task", "rn-2", "")  # the role, before the task
    with pytest.raises(NotFound):
        review.workflow.queue.reassign("sup-1", "no-such-task", "rn-2", "")
    with pytest.raises(ValidationFailed, match="'rn-9' is not in the directory"):
        review.workflow.queue.reassign("sup-1", task_id, "rn-9", "")
    with pytest.raises(FailedPrecondition, match="md-1 may not take this task: needs a nurse"):
        review.workflow.queue.reassign("sup-1", task_id, "md-1", "")
    review.workflow.queue.claim_next("rn-1")
    review.workflow.decisions.decide("rn-1", task_id, APPROVE)
    with pytest.raises(FailedPrecondition, match="only open or claimed tasks can be reassigned"):
        review.workflow.queue.reassign("sup-1", task_id, "rn-2", "")
    assert review.actions(task_id) == ["claimed", "approve"]


# -- decisions -----------------------------------------------------------------------------------

def test_a_nurse_approves_and_the_decision_is_announced_and_counted(review: Review) -> None:
    request_id = review.submit()
    task_id = review.task_of(request_id).task_id
    assert review.store.outcomes[(request_id, 1)].approved is False  # criteria referred it
    review.workflow.queue.claim_next("rn-1")
    view, determination = review.workflow.decisions.decide("rn-1", task_id, DecisionInput(
        Decision.APPROVE, note="notes document therapy"))
    assert view.task.status is TaskStatus.DECIDED
    assert [h.action for h in view.history] == ["claimed", "approve"]
    line = determination.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert line.approved_units == 1
    assert (line.decided_by.id, line.decided_by.credential) == ("rn-1", "RN, licensed in TX")
    assert line.reasons[0] == "approved by Reviewer rn-1 (RN, licensed in TX): notes document therapy"
    assert review.determinations()[-1] == determination
    stored = types_pb2.Determination.FromString(review.store.cases[request_id].determination)
    assert stored.lines[0] == line
    assert view.determination == line
    outcome = review.store.outcomes[(request_id, 1)]
    assert outcome.approved
    assert outcome.decided_by == "rn-1"


def test_a_nurse_cannot_decide_adversely_and_nothing_is_written(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    before = review.snapshot()
    for decision in (Decision.DENY, Decision.MODIFY, Decision.APPROVE_PARTIAL):
        with pytest.raises(PermissionDenied, match="only a physician"):
            review.workflow.decisions.decide("rn-1", task_id, DecisionInput(decision, reason="r", criterion="c",
                                                                            approved_units=1))
    assert review.snapshot() == before


def test_a_referral_goes_to_a_physician_who_denies(review: Review) -> None:
    request_id = review.submit()
    task_id = review.task_of(request_id).task_id
    review.workflow.queue.claim_next("rn-1")
    view, determination = review.workflow.decisions.decide("rn-1", task_id, DecisionInput(
        Decision.REFER_TO_PHYSICIAN, note="borderline"))
    assert (view.task.status, view.task.required_role) == (TaskStatus.OPEN, Role.PHYSICIAN)
    assert determination.lines[0].action_code == types_pb2.ACTION_CODE_PENDED
    assert determination.lines[0].queued_for_review
    with pytest.raises(NotFound):
        review.workflow.queue.claim_next("rn-2")
    review.workflow.queue.claim_next("md-1")
    view, determination = review.workflow.decisions.decide("md-1", task_id, DENY)
    line = determination.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED
    assert line.criterion == DENY.criterion
    assert line.reasons[-1] == f"criterion: {DENY.criterion}"
    assert line.decided_by.role == "physician"
    assert line.explanation.criteria_id == "fake-72148"  # the criteria explanation travels on
    assert [h.action for h in view.history] == ["claimed", "refer_to_physician", "claimed", "deny"]
    outcome = review.store.outcomes[(request_id, 1)]
    assert not outcome.approved
    assert outcome.decided_by == "md-1"


def test_a_physician_approves_in_part(review: Review) -> None:
    task_id = review.task_of(review.submit(start=dt.date(2027, 1, 25))).task_id
    review.workflow.queue.claim_next("rn-1")
    review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.REFER_TO_PHYSICIAN))
    review.workflow.queue.claim_next("md-1")
    with pytest.raises(ValidationFailed, match="approve it instead"):
        review.workflow.decisions.decide("md-1", task_id, DecisionInput(
            Decision.APPROVE_PARTIAL, reason="r", criterion="c", approved_units=1))  # 1 of 1 requested
    _, determination = review.workflow.decisions.decide("md-1", task_id, DecisionInput(
        Decision.MODIFY, reason="a shorter course", criterion="c@1: x", approved_units=1,
        approved_start=dt.date(2027, 2, 1)))
    line = determination.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_MODIFIED
    assert line.approved_units == 1
    assert (line.approved_start.month, line.approved_start.day) == (2, 1)
    assert (line.approved_end.year, line.approved_end.month, line.approved_end.day) == (2027, 2, 8)  # as requested


def test_a_request_for_information_pends_the_task_and_tolls_an_erisa_clock(review: Review) -> None:
    request_id = review.submit(lob=COMMERCIAL)
    task_id = review.task_of(request_id).task_id
    review.workflow.queue.claim_next("rn-1")
    with pytest.raises(ValidationFailed, match="facts"):
        review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.REQUEST_INFORMATION))
    view, determination = review.workflow.decisions.decide("rn-1", task_id, DecisionInput(
        Decision.REQUEST_INFORMATION, facts=("conservative_therapy_weeks",), note="therapy notes"))
    task = view.task
    assert task.status is TaskStatus.PENDED_INFORMATION
    assert task.assigned_to is None
    assert task.clock_paused
    assert "tolled" in task.clock_rule
    assert task.at_risk_at is None
    line = determination.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_PENDED
    assert list(line.requested_facts) == ["conservative_therapy_weeks"]
    assert (line.information_due.year, line.information_due.month, line.information_due.day) == (2026, 12, 10)
    case = review.store.cases[request_id]
    assert case.clock is not None
    assert case.clock.tolled
    assert "tolled" in determination.clock.rule


def test_decisions_need_the_task_held_under_a_live_lease(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    with pytest.raises(FailedPrecondition, match="claim it first"):
        review.workflow.decisions.decide("rn-1", task_id, APPROVE)
    review.workflow.queue.claim_next("rn-1")
    with pytest.raises(FailedPrecondition, match="held by another reviewer"):
        review.workflow.decisions.decide("rn-2", task_id, APPROVE)
    review.clock.advance(LEASE)
    before = review.snapshot()
    with pytest.raises(FailedPrecondition, match="lease on the task expired"):
        review.workflow.decisions.decide("rn-1", task_id, APPROVE)
    with pytest.raises(NotFound):
        review.workflow.decisions.decide("rn-1", "no-such-task", APPROVE)
    assert review.snapshot() == before


def test_a_decision_on_a_task_changed_meanwhile_is_refused_and_writes_nothing(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    announced = len(review.determinations())
    review.meanwhile(lambda: review.workflow.queue.reassign("sup-1", task_id, "rn-2", ""))
    with pytest.raises(FailedPrecondition, match="the task changed while you were acting on it"):
        review.workflow.decisions.decide("rn-1", task_id, APPROVE)
    assert len(review.determinations()) == announced
    assert review.task(task_id).assigned_to == "rn-2"
    assert review.actions(task_id) == ["claimed", "reassigned"]


# -- peer-to-peer and deadline extensions --------------------------------------------------------

def test_peer_to_peer_is_recorded_by_a_physician(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    with pytest.raises(ValidationFailed, match="offered, held or declined"):
        review.workflow.peer_to_peer.record("md-1", task_id, "shouted", None, "", "")
    with pytest.raises(PermissionDenied, match="physician's"):
        review.workflow.peer_to_peer.record("rn-1", "no-such-task", "offered", None, "", "")
    view = review.workflow.peer_to_peer.record("md-1", task_id, "offered", None, "Dr. Requester", "call offered")
    assert view.history[-1].detail == "2026-11-25T15:00+00:00 with Dr. Requester: call offered"
    assert view.task.status is TaskStatus.OPEN


def test_deadline_extensions_follow_the_regime(review: Review) -> None:
    request_id = review.submit(lob=types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE)
    ma = review.task_of(request_id).task_id
    with pytest.raises(PermissionDenied, match="adjuster may not extend"):
        review.workflow.deadlines.extend_deadline("adj-1", ma, "enrollee_request", notice_sent=True)
    with pytest.raises(FailedPrecondition, match="written notice"):
        review.workflow.deadlines.extend_deadline("rn-1", ma, "enrollee_request", notice_sent=False)
    view = review.workflow.deadlines.extend_deadline("rn-1", ma, "enrollee_request", notice_sent=True)
    assert view.task.due_at == T0 + dt.timedelta(days=21)
    assert view.history[-1].action == "deadline_extended"
    assert review.store.cases[request_id].due_at == T0 + dt.timedelta(days=21)
    with pytest.raises(FailedPrecondition, match="one extension"):
        review.workflow.deadlines.extend_deadline("rn-1", ma, "enrollee_request", notice_sent=True)
    wc = review.task_of(review.submit(lob=types_pb2.LINE_OF_BUSINESS_WORKERS_COMP)).task_id
    with pytest.raises(FailedPrecondition, match="allows no extension"):
        review.workflow.deadlines.extend_deadline("rn-1", wc, "enrollee_request", notice_sent=True)


# -- additional information ----------------------------------------------------------------------

def pend(review: Review, request_id: str) -> str:
    task_id = review.task_of(request_id).task_id
    review.workflow.queue.claim_next("rn-1")
    review.workflow.decisions.decide("rn-1", task_id, DecisionInput(
        Decision.REQUEST_INFORMATION, facts=("conservative_therapy_weeks", "symptom_duration_weeks")))
    return task_id


def test_information_that_meets_criteria_is_approved_by_the_rules_engine_once(review: Review) -> None:
    request_id = review.submit()
    task_id = pend(review, request_id)
    event = review.information(request_id, symptom_duration_weeks=9, conservative_therapy_weeks=7)
    review.workflow.information.handle_batch([event])
    announced = len(review.store.outbox)
    review.workflow.information.handle_batch([event])  # redelivery is harmless
    assert len(review.store.outbox) == announced
    task = review.task(task_id)
    assert task.status is TaskStatus.DECIDED
    assert review.actions(task_id)[-1] == "information_received"
    line = review.determinations()[-1].lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert line.approved_units == 1
    assert line.decided_by.id == "system:rules-engine"
    assert review.store.outcomes[(request_id, 1)].approved


def test_information_short_of_criteria_reopens_the_task_and_restarts_the_clock(review: Review) -> None:
    request_id = review.submit(lob=COMMERCIAL)
    review.clock.advance(dt.timedelta(days=5))
    task_id = pend(review, request_id)
    review.clock.advance(dt.timedelta(days=35))
    review.workflow.information.handle_batch([review.information(request_id, conservative_therapy_weeks=3)])
    task = review.task(task_id)
    assert task.status is TaskStatus.OPEN
    assert not task.clock_paused
    assert "resumes" in task.clock_rule
    assert task.due_at == T0 + dt.timedelta(days=40 + 10)  # the ten days left when it stopped
    assert task.reasons[0] == "re-evaluated with the additional information received"
    assert review.determinations()[-1].lines[0].action_code == types_pb2.ACTION_CODE_PENDED


def test_information_never_settles_a_task_a_physician_was_asked_to_decide(review: Review) -> None:
    request_id = review.submit()
    task_id = review.task_of(request_id).task_id
    review.workflow.queue.claim_next("rn-1")
    review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.REFER_TO_PHYSICIAN))
    review.workflow.information.handle_batch([review.information(
        request_id, symptom_duration_weeks=9, conservative_therapy_weeks=7)])
    task = review.task(task_id)
    assert (task.status, task.required_role, task.outcome.value) == (TaskStatus.OPEN, Role.PHYSICIAN,
                                                                     "refer_to_nurse")
    line = review.determinations()[-1].lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_PENDED
    assert line.queued_for_review


def test_information_before_its_request_is_retried_and_a_stranger_is_poison(review: Review) -> None:
    with pytest.raises(TransientError):
        review.workflow.information.handle_batch([review.information("unknown-request", symptom_duration_weeks=1)])
    stranger = IncomingEvent(event_id="e", event_type="RequestSubmitted", schema_version="1", key="r",
                             message=events_pb2.RequestSubmitted(), topic="t", partition=0, offset=0)
    with pytest.raises(PoisonMessage):
        review.workflow.information.handle_batch([stranger])
    assert not review.store.processed


# -- the monitor ---------------------------------------------------------------------------------

def test_the_monitor_returns_a_task_whose_lease_ran_out(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    review.clock.advance(LEASE - dt.timedelta(seconds=1))
    assert review.workflow.monitor.run()["leases_expired"] == 0
    review.clock.advance(dt.timedelta(seconds=1))
    assert review.workflow.monitor.run()["leases_expired"] == 1
    assert review.task(task_id).status is TaskStatus.OPEN
    assert review.actions(task_id) == ["claimed", "lease_expired"]
    assert review.workflow.queue.claim_next("rn-2").task.task_id == task_id


def test_the_monitor_leaves_a_task_changed_meanwhile_to_its_next_pass(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    review.clock.advance(LEASE)
    review.meanwhile(lambda: review.workflow.queue.claim_next("rn-2"))  # the expired lease is claimable
    assert review.workflow.monitor.run()["leases_expired"] == 0
    assert review.task(task_id).assigned_to == "rn-2"
    assert review.actions(task_id) == ["claimed", "claimed"]


def test_the_monitor_escalates_once_then_records_a_missed_medicaid_deadline(review: Review) -> None:
    request_id = review.submit(lob=types_pb2.LINE_OF_BUSINESS_MEDICAID, state="TX")
    task = review.task_of(request_id)
    assert task.at_risk_at is not None
    review.clock.set(task.at_risk_at - dt.timedelta(seconds=1))
    assert review.workflow.monitor.run()["escalated"] == 0
    review.clock.set(task.at_risk_at)
    assert review.workflow.monitor.run() == {"leases_expired": 0, "escalated": 1, "unassigned_alerts": 1, "missed": 0}
    assert review.workflow.monitor.run()["escalated"] == 0  # once
    review.clock.set(task.due_at)
    assert review.workflow.monitor.run()["missed"] == 1
    assert review.workflow.monitor.run()["missed"] == 0  # once
    kinds = [a.kind for a in review.alerts()]
    assert kinds == [events_pb2.ReviewAlert.KIND_UNASSIGNED_NEAR_DEADLINE, events_pb2.ReviewAlert.KIND_DEADLINE_MISSED]
    missed = review.alerts()[-1]
    assert missed.deemed_denial
    assert missed.request_id == request_id
    assert "438.404" in missed.message
    assert review.task(task.task_id).deemed_denial
    assert review.actions(task.task_id) == ["escalated", "deadline_missed"]


def test_an_escalation_of_a_held_task_names_its_holder(review: Review) -> None:
    task = review.task_of(review.submit())
    assert task.at_risk_at is not None
    review.clock.set(task.at_risk_at)
    review.workflow.queue.claim_next("rn-1")
    assert review.workflow.monitor.run() == {"leases_expired": 0, "escalated": 1, "unassigned_alerts": 0, "missed": 0}
    alert = review.alerts()[-1]
    assert alert.kind == events_pb2.ReviewAlert.KIND_AT_RISK
    assert alert.assigned_to == "rn-1"
    assert "held by rn-1" in alert.message
    assert not alert.deemed_denial


def test_a_tolled_clock_is_never_missed(review: Review) -> None:
    task_id = pend(review, review.submit(lob=COMMERCIAL))
    review.clock.advance(dt.timedelta(days=60))
    assert review.workflow.monitor.run() == {"leases_expired": 0, "escalated": 0, "unassigned_alerts": 0, "missed": 0}
    assert review.task(task_id).missed_at is None


# -- the open queue ------------------------------------------------------------------------------

def test_the_open_queue_pages_most_urgent_first(review: Review) -> None:
    standard = [review.task_of(review.submit()).task_id for _ in range(2)]
    urgent = review.task_of(review.submit(urgency=types_pb2.URGENCY_EXPEDITED)).task_id
    page, token, total = review.handlers.queue(2, "")
    assert total == 3
    assert token == "2"
    assert page[0].task_id == urgent
    rest, token, _ = review.handlers.queue(2, token)
    assert token == ""
    assert {t.task_id for t in [*page, *rest]} == {urgent, *standard}
    with pytest.raises(ValidationFailed):
        review.handlers.queue(2, "not-a-token")
