"""SQL for the reviewer workflow: the directory, task leases and the audit trail.

Claiming is an optimistic compare-and-set on the task's ``version``: the UPDATE only succeeds for
the caller that read the version it is replacing, so two reviewers racing for one task never both
get it, on PostgreSQL and on SQLite alike, without holding locks while choosing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, insert, or_, select, update

from services.review.adapters.tables import cases, review_tasks, reviewers, task_events
from services.review.domain.workflow import Reviewer, Role, TaskStatus

ACTIVE = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value)
UNDECIDED = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value, TaskStatus.PENDED_INFORMATION.value)


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


class WorkflowRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- directory -----------------------------------------------------------------------------
    def reviewer(self, reviewer_id: str) -> Reviewer | None:
        row = self.conn.execute(select(reviewers).where(reviewers.c.reviewer_id == reviewer_id)).first()
        return reviewer_from_row(row) if row is not None else None

    def reviewers(self) -> list[Reviewer]:
        return [reviewer_from_row(r) for r in self.conn.execute(select(reviewers).order_by(reviewers.c.reviewer_id))]

    def put_reviewer(self, r: Reviewer, now: dt.datetime) -> None:
        row = reviewer_row(r, now)
        done = self.conn.execute(update(reviewers).where(reviewers.c.reviewer_id == r.reviewer_id)
                                 .values(**{k: v for k, v in row.items() if k != "reviewer_id"}))
        if done.rowcount == 0:
            self.conn.execute(insert(reviewers).values(**row))

    # -- tasks ---------------------------------------------------------------------------------
    def task(self, task_id: str) -> Row[Any] | None:
        return self.conn.execute(select(review_tasks).where(review_tasks.c.task_id == task_id)).first()

    def task_for_line(self, request_id: str, line_number: int) -> Row[Any] | None:
        return self.conn.execute(select(review_tasks).where(review_tasks.c.request_id == request_id,
                                                            review_tasks.c.line_number == line_number)).first()

    def tasks_of_request(self, request_id: str) -> list[Row[Any]]:
        return list(self.conn.execute(select(review_tasks).where(review_tasks.c.request_id == request_id)
                                      .order_by(review_tasks.c.line_number)))

    def held_by(self, reviewer_id: str, now: dt.datetime) -> list[Row[Any]]:
        return list(self.conn.execute(
            select(review_tasks).where(review_tasks.c.status == TaskStatus.CLAIMED.value,
                                       review_tasks.c.assigned_to == reviewer_id,
                                       review_tasks.c.lease_expires_at > now)
            .order_by(*_urgent_first())))

    def claimable(self, roles: Sequence[str], lines_of_business: Iterable[str], categories: Iterable[str],
                  now: dt.datetime, limit: int) -> list[Row[Any]]:
        """Open tasks (or claimed ones whose lease ran out) a reviewer might take, most urgent first.
        Licence rules are applied by the caller."""
        free = or_(review_tasks.c.status == TaskStatus.OPEN.value,
                   and_(review_tasks.c.status == TaskStatus.CLAIMED.value, review_tasks.c.lease_expires_at <= now))
        query = (select(review_tasks)
                 .where(free, review_tasks.c.required_role.in_(list(roles)),
                        review_tasks.c.line_of_business.in_(list(lines_of_business)),
                        review_tasks.c.category.in_(list(categories)))
                 .order_by(*_urgent_first()).limit(limit))
        return list(self.conn.execute(query))

    def try_claim(self, task_id: str, version: int, reviewer_id: str, lease_until: dt.datetime,
                  now: dt.datetime) -> bool:
        """Compare-and-set: True only for the one caller whose read of ``version`` is still current."""
        result = self.conn.execute(
            update(review_tasks).where(review_tasks.c.task_id == task_id, review_tasks.c.version == version)
            .values(status=TaskStatus.CLAIMED.value, assigned_to=reviewer_id, lease_expires_at=lease_until,
                    version=version + 1, updated_at=now))
        return result.rowcount == 1

    def set_task(self, task_id: str, version: int, **values: Any) -> bool:
        """Update a task if nobody changed it since ``version`` was read."""
        result = self.conn.execute(
            update(review_tasks).where(review_tasks.c.task_id == task_id, review_tasks.c.version == version)
            .values(version=version + 1, **values))
        return result.rowcount == 1

    def needing_attention(self, now: dt.datetime, limit: int = 1000) -> list[Row[Any]]:
        """Undecided tasks whose deadline passed unrecorded or that reached their at-risk point
        unescalated, soonest deadline first."""
        t = review_tasks
        missed = and_(t.c.missed_at.is_(None), t.c.due_at <= now)
        at_risk = and_(t.c.escalated_at.is_(None), t.c.at_risk_at <= now)
        return list(self.conn.execute(select(t).where(t.c.status.in_(UNDECIDED), or_(missed, at_risk))
                                      .order_by(t.c.due_at).limit(limit)))

    def expired_leases(self, now: dt.datetime) -> list[Row[Any]]:
        return list(self.conn.execute(select(review_tasks).where(
            review_tasks.c.status == TaskStatus.CLAIMED.value, review_tasks.c.lease_expires_at <= now)))

    # -- audit ---------------------------------------------------------------------------------
    def record(self, task_id: str, actor: str, action: str, detail: str, at: dt.datetime) -> None:
        self.conn.execute(insert(task_events).values(task_id=task_id, at=at, actor=actor, action=action,
                                                     detail=detail))

    def history(self, task_id: str) -> list[Row[Any]]:
        return list(self.conn.execute(select(task_events).where(task_events.c.task_id == task_id)
                                      .order_by(task_events.c.at, task_events.c.id)))

    # -- the case ------------------------------------------------------------------------------
    def case(self, request_id: str, for_update: bool = False) -> Row[Any] | None:
        query = select(cases).where(cases.c.request_id == request_id)
        if for_update:
            query = query.with_for_update()  # PostgreSQL: serialize writers of one case; SQLite ignores it
        return self.conn.execute(query).first()

    def save_case(self, request_id: str, **values: Any) -> None:
        self.conn.execute(update(cases).where(cases.c.request_id == request_id).values(**values))

    def counts_by_status(self) -> dict[str, int]:
        rows = self.conn.execute(select(review_tasks.c.status, func.count()).group_by(review_tasks.c.status))
        return {status: int(n) for status, n in rows}


def _urgent_first() -> tuple[Any, ...]:
    return (case((review_tasks.c.urgency == "expedited", 0), else_=1), review_tasks.c.due_at,
            review_tasks.c.task_id)
