"""Review's repositories (SQLAlchemy Core) and unit of work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, insert, select, tuple_, update

from services.common.uow import SqlUnitOfWork
from services.review.adapters.tables import cases, provider_line_outcomes, review_tasks
from services.review.domain.policy import ProviderRecord


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


class ProviderOutcomeRepository:
    """The gold-card record: one row per line decided by criteria or by a person."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of ``provider_line_outcomes`` for lines decided in this transaction."""
        if rows:
            self.conn.execute(insert(provider_line_outcomes), list(rows))

    def record_line_outcome(self, request_id: str, line_number: int, *, requesting_npi: str, category: str,
                            decided_at: dt.datetime, approved: bool, decided_by: str) -> None:
        """Record (or replace) who decided a line and whether it was approved, e.g. when a reviewer
        decides a line software referred. Insert-or-update, so it works whether or not the line
        was recorded when software decided it."""
        values = {"requesting_npi": requesting_npi, "category": category, "decided_at": decided_at,
                  "approved": approved, "decided_by": decided_by}
        changed = self.conn.execute(
            update(provider_line_outcomes)
            .where(provider_line_outcomes.c.request_id == request_id,
                   provider_line_outcomes.c.line_number == line_number)
            .values(**values)).rowcount
        if not changed:
            self.conn.execute(insert(provider_line_outcomes).values(request_id=request_id, line_number=line_number,
                                                                    **values))

    def update_outcome(self, request_id: str, line_number: int, *, approved: bool, decided_by: str,
                       decided_at: dt.datetime) -> bool:
        """A person's decision on a recorded line; False when the line was never recorded (it was
        answered from the no-PA list or under a gold card, and does not count)."""
        changed = self.conn.execute(
            update(provider_line_outcomes)
            .where(provider_line_outcomes.c.request_id == request_id,
                   provider_line_outcomes.c.line_number == line_number)
            .values(approved=approved, decided_by=decided_by, decided_at=decided_at)).rowcount
        return bool(changed)

    def records(self, pairs: Iterable[tuple[str, str]], since: dt.datetime) -> list[ProviderRecord]:
        """Approved and total counts of each (npi, category) pair decided at or after ``since``:
        one aggregate query for the whole batch. Pairs without any decision are absent."""
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


class ReviewUnitOfWork(SqlUnitOfWork):
    cases: CaseRepository
    tasks: TaskRepository
    provider_outcomes: ProviderOutcomeRepository

    def __enter__(self) -> ReviewUnitOfWork:
        super().__enter__()
        self.cases = CaseRepository(self.conn)
        self.tasks = TaskRepository(self.conn)
        self.provider_outcomes = ProviderOutcomeRepository(self.conn)
        return self
