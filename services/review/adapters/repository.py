"""Review's repositories (SQLAlchemy Core) and unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, case, func, insert, select

from services.common.uow import SqlUnitOfWork
from services.review.adapters.tables import cases, review_tasks


class CaseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def existing(self, request_ids: Sequence[str]) -> set[str]:
        if not request_ids:
            return set()
        rows = self.conn.execute(select(cases.c.request_id).where(cases.c.request_id.in_(list(request_ids))))
        return {r.request_id for r in rows}

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(cases), list(rows))

    def determination(self, request_id: str) -> bytes | None:
        value = self.conn.execute(select(cases.c.determination).where(cases.c.request_id == request_id)).scalar()
        return bytes(value) if value is not None else None


class TaskRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(review_tasks), list(rows))

    def open_tasks(self, limit: int, offset: int) -> tuple[list[Row[Any]], int]:
        """Most urgent first: expedited before standard, then the earliest due time."""
        urgency_rank = case((review_tasks.c.urgency == "expedited", 0), else_=1)
        query = (select(review_tasks).where(review_tasks.c.status == "open")
                 .order_by(urgency_rank, review_tasks.c.due_at, review_tasks.c.created_at, review_tasks.c.task_id)
                 .limit(limit).offset(offset))
        total = self.conn.execute(select(func.count()).select_from(review_tasks)
                                  .where(review_tasks.c.status == "open")).scalar_one()
        return list(self.conn.execute(query)), int(total)


class ReviewUnitOfWork(SqlUnitOfWork):
    cases: CaseRepository
    tasks: TaskRepository

    def __enter__(self) -> ReviewUnitOfWork:
        super().__enter__()
        self.cases = CaseRepository(self.conn)
        self.tasks = TaskRepository(self.conn)
        return self
