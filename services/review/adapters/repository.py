"""Review's repositories and unit of work on SQLAlchemy Core (the ports: service_layer/ports.py).

Rows become domain objects here and nowhere else; SQLite's naive datetimes come back as aware UTC.
Saving a task is an optimistic compare-and-set on its ``version``: the UPDATE only succeeds for the
writer that read the version it replaces, so two reviewers racing for one task never both get it,
on PostgreSQL and on SQLite alike, without holding locks while choosing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    FromClause,
    Integer,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from services.common.clock import ensure_utc
from services.common.errors import DuplicateKey
from services.common.uow import SqlUnitOfWork
from services.review.adapters.tables import (
    appeals,
    case_notes,
    cases,
    notices,
    provider_line_outcomes,
    review_tasks,
    reviewers,
    task_events,
)
from services.review.domain.appeals import Appeal, AppealOutcome, AppealStatus
from services.review.domain.case import Case
from services.review.domain.criteria import Outcome
from services.review.domain.deadlines import ClockState
from services.review.domain.notes import CaseNote
from services.review.domain.notices import Notice, NoticeKind, Party, Section
from services.review.domain.policy import LineOutcome, ProviderRecord
from services.review.domain.task import AuditEntry, Task
from services.review.domain.workflow import Reviewer, Role, StaleTask, TaskStatus
from services.review.service_layer import ports

UNDECIDED = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value, TaskStatus.PENDED_INFORMATION.value)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return ensure_utc(value) if value is not None else None


def _insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], what: str) -> None:
    if not rows:
        return
    try:
        conn.execute(insert(table), list(rows))
    except IntegrityError as exc:
        raise DuplicateKey(f"{what} already stored") from exc


# -- cases ---------------------------------------------------------------------------------------

def case_from_row(row: Row[Any]) -> Case:
    return Case(request_id=row.request_id, determination_id=row.determination_id, member_id=row.member_id,
                line_of_business=row.line_of_business, member_state=row.member_state, urgency=row.urgency,
                review_type=row.review_type, requesting_npi=row.requesting_npi,
                received_at=ensure_utc(row.received_at), due_at=ensure_utc(row.due_at), regime=row.regime,
                request=bytes(row.request), determination=bytes(row.determination),
                created_at=ensure_utc(row.created_at),
                clock=ClockState.from_dict(json.loads(row.clock_state)) if row.clock_state else None)


def case_row(c: Case) -> dict[str, Any]:
    return {"request_id": c.request_id, "determination_id": c.determination_id, "member_id": c.member_id,
            "line_of_business": c.line_of_business, "member_state": c.member_state, "urgency": c.urgency,
            "review_type": c.review_type, "requesting_npi": c.requesting_npi, "received_at": c.received_at,
            "due_at": c.due_at, "regime": c.regime, "request": c.request, "determination": c.determination,
            "created_at": c.created_at, "clock_state": json.dumps(c.clock.to_dict()) if c.clock else None}


class SqlCaseRepository(ports.CaseRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def existing(self, request_ids: Sequence[str]) -> set[str]:
        if not request_ids:
            return set()
        rows = self.conn.execute(select(cases.c.request_id).where(cases.c.request_id.in_(list(request_ids))))
        return {r.request_id for r in rows}

    def add_many(self, new: Sequence[Case]) -> None:
        _insert(self.conn, cases, [case_row(c) for c in new], "a case for one of these requests is")

    def get(self, request_id: str, *, for_update: bool = False) -> Case | None:
        query = select(cases).where(cases.c.request_id == request_id)
        if for_update:
            query = query.with_for_update()  # PostgreSQL: serialize writers of one case; SQLite ignores it
        row = self.conn.execute(query).first()
        return case_from_row(row) if row is not None else None

    def save(self, c: Case) -> None:
        self.conn.execute(update(cases).where(cases.c.request_id == c.request_id).values(
            request=c.request, determination=c.determination, due_at=c.due_at, urgency=c.urgency,
            clock_state=json.dumps(c.clock.to_dict()) if c.clock else None))

    def request_ids_of_member(self, member_id: str) -> list[str]:
        return list(self.conn.execute(select(cases.c.request_id).where(cases.c.member_id == member_id)
                                      .order_by(cases.c.received_at, cases.c.request_id)).scalars())


# -- tasks ---------------------------------------------------------------------------------------

def task_from_row(row: Row[Any]) -> Task:
    return Task(task_id=row.task_id, request_id=row.request_id, line_number=row.line_number,
                procedure_code=row.procedure_code, line_of_business=row.line_of_business,
                member_state=row.member_state, urgency=row.urgency, outcome=Outcome(row.outcome),
                reasons=tuple(json.loads(row.reasons)), status=TaskStatus(row.status), due_at=ensure_utc(row.due_at),
                created_at=ensure_utc(row.created_at), category=row.category, required_role=Role(row.required_role),
                units=row.units, regime=row.regime, clock_rule=row.clock_rule, assigned_to=row.assigned_to,
                lease_expires_at=_utc(row.lease_expires_at), version=row.version,
                requested_facts=tuple(json.loads(row.requested_facts)) if row.requested_facts else (),
                information_due=row.information_due, escalated_at=_utc(row.escalated_at),
                missed_at=_utc(row.missed_at), deemed_denial=bool(row.deemed_denial),
                updated_at=_utc(row.updated_at), clock_paused=bool(row.clock_paused),
                at_risk_at=_utc(row.at_risk_at), appeal_id=row.appeal_id,
                excluded_reviewers=tuple(json.loads(row.excluded_reviewers)))


def task_row(t: Task) -> dict[str, Any]:
    """Every column but the key and the version (which the repository manages)."""
    return {"request_id": t.request_id, "line_number": t.line_number, "procedure_code": t.procedure_code,
            "line_of_business": t.line_of_business, "member_state": t.member_state, "urgency": t.urgency,
            "outcome": t.outcome.value, "reasons": json.dumps(list(t.reasons)), "status": t.status.value,
            "due_at": t.due_at, "created_at": t.created_at, "category": t.category,
            "required_role": t.required_role.value, "units": t.units, "regime": t.regime,
            "clock_rule": t.clock_rule, "assigned_to": t.assigned_to, "lease_expires_at": t.lease_expires_at,
            "requested_facts": json.dumps(list(t.requested_facts)) if t.requested_facts else None,
            "information_due": t.information_due, "escalated_at": t.escalated_at, "missed_at": t.missed_at,
            "deemed_denial": t.deemed_denial, "updated_at": t.updated_at, "clock_paused": t.clock_paused,
            "at_risk_at": t.at_risk_at, "urgency_rank": urgency_rank(t.urgency), "appeal_id": t.appeal_id,
            "excluded_reviewers": json.dumps(list(t.excluded_reviewers))}


def urgency_rank(urgency: str) -> int:
    """The queue's order of an urgency: expedited (0) before the rest (1)."""
    return 0 if urgency == "expedited" else 1


