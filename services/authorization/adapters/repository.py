"""Authorization's ports (``service_layer/ports.py``) in SQL (SQLAlchemy Core). Rows become domain
values here; a unique-key refusal becomes ``DuplicateKey``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from services.authorization.adapters.tables import authorizations as t
from services.authorization.domain.model import AuthorizationToIssue, IssuedAuthorization
from services.authorization.domain.numbers import authorization_number
from services.authorization.service_layer import ports
from services.common.clock import ensure_utc
from services.common.db import duplicate_keys_raised_as
from services.common.uow import SqlUnitOfWork


def _issued(row: Row[Any]) -> IssuedAuthorization:
    return IssuedAuthorization(
        authorization_number=row.authorization_number or "", request_id=row.request_id,
        line_number=row.line_number, determination_id=row.determination_id, member_id=row.member_id,
        procedure_code=row.procedure_code, units=row.units, valid_from=row.valid_from, valid_to=row.valid_to,
        status=row.status, issued_at=ensure_utc(row.issued_at))


class SqlAuthorizationRepository(ports.AuthorizationRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lines_already_authorized(self, request_ids: Sequence[str]) -> set[tuple[str, int]]:
        if not request_ids:
            return set()
        rows = self.conn.execute(select(t.c.request_id, t.c.line_number)
                                 .where(t.c.request_id.in_(list(request_ids))))
        return {(r.request_id, r.line_number) for r in rows}

    def add_many(self, authorizations: Sequence[AuthorizationToIssue]) -> list[IssuedAuthorization]:
        if not authorizations:
            return []
        # The number is a permutation of the row's id, so it needs the id: insert, then number.
        with duplicate_keys_raised_as("an authorization for one of these request lines"):
            ids = self.conn.execute(insert(t).returning(t.c.id, sort_by_parameter_order=True), [
                {"request_id": a.request_id, "line_number": a.line_number, "determination_id": a.determination_id,
                 "member_id": a.member_id, "procedure_code": a.procedure_code, "units": a.units,
                 "valid_from": a.valid_from, "valid_to": a.valid_to, "status": a.status, "issued_at": a.issued_at}
                for a in authorizations]).scalars().all()
        numbers = [authorization_number(row_id, a.issued_at.year) for row_id, a in zip(ids, authorizations,
                                                                                     strict=True)]
        self.conn.execute(update(t).where(t.c.id == bindparam("b_id"))
                          .values(authorization_number=bindparam("b_number")),
                          [{"b_id": row_id, "b_number": number} for row_id, number in zip(ids, numbers, strict=True)])
        return [IssuedAuthorization.numbered(a, number) for a, number in zip(authorizations, numbers, strict=True)]

    def by_number(self, number: str) -> IssuedAuthorization | None:
        row = self.conn.execute(select(t).where(t.c.authorization_number == number)).first()
        return None if row is None else _issued(row)

    def for_member(self, member_id: str, procedure_code: str = "", overlaps_from: dt.date | None = None,
                   overlaps_to: dt.date | None = None, active_only: bool = False,
                   limit: int = 100) -> list[IssuedAuthorization]:
        query = select(t).where(t.c.member_id == member_id)
        if procedure_code:
            query = query.where(t.c.procedure_code == procedure_code)
        if overlaps_from is not None:
            query = query.where(t.c.valid_to >= overlaps_from)
        if overlaps_to is not None:
            query = query.where(t.c.valid_from <= overlaps_to)
        if active_only:
            query = query.where(t.c.status == "active")
        return [_issued(r) for r in self.conn.execute(query.order_by(t.c.issued_at.desc(), t.c.id.desc())
                                                      .limit(limit))]


class SqlAuthorizationUnitOfWork(SqlUnitOfWork, ports.AuthorizationUnitOfWork):
    def __enter__(self) -> SqlAuthorizationUnitOfWork:
        super().__enter__()
        self.authorizations = SqlAuthorizationRepository(self.conn)
        return self
