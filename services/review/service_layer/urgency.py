"""A person changes a task's urgency: the task's place in the queue at once, and the request's
regulatory clock where the regime lets the plan expedite on its own judgment and the clock has not
moved since it started (services/review/domain/urgency.py); the request's other open tasks then
follow the clock. One transaction writes the task, its history, the case's clock and determination."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.clock import Clock
from services.common.errors import FailedPrecondition, NotFound
from services.common.proto_enums import to_name
from services.review.domain import workflow as wf
from services.review.domain.case import Case
from services.review.domain.deadlines import ClockEngine, ClockError
from services.review.domain.task import Task
from services.review.domain.urgency import EXPEDITED, person_clock_change
from services.review.service_layer.auditing import save_task
from services.review.service_layer.clocks import follow_clock
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import identify, load_task, use_case
from services.review.service_layer.submitted import clock_request
from services.review.service_layer.views import TaskView, task_view

URGENCY = types_pb2.Urgency


class TaskUrgency:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clocks: ClockEngine, *, clock: Clock,
                 at_risk_fraction: float = 0.2) -> None:
        self._uow = uow_factory
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction

    @use_case
    def set_urgency(self, principal: str, task_id: str, urgency: str, reason: str) -> TaskView:
        """Give the task ``urgency`` for ``reason`` (nurse, physician or supervisor); see the module
        docstring for what happens to the request's clock."""
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal, may=wf.Action.SET_URGENCY)
            task = load_task(uow, task_id)
            case = uow.cases.get(task.request_id, for_update=True)
            if case is None:
                raise NotFound(f"task {task_id} refers to a missing case")
            request = events_pb2.RequestSubmitted.FromString(case.request)
            asked = to_name(URGENCY, request.urgency) or "standard"
            restart, note = person_clock_change(case.regime, case.review_type, case.clock, asked, urgency)
            task.set_urgency(me, urgency, reason, now, note)
            save_task(uow, task)
            if restart:
                self._restart_clock(uow, case, request, task, urgency, f"{me.reviewer_id}: {reason.strip()}", now)
            view = task_view(uow, load_task(uow, task_id), me)
            uow.commit()  # the view is read in the same transaction: no second one
            return view

    def _restart_clock(self, uow: UnitOfWork, case: Case, request: events_pb2.RequestSubmitted, changed: Task,
                       urgency: str, why: str, now: dt.datetime) -> None:
        """The request's clock starts again from its receipt on ``urgency``; the case, its
        determination and its undecided tasks follow it."""
        because = f"expedited on the plan's own determination by {why}" if urgency == EXPEDITED else ""
        try:
            clock = self._clocks.start(clock_request(request, case.line_of_business, urgency, case.review_type,
                                                     because))
        except ClockError as exc:
            raise FailedPrecondition(f"the request's clock cannot restart: {exc}") from exc
        determination = types_pb2.Determination.FromString(case.determination)
        follow_clock(uow, case, determination, clock, self._at_risk, now)
        case.urgency = urgency
        case.determination = determination.SerializeToString()
        uow.cases.save(case)
        follows = f"its request's clock is {urgency} since task {changed.task_id} was changed by {why}"
        for other in uow.tasks.of_request(case.request_id):
            if other.task_id != changed.task_id and other.follow_urgency(urgency, follows, now):
                save_task(uow, other)
