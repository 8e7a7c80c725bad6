"""Reading the queue as a whole: a supervisor's overview (depth, tasks at risk and past their
deadline, who holds what) and one member's undecided tasks (for whoever follows the member)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord
from services.common.audit.recording import record_views
from services.common.clock import Clock
from services.common.errors import FieldViolation, ValidationFailed
from services.review.domain import workflow as wf
from services.review.domain.task import Task
from services.review.service_layer.auditing import tasks_viewed
from services.review.service_layer.ports import QueueDepth, UnitOfWork
from services.review.service_layer.preamble import identify, use_case

MAX_LIST = 500
DEFAULT_LIST = 100


@dataclass(frozen=True)
class QueueOverview:
    depth: list[QueueDepth]
    at_risk: list[Task]
    missed: list[Task]
    held: list[Task]


class Oversight:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, clock: Clock) -> None:
        self._uow = uow_factory
        self._now = clock

    @use_case
    def overview(self, principal: str, limit: int) -> QueueOverview:
        """The queue at a glance, for a supervisor; each list holds at most ``limit`` tasks (0: 100)."""
        if not 0 <= limit <= MAX_LIST:
            raise ValidationFailed([FieldViolation("limit", f"between 1 and {MAX_LIST} (0 means {DEFAULT_LIST})")])
        size = limit or DEFAULT_LIST
        now = self._now()
        with self._uow().read_only() as uow:
            me = identify(uow, principal, may=wf.Action.OVERSEE_QUEUE)
            overview = QueueOverview(depth=uow.tasks.depth(now), at_risk=uow.tasks.at_risk(now, size),
                                     missed=uow.tasks.missed(now, size), held=uow.tasks.all_held(now, size))
        shown = {t.task_id: t for t in (*overview.at_risk, *overview.missed, *overview.held)}
        record_views(self._uow, tasks_viewed(shown.values(), me.reviewer_id, "overview"))
        return overview

    @use_case
    def member_tasks(self, principal: str, member_id: str) -> list[Task]:
        """The member's undecided tasks, most urgent first (any active reviewer)."""
        if not member_id.strip():
            raise ValidationFailed([FieldViolation("member_id", "required")])
        with self._uow().read_only() as uow:
            me = identify(uow, principal)
            tasks = [t for rid in uow.cases.request_ids_of_member(member_id.strip())
                     for t in uow.tasks.of_request(rid) if t.undecided]
        # One entry per task shown; a search that found none still tells whom it was about.
        record_views(self._uow, tasks_viewed(tasks, me.reviewer_id, "member") or [AuditRecord(
            "task.listed", refs={"count": 0, "page": "member"}, member_id=member_id.strip(),
            actor=actors.reviewer(me.reviewer_id))])
        return sorted(tasks, key=lambda t: wf.priority(t.facts()))
