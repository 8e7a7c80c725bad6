"""Intake's repositories over a unit of work's connection (SQLAlchemy Core)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from services.common.clock import ensure_utc
from services.common.uow import SqlUnitOfWork
from services.intake.adapters import tables as t
from services.intake.domain.model import Coverage, RequestStatus


@dataclass(frozen=True)
class LineRecord:
    line_number: int
    procedure_code: str
    outcome: str | None
    queued: bool
    certified: bool
    determination: bytes | None
    authorization: bytes | None


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    idempotency_key: str
    fingerprint: str
    member_id: str
    status: RequestStatus
    status_reason: str
    received_at: dt.datetime
    payload: bytes
    determination_id: str | None
    decided_at: dt.datetime | None
    determination_header: bytes | None
    lines: tuple[LineRecord, ...]


def _record(row: Row[Any], lines: Iterable[Row[Any]]) -> RequestRecord:
    return RequestRecord(
        request_id=row.request_id, idempotency_key=row.idempotency_key, fingerprint=row.fingerprint,
        member_id=row.member_id, status=RequestStatus(row.status), status_reason=row.status_reason,
        received_at=ensure_utc(row.received_at), payload=bytes(row.payload),
        determination_id=row.determination_id,
        decided_at=ensure_utc(row.decided_at) if row.decided_at else None,
        determination_header=bytes(row.determination_header) if row.determination_header else None,
        lines=tuple(LineRecord(line_number=ln.line_number, procedure_code=ln.procedure_code, outcome=ln.outcome,
                               queued=bool(ln.queued), certified=bool(ln.certified),
                               determination=bytes(ln.determination) if ln.determination else None,
                               authorization=bytes(ln.authorization) if ln.authorization else None)
                    for ln in lines),
    )


class RequestRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str, *, for_update: bool = False) -> RequestRecord | None:
        query = select(t.requests).where(t.requests.c.request_id == request_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        lines = self.conn.execute(select(t.request_lines).where(t.request_lines.c.request_id == request_id)
                                  .order_by(t.request_lines.c.line_number)).all()
        return _record(row, lines)

    def get_many(self, request_ids: Sequence[str]) -> dict[str, RequestRecord]:
        if not request_ids:
            return {}
        rows = self.conn.execute(select(t.requests).where(t.requests.c.request_id.in_(list(request_ids)))).all()
        line_rows = self.conn.execute(select(t.request_lines).where(
            t.request_lines.c.request_id.in_(list(request_ids)))
            .order_by(t.request_lines.c.request_id, t.request_lines.c.line_number)).all()
        by_request: dict[str, list[Row[Any]]] = {}
        for ln in line_rows:
            by_request.setdefault(ln.request_id, []).append(ln)
        return {r.request_id: _record(r, by_request.get(r.request_id, [])) for r in rows}

    def id_for_key(self, idempotency_key: str) -> str | None:
        return self.conn.execute(select(t.requests.c.request_id)
                                 .where(t.requests.c.idempotency_key == idempotency_key)).scalar()

    def information_by_key(self, idempotency_key: str) -> Row[Any] | None:
        return self.conn.execute(select(t.additional_information).where(
            t.additional_information.c.idempotency_key == idempotency_key)).first()

    def add_information(self, values: dict[str, Any]) -> None:
        self.conn.execute(t.additional_information.insert().values(**values))

    def add(self, values: dict[str, Any], lines: Sequence[dict[str, Any]]) -> None:
        self.conn.execute(t.requests.insert().values(**values))
        self.conn.execute(t.request_lines.insert(), list(lines))

    def apply(self, headers: Sequence[dict[str, Any]], statuses: Sequence[dict[str, Any]],
              line_determinations: Sequence[dict[str, Any]], line_authorizations: Sequence[dict[str, Any]]) -> None:
        """Batched updates (executemany): keys prefixed ``b_`` select the row, the rest are new values."""
        for table, rows, keys in ((t.requests, headers, ("request_id",)), (t.requests, statuses, ("request_id",)),
                                  (t.request_lines, line_determinations, ("request_id", "line_number")),
                                  (t.request_lines, line_authorizations, ("request_id", "line_number"))):
            if not rows:
                continue
            columns = [c for c in rows[0] if not c.startswith("b_")]
            statement = (update(table).where(*(table.c[k] == bindparam(f"b_{k}") for k in keys))
                         .values({c: bindparam(c) for c in columns}))
            self.conn.execute(statement, list(rows))


class MemberRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def coverages_of(self, member_id: str) -> tuple[bool, list[Coverage]]:
        """Whether the member exists, and their coverages, in one round trip."""
        rows = self.conn.execute(
            select(t.members.c.member_id, t.coverages.c.line_of_business, t.coverages.c.plan_id,
                   t.coverages.c.state, t.coverages.c.effective, t.coverages.c.termination)
            .select_from(t.members.outerjoin(t.coverages, t.coverages.c.member_id == t.members.c.member_id))
            .where(t.members.c.member_id == member_id)).all()
        coverages = [Coverage(member_id=member_id, line_of_business=r.line_of_business, plan_id=r.plan_id,
                              state=r.state, effective=r.effective, termination=r.termination)
                     for r in rows if r.line_of_business is not None]
        return bool(rows), coverages

    def known(self, member_id: str) -> bool:
        return self.conn.execute(select(t.members.c.member_id)
                                 .where(t.members.c.member_id == member_id)).first() is not None

    def coverages(self, member_id: str) -> list[Coverage]:
        rows = self.conn.execute(select(t.coverages).where(t.coverages.c.member_id == member_id)).all()
        return [Coverage(member_id=r.member_id, line_of_business=r.line_of_business, plan_id=r.plan_id,
                         state=r.state, effective=r.effective, termination=r.termination) for r in rows]

    def replace(self, member_id: str, birth_date: dt.date | None, coverages: Sequence[Coverage]) -> None:
        """Upsert one member with exactly these coverages (seed loading)."""
        exists = self.known(member_id)
        if exists:
            self.conn.execute(update(t.members).where(t.members.c.member_id == member_id)
                              .values(birth_date=birth_date))
            self.conn.execute(t.coverages.delete().where(t.coverages.c.member_id == member_id))
        else:
            self.conn.execute(t.members.insert().values(member_id=member_id, birth_date=birth_date))
        if coverages:
            self.conn.execute(t.coverages.insert(), [
                {"member_id": c.member_id, "line_of_business": c.line_of_business, "plan_id": c.plan_id,
                 "state": c.state, "effective": c.effective, "termination": c.termination} for c in coverages])


class IntakeUnitOfWork(SqlUnitOfWork):
    requests: RequestRepository
    members: MemberRepository

    def __enter__(self) -> IntakeUnitOfWork:
        super().__enter__()
        self.requests = RequestRepository(self.conn)
        self.members = MemberRepository(self.conn)
        return self
