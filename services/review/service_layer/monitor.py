"""The deadline monitor, run periodically: leases that ran out go back to the queue, tasks at risk
of missing their deadline are escalated, and deadlines passed undecided are recorded (for Medicaid,
a deemed denial). Each alert (ReviewAlert) is raised once, in the transaction that marks the task."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.clock import Clock
from services.common.events import OutgoingEvent
from services.common.topics import Topics
from services.review.domain import workflow as wf
from services.review.domain.notices import NoticeKind, ServiceAction, ServiceDecision
from services.review.domain.task import Task
from services.review.service_layer.auditing import save_task
from services.review.service_layer.determinations import line_of
from services.review.service_layer.notices import NoticeWriter
from services.review.service_layer.ports import UnitOfWork

logger = logging.getLogger(__name__)


class Monitor:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, *, clock: Clock,
                 notices: NoticeWriter | None = None) -> None:
        self._uow = uow_factory
        self._topics = topics
        self._now = clock
        self._notices = notices

    def run(self) -> dict[str, int]:
        """One pass; returns how many leases expired, tasks were escalated (of which unassigned)
        and deadlines were missed. A task another writer changed meanwhile is left to the next pass."""
        now = self._now()
        counts = {"leases_expired": 0, "escalated": 0, "unassigned_alerts": 0, "missed": 0}
        with self._uow() as uow:
            for task in uow.tasks.expired_leases(now):
                task.expire_lease(now)
                if _saved(uow, task):
                    counts["leases_expired"] += 1
            for task in uow.tasks.needing_attention(now):
                if task.deadline_passed_unrecorded(now):
                    entry = task.miss_deadline(now)
                    if _saved(uow, task):
                        self._alert(uow, task, events_pb2.ReviewAlert.KIND_DEADLINE_MISSED, entry.detail, now,
                                    deemed_denial=task.deemed_denial)
                        if task.deemed_denial:
                            self._deemed_denial_notice(uow, task, now)
                        counts["missed"] += 1
                elif task.escalation_due(now):
                    held = task.held(now)
                    entry = task.escalate(now)
                    if _saved(uow, task):
                        kind = (events_pb2.ReviewAlert.KIND_AT_RISK if held
                                else events_pb2.ReviewAlert.KIND_UNASSIGNED_NEAR_DEADLINE)
                        self._alert(uow, task, kind, entry.detail, now)
                        counts["escalated"] += 1
                        counts["unassigned_alerts"] += 0 if held else 1
            uow.commit()
        if any(counts.values()):
            logger.info("monitor: %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
        return counts

    def _deemed_denial_notice(self, uow: UnitOfWork, task: Task, now: dt.datetime) -> None:
        """A decision not reached in time is an adverse one the member may appeal (42 CFR 438.404(c)(5)):
        the member and the provider are told so."""
        case = uow.cases.get(task.request_id)
        if self._notices is None or case is None:
            return
        request = events_pb2.RequestSubmitted.FromString(case.request)
        stored = line_of(types_pb2.Determination.FromString(case.determination), task.line_number)
        service = ServiceDecision(line_number=task.line_number, procedure_code=task.procedure_code,
                                  service=(stored.explanation.criteria_title if stored is not None else "")
                                  or f"the service with code {task.procedure_code}",
                                  action=ServiceAction.PENDED, requested_units=task.units)
        facts = self._notices.facts(NoticeKind.DEEMED_DENIAL, case, request, case.determination_id, [service], now,
                                    missed_due=task.due_at)
        self._notices.issue(uow, facts, request, now)

    def _alert(self, uow: UnitOfWork, task: Task, kind: events_pb2.ReviewAlert.Kind.ValueType, detail: str,
               now: dt.datetime, *, deemed_denial: bool = False) -> None:
        alert = events_pb2.ReviewAlert(alert_id=str(uuid.uuid4()), kind=kind,
                                       request_id=task.request_id, line_number=task.line_number,
                                       task_id=task.task_id, assigned_to=task.assigned_to or "",
                                       deemed_denial=deemed_denial, message=detail)
        alert.raised_at.FromDatetime(now)
        alert.clock.regime = task.regime
        alert.clock.rule = task.clock_rule
        alert.clock.due_at.FromDatetime(task.due_at)
        uow.publish(OutgoingEvent(topic=self._topics.review_alerts, key=task.request_id, message=alert))


def _saved(uow: UnitOfWork, task: Task) -> bool:
    try:
        save_task(uow, task)
    except wf.StaleTask:
        return False
    return True
