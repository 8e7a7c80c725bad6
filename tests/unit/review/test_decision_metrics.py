"""Review counts every line it decides once its decision is committed, by who decided and the outcome,
and times final decisions from receipt by regime and urgency (adapters/metrics.py); a refused
decision counts nothing. On the in-memory fakes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from ur.common.v1 import types_pb2

from services.common.errors import PermissionDenied
from services.common.metrics import Metrics
from services.common.topics import Topics
from services.review.adapters.metrics import PrometheusDecisions
from services.review.domain.deadlines import ClockEngine
from services.review.domain.task import DecisionInput
from services.review.domain.workflow import Decision, Role
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.ports import LineDecided
from services.review.service_layer.workflow import ReviewWorkflow
from tests.fakes.review import (
    FakeDuplicateChecker,
    FakeEvaluator,
    FakeUnitOfWork,
    FixedClock,
    RecordingDecisionMetrics,
    ReviewStore,
)
from tests.unit.review.test_workflow_use_cases import DENY, LEASE, T0, Review, clocks, pend, reviewer

__all__ = ["clocks"]  # the fixture, imported for pytest


class Both(RecordingDecisionMetrics):
    """Keeps what it is told and passes it to the Prometheus adapter."""

    def __init__(self, prometheus: PrometheusDecisions) -> None:
        super().__init__()
        self.prometheus = prometheus

    def decided(self, lines: Sequence[LineDecided]) -> None:
        super().decided(lines)
        self.prometheus.decided(lines)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(process_collectors=False)


@pytest.fixture
def counted(metrics: Metrics) -> Both:
    return Both(PrometheusDecisions(metrics))


@pytest.fixture
def review(clocks: ClockEngine, counted: Both) -> Review:
    store = ReviewStore()
    clock = FixedClock(T0)
    evaluator = FakeEvaluator()

    def uow() -> FakeUnitOfWork:
        return FakeUnitOfWork(store)

    handlers = ReviewHandlers(uow, Topics("t"), evaluator, FakeDuplicateChecker(), clocks, clock=clock,
                              metrics=counted)
    workflow = ReviewWorkflow(uow, Topics("t"), lambda: evaluator, clocks, lease_s=LEASE.total_seconds(),
                              clock=clock, metrics=counted)
    workflow.directory.seed([reviewer("rn-1"), reviewer("md-1", Role.PHYSICIAN)])
    return Review(store, clock, handlers, workflow)


def decisions(metrics: Metrics, decider: str, outcome: str) -> float:
    return metrics.value("ur_review_decisions_total", {"decider": decider, "outcome": outcome}) or 0.0


def test_software_decisions_are_counted_and_its_approvals_timed(review: Review, counted: Both,
                                                                metrics: Metrics) -> None:
    review.submit(meets=True)
    review.submit(meets=False)
    assert [(d.decider, d.outcome) for d in counted.lines] == [
        ("software", "certified_in_total"), ("software", "pended")]
    regime = counted.lines[0].regime
    assert regime
    assert decisions(metrics, "software", "certified_in_total") == 1
    assert decisions(metrics, "software", "pended") == 1
    # Only the approval is a final decision: one observation, at once (the clock did not move).
    assert metrics.value("ur_review_time_to_decision_seconds_count", {"regime": regime, "urgency": "standard"}) == 1
    assert metrics.value("ur_review_time_to_decision_seconds_sum", {"regime": regime, "urgency": "standard"}) == 0


def test_people_decisions_are_counted_by_role_and_timed_from_receipt(review: Review, counted: Both,
                                                                     metrics: Metrics) -> None:
    request_id = review.submit(meets=False)
    task_id = review.task_of(request_id).task_id
    review.clock.advance(dt.timedelta(hours=2))
    review.workflow.queue.claim_next("rn-1")
    with pytest.raises(PermissionDenied):
        review.workflow.decisions.decide("rn-1", task_id, DENY)  # refused: nothing counted
    review.workflow.decisions.decide("rn-1", task_id, DecisionInput(Decision.REFER_TO_PHYSICIAN, note="borderline"))
    review.clock.advance(dt.timedelta(hours=1))
    review.workflow.queue.claim_next("md-1")
    review.workflow.decisions.decide("md-1", task_id, DENY)
    assert [(d.decider, d.outcome) for d in counted.lines] == [
        ("software", "pended"), ("nurse", "pended"), ("physician", "not_certified")]
    assert decisions(metrics, "physician", "not_certified") == 1
    regime, urgency = counted.lines[-1].regime, counted.lines[-1].urgency
    assert metrics.value("ur_review_time_to_decision_seconds_sum", {"regime": regime, "urgency": urgency}) == 3 * 3600


def test_a_line_approved_by_software_after_information_is_counted_again(review: Review, counted: Both) -> None:
    request_id = review.submit(meets=False)
    pend(review, request_id)
    event = review.information(request_id, symptom_duration_weeks=9, conservative_therapy_weeks=7)
    review.workflow.information.handle_batch([event])
    review.workflow.information.handle_batch([event])  # a redelivery decides nothing again
    assert [(d.decider, d.outcome) for d in counted.lines] == [
        ("software", "pended"), ("nurse", "pended"), ("software", "certified_in_total")]
    assert review.determinations()[-1].lines[0].action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
