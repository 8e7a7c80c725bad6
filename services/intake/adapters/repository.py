"""Intake's ports (``service_layer/ports.py``) over a unit of work's connection (SQLAlchemy Core).
Rows become domain values here; a unique-key refusal becomes ``DuplicateKey``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, Table, bindparam, select, update

from services.common.clock import ensure_utc
from services.common.db import duplicate_keys_raised_as
from services.common.uow import SqlUnitOfWork
from services.intake.adapters import tables as t
from services.intake.domain.model import Coverage, Member, RequestStatus
from services.intake.domain.records import (
    AppealDecided,
    AppealRecord,
    InformationRecord,
    LineRecord,
    RequestChanges,
    RequestRecord,
    RevisionRecord,
)
from services.intake.service_layer import ports


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return bytes(value) if value else None


def _record(row: Row[Any], lines: Iterable[Row[Any]]) -> RequestRecord:
    return RequestRecord(
        request_id=row.request_id, submitter=row.submitter, idempotency_key=row.idempotency_key,
        fingerprint=row.fingerprint,
        member_id=row.member_id, line_of_business=row.line_of_business, member_state=row.member_state,
        urgency=row.urgency, review_type=row.review_type, status=RequestStatus(row.status),
        status_reason=row.status_reason, received_at=ensure_utc(row.received_at), payload=bytes(row.payload),
        determination_id=row.determination_id,
        decided_at=ensure_utc(row.decided_at) if row.decided_at else None, decided_by=row.decided_by,
        determination_header=_bytes(row.determination_header), claim_number=row.claim_number,
        lines=tuple(LineRecord(line_number=ln.line_number, procedure_code=ln.procedure_code, outcome=ln.outcome,
                               queued=bool(ln.queued), certified=bool(ln.certified),
                               determination=_bytes(ln.determination), authorization=_bytes(ln.authorization))
                    for ln in lines),
    )


# Statements of every submission, built once: SQLAlchemy then compiles each once and skips building it
# and computing its cache key per call (about a millisecond of a submission's CPU when built per call).
_INSERT_REQUEST = t.requests.insert()
_INSERT_LINES = t.request_lines.insert()
_MEMBERS_WITH_COVERAGES = (
    select(t.members.c.member_id, t.members.c.birth_date, t.coverages.c.line_of_business, t.coverages.c.plan_id,
           t.coverages.c.state, t.coverages.c.effective, t.coverages.c.termination)
    .select_from(t.members.outerjoin(t.coverages, t.coverages.c.member_id == t.members.c.member_id))
    .where(t.members.c.member_id.in_(bindparam("member_ids", expanding=True)))
    .order_by(t.members.c.member_id, t.coverages.c.id))


class SqlRequestRepository(ports.RequestRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_many(self, records: Sequence[RequestRecord]) -> None:
        if not records:
            return
        what = (f"request {records[0].request_id} (idempotency key {records[0].idempotency_key!r})"
                if len(records) == 1 else f"one of {len(records)} requests")
        with duplicate_keys_raised_as(what):
            self.conn.execute(_INSERT_REQUEST, [dict(
                request_id=r.request_id, submitter=r.submitter, idempotency_key=r.idempotency_key,
                fingerprint=r.fingerprint, member_id=r.member_id,
                line_of_business=r.line_of_business, member_state=r.member_state,
                urgency=r.urgency, review_type=r.review_type, status=r.status.value,
                status_reason=r.status_reason, received_at=r.received_at, payload=r.payload,
                determination_id=r.determination_id, decided_at=r.decided_at,
                decided_by=r.decided_by, determination_header=r.determination_header,
                updated_at=r.received_at, claim_number=r.claim_number) for r in records])
        lines = [{"request_id": r.request_id, "line_number": ln.line_number, "procedure_code": ln.procedure_code,
                  "outcome": ln.outcome, "queued": ln.queued, "certified": ln.certified,
                  "determination": ln.determination, "authorization": ln.authorization}
                 for r in records for ln in r.lines]
        if lines:
            self.conn.execute(_INSERT_LINES, lines)

    def _one(self, query: Select[Any]) -> RequestRecord | None:
        row = self.conn.execute(query).first()
        if row is None:
            return None
        lines = self.conn.execute(select(t.request_lines).where(t.request_lines.c.request_id == row.request_id)
                                  .order_by(t.request_lines.c.line_number)).all()
        return _record(row, lines)

    def get(self, request_id: str, *, for_update: bool = False) -> RequestRecord | None:
        query = select(t.requests).where(t.requests.c.request_id == request_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return self._one(query)

    def by_key(self, submitter: str, idempotency_key: str) -> RequestRecord | None:
        return self._one(select(t.requests).where(t.requests.c.submitter == submitter,
                                                  t.requests.c.idempotency_key == idempotency_key))

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

    def of_member(self, member_id: str, limit: int, submitter: str | None = None) -> list[RequestRecord]:
        return self._newest(select(t.requests.c.request_id).where(t.requests.c.member_id == member_id), limit,
                            submitter)

    def of_claim(self, claim_number: str, limit: int, submitter: str | None = None) -> list[RequestRecord]:
        return self._newest(select(t.requests.c.request_id).where(t.requests.c.claim_number == claim_number),
                            limit, submitter)

    def _newest(self, query: Select[Any], limit: int, submitter: str | None) -> list[RequestRecord]:
        if submitter is not None:
            query = query.where(t.requests.c.submitter == submitter)
        ids = self.conn.execute(query.order_by(t.requests.c.received_at.desc(), t.requests.c.request_id)
                                .limit(limit)).scalars().all()
        found = self.get_many(list(ids))
        return [found[i] for i in ids]

    def apply(self, changes: RequestChanges) -> None:
        # Batched updates (executemany): keys prefixed ``b_`` select the row, the rest are new values.
        batches: tuple[tuple[Table, tuple[str, ...], list[dict[str, Any]]], ...] = (
            (t.requests, ("request_id",), [
                {"b_request_id": d.request_id, "determination_id": d.determination_id, "decided_at": d.decided_at,
                 "decided_by": d.decided_by, "determination_header": d.header} for d in changes.determinations]),
            (t.requests, ("request_id",), [
                {"b_request_id": s.request_id, "status": s.status.value, "updated_at": s.at}
                for s in changes.statuses]),
            (t.request_lines, ("request_id", "line_number"), [
                {"b_request_id": ln.request_id, "b_line_number": ln.line_number, "outcome": ln.outcome,
                 "queued": ln.queued, "certified": ln.certified, "determination": ln.determination}
                for ln in changes.lines_decided]),
            (t.request_lines, ("request_id", "line_number"), [
                {"b_request_id": a.request_id, "b_line_number": a.line_number, "authorization": a.authorization,
                 "authorization_number": a.authorization_number} for a in changes.lines_authorized]),
        )
        for table, keys, rows in batches:
            if not rows:
                continue
            columns = [c for c in rows[0] if not c.startswith("b_")]
            statement = (update(table).where(*(table.c[k] == bindparam(f"b_{k}") for k in keys))
                         .values({c: bindparam(c) for c in columns}))
            self.conn.execute(statement, rows)


    def cancel(self, request_id: str, reason: str, at: dt.datetime) -> None:
        self.conn.execute(update(t.requests).where(t.requests.c.request_id == request_id).values(
            status=RequestStatus.CANCELLED.value, status_reason=reason[:300], updated_at=at))

    def revise(self, request_id: str, payload: bytes, procedure_codes: Sequence[tuple[int, str]],
               at: dt.datetime) -> None:
        self.conn.execute(update(t.requests).where(t.requests.c.request_id == request_id).values(
            payload=payload, updated_at=at))
        if procedure_codes:
            lines = t.request_lines
            self.conn.execute(update(lines).where(lines.c.request_id == bindparam("b_request_id"),
                                                  lines.c.line_number == bindparam("b_line"))
                              .values(procedure_code=bindparam("b_code")),
                              [{"b_request_id": request_id, "b_line": n, "b_code": code}
                               for n, code in procedure_codes])


class SqlRevisionRepository(ports.RevisionRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, record: RevisionRecord) -> None:
        with duplicate_keys_raised_as(f"revision with idempotency key {record.idempotency_key!r}"):
            self.conn.execute(t.request_revisions.insert().values(
                revision_id=record.revision_id, request_id=record.request_id, idempotency_key=record.idempotency_key,
                fingerprint=record.fingerprint, payload=record.payload, received_at=record.received_at))

    def by_key(self, idempotency_key: str) -> RevisionRecord | None:
        row = self.conn.execute(select(t.request_revisions).where(
            t.request_revisions.c.idempotency_key == idempotency_key)).first()
        if row is None:
            return None
        return RevisionRecord(revision_id=row.revision_id, request_id=row.request_id,
                              idempotency_key=row.idempotency_key, fingerprint=row.fingerprint,
                              payload=bytes(row.payload), received_at=ensure_utc(row.received_at))


def _appeal(row: Row[Any]) -> AppealRecord:
    return AppealRecord(appeal_id=row.appeal_id, request_id=row.request_id, line_number=row.line_number,
                        idempotency_key=row.idempotency_key, fingerprint=row.fingerprint, urgency=row.urgency,
                        appellant=row.appellant, appellant_name=row.appellant_name, reason=row.reason,
                        filed_at=ensure_utc(row.filed_at), payload=bytes(row.payload), status=row.status,
                        outcome=row.outcome, decided_at=ensure_utc(row.decided_at) if row.decided_at else None,
                        forwarded_to=row.forwarded_to)


class SqlAppealRepository(ports.AppealRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, record: AppealRecord) -> None:
        with duplicate_keys_raised_as(f"an appeal of request {record.request_id} line {record.line_number} "
                                      f"(key {record.idempotency_key!r})"):
            self.conn.execute(t.appeals.insert().values(
                appeal_id=record.appeal_id, request_id=record.request_id, line_number=record.line_number,
                idempotency_key=record.idempotency_key, fingerprint=record.fingerprint, urgency=record.urgency,
                appellant=record.appellant, appellant_name=record.appellant_name, reason=record.reason,
                filed_at=record.filed_at, payload=record.payload, status=record.status, outcome=record.outcome,
                decided_at=record.decided_at, forwarded_to=record.forwarded_to))

    def by_key(self, idempotency_key: str) -> AppealRecord | None:
        row = self.conn.execute(select(t.appeals).where(t.appeals.c.idempotency_key == idempotency_key)).first()
        return None if row is None else _appeal(row)

    def of_request(self, request_id: str) -> list[AppealRecord]:
        rows = self.conn.execute(select(t.appeals).where(t.appeals.c.request_id == request_id)
                                 .order_by(t.appeals.c.filed_at, t.appeals.c.appeal_id))
        return [_appeal(r) for r in rows]

    def decide(self, decided: Sequence[AppealDecided]) -> None:
        if not decided:
            return
        self.conn.execute(update(t.appeals).where(t.appeals.c.appeal_id == bindparam("b_id")).values(
            status="decided", outcome=bindparam("b_outcome"), decided_at=bindparam("b_at"),
            forwarded_to=bindparam("b_forwarded")),
            [{"b_id": d.appeal_id, "b_outcome": d.outcome, "b_at": d.decided_at, "b_forwarded": d.forwarded_to}
             for d in decided])


class SqlInformationRepository(ports.InformationRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, record: InformationRecord) -> None:
        with duplicate_keys_raised_as(f"information with idempotency key {record.idempotency_key!r}"):
            self.conn.execute(t.additional_information.insert().values(
                information_id=record.information_id, request_id=record.request_id, submitter=record.submitter,
                idempotency_key=record.idempotency_key, fingerprint=record.fingerprint, payload=record.payload,
                received_at=record.received_at))

    def by_key(self, submitter: str, idempotency_key: str) -> InformationRecord | None:
        info = t.additional_information
        row = self.conn.execute(select(info).where(info.c.submitter == submitter,
                                                   info.c.idempotency_key == idempotency_key)).first()
        return None if row is None else _information(row)

    def of_request(self, request_id: str) -> list[InformationRecord]:
        info = t.additional_information
        rows = self.conn.execute(select(info).where(info.c.request_id == request_id)
                                 .order_by(info.c.received_at, info.c.information_id))
        return [_information(r) for r in rows]


def _information(row: Row[Any]) -> InformationRecord:
    return InformationRecord(information_id=row.information_id, request_id=row.request_id, submitter=row.submitter,
                             idempotency_key=row.idempotency_key, fingerprint=row.fingerprint,
                             payload=bytes(row.payload), received_at=ensure_utc(row.received_at))


class SqlMemberRepository(ports.MemberRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get_many(self, member_ids: Sequence[str]) -> dict[str, Member]:
        # One round trip: the members and their coverages (if any) by an outer join.
        if not member_ids:
            return {}
        rows = self.conn.execute(_MEMBERS_WITH_COVERAGES, {"member_ids": sorted(set(member_ids))}).all()
        found: dict[str, list[Row[Any]]] = {}
        for row in rows:
            found.setdefault(row.member_id, []).append(row)
        return {member_id: Member(member_id=member_id, birth_date=mine[0].birth_date, coverages=tuple(
            Coverage(member_id=member_id, line_of_business=r.line_of_business, plan_id=r.plan_id, state=r.state,
                     effective=r.effective, termination=r.termination)
            for r in mine if r.line_of_business is not None)) for member_id, mine in found.items()}

    def save(self, member: Member) -> None:
        known = self.conn.execute(select(t.members.c.member_id)
                                  .where(t.members.c.member_id == member.member_id)).first() is not None
        if known:
            self.conn.execute(update(t.members).where(t.members.c.member_id == member.member_id)
                              .values(birth_date=member.birth_date))
            self.conn.execute(t.coverages.delete().where(t.coverages.c.member_id == member.member_id))
        else:
            self.conn.execute(t.members.insert().values(member_id=member.member_id, birth_date=member.birth_date))
        if member.coverages:
            self.conn.execute(t.coverages.insert(), [
                {"member_id": member.member_id, "line_of_business": c.line_of_business, "plan_id": c.plan_id,
                 "state": c.state, "effective": c.effective, "termination": c.termination}
                for c in member.coverages])


class SqlIntakeUnitOfWork(SqlUnitOfWork, ports.IntakeUnitOfWork):
    service = "intake"

    def __enter__(self) -> SqlIntakeUnitOfWork:
        super().__enter__()
        self.requests = SqlRequestRepository(self.conn)
        self.information = SqlInformationRepository(self.conn)
        self.members = SqlMemberRepository(self.conn)
        self.revisions = SqlRevisionRepository(self.conn)
        self.appeals = SqlAppealRepository(self.conn)
        return self
