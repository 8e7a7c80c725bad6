"""The reviewer workflow on real databases: claims under a race never double-assign (PostgreSQL and
SQLite), leases expire, a nurse cannot deny while a physician can (and is named), information pends
and reopens, and the monitor escalates and records missed deadlines."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.clock import ensure_utc
from services.common.errors import FailedPrecondition, NotFound, PermissionDenied, ResourceExhausted
from services.common.events import IncomingEvent
from services.common.settings import ReviewSettings
from services.review import bootstrap
from services.review.adapters import tables
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import load_library
from services.review.bootstrap import DEFAULT_CRITERIA_DIR
from services.review.domain.criteria import PythonMatcher
from services.review.domain.task import DecisionInput
from services.review.domain.workflow import Decision, Reviewer, Role
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.workflow import ReviewWorkflow
from tests.factories import fact, lumbar_mri, submitted_event
from tests.fakes.review import NoDuplicates

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ALL_LOBS = frozenset({"medicare_advantage", "medicaid", "commercial", "workers_comp"})


@dataclass
class Review:
    engine: Engine
    handlers: ReviewHandlers
    workflow: ReviewWorkflow
    now: list[dt.datetime]

    def submit(self, *, meets: bool = False,
               lob: types_pb2.LineOfBusiness.ValueType = types_pb2.LINE_OF_BUSINESS_COMMERCIAL,
               state: str = "TX", missing: bool = False,
               urgency: types_pb2.Urgency.ValueType = types_pb2.URGENCY_STANDARD,
               received_at: dt.datetime | None = None) -> str:
        """Review consumes the request at ``now``; intake received it at ``received_at`` (default: now)."""
        req = lumbar_mri(meets=meets, lob=lob, state=state, missing_facts=missing, urgency=urgency)
        request_id = str(uuid.uuid4())
        self.handlers.handle_batch([submitted_event(req, request_id, received_at or self.now[0])])
        return request_id

    def task_of(self, request_id: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(select(tables.review_tasks.c.task_id)
                                    .where(tables.review_tasks.c.request_id == request_id)).scalar_one())

    def outbox(self) -> list[events_pb2.DeterminationMade]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.outbox.c.payload, tables.outbox.c.event_type)
                                .order_by(tables.outbox.c.id)).all()
        return [events_pb2.DeterminationMade.FromString(r.payload) for r in rows
                if r.event_type.endswith("DeterminationMade")]

    def alerts(self) -> list[events_pb2.ReviewAlert]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.outbox.c.payload, tables.outbox.c.event_type)).all()
        return [events_pb2.ReviewAlert.FromString(r.payload) for r in rows if r.event_type.endswith("ReviewAlert")]


def reviewer(rid: str, role: Role = Role.NURSE, states: tuple[str, ...] = ("TX",), capacity: int = 10,
             specialties: tuple[str, ...] = ("advanced_imaging", "general")) -> Reviewer:
    return Reviewer(rid, f"Reviewer {rid}", role, frozenset(specialties), frozenset(states), ALL_LOBS, capacity,
                    "MD" if role is Role.PHYSICIAN else "RN")


def build(url: str, at_risk_fraction: float = 0.2) -> Review:
    """The review service as bootstrap wires it (not started), on a pinned clock, with no
    authorizations on file and the shipped criteria evaluated in Python."""
    now = [T0]
    app = bootstrap.build(ReviewSettings(database_url=url, at_risk_fraction=at_risk_fraction, lease_s=600.0),
                          clock=lambda: now[0], duplicates=NoDuplicates(),
                          evaluator=LibraryEvaluator(load_library(DEFAULT_CRITERIA_DIR), PythonMatcher()))
    app.workflow.directory.seed([reviewer("rn-1"), reviewer("rn-2"), reviewer("md-1", Role.PHYSICIAN),
                       reviewer("sup-1", Role.SUPERVISOR, specialties=())])
    return Review(app.runtime.engine, app.handlers, app.workflow, now)


@pytest.fixture
def review(make_database: Callable[[str], str]) -> Iterator[Review]:
    r = build(make_database("review"))
    yield r
    r.engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_many_reviewers_claiming_at_once_never_share_a_task(backend: str, make_database: Callable[[str], str],
                                                             tmp_path: Path) -> None:
    url = make_database("race") if backend == "postgresql" else f"sqlite:///{tmp_path / 'race.db'}"
    r = build(url)
    nurses = [reviewer(f"rn-race-{i}", capacity=4) for i in range(12)]
    r.workflow.directory.seed(nurses)
    for _ in range(30):
        r.submit()
    claimed: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(nurses))

    def work(nurse: Reviewer) -> None:
        start.wait()
        while True:
            try:
                view = r.workflow.queue.claim_next(nurse.reviewer_id)
            except (NotFound, ResourceExhausted):
                return
            except BaseException as exc:  # noqa: BLE001 - a failure in a thread must fail the test
                errors.append(exc)
                return
            claimed.append((view.task.task_id, nurse.reviewer_id))

    threads = [threading.Thread(target=work, args=(n,)) for n in nurses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    per_task = Counter(task for task, _ in claimed)
    assert len(claimed) == 30
    assert max(per_task.values()) == 1
    assert max(Counter(who for _, who in claimed).values()) <= 4  # capacity respected
    with r.engine.connect() as conn:
        rows = conn.execute(select(tables.review_tasks.c.task_id, tables.review_tasks.c.assigned_to)).all()
    holders = {task_id: assigned_to for task_id, assigned_to in rows}
    assert holders == dict(claimed)
    r.engine.dispose()


def test_an_expired_lease_returns_the_task_to_the_queue(review: Review) -> None:
    task_id = review.task_of(review.submit())
    assert review.workflow.queue.claim_next("rn-1").task.task_id == task_id
    with pytest.raises(NotFound):
        review.workflow.queue.claim_next("rn-2")
    review.now[0] = T0 + dt.timedelta(minutes=11)
    assert review.workflow.monitor.run()["leases_expired"] == 1
    view = review.workflow.queue.claim_next("rn-2")
    assert view.task.task_id == task_id
    assert view.task.assigned_to == "rn-2"
    with pytest.raises(FailedPrecondition, match="held by another reviewer"):
        review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.APPROVE))
    assert [h.action for h in view.history] == ["claimed", "lease_expired", "claimed"]


def test_a_nurse_cannot_deny_a_physician_can_and_is_named(review: Review) -> None:
    request_id = review.submit()
    task_id = review.task_of(request_id)
    review.workflow.queue.claim_next("rn-1")
    before = len(review.outbox())
    for decision in (Decision.DENY, Decision.MODIFY, Decision.APPROVE_PARTIAL):
        with pytest.raises(PermissionDenied, match="only a physician"):
            review.workflow.decisions.decide("rn-1", task_id, DecisionInput(decision, reason="r", criterion="c",
                                                                  approved_units=1))
    assert len(review.outbox()) == before  # nothing written
    review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.REFER_TO_PHYSICIAN, note="borderline"))
    with pytest.raises(NotFound):
        review.workflow.queue.claim_next("rn-2")  # a physician's task now
    assert review.workflow.queue.claim_next("md-1").task.task_id == task_id
    review.workflow.peer_to_peer.record("md-1", task_id, "offered", None, "Dr. Requester", "call offered")
    view, determination = review.workflow.decisions.decide(
        "md-1", task_id, DecisionInput(Decision.DENY, reason="MRI is not indicated before six weeks of "
                                       "conservative therapy without red flags",
                                       criterion="imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks"))
    line = determination.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED
    assert line.decided_by.id == "md-1"
    assert line.decided_by.role == "physician"
    assert line.decided_by.credential == "MD, licensed in TX"
    assert line.criterion.endswith("conservative_therapy_six_weeks")
    assert line.explanation.criteria_id == "imaging-mri-lumbar-spine"  # the criteria explanation travels on
    assert review.outbox()[-1].determination.lines[0].action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED
    assert [h.action for h in view.history] == ["claimed", "refer_to_physician", "claimed",
                                                "peer_to_peer_offered", "deny"]
    assert view.task.status == "decided"


def test_information_requested_then_received_reopens_or_approves(review: Review) -> None:
    request_id = review.submit()  # two weeks of symptoms: refer to nurse
    task_id = review.task_of(request_id)
    review.workflow.queue.claim_next("rn-1")
    view, det = review.workflow.decisions.decide("rn-1", task_id, DecisionInput(
        Decision.REQUEST_INFORMATION, facts=("conservative_therapy_weeks", "symptom_duration_weeks")))
    assert view.task.status == "pended_information"
    assert det.lines[0].action_code == types_pb2.ACTION_CODE_PENDED
    assert list(det.lines[0].requested_facts) == ["conservative_therapy_weeks", "symptom_duration_weeks"]
    info = events_pb2.AdditionalInformationReceived(
        request_id=request_id, information_id=str(uuid.uuid4()),
        clinical_facts=[fact("symptom_duration_weeks", 9, "weeks"), fact("conservative_therapy_weeks", 7, "weeks")])
    event = IncomingEvent(event_id=str(uuid.uuid4()), event_type="AdditionalInformationReceived", message=info,
                          schema_version="1", key=request_id,
                          topic="t", partition=0, offset=0)
    review.workflow.information.handle_batch([event])
    review.workflow.information.handle_batch([event])  # redelivery is harmless
    with review.engine.connect() as conn:
        status = conn.execute(select(tables.review_tasks.c.status)).scalar_one()
    assert status == "decided"
    approvals = [d for d in review.outbox() if d.determination.lines[0].action_code
                 == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL]
    assert len(approvals) == 1
    assert approvals[0].determination.lines[0].approved_units == 1


def test_the_monitor_escalates_then_records_a_missed_medicaid_deadline(review: Review) -> None:
    request_id = review.submit(lob=types_pb2.LINE_OF_BUSINESS_MEDICAID, state="OH")
    with review.engine.connect() as conn:
        due = conn.execute(select(tables.review_tasks.c.due_at)).scalar_one()
    due = due if due.tzinfo else due.replace(tzinfo=dt.UTC)
    review.now[0] = due - (due - T0) * 0.1
    assert review.workflow.monitor.run()["unassigned_alerts"] == 1
    assert review.workflow.monitor.run()["escalated"] == 0  # once
    review.now[0] = due + dt.timedelta(minutes=1)
    assert review.workflow.monitor.run()["missed"] == 1
    kinds = [a.kind for a in review.alerts()]
    assert kinds == [events_pb2.ReviewAlert.KIND_UNASSIGNED_NEAR_DEADLINE, events_pb2.ReviewAlert.KIND_DEADLINE_MISSED]
    missed = review.alerts()[-1]
    assert missed.deemed_denial
    assert missed.request_id == request_id
    assert "438.404" in missed.message
    with review.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.review_tasks)
                            .where(tables.review_tasks.c.deemed_denial.is_(True))).scalar_one() == 1


@pytest.mark.parametrize(("fraction", "first_pass_after"), [(0.2, dt.timedelta(days=1)), (0.3, dt.timedelta(0))])
def test_a_task_created_five_days_after_receipt_is_at_risk_on_the_monitors_first_pass(
        make_database: Callable[[str], str], fraction: float, first_pass_after: dt.timedelta) -> None:
    """A Kafka backlog, a restart or a replay: the request was received five days before review
    created its task (7-day Medicare Advantage clock). At risk is measured over the regulatory clock,
    so the monitor's first look flags it; measured from the task's creation it would wait for days."""
    r = build(make_database("late"), at_risk_fraction=fraction)
    try:
        received = T0 - dt.timedelta(days=5)
        request_id = r.submit(lob=types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, state="OH", received_at=received)
        with r.engine.connect() as conn:
            task = conn.execute(select(tables.review_tasks)).one()
        assert ensure_utc(task.created_at) == T0  # the injected clock, not the machine's
        assert ensure_utc(task.due_at) == received + dt.timedelta(days=7)
        r.now[0] = T0 + first_pass_after
        assert r.workflow.monitor.run()["unassigned_alerts"] == 1
        alert = r.alerts()[-1]
        assert alert.request_id == request_id
        assert alert.kind == events_pb2.ReviewAlert.KIND_UNASSIGNED_NEAR_DEADLINE
    finally:
        r.engine.dispose()


def test_an_erisa_request_for_information_tolls_the_clock_until_the_answer(review: Review) -> None:
    request_id = review.submit(lob=types_pb2.LINE_OF_BUSINESS_COMMERCIAL)
    task_id = review.task_of(request_id)
    with review.engine.connect() as conn:
        first_due = conn.execute(select(tables.review_tasks.c.due_at)).scalar_one()
    first_due = first_due if first_due.tzinfo else first_due.replace(tzinfo=dt.UTC)
    assert first_due == T0 + dt.timedelta(days=15)
    review.now[0] = T0 + dt.timedelta(days=5)
    review.workflow.queue.claim_next("rn-1")
    view, _ = review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.REQUEST_INFORMATION,
                                                                     facts=("conservative_therapy_weeks",)))
    assert view.task.clock_paused
    assert "tolled" in view.task.clock_rule
    review.now[0] = T0 + dt.timedelta(days=40)  # long past the original deadline: still not missed
    assert review.workflow.monitor.run()["missed"] == 0
    info = events_pb2.AdditionalInformationReceived(request_id=request_id, information_id=str(uuid.uuid4()),
                                                    clinical_facts=[fact("conservative_therapy_weeks", 3, "weeks")])
    review.workflow.information.handle_batch([IncomingEvent(event_id=str(uuid.uuid4()), event_type="x",
                                                      schema_version="1", key=request_id, message=info, topic="t",
                                                      partition=0, offset=0)])
    task = review.workflow.queue.get_task("rn-1", task_id).task
    due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=dt.UTC)
    assert not task.clock_paused
    assert task.status == "open"
    assert due == T0 + dt.timedelta(days=40) + dt.timedelta(days=10)  # the 10 days left when it stopped
    assert "resumes" in task.clock_rule


def test_deadline_extensions_follow_the_regime(review: Review) -> None:
    ma = review.task_of(review.submit(lob=types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE))
    with pytest.raises(FailedPrecondition, match="written notice"):
        review.workflow.deadlines.extend_deadline("rn-1", ma, "enrollee_request", notice_sent=False)
    view = review.workflow.deadlines.extend_deadline("rn-1", ma, "enrollee_request", notice_sent=True)
    due = view.task.due_at if view.task.due_at.tzinfo else view.task.due_at.replace(tzinfo=dt.UTC)
    assert due == T0 + dt.timedelta(days=21)
    assert view.history[-1].action == "deadline_extended"
    with pytest.raises(FailedPrecondition, match="one extension"):
        review.workflow.deadlines.extend_deadline("rn-1", ma, "enrollee_request", notice_sent=True)
    wc = review.task_of(review.submit(lob=types_pb2.LINE_OF_BUSINESS_WORKERS_COMP, state="TX"))
    with pytest.raises(FailedPrecondition, match="allows no extension"):
        review.workflow.deadlines.extend_deadline("rn-1", wc, "enrollee_request", notice_sent=True)


OUTCOMES = tables.provider_line_outcomes


def test_a_reviewers_decision_updates_the_gold_card_record(review: Review) -> None:
    request_id = review.submit()
    task_id = review.task_of(request_id)
    with review.engine.connect() as conn:
        before = conn.execute(select(OUTCOMES.c.approved, OUTCOMES.c.decided_by)).one()
    assert before.approved is False or before.approved == 0
    review.workflow.queue.claim_next("rn-1")
    review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.APPROVE, note="notes document therapy"))
    with review.engine.connect() as conn:
        after = conn.execute(select(OUTCOMES.c.approved, OUTCOMES.c.decided_by)).one()
    assert bool(after.approved)
    assert after.decided_by == "rn-1"
