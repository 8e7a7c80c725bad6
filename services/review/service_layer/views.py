"""What a reviewer sees of a task: the task, why it is theirs, its audit trail and its line's
current determination."""

from __future__ import annotations

from dataclasses import dataclass

from ur.common.v1 import types_pb2

from services.review.domain import workflow as wf
from services.review.domain.task import AuditEntry, Task
from services.review.service_layer.determinations import line_of
from services.review.service_layer.ports import UnitOfWork


@dataclass(frozen=True)
class TaskView:
    task: Task
    why_eligible: tuple[str, ...]  # empty when the task is not the viewer's to take
    history: tuple[AuditEntry, ...]
    determination: types_pb2.LineDetermination | None


def task_view(uow: UnitOfWork, task: Task, viewer: wf.Reviewer, *, summary: bool = False) -> TaskView:
    """The viewer's view of ``task``; a ``summary`` leaves out the history and the determination
    (two reads per task a list can do without)."""
    eligible, reasons = wf.eligibility(viewer, task.facts())
    if summary:
        return TaskView(task, reasons if eligible else (), (), None)
    case = uow.cases.get(task.request_id)
    line = None
    if case is not None:
        line = line_of(types_pb2.Determination.FromString(case.determination), task.line_number)
    return TaskView(task, reasons if eligible else (), tuple(uow.tasks.history(task.task_id)), line)
