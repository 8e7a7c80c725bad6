"""A case's regulatory clock as it changes (pended for information, resumed, extended): the case,
its undecided tasks and its determination follow it; and the deadline extensions reviewers ask for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord
from services.common.clock import Clock
from services.common.errors import FailedPrecondition
from services.review.domain import workflow as wf
from services.review.domain.case import Case
from services.review.domain.deadlines import ClockEngine, ClockError, ClockState, ExtensionRefused
from services.review.domain.notices import NoticeKind, ServiceAction, ServiceDecision
from services.review.service_layer.auditing import save_task
from services.review.service_layer.determinations import set_clock
from services.review.service_layer.notices import NoticeWriter
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import identify, load_task, use_case
from services.review.service_layer.views import TaskView, task_view


def follow_clock(uow: UnitOfWork, case: Case, determination: types_pb2.Determination, clock: ClockState,
                 at_risk_fraction: float, now: dt.datetime, *, event_id: str = "") -> None:
    """Store the case's new clock and carry its deadline to the case, its undecided tasks (saved,
    each a compare-and-set) and the determination's clock reference (the caller stores it);
    ``event_id``: the consumed event that moved it, if one did."""
    case.follow_clock(clock)
    uow.cases.save(case)
    set_clock(determination, clock)
    for task in uow.tasks.of_request(case.request_id):
        if task.undecided and not task.is_appeal:  # an appeal runs on its own clock
            task.follow_clock(clock, at_risk_fraction, now)
            save_task(uow, task, event_id=event_id)


class DeadlineExtensions:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clocks: ClockEngine, *, clock: Clock,
                 at_risk_fraction: float = 0.2, notices: NoticeWriter | None = None) -> None:
        self._uow = uow_factory
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction
        self._notices = notices

    @use_case
    def extend_deadline(self, principal: str, task_id: str, ground: str, notice_sent: bool) -> TaskView:
        """Extend the request's decision deadline where its regime allows it (see ClockEngine.extend)."""
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal, may=wf.Action.EXTEND_DEADLINE)
            task = load_task(uow, task_id)
            case = uow.cases.get(task.request_id, for_update=True)
            if case is None or case.clock is None:
                raise FailedPrecondition("this case has no regulatory clock to extend")
            try:
                extended = self._clocks.extend(case.clock, now, ground, notice_sent)
            except ExtensionRefused as exc:
                raise FailedPrecondition(f"extension refused: {exc}") from exc
            except ClockError as exc:
                raise FailedPrecondition(str(exc)) from exc
            determination = types_pb2.Determination.FromString(case.determination)
            follow_clock(uow, case, determination, extended, self._at_risk, now)
            case.determination = determination.SerializeToString()
            uow.cases.save(case)
            task = load_task(uow, task_id)  # as follow_clock left it
            task.record_deadline_extended(me, extended.rule, now)
            save_task(uow, task)
            uow.audit(AuditRecord("clock.extended", case.request_id, {
                "task_id": task.task_id, "regime": extended.regime, "ground": ground},
                actor=actors.reviewer(me.reviewer_id), member_id=case.member_id))
            if self._notices is not None:
                self._extension_notice(uow, case, determination, ground, extended.due_at, now)
            view = task_view(uow, task, me)
            uow.commit()  # the view is read in the same transaction: no second one
            return view

    def _extension_notice(self, uow: UnitOfWork, case: Case, determination: types_pb2.Determination, ground: str,
                          due: dt.datetime | None, now: dt.datetime) -> None:
        """The written notice of the extension (Medicare Advantage: 42 CFR 422.568(b)(1)(ii)), naming
        the lines still waiting."""
        if self._notices is None:
            return
        request = events_pb2.RequestSubmitted.FromString(case.request)
        waiting = {t.line_number: t for t in uow.tasks.of_request(case.request_id) if t.undecided and not t.is_appeal}
        services = [ServiceDecision(line_number=ln.line_number, procedure_code=ln.procedure_code,
                                    service=ln.explanation.criteria_title or f"the service {ln.procedure_code}",
                                    action=ServiceAction.PENDED, requested_units=waiting[ln.line_number].units)
                    for ln in determination.lines if ln.line_number in waiting]
        facts = self._notices.facts(NoticeKind.EXTENSION, case, request, case.determination_id, services, now,
                                    new_due=due, extension_ground=ground)
        self._notices.issue(uow, facts, request, now)
