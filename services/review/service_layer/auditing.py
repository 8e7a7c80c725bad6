"""What review records in its audit log (services/common/audit/), built in one place so that every
use case names things alike.

A task's own trail (``Task.new_entries``: claimed, released, a decision, lease expired...) becomes
one audit record per entry, named ``task.<action>`` and attributed to the reviewer who acted (or to
review itself for the system's entries); the entry's free-text detail is left out, as is anything
else a person wrote. Decided lines, notices, appeals, case notes and the reviewer directory have
their own records; views name what was shown to whom.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ur.common.v1 import types_pb2

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord, RefValue
from services.common.proto_enums import to_name
from services.review.domain.appeals import Appeal
from services.review.domain.notes import CaseNote
from services.review.domain.notices import Notice
from services.review.domain.task import SYSTEM, Task
from services.review.service_layer.ports import UnitOfWork

SERVICE = "review"
ACTION = types_pb2.ActionCode


def _task_refs(task: Task) -> dict[str, RefValue]:
    refs: dict[str, RefValue] = {"task_id": task.task_id, "line": task.line_number, "status": task.status.value}
    if task.assigned_to:
        refs["assigned_to"] = task.assigned_to
    if task.appeal_id:
        refs["appeal_id"] = task.appeal_id
    return refs


def _actor_of(entry_actor: str) -> str:
    return actors.service(SERVICE) if entry_actor == SYSTEM else actors.reviewer(entry_actor)


def task_records(task: Task, event_id: str = "") -> list[AuditRecord]:
    """One record per entry the task's trail gained since it was last saved."""
    refs = _task_refs(task)
    return [AuditRecord(f"task.{e.action}", task.request_id, refs, event_id=event_id, actor=_actor_of(e.actor))
            for e in task.new_entries]


def save_task(uow: UnitOfWork, task: Task, *, event_id: str = "") -> None:
    """Save the task (compare-and-set: StaleTask records nothing) and record its new trail entries."""
    records = task_records(task, event_id)
    uow.tasks.save(task)
    uow.audit(*records)


def add_tasks(uow: UnitOfWork, tasks: Sequence[Task], *, event_id: str = "",
              event_of: dict[str, str] | None = None) -> None:
    """Store new tasks and record each opening (and any entry it starts with). ``event_of``: request
    id → the event a task came from, when a batch holds several."""
    uow.tasks.add_many(tasks)
    records: list[AuditRecord] = []
    for t in tasks:
        came_from = (event_of or {}).get(t.request_id, event_id)
        refs = {**_task_refs(t), "urgency": t.urgency, "kind": "appeal" if t.appeal_id else "review"}
        records.append(AuditRecord("task.opened", t.request_id, refs, event_id=came_from,
                                   actor=actors.service(SERVICE)))
        records += task_records(t, came_from)
    uow.audit(*records)


def line_decided(request_id: str, member_id: str, determination_id: str, line: types_pb2.LineDetermination,
                 *, event_id: str = "", emitted: str = "") -> AuditRecord:
    """A line's determination: what was decided and by whom (software, or the reviewer)."""
    decider = line.decided_by
    refs: dict[str, RefValue] = {"line": line.line_number, "determination_id": determination_id,
                                 "action": to_name(ACTION, line.action_code) or "unspecified",
                                 "decider": decider.role or "software"}
    if line.appeal.appeal_id:
        refs["appeal_id"] = line.appeal.appeal_id
    if emitted:
        refs["emitted"] = emitted
    person = decider.role and decider.role != "software" and decider.id
    return AuditRecord("line.decided", request_id, refs, event_id=event_id, member_id=member_id,
                       actor=actors.reviewer(decider.id) if person else actors.service(SERVICE))


def notices_issued(notices: Iterable[Notice], emitted: dict[str, str]) -> list[AuditRecord]:
    """One record per notice issued (``emitted``: notice id → its NoticeIssued event id): review writes
    the letters, whoever made the decision they tell of."""
    return [AuditRecord("notice.issued", n.request_id, {
        "notice_id": n.notice_id, "kind": n.kind.value, "recipient": n.recipient_role,
        "determination_id": n.determination_id}, event_id=emitted.get(n.notice_id, ""), member_id=n.member_id,
        actor=actors.service(SERVICE)) for n in notices]


def appeal_record(action: str, appeal: Appeal, *, event_id: str = "", actor: str = "") -> AuditRecord:
    refs: dict[str, RefValue] = {"appeal_id": appeal.appeal_id, "line": appeal.line_number,
                                 "task_id": appeal.task_id, "urgency": appeal.urgency, "regime": appeal.regime}
    if appeal.outcome is not None:
        refs["appeal_outcome"] = appeal.outcome.value
    return AuditRecord(action, appeal.request_id, refs, event_id=event_id, member_id=appeal.member_id, actor=actor)


def note_added(note: CaseNote) -> AuditRecord:
    refs: dict[str, RefValue] = {"note_id": note.note_id}
    if note.amends:
        refs["amends"] = note.amends  # the note it amends: an id, never the text
    return AuditRecord("case_note.added", refs=refs, member_id=note.member_id,
                       actor=actors.reviewer(note.author_id))


# -- views ------------------------------------------------------------------------------------------

def tasks_viewed(tasks: Iterable[Task], reviewer_id: str, page: str) -> list[AuditRecord]:
    """One record per task shown on ``page`` to a reviewer (to the caller, when ``reviewer_id`` is "")."""
    actor = actors.reviewer(reviewer_id) if reviewer_id else ""
    return [AuditRecord("task.viewed", t.request_id, {**_task_refs(t), "page": page}, actor=actor) for t in tasks]


def notices_viewed(notices: Iterable[Notice]) -> list[AuditRecord]:
    return [AuditRecord("notice.viewed", n.request_id, {"notice_id": n.notice_id, "kind": n.kind.value},
                        member_id=n.member_id) for n in notices]
