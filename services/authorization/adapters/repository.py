"""Authorization's repository (SQLAlchemy Core) and unit of work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from services.authorization.adapters.tables import authorizations as t
from services.authorization.domain.numbers import authorization_number
from services.common.uow import SqlUnitOfWork


class AuthorizationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lines_already_authorized(self, request_ids: Sequence[str]) -> set[tuple[str, int]]:
        if not request_ids:
            return set()
        rows = self.conn.execute(select(t.c.request_id, t.c.line_number)
                                 .where(t.c.request_id.in_(list(request_ids))))
        return {(r.request_id, r.line_number) for r in rows}

    def add_many(self, rows: Sequence[dict[str, Any]], year: int) -> list[Row[Any]]:
        """Insert and number authorizations; returns the stored rows in input order."""
        if not rows:
            return []
        ids = self.conn.execute(insert(t).returning(t.c.id, sort_by_parameter_order=True),
                                list(rows)).scalars().all()
        numbers = [{"b_id": row_id, "b_number": authorization_number(row_id, year)} for row_id in ids]
        self.conn.execute(update(t).where(t.c.id == bindparam("b_id"))
                          .values(authorization_number=bindparam("b_number")), numbers)
        stored = {r.id: r for r in self.conn.execute(select(t).where(t.c.id.in_(ids)))}
        return [stored[i] for i in ids]

    def by_number(self, number: str) -> Row[Any] | None:
        return self.conn.execute(select(t).where(t.c.authorization_number == number)).first()

    def for_member(self, member_id: str, procedure_code: str = "", overlaps_from: dt.date | None = None,
                   overlaps_to: dt.date | None = None, active_only: bool = False,
                   limit: int = 100) -> list[Row[Any]]:
        query = select(t).where(t.c.member_id == member_id)
        if procedure_code:
            query = query.where(t.c.procedure_code == procedure_code)
        if overlaps_from is not None:
            query = query.where(t.c.valid_to >= overlaps_from)
        if overlaps_to is not None:
            query = query.where(t.c.valid_from <= overlaps_to)
        if active_only:
            query = query.where(t.c.status == "active")
        return list(self.conn.execute(query.order_by(t.c.issued_at.desc(), t.c.id.desc()).limit(limit)))


class AuthorizationUnitOfWork(SqlUnitOfWork):
    authorizations: AuthorizationRepository

    def __enter__(self) -> AuthorizationUnitOfWork:
        super().__enter__()
        self.authorizations = AuthorizationRepository(self.conn)
        return self
