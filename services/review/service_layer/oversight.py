"""Reading the queue as a whole: a supervisor's overview (depth, tasks at risk and past their
deadline, who holds what) and one member's undecided tasks (for whoever follows the member)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.clock import Clock
from services.common.errors import FieldViolation, ValidationFailed
from services.review.domain import workflow as wf
from services.review.domain.task import Task
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
            identify(uow, principal, may=wf.Action.OVERSEE_QUEUE)
            return QueueOverview(depth=uow.tasks.depth(now), at_risk=uow.tasks.at_risk(now, size),
                                 missed=uow.tasks.missed(now, size), held=uow.tasks.all_held(now, size))

    @use_case
    def member_tasks(self, principal: str, member_id: str) -> list[Task]:
        """The member's undecided tasks, most urgent first (any active reviewer)."""
        if not member_id.strip():
            raise ValidationFailed([FieldViolation("member_id", "required")])
        with self._uow().read_only() as uow:
            identify(uow, principal)
            tasks = [t for rid in uow.cases.request_ids_of_member(member_id.strip())
                     for t in uow.tasks.of_request(rid) if t.undecided]
        return sorted(tasks, key=lambda t: wf.priority(t.facts()))
