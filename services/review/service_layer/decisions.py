"""A reviewer's decision on a task. One transaction writes the task's new state and its audit
entry, the provider's gold-card record (a person's last word), the case's regulatory clock (a
request for information may stop it), the stored determination of the case (the decided line
replaced), a DeterminationMade event for the decided line through the outbox, and the notices of
the decision to the member (or injured worker) and the provider.

An adverse line carries the appeal rights of its regime (the last day to file is counted from the
notice's date). A decision on an appeal's task decides the appeal: approving overturns the decision
appealed, approving in part or modifying overturns it in part, denying upholds it (and, where the
regime says so, the case goes on by itself: Medicare Advantage to the independent review entity)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit import actor as actors
from services.common.clock import Clock
from services.common.errors import NotFound
from services.common.topics import Topics
from services.review.domain import workflow as wf
from services.review.domain.appeals import Appeal, AppealOutcome
from services.review.domain.case import Case
from services.review.domain.deadlines import ClockEngine
from services.review.domain.notices import AppealDecision
from services.review.domain.task import DecisionInput
from services.review.service_layer.auditing import appeal_record, save_task
from services.review.service_layer.clocks import follow_clock
from services.review.service_layer.determinations import announce_line, decided_line, line_of
from services.review.service_layer.notices import NoticeWriter, appeal_rights_proto
from services.review.service_layer.ports import DecisionMetrics, LineDecided, UnitOfWork
from services.review.service_layer.preamble import identify, load_task, use_case
from services.review.service_layer.submitted import service_line
from services.review.service_layer.views import TaskView, task_view

logger = logging.getLogger(__name__)


class Decisions:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, clocks: ClockEngine, *,
                 clock: Clock, at_risk_fraction: float = 0.2, notices: NoticeWriter | None = None,
                 metrics: DecisionMetrics | None = None) -> None:
        """``notices``: who writes the notices of decisions (None: none are written, as in tests that
        look elsewhere); ``metrics``: where decisions are counted (None: nowhere)."""
        self._uow = uow_factory
        self._metrics = metrics
        self._topics = topics
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction
        self._notices = notices

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
            appeal = self._decide_appeal(uow, case, task.appeal_id, me, d, now) if task.is_appeal else None
            if appeal is not None:
                line.decided_by.role = "appeal_reviewer"
                line.appeal.CopyFrom(types_pb2.AppealOutcome(
                    appeal_id=appeal.appeal_id, outcome=appeal.outcome.value if appeal.outcome else "",
                    forwarded=bool(appeal.forwarded_to), forwarded_to=appeal.forwarded_to,
                    next_level=self._notices.right_for(case).next_level if self._notices is not None else ""))
            elif d.decision in wf.ADVERSE and self._notices is not None:
                line.appeal_rights.CopyFrom(appeal_rights_proto(self._notices.right_for(case), now.date()))
            save_task(uow, task)
            if appeal is not None:
                uow.audit(appeal_record("appeal.decided", appeal, actor=actors.reviewer(me.reviewer_id)))
            if d.decision in wf.FINAL and appeal is None:
                # The gold-card record counts a person's final word; only approval in full is approval.
                uow.provider_outcomes.update_outcome(task.request_id, task.line_number,
                                                     approved=d.decision is wf.Decision.APPROVE,
                                                     decided_by=me.reviewer_id, decided_at=now)
            if d.decision is wf.Decision.REQUEST_INFORMATION and case.clock is not None \
                    and case.clock.paused_at is None:
                follow_clock(uow, case, determination, self._clocks.pend(case.clock, now), self._at_risk, now)
            out = announce_line(uow, self._topics.determination_made, case, request, determination, line, now)
            if self._notices is not None:
                decided = (None if appeal is None else
                           AppealDecision(appeal.appeal_id, appeal.outcome.value if appeal.outcome else "",
                                          appeal.forwarded_to))
                self._notices.for_lines(uow, case, request, out.determination_id, [line], now, appeal=decided)
            uow.commit()
            if self._metrics is not None:
                self._metrics.decided([LineDecided(me.role.value, wf.ACTION_OF[d.decision], case.regime,
                                                   case.urgency, case.received_at, now)])
            view = task_view(uow, load_task(uow, task_id), me)
        logger.info("task %s: %s by %s (%s)", task_id, d.decision.value, me.reviewer_id, me.role.value)
        return view, out

    def _decide_appeal(self, uow: UnitOfWork, case: Case, appeal_id: str, me: wf.Reviewer, d: DecisionInput,
                       now: dt.datetime) -> Appeal:
        """The appeal the task decides, decided: overturned, overturned in part or upheld."""
        appeal = uow.appeals.get(appeal_id)
        if appeal is None:
            raise NotFound(f"the task's appeal {appeal_id} is missing")
        outcome = _OUTCOME_OF.get(d.decision)
        if outcome is None:
            raise wf.Conflict("an appeal is decided: approve (overturn), approve in part or modify (overturn in "
                              "part), or deny (uphold)")
        forwards = self._notices.right_for(case).forwards_upheld_to if self._notices is not None else ""
        try:
            appeal.decide(outcome, me.reviewer_id, now, forwards)
        except ValueError as exc:
            raise wf.Conflict(str(exc)) from exc
        uow.appeals.save(appeal)
        if appeal.forwarded_to:
            logger.info("appeal %s upheld: forwarded to %s", appeal.appeal_id, appeal.forwarded_to)
        return appeal


_OUTCOME_OF = {wf.Decision.APPROVE: AppealOutcome.OVERTURNED,
               wf.Decision.APPROVE_PARTIAL: AppealOutcome.PARTIALLY_OVERTURNED,
               wf.Decision.MODIFY: AppealOutcome.PARTIALLY_OVERTURNED, wf.Decision.DENY: AppealOutcome.UPHELD}
