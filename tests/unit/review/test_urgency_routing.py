"""Urgency (issue 13): a line that meets its criteria's urgent rule, or raises a red flag while a fact
is missing, is routed as expedited: on the expedited clock where the plan may expedite on its own
judgment, at the head of the queue everywhere; a person may change a task's urgency with a reason.
On the in-memory fakes with the shipped criteria library and its vocabulary."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import FailedPrecondition, PermissionDenied, ValidationFailed
from services.common.events import IncomingEvent
from services.common.topics import Topics
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.holiday_calendars import load_calendars
from services.review.domain.criteria import Outcome, PythonMatcher
from services.review.domain.deadlines import ClockEngine, ClockRequest
from services.review.domain.task import Task
from services.review.domain.urgency import UrgentLine, person_clock_change, route
from services.review.domain.workflow import Conflict, InvalidInput, NotPermitted, Reviewer, Role, WorkflowError
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.workflow import ReviewWorkflow
from tests.factories import OTHER_NPI, VALID_NPI, fact, submitted_event
from tests.fakes.review import FakeDuplicateChecker, FakeUnitOfWork, FixedClock, ReviewStore
from tests.unit.review.builders import shipped_library

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ALL_LOBS = frozenset({"medicare_advantage", "medicaid", "commercial", "workers_comp"})
MA = types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE
COMMERCIAL = types_pb2.LINE_OF_BUSINESS_COMMERCIAL
WORKERS_COMP = types_pb2.LINE_OF_BUSINESS_WORKERS_COMP
OUTPATIENT = types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL


# -- the routing rule ------------------------------------------------------------------------------

def test_the_plan_expedites_the_clock_where_its_own_judgment_may() -> None:
    urgent = [UrgentLine(2, "a red flag")]
    for regime in ("cms-0057-f", "erisa-2560.503-1"):
        routing = route("standard", "prospective", regime, urgent)
        assert routing.clock_urgency == "expedited"
        assert "expedited on the plan's own determination" in routing.clock_reason
        assert routing.for_line(2) == ("expedited", "a red flag")
        assert routing.for_line(1) == ("expedited", "its request is expedited: line 2: a red flag")
    assert "422.570(c)(2)(i)" in route("standard", "prospective", "cms-0057-f", urgent).clock_reason
    assert "2560.503-1(m)(1)(ii)" in route("standard", "prospective", "erisa-2560.503-1", urgent).clock_reason


def test_elsewhere_the_clock_stays_and_the_urgent_line_goes_to_the_head_of_the_queue() -> None:
    for regime in ("ca-lc-4610", "tx-28-tac-134.600", "workers-comp-default"):
        routing = route("standard", "prospective", regime, [UrgentLine(2, "a red flag")])
        assert routing.clock_urgency == "standard"
        assert routing.clock_reason == ""
        urgency, why = routing.for_line(2)
        assert urgency == "expedited"
        assert why.startswith(f"a red flag; at the head of the queue, the {regime} clock stays")
        urgency, why = routing.for_line(1)
        assert urgency == "expedited"
        assert why.startswith("its request has an urgent line: line 2: a red flag; at the head")


def test_nothing_changes_when_asked_already_nothing_is_urgent_or_the_service_was_given() -> None:
    assert route("expedited", "prospective", "cms-0057-f", [UrgentLine(1, "x")]).for_line(1) == ("expedited", "")
    assert route("standard", "prospective", "cms-0057-f", []).clock_urgency == "standard"
    assert route("standard", "retrospective", "cms-0057-f", [UrgentLine(1, "x")]).for_line(1) == ("standard", "")


def test_an_expedited_clock_the_plan_chose_records_why(clocks: ClockEngine) -> None:
    state = clocks.start(ClockRequest("medicare_advantage", "CA", "expedited", "prospective", T0,
                                      expedited_because="expedited on the plan's own determination: a red flag"))
    assert state.expedited
    assert state.due_at == T0 + dt.timedelta(hours=72)
    assert state.rule.endswith("; expedited on the plan's own determination: a red flag")
    assert state.history[0].rule == state.rule


def test_a_person_s_change_moves_the_clock_only_where_and_while_the_plan_may(clocks: ClockEngine) -> None:
    standard = clocks.start(ClockRequest("medicare_advantage", "CA", "standard", "prospective", T0))
    assert person_clock_change("cms-0057-f", "prospective", standard, "standard", "expedited")[0] is True
    pended = clocks.pend(standard, T0 + dt.timedelta(hours=1))
    restart, note = person_clock_change("cms-0057-f", "prospective", pended, "standard", "expedited")
    assert not restart
    assert "pended, resumed or extended" in note
    restart, note = person_clock_change("ca-lc-4610", "prospective", standard, "standard", "expedited")
    assert not restart
    assert "8 CCR 9792.9.1(c)(4)" in note
    with pytest.raises(Conflict, match="the provider asked for an expedited review"):
        person_clock_change("cms-0057-f", "prospective", standard, "expedited", "standard")


# -- the task --------------------------------------------------------------------------------------

def reviewer(rid: str, role: Role = Role.NURSE) -> Reviewer:
    specialties = frozenset() if role is Role.SUPERVISOR else frozenset({"advanced_imaging", "general"})
    return Reviewer(rid, f"Reviewer {rid}", role, specialties, frozenset({"CA", "TX"}), ALL_LOBS, 10, "RN")


def open_task(clocks: ClockEngine, urgency_reason: str = "") -> Task:
    clock = clocks.start(ClockRequest("commercial", "NY", "standard", "prospective", T0))
    return Task.open_for_review(task_id="t-1", request_id="r-1", line_number=1, procedure_code="72148",
                                line_of_business="commercial", member_state="NY",
                                urgency="expedited" if urgency_reason else "standard",
                                outcome=Outcome.PEND_MISSING_INFORMATION, reasons=("a reason",), clock=clock,
                                category="advanced_imaging", units=1, now=T0, at_risk_fraction=0.2,
                                urgency_reason=urgency_reason)


def test_software_s_urgency_leads_the_reasons_and_opens_the_history(clocks: ClockEngine) -> None:
    task = open_task(clocks, "a red flag")
    assert task.reasons == ("urgency expedited: a red flag", "a reason")
    assert task.urgency_reason == "a red flag"
    assert [(e.actor, e.action, e.detail) for e in task.new_entries] == [("system", "expedited", "a red flag")]
    task.reopen_with(Outcome.REFER_TO_NURSE, ("re-evaluated",), "new facts", T0)
    assert task.reasons == ("urgency expedited: a red flag", "re-evaluated")


def test_a_person_changes_the_urgency_with_a_reason_in_the_history(clocks: ClockEngine) -> None:
    task = open_task(clocks)
    task.set_urgency(reviewer("rn-1"), "expedited", "  new weakness reported by phone  ", T0, "the clock stays")
    assert (task.urgency, task.urgency_reason) == ("expedited", "set by rn-1: new weakness reported by phone")
    last = task.new_entries[-1]
    assert (last.actor, last.action, last.detail) == (
        "rn-1", "urgency_changed", "standard → expedited: new weakness reported by phone (the clock stays)")


@pytest.mark.parametrize(("who", "urgency", "reason", "error", "text"), [
    (Role.ADJUSTER, "expedited", "why", NotPermitted,
     "only a nurse, physician or supervisor may change a task's urgency, not the adjuster"),
    (Role.CASE_MANAGER, "expedited", "why", NotPermitted,
     "only a nurse, physician or supervisor may change a task's urgency, not the case_manager"),
    (Role.NURSE, "urgent", "why", InvalidInput, "urgency: standard or expedited"),
    (Role.NURSE, "expedited", "  ", InvalidInput, "reason: say why"),
    (Role.NURSE, "standard", "why", Conflict, "already standard"),
])
def test_urgency_changes_are_refused_without_the_role_a_reason_or_a_change(
        clocks: ClockEngine, who: Role, urgency: str, reason: str, error: type[WorkflowError], text: str) -> None:
    task = open_task(clocks)
    with pytest.raises(error, match=text):
        task.set_urgency(reviewer("x-1", who), urgency, reason, T0)
    assert task.urgency == "standard"
    assert len(task.new_entries) == 0


# -- routed by the consumer, changed by people -----------------------------------------------------

@pytest.fixture(scope="module")
def clocks() -> ClockEngine:
    return ClockEngine(load_calendars())


@dataclass
class Review:
    store: ReviewStore
    clock: FixedClock
    handlers: ReviewHandlers
    workflow: ReviewWorkflow

    def submit(self, request: intake_pb2.SubmitRequestRequest) -> str:
        request_id = str(uuid.uuid4())
        self.handlers.handle_batch([submitted_event(request, request_id, self.clock())])
        return request_id

    def tasks_of(self, request_id: str) -> list[Task]:
        return sorted((t for t in self.store.tasks.values() if t.request_id == request_id), key=lambda t: t.line_number)

    def line(self, request_id: str, number: int) -> types_pb2.LineDetermination:
        stored = types_pb2.Determination.FromString(self.store.cases[request_id].determination)
        return next(ln for ln in stored.lines if ln.line_number == number)

    def actions(self, task_id: str) -> list[tuple[str, str, str]]:
        return [(e.actor, e.action, e.detail) for _, tid, e in self.store.history if tid == task_id]


@pytest.fixture
def review(clocks: ClockEngine) -> Review:
    store = ReviewStore()
    clock = FixedClock(T0)
    evaluator = LibraryEvaluator(shipped_library(), PythonMatcher())

    def uow() -> FakeUnitOfWork:
        return FakeUnitOfWork(store)

    handlers = ReviewHandlers(uow, Topics("t"), evaluator, FakeDuplicateChecker(), clocks, clock=clock)
    workflow = ReviewWorkflow(uow, Topics("t"), lambda: evaluator, clocks, clock=clock)
    workflow.directory.seed([reviewer("rn-1"), reviewer("md-1", Role.PHYSICIAN), reviewer("sup-1", Role.SUPERVISOR),
                             reviewer("adj-1", Role.ADJUSTER)])
    return Review(store, clock, handlers, workflow)


def request(*lines: tuple[str, int], diagnoses: tuple[str, ...], facts: list[types_pb2.ClinicalFact],
            lob: types_pb2.LineOfBusiness.ValueType = MA, state: str = "CA",
            urgency: types_pb2.Urgency.ValueType = types_pb2.URGENCY_STANDARD,
            member: str = "T-MA-0001") -> intake_pb2.SubmitRequestRequest:
    start = types_pb2.Date(year=2027, month=3, day=1)
    return intake_pb2.SubmitRequestRequest(
        idempotency_key=f"k-{uuid.uuid4()}", member_id=member,
        coverage=types_pb2.Coverage(line_of_business=lob, member_state=state, plan_id="P-1"),
        requesting_provider=types_pb2.Provider(npi=VALID_NPI, name="Valley Spine"),
        servicing_provider=types_pb2.Provider(npi=OTHER_NPI, name="Coastal Imaging"),
        diagnoses=[types_pb2.Diagnosis(code=d, primary=i == 0) for i, d in enumerate(diagnoses)],
        service_lines=[types_pb2.ServiceLine(line_number=i + 1, procedure_code=code, units=units, start_date=start,
                                             place_of_service=OUTPATIENT) for i, (code, units) in enumerate(lines)],
        review_type=types_pb2.REVIEW_TYPE_PROSPECTIVE, urgency=urgency, clinical_facts=facts)


def cauda_equina(**kwargs: object) -> intake_pb2.SubmitRequestRequest:
    """Issue 13's request: a lumbar MRI and a decompression, G83.4, the referral's own words."""
    return request(("72148", 1), ("63047", 1), diagnoses=("M54.50", "G83.4"),
                   facts=[fact("urinary_retention", True), fact("saddle_anaesthesia", True)], **kwargs)  # type: ignore[arg-type]


def appendicitis(**kwargs: object) -> intake_pb2.SubmitRequestRequest:
    """A CT for appendicitis with peritonitis, pregnancy not yet excluded."""
    return request(("74177", 1), diagnoses=("R10.31", "K35.20"), facts=[], **kwargs)  # type: ignore[arg-type]


def test_the_issue_s_request_is_approved_at_once_and_its_other_line_is_expedited(review: Review) -> None:
    request_id = review.submit(cauda_equina())
    mri = review.line(request_id, 1)
    assert mri.outcome == types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT
    assert not mri.queued_for_review
    assert [d.description for d in mri.explanation.derived] == [
        "suspected cauda equina: derived from diagnosis G83.4, fact saddle_anaesthesia, fact urinary_retention"]
    case = review.store.cases[request_id]
    assert case.urgency == "expedited"
    assert case.due_at == T0 + dt.timedelta(hours=72)
    assert case.clock is not None
    assert "42 CFR 422.570(c)(2)(i)" in case.clock.rule
    assert "line 1: meets the urgent lumbar spine MRI criteria" in case.clock.rule
    [decompression] = review.tasks_of(request_id)  # no criteria set covers 63047: a nurse reviews it, expedited
    assert (decompression.line_number, decompression.urgency) == (2, "expedited")
    assert decompression.due_at == T0 + dt.timedelta(hours=72)
    assert decompression.urgency_reason.startswith("its request is expedited: line 1: meets the urgent lumbar spine")
    assert review.actions(decompression.task_id)[0][:2] == ("system", "expedited")
    assert any(r.startswith("expedited review: its request is expedited") for r in review.line(request_id, 2).reasons)


def test_a_red_flag_with_a_fact_missing_pends_the_line_expedited_at_the_head_of_the_queue(review: Review) -> None:
    routine = review.submit(request(("72148", 1), diagnoses=("M54.50",), facts=[], member="T-MA-0002"))
    urgent = review.submit(appendicitis())
    [task] = review.tasks_of(urgent)
    assert (task.outcome, task.urgency) == (Outcome.PEND_MISSING_INFORMATION, "expedited")
    assert task.due_at == T0 + dt.timedelta(hours=72)
    assert task.urgency_reason.startswith("a red flag of the urgent CT abdomen and pelvis")
    assert "peritoneal signs: derived from diagnosis K35.20" in task.urgency_reason
    queue, _, total = review.handlers.queue(10, "")
    assert total == 2
    assert [t.request_id for t in queue] == [urgent, routine]
    assert review.tasks_of(routine)[0].due_at == T0 + dt.timedelta(days=7)


def test_where_the_plan_may_not_expedite_the_clock_stays_and_the_task_leads_the_queue(review: Review) -> None:
    routine = review.submit(request(("72148", 1), diagnoses=("M54.50",), facts=[], lob=WORKERS_COMP, state="CA",
                                    member="T-WC-0004"))
    request_id = review.submit(cauda_equina(lob=WORKERS_COMP, state="CA", member="T-WC-0004"))
    assert review.line(request_id, 1).outcome == types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT
    [task] = review.tasks_of(request_id)
    assert task.urgency == "expedited"
    assert task.regime == "ca-lc-4610"
    assert review.store.cases[request_id].urgency == "standard"
    assert task.due_at == review.tasks_of(routine)[0].due_at > T0 + dt.timedelta(hours=72)  # the regime's 5 days
    assert "the ca-lc-4610 clock stays (8 CCR 9792.9.1(c)(4)" in task.urgency_reason
    queue, _, _ = review.handlers.queue(10, "")
    assert [t.request_id for t in queue] == [request_id, routine]


def test_a_nurse_expedites_a_task_and_the_request_s_clock_and_other_tasks_follow(review: Review) -> None:
    request_id = review.submit(request(("72148", 1), ("63047", 1), diagnoses=("M54.50",), facts=[],
                                       lob=COMMERCIAL, state="NY", member="T-COM-0003"))
    first, second = review.tasks_of(request_id)
    assert first.due_at == T0 + dt.timedelta(days=15)
    review.clock.advance(dt.timedelta(hours=2))
    view = review.workflow.urgency.set_urgency("rn-1", first.task_id, "expedited", "the member called: new numbness")
    assert view.task.urgency == "expedited"
    assert view.task.due_at == T0 + dt.timedelta(hours=72)
    assert view.history[-1].action == "urgency_changed"
    assert "clock restarts as expedited" in view.history[-1].detail
    case = review.store.cases[request_id]
    assert case.urgency == "expedited"
    assert case.clock is not None
    assert "by rn-1: the member called" in case.clock.rule
    other = review.store.tasks[second.task_id]
    assert (other.urgency, other.due_at) == ("expedited", T0 + dt.timedelta(hours=72))
    assert review.actions(other.task_id)[-1][:2] == ("system", "urgency_changed")
    # and back, by a supervisor: the clock follows again
    view = review.workflow.urgency.set_urgency("sup-1", first.task_id, "standard", "reviewed: stable")
    assert view.task.urgency == "standard"
    assert view.task.due_at == T0 + dt.timedelta(days=15)


def test_urgency_change_refusals_write_nothing(review: Review) -> None:
    asked = review.submit(appendicitis(urgency=types_pb2.URGENCY_EXPEDITED))
    [task] = review.tasks_of(asked)
    before = len(review.store.history)
    with pytest.raises(FailedPrecondition, match="the provider asked for an expedited review"):
        review.workflow.urgency.set_urgency("md-1", task.task_id, "standard", "not urgent")
    with pytest.raises(PermissionDenied, match="adjuster"):
        review.workflow.urgency.set_urgency("adj-1", task.task_id, "standard", "not urgent")
    with pytest.raises(ValidationFailed):
        review.workflow.urgency.set_urgency("rn-1", task.task_id, "expedited", "")
    assert len(review.store.history) == before
    assert review.store.tasks[task.task_id].urgency == "expedited"


def information(request_id: str, *facts: types_pb2.ClinicalFact) -> IncomingEvent:
    message = events_pb2.AdditionalInformationReceived(request_id=request_id, information_id=str(uuid.uuid4()),
                                                       clinical_facts=list(facts))
    return IncomingEvent(event_id=str(uuid.uuid4()), event_type="AdditionalInformationReceived", schema_version="1",
                         key=request_id, message=message, topic="t", partition=0, offset=0)


def test_information_that_raises_a_red_flag_expedites_the_task_in_the_queue(review: Review) -> None:
    request_id = review.submit(request(("74177", 1), diagnoses=("R10.31",),
                                       facts=[fact("suspected_appendicitis", True)], lob=COMMERCIAL, state="NY",
                                       member="T-COM-0003"))
    [task] = review.tasks_of(request_id)
    assert (task.outcome, task.urgency) == (Outcome.PEND_MISSING_INFORMATION, "standard")
    review.workflow.information.handle_batch([information(request_id, fact("peritoneal_signs", True))])
    after = review.store.tasks[task.task_id]
    assert (after.status.value, after.urgency) == ("open", "expedited")
    assert after.urgency_reason.startswith("after the information received, a red flag of the urgent CT abdomen")
    assert review.actions(task.task_id)[-1][:2] == ("system", "urgency_changed")
    review.workflow.information.handle_batch([information(request_id, fact("pregnancy_possible", False))])
    assert review.store.tasks[task.task_id].status.value == "decided"  # urgent and met: approved at once
