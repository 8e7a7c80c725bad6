"""A reviewer's decision on a task. One transaction writes the task's new state and its audit
entry, the provider's gold-card record (a person's last word), the case's regulatory clock (a
request for information may stop it), the stored determination of the case (the decided line
replaced) and a DeterminationMade event for the decided line through the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.clock import Clock
from services.common.errors import NotFound
from services.common.topics import Topics
from services.review.domain import workflow as wf
from services.review.domain.deadlines import ClockEngine
from services.review.domain.task import DecisionInput
from services.review.service_layer.clocks import follow_clock
from services.review.service_layer.determinations import announce_line, decided_line, line_of
from services.review.service_layer.ports import DecisionMetrics, LineDecided, UnitOfWork
from services.review.service_layer.preamble import identify, load_task, use_case
from services.review.service_layer.submitted import service_line
from services.review.service_layer.views import TaskView, task_view

logger = logging.getLogger(__name__)


class Decisions:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, clocks: ClockEngine, *,
                 clock: Clock, at_risk_fraction: float = 0.2, metrics: DecisionMetrics | None = None) -> None:
        self._uow = uow_factory
        self._metrics = metrics
        self._topics = topics
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction

    @use_case
    def decide(self, principal: str, task_id: str, d: DecisionInput) -> tuple[TaskView, types_pb2.Determination]:
        """Returns the task as decided and the determination announced for its line."""
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal)
            task = load_task(uow, task_id)
            try:
                task.decide(me, d, now)
            except wf.NotPermitted:
                logger.warning("refused %s by %s (%s) on task %s", d.decision.value, me.reviewer_id, me.role.value,
                               task_id)
                raise
            case = uow.cases.get(task.request_id, for_update=True)
            if case is None:
                raise NotFound(f"task {task_id} refers to a missing case")
            request = events_pb2.RequestSubmitted.FromString(case.request)
            determination = types_pb2.Determination.FromString(case.determination)
            stored_line = line_of(determination, task.line_number)
            if stored_line is None:
                raise NotFound(f"the determination of request {task.request_id} has no line {task.line_number}")
            line = decided_line(stored_line, service_line(request, task.line_number), me, d, task, now)
            uow.tasks.save(task)
            if d.decision in wf.FINAL:
                # The gold-card record counts a person's final word; only approval in full is approval.
                uow.provider_outcomes.update_outcome(task.request_id, task.line_number,
                                                     approved=d.decision is wf.Decision.APPROVE,
                                                     decided_by=me.reviewer_id, decided_at=now)
            if d.decision is wf.Decision.REQUEST_INFORMATION and case.clock is not None \
                    and case.clock.paused_at is None:
                follow_clock(uow, case, determination, self._clocks.pend(case.clock, now), self._at_risk, now)
            out = announce_line(uow, self._topics.determination_made, case, request, determination, line, now)
            uow.commit()
            if self._metrics is not None:
                self._metrics.decided([LineDecided(me.role.value, wf.ACTION_OF[d.decision], case.regime,
                                                   case.urgency, case.received_at, now)])
            view = task_view(uow, load_task(uow, task_id), me)
        logger.info("task %s: %s by %s (%s)", task_id, d.decision.value, me.reviewer_id, me.role.value)
        return view, out