def _queue_order(t: FromClause) -> tuple[ColumnElement[object], ...]:
    """Most urgent first (:func:`~services.review.domain.workflow.priority`): expedited, then earliest
    due, then id. ``t`` is the tasks table or a subquery of it; on the table this is the order of
    ``ix_review_tasks_queue_order`` after its status, so a query reads the first rows and stops."""
    return (t.c.urgency_rank, t.c.due_at, t.c.task_id)


def _claimable() -> Select[tuple[object, ...]]:
    """Claimable tasks: open ones and lapsed claims are read apart, each in queue order from the queue
    index and cut at ``window``, then merged, so that at most twice ``window`` rows are sorted however
    long the queue. Built once: a subquery of the tasks' thirty columns costs milliseconds to assemble,
    more than the query takes to run."""
    t = review_tasks
    # The window is written into the statement (one prepared statement per window size): PostgreSQL
    # plans a LIMIT it knows, also once the driver prepares the statement and the plan is reused.
    window = bindparam("window", type_=Integer(), literal_execute=True)
    routed = (t.c.required_role.in_(bindparam("roles", expanding=True)),
              t.c.line_of_business.in_(bindparam("lines", expanding=True)),
              t.c.category.in_(bindparam("categories", expanding=True)))
    open_tasks = select(t).where(t.c.status == TaskStatus.OPEN.value, *routed)
    lapsed = select(t).where(t.c.status == TaskStatus.CLAIMED.value,
                             t.c.lease_expires_at <= bindparam("now", type_=t.c.lease_expires_at.type), *routed)
    both = union_all(*(select(q.order_by(*_queue_order(t)).limit(window).subquery())
                       for q in (open_tasks, lapsed))).subquery()
    return select(both).order_by(*_queue_order(both)).limit(window)


_CLAIMABLE = _claimable()

# A claim's capacity check: how many live leases the reviewer holds (the held_by index, nothing read).
_COUNT_HELD = (select(func.count()).select_from(review_tasks)
               .where(review_tasks.c.status == TaskStatus.CLAIMED.value,
                      review_tasks.c.assigned_to == bindparam("reviewer_id"),
                      review_tasks.c.lease_expires_at > bindparam("now", type_=review_tasks.c.lease_expires_at.type)))

# A task's compare-and-set, built once for the same reason (thirty SET columns): every column is
# written, the version moves on, and only the row still at the version read is changed.
_SAVE_TASK = (update(review_tasks)
              .where(review_tasks.c.task_id == bindparam("task_id_was"),
                     review_tasks.c.version == bindparam("version_was"))
              .values({c.name: bindparam(f"new_{c.name}", type_=c.type)
                       for c in review_tasks.c if c.name != "task_id"}))


class SqlTaskRepository(ports.TaskRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _tasks(self, query: Executable, parameters: Mapping[str, object] | None = None) -> list[Task]:
        return [task_from_row(r) for r in self.conn.execute(query, parameters)]

    def add_many(self, tasks: Sequence[Task]) -> None:
        _insert(self.conn, review_tasks, [{"task_id": t.task_id, "version": t.version, **task_row(t)} for t in tasks],
                "a task for one of these lines is")
        for t in tasks:
            self._append_history(t)

    def get(self, task_id: str) -> Task | None:
        found = self._tasks(select(review_tasks).where(review_tasks.c.task_id == task_id))
        return found[0] if found else None

    def save(self, task: Task) -> None:
        values = {f"new_{name}": value for name, value in task_row(task).items()}
        result = self.conn.execute(_SAVE_TASK, {"task_id_was": task.task_id, "version_was": task.version,
                                                "new_version": task.version + 1, **values})
        if result.rowcount != 1:
            raise StaleTask(task.task_id)
        task.version += 1
        self._append_history(task)

    def _append_history(self, task: Task) -> None:
        if task.new_entries:
            self.conn.execute(insert(task_events), [
                {"task_id": task.task_id, "at": e.at, "actor": e.actor, "action": e.action, "detail": e.detail}
                for e in task.new_entries])
            task.new_entries.clear()

    def of_request(self, request_id: str) -> list[Task]:
        return self._tasks(select(review_tasks).where(review_tasks.c.request_id == request_id)
                           .order_by(review_tasks.c.line_number))

    def held_by(self, reviewer_id: str, now: dt.datetime) -> list[Task]:
        return self._tasks(select(review_tasks).where(review_tasks.c.status == TaskStatus.CLAIMED.value,
                                                      review_tasks.c.assigned_to == reviewer_id,
                                                      review_tasks.c.lease_expires_at > now)
                           .order_by(*_queue_order(review_tasks)))

    def count_held(self, reviewer_id: str, now: dt.datetime) -> int:
        return int(self.conn.execute(_COUNT_HELD, {"reviewer_id": reviewer_id, "now": now}).scalar_one())

    def claimable(self, roles: Sequence[Role], lines_of_business: Iterable[str], categories: Iterable[str],
                  now: dt.datetime, limit: int) -> list[Task]:
        return self._tasks(_CLAIMABLE, {"roles": [r.value for r in roles], "lines": list(lines_of_business),
                                        "categories": list(categories), "now": now, "window": limit})

    def expired_leases(self, now: dt.datetime) -> list[Task]:
        return self._tasks(select(review_tasks).where(review_tasks.c.status == TaskStatus.CLAIMED.value,
                                                      review_tasks.c.lease_expires_at <= now)
                           .order_by(review_tasks.c.task_id))

    def needing_attention(self, now: dt.datetime, limit: int = 1000) -> list[Task]:
        t = review_tasks
        missed = and_(t.c.missed_at.is_(None), t.c.due_at <= now)
        at_risk = and_(t.c.escalated_at.is_(None), t.c.at_risk_at <= now)
        return self._tasks(select(t).where(t.c.status.in_(UNDECIDED), or_(missed, at_risk))
                           .order_by(t.c.due_at, t.c.task_id).limit(limit))

    def open_tasks(self, limit: int, offset: int) -> tuple[list[Task], int]:
        t = review_tasks
        # The listing breaks ties of due time by age before id: an incremental sort of the (rare)
        # equal-deadline runs the queue index delivers, never a sort of the whole queue.
        query = (select(t).where(t.c.status == TaskStatus.OPEN.value)
                 .order_by(t.c.urgency_rank, t.c.due_at, t.c.created_at, t.c.task_id).limit(limit).offset(offset))
        total = self.conn.execute(select(func.count()).select_from(t)
                                  .where(t.c.status == TaskStatus.OPEN.value)).scalar_one()
        return self._tasks(query), int(total)

    def history(self, task_id: str) -> list[AuditEntry]:
        rows = self.conn.execute(select(task_events).where(task_events.c.task_id == task_id)
                                 .order_by(task_events.c.at, task_events.c.id))
        return [AuditEntry(ensure_utc(r.at), r.actor, r.action, r.detail) for r in rows]

    # -- the supervisor's overview --------------------------------------------------------------
    @staticmethod
    def _running() -> Any:
        return and_(review_tasks.c.status.in_(UNDECIDED), review_tasks.c.clock_paused.is_(False))

    def depth(self, now: dt.datetime) -> list[ports.QueueDepth]:
        t = review_tasks
        at_risk = case((and_(t.c.clock_paused.is_(False), t.c.at_risk_at <= now, t.c.due_at > now), 1), else_=0)
        missed = case((and_(t.c.clock_paused.is_(False), t.c.due_at <= now), 1), else_=0)
        keys = (t.c.category, t.c.urgency, t.c.line_of_business, t.c.required_role, t.c.status)
        rows = self.conn.execute(select(*keys, func.count(), func.sum(at_risk), func.sum(missed))
                                 .where(t.c.status.in_(UNDECIDED)).group_by(*keys).order_by(*keys))
        return [ports.QueueDepth(category=r[0], urgency=r[1], line_of_business=r[2], required_role=Role(r[3]),
                                 status=r[4], count=int(r[5]), at_risk=int(r[6] or 0), missed=int(r[7] or 0))
                for r in rows]

    def at_risk(self, now: dt.datetime, limit: int) -> list[Task]:
        t = review_tasks
        return self._tasks(select(t).where(self._running(), t.c.at_risk_at <= now, t.c.due_at > now)
                           .order_by(t.c.due_at, t.c.task_id).limit(limit))

    def missed(self, now: dt.datetime, limit: int) -> list[Task]:
        t = review_tasks
        return self._tasks(select(t).where(self._running(), t.c.due_at <= now)
                           .order_by(t.c.due_at, t.c.task_id).limit(limit))

    def all_held(self, now: dt.datetime, limit: int) -> list[Task]:
        t = review_tasks
        return self._tasks(select(t).where(t.c.status == TaskStatus.CLAIMED.value, t.c.lease_expires_at > now)
                           .order_by(t.c.assigned_to, *_queue_order(t)).limit(limit))


# -- the reviewer directory ----------------------------------------------------------------------

def reviewer_from_row(row: Row[Any]) -> Reviewer:
    return Reviewer(reviewer_id=row.reviewer_id, name=row.name, role=Role(row.role),
                    specialties=frozenset(json.loads(row.specialties)),
                    licence_states=frozenset(json.loads(row.licence_states)),
                    lines_of_business=frozenset(json.loads(row.lines_of_business)), capacity=row.capacity,
                    credential=row.credential, active=bool(row.active))


def reviewer_row(r: Reviewer, now: dt.datetime) -> dict[str, Any]:
    return {"reviewer_id": r.reviewer_id, "name": r.name, "role": r.role.value,
            "specialties": json.dumps(sorted(r.specialties)), "licence_states": json.dumps(sorted(r.licence_states)),
            "lines_of_business": json.dumps(sorted(r.lines_of_business)), "capacity": r.capacity,
            "credential": r.credential, "active": r.active, "updated_at": now}


class SqlReviewerRepository(ports.ReviewerRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, reviewer_id: str) -> Reviewer | None:
        row = self.conn.execute(select(reviewers).where(reviewers.c.reviewer_id == reviewer_id)).first()
        return reviewer_from_row(row) if row is not None else None

    def all(self) -> list[Reviewer]:
        return [reviewer_from_row(r) for r in self.conn.execute(select(reviewers).order_by(reviewers.c.reviewer_id))]

    def put(self, reviewer: Reviewer, now: dt.datetime) -> None:
        row = reviewer_row(reviewer, now)
        done = self.conn.execute(update(reviewers).where(reviewers.c.reviewer_id == reviewer.reviewer_id)
                                 .values(**{k: v for k, v in row.items() if k != "reviewer_id"}))
        if done.rowcount == 0:
            # Another writer may insert the same id between the two statements.
            _insert(self.conn, reviewers, [row], f"reviewer {reviewer.reviewer_id!r} is")


# -- the gold-card record ------------------------------------------------------------------------

class SqlProviderOutcomeRepository(ports.ProviderOutcomeRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_many(self, outcomes: Sequence[LineOutcome]) -> None:
        _insert(self.conn, provider_line_outcomes, [
            {"request_id": o.request_id, "line_number": o.line_number, "requesting_npi": o.requesting_npi,
             "category": o.category, "decided_at": o.decided_at, "approved": o.approved, "decided_by": o.decided_by}
            for o in outcomes], "an outcome of one of these lines is")

    def update_outcome(self, request_id: str, line_number: int, *, approved: bool, decided_by: str,
                       decided_at: dt.datetime) -> bool:
        changed = self.conn.execute(
            update(provider_line_outcomes)
            .where(provider_line_outcomes.c.request_id == request_id,
                   provider_line_outcomes.c.line_number == line_number)
            .values(approved=approved, decided_by=decided_by, decided_at=decided_at)).rowcount
        return bool(changed)

    def records(self, pairs: Iterable[tuple[str, str]], since: dt.datetime) -> list[ProviderRecord]:
        """One aggregate query for the whole batch."""
        wanted = sorted(set(pairs))
        if not wanted:
            return []
        t = provider_line_outcomes
        query = (select(t.c.requesting_npi, t.c.category, func.count().label("total"),
                        func.sum(case((t.c.approved, 1), else_=0)).label("approved"))
                 .where(and_(tuple_(t.c.requesting_npi, t.c.category).in_(wanted), t.c.decided_at >= since))
                 .group_by(t.c.requesting_npi, t.c.category))
        return [ProviderRecord(r.requesting_npi, r.category, int(r.approved or 0), int(r.total), since.date())
                for r in self.conn.execute(query)]


# -- case notes ----------------------------------------------------------------------------------

def _note(row: Row[Any]) -> CaseNote:
    return CaseNote(note_id=row.note_id, member_id=row.member_id, author_id=row.author_id,
                    author_name=row.author_name, author_role=Role(row.author_role),
                    written_at=ensure_utc(row.written_at), text=row.text, amends=row.amends)


class SqlCaseNoteRepository(ports.CaseNoteRepository):
    """Inserts and reads only: no statement here updates or deletes a note."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, note: CaseNote) -> None:
        _insert(self.conn, case_notes, [{
            "note_id": note.note_id, "member_id": note.member_id, "author_id": note.author_id,
            "author_name": note.author_name, "author_role": note.author_role.value, "written_at": note.written_at,
            "text": note.text, "amends": note.amends}], "this case note is")

    def get(self, note_id: str) -> CaseNote | None:
        row = self.conn.execute(select(case_notes).where(case_notes.c.note_id == note_id)).first()
        return None if row is None else _note(row)

    def of_member(self, member_id: str) -> list[CaseNote]:
        rows = self.conn.execute(select(case_notes).where(case_notes.c.member_id == member_id)
                                 .order_by(case_notes.c.written_at, case_notes.c.note_id))
        return [_note(r) for r in rows]


# -- notices -------------------------------------------------------------------------------------

def _notice(row: Row[Any]) -> Notice:
    recipient = json.loads(row.recipient)
    sections = tuple(Section(s["heading"], tuple(s["paragraphs"]), tuple(s["items"]), bool(s["reference"]))
                     for s in json.loads(row.sections))
    return Notice(notice_id=row.notice_id, request_id=row.request_id, determination_id=row.determination_id,
                  member_id=row.member_id, kind=NoticeKind(row.kind), recipient_role=row.recipient_role,
                  recipient=Party(recipient["name"], tuple(recipient["address_lines"]), recipient.get("npi", "")),
                  issued_at=ensure_utc(row.issued_at), line_numbers=tuple(json.loads(row.line_numbers)),
                  subject=row.subject, sections=sections, about=recipient.get("about", ""))


def notice_row(n: Notice) -> dict[str, Any]:
    return {"notice_id": n.notice_id, "request_id": n.request_id, "determination_id": n.determination_id,
            "member_id": n.member_id, "kind": n.kind.value, "recipient_role": n.recipient_role,
            "recipient": json.dumps({"name": n.recipient.name, "address_lines": list(n.recipient.address_lines),
                                     "npi": n.recipient.npi, "about": n.about}),
            "issued_at": n.issued_at, "line_numbers": json.dumps(list(n.line_numbers)), "subject": n.subject,
            "sections": json.dumps([{"heading": s.heading, "paragraphs": list(s.paragraphs), "items": list(s.items),
                                     "reference": s.reference} for s in n.sections]),
            "text": n.text}


class SqlNoticeRepository(ports.NoticeRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_many(self, new: Sequence[Notice]) -> None:
        _insert(self.conn, notices, [notice_row(n) for n in new], "one of these notices is")

    def get(self, notice_id: str) -> Notice | None:
        row = self.conn.execute(select(notices).where(notices.c.notice_id == notice_id)).first()
        return None if row is None else _notice(row)

    def of_request(self, request_id: str) -> list[Notice]:
        return [_notice(r) for r in self.conn.execute(select(notices).where(notices.c.request_id == request_id)
                                                      .order_by(notices.c.issued_at, notices.c.notice_id))]

    def of_member(self, member_id: str) -> list[Notice]:
        return [_notice(r) for r in self.conn.execute(select(notices).where(notices.c.member_id == member_id)
                                                      .order_by(notices.c.issued_at, notices.c.notice_id))]


# -- appeals -------------------------------------------------------------------------------------

def _appeal(row: Row[Any]) -> Appeal:
    return Appeal(appeal_id=row.appeal_id, request_id=row.request_id, line_number=row.line_number,
                  member_id=row.member_id, urgency=row.urgency, appellant=row.appellant,
                  appellant_name=row.appellant_name, filed_at=ensure_utc(row.filed_at), reason=row.reason,
                  regime=row.regime, clock=ClockState.from_dict(json.loads(row.clock_state)),
                  original_decider=row.original_decider, task_id=row.task_id, status=AppealStatus(row.status),
                  outcome=AppealOutcome(row.outcome) if row.outcome else None, decided_by=row.decided_by,
                  decided_at=_utc(row.decided_at), forwarded_to=row.forwarded_to)


class SqlAppealRepository(ports.AppealRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, appeal: Appeal) -> None:
        _insert(self.conn, appeals, [{
            "appeal_id": appeal.appeal_id, "request_id": appeal.request_id, "line_number": appeal.line_number,
            "member_id": appeal.member_id, "urgency": appeal.urgency, "appellant": appeal.appellant,
            "appellant_name": appeal.appellant_name, "filed_at": appeal.filed_at, "reason": appeal.reason,
            "regime": appeal.regime, "clock_state": json.dumps(appeal.clock.to_dict()),
            "original_decider": appeal.original_decider, "task_id": appeal.task_id, "status": appeal.status.value,
            "outcome": appeal.outcome.value if appeal.outcome else None, "decided_by": appeal.decided_by,
            "decided_at": appeal.decided_at, "forwarded_to": appeal.forwarded_to}], f"appeal {appeal.appeal_id} is")

    def get(self, appeal_id: str) -> Appeal | None:
        row = self.conn.execute(select(appeals).where(appeals.c.appeal_id == appeal_id)).first()
        return None if row is None else _appeal(row)

    def save(self, appeal: Appeal) -> None:
        self.conn.execute(update(appeals).where(appeals.c.appeal_id == appeal.appeal_id).values(
            status=appeal.status.value, outcome=appeal.outcome.value if appeal.outcome else None,
            decided_by=appeal.decided_by, decided_at=appeal.decided_at, forwarded_to=appeal.forwarded_to,
            clock_state=json.dumps(appeal.clock.to_dict())))

    def of_line(self, request_id: str, line_number: int) -> list[Appeal]:
        return [_appeal(r) for r in self.conn.execute(
            select(appeals).where(appeals.c.request_id == request_id, appeals.c.line_number == line_number)
            .order_by(appeals.c.filed_at, appeals.c.appeal_id))]


# -- the unit of work ----------------------------------------------------------------------------

class ReviewUnitOfWork(SqlUnitOfWork, ports.UnitOfWork):
    """Review's unit of work on one database connection (outbox and processed events included)."""

    service = "review"

    cases: SqlCaseRepository
    tasks: SqlTaskRepository
    reviewers: SqlReviewerRepository
    provider_outcomes: SqlProviderOutcomeRepository
    case_notes: SqlCaseNoteRepository
    notices: SqlNoticeRepository
    appeals: SqlAppealRepository

    def __enter__(self) -> ReviewUnitOfWork:
        super().__enter__()
        self.cases = SqlCaseRepository(self.conn)
        self.tasks = SqlTaskRepository(self.conn)
        self.reviewers = SqlReviewerRepository(self.conn)
        self.provider_outcomes = SqlProviderOutcomeRepository(self.conn)
        self.case_notes = SqlCaseNoteRepository(self.conn)
        self.notices = SqlNoticeRepository(self.conn)
        self.appeals = SqlAppealRepository(self.conn)
        return self
