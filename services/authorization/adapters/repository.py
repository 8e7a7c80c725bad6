"""Authorization's ports (``service_layer/ports.py``) in SQL (SQLAlchemy Core). Rows become domain
values here; a unique-key refusal becomes ``DuplicateKey``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, insert, or_, select, tuple_, update

from services.authorization.adapters.tables import authorization_extensions as ext
from services.authorization.adapters.tables import authorizations as t
from services.authorization.adapters.tables import unit_draws
from services.authorization.domain.claims import UnitDraw
from services.authorization.domain.model import (
    USABLE,
    AuthorizationToIssue,
    Decider,
    Extension,
    IssuedAuthorization,
    Metrics,
)
from services.authorization.domain.numbers import authorization_number
from services.authorization.service_layer import ports
from services.common.clock import ensure_utc
from services.common.db import duplicate_keys_raised_as
from services.common.uow import SqlUnitOfWork


def _decider(text: str | None) -> Decider | None:
    if not text:
        return None
    d = json.loads(text)
    return Decider(id=d["id"], role=d["role"], credential=d.get("credential", ""), name=d.get("name", ""),
                   criteria=d.get("criteria", ""))


def _decider_json(d: Decider | None) -> str | None:
    if d is None:
        return None
    return json.dumps({"id": d.id, "role": d.role, "credential": d.credential, "name": d.name,
                       "criteria": d.criteria})


def _issued(row: Row[Any], extensions: Sequence[Extension] = ()) -> IssuedAuthorization:
    return IssuedAuthorization(
        authorization_number=row.authorization_number or "", request_id=row.request_id,
        line_number=row.line_number, determination_id=row.determination_id, member_id=row.member_id,
        procedure_code=row.procedure_code, units=row.units, valid_from=row.valid_from, valid_to=row.valid_to,
        status=row.status, issued_at=ensure_utc(row.issued_at), servicing_npi=row.servicing_npi,
        servicing_name=row.servicing_name, unit=row.unit, units_used=row.units_used,
        criteria=tuple(json.loads(row.criteria)), decided_by=_decider(row.decided_by),
        next_review_date=row.next_review_date, reason=row.reason, action=row.action,
        approved_after_appeal=bool(row.approved_after_appeal), appeal_id=row.appeal_id,
        updated_at=ensure_utc(row.updated_at) if row.updated_at is not None else None, extensions=tuple(extensions))


def _values(a: AuthorizationToIssue) -> dict[str, Any]:
    """The columns a decision, an extension or an appeal may change."""
    return {"determination_id": a.determination_id, "procedure_code": a.procedure_code, "units": a.units,
            "valid_from": a.valid_from, "valid_to": a.valid_to, "status": a.status,
            "servicing_npi": a.servicing_npi, "servicing_name": a.servicing_name, "unit": a.unit,
            "criteria": json.dumps(list(a.criteria)), "decided_by": _decider_json(a.decided_by),
            "next_review_date": a.next_review_date, "reason": a.reason, "action": a.action,
            "approved_after_appeal": a.approved_after_appeal, "appeal_id": a.appeal_id, "updated_at": a.updated_at}


def _extension(row: Row[Any]) -> Extension:
    return Extension(request_id=row.request_id, line_number=row.line_number, determination_id=row.determination_id,
                     units_added=row.units_added, valid_to=row.valid_to, extended_at=ensure_utc(row.extended_at))


_CHANGEABLE = ("determination_id", "procedure_code", "units", "valid_from", "valid_to", "status", "servicing_npi",
               "servicing_name", "unit", "criteria", "decided_by", "next_review_date", "reason", "action",
               "approved_after_appeal", "appeal_id", "updated_at")
# Updates by number, built once (executemany with bound parameters).
_UPDATE = (update(t).where(t.c.authorization_number == bindparam("b_number"))
           .values({name: bindparam(name, type_=t.c[name].type) for name in _CHANGEABLE}))


# Review's duplicate check, once per consumer batch: built once, so SQLAlchemy compiles it once.
_USABLE_OVERLAPPING = (select(t).where(t.c.member_id.in_(bindparam("members", expanding=True)),
                                       t.c.status.in_(bindparam("usable", expanding=True)),
                                       t.c.valid_to >= bindparam("start"), t.c.valid_from <= bindparam("end"))
                       .order_by(t.c.issued_at.desc(), t.c.id.desc()))


class SqlAuthorizationRepository(ports.AuthorizationRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _with_extensions(self, rows: Iterable[Row[Any]]) -> list[IssuedAuthorization]:
        rows = list(rows)
        numbers = [r.authorization_number for r in rows if r.authorization_number]
        found: dict[str, list[Extension]] = {}
        if numbers:
            for e in self.conn.execute(select(ext).where(ext.c.authorization_number.in_(numbers))
                                       .order_by(ext.c.id)):
                found.setdefault(e.authorization_number, []).append(_extension(e))
        return [_issued(r, found.get(r.authorization_number, ())) for r in rows]

    def of_lines(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], IssuedAuthorization]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self.conn.execute(select(t).where(tuple_(t.c.request_id, t.c.line_number).in_(wanted)))
        return {(a.request_id, a.line_number): a for a in self._with_extensions(rows)}

    def add_many(self, authorizations: Sequence[AuthorizationToIssue]) -> list[IssuedAuthorization]:
        if not authorizations:
            return []
        # The number is a permutation of the row's id, so it needs the id: insert, then number.
        with duplicate_keys_raised_as("an authorization for one of these request lines"):
            ids = self.conn.execute(insert(t).returning(t.c.id, sort_by_parameter_order=True), [
                {"request_id": a.request_id, "line_number": a.line_number, "member_id": a.member_id,
                 "issued_at": a.issued_at, "units_used": a.units_used, **_values(a)}
                for a in authorizations]).scalars().all()
        numbers = [authorization_number(row_id, a.issued_at.year) for row_id, a in zip(ids, authorizations,
                                                                                     strict=True)]
        self.conn.execute(update(t).where(t.c.id == bindparam("b_id"))
                          .values(authorization_number=bindparam("b_number")),
                          [{"b_id": row_id, "b_number": number} for row_id, number in zip(ids, numbers, strict=True)])
        issued = [IssuedAuthorization.numbered(a, number) for a, number in zip(authorizations, numbers, strict=True)]
        self._add_extensions(issued, set())
        return issued

    def update_many(self, authorizations: Sequence[IssuedAuthorization]) -> None:
        if not authorizations:
            return
        self.conn.execute(_UPDATE, [{"b_number": a.authorization_number, **_values(a)} for a in authorizations])
        known = {(r.request_id, r.line_number) for r in self.conn.execute(
            select(ext.c.request_id, ext.c.line_number).where(
                ext.c.authorization_number.in_([a.authorization_number for a in authorizations])))}
        self._add_extensions(authorizations, known)

    def _add_extensions(self, authorizations: Sequence[IssuedAuthorization], known: set[tuple[str, int]]) -> None:
        rows = [{"authorization_number": a.authorization_number, "request_id": e.request_id,
                 "line_number": e.line_number, "determination_id": e.determination_id, "units_added": e.units_added,
                 "valid_to": e.valid_to, "extended_at": e.extended_at}
                for a in authorizations for e in a.extensions if (e.request_id, e.line_number) not in known]
        if rows:
            with duplicate_keys_raised_as("an extension by one of these request lines"):
                self.conn.execute(insert(ext), rows)

    def by_number(self, number: str) -> IssuedAuthorization | None:
        found = self._with_extensions(self.conn.execute(select(t).where(t.c.authorization_number == number)))
        return found[0] if found else None

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
            query = query.where(t.c.status.in_(sorted(USABLE)))
        return self._with_extensions(self.conn.execute(query.order_by(t.c.issued_at.desc(), t.c.id.desc())
                                                       .limit(limit)))

    def usable_overlapping(self, queries: Sequence[tuple[str, dt.date, dt.date]],
                           limit: int = 100) -> list[list[IssuedAuthorization]]:
        # One read for the batch (the members' usable records valid on some day of the widest span), each
        # query's answer picked from it in its order; one more for their extensions.
        if not queries:
            return []
        rows = self.conn.execute(_USABLE_OVERLAPPING, {
            "members": sorted({m for m, _, _ in queries}), "usable": sorted(USABLE),
            "start": min(start for _, start, _ in queries), "end": max(end for _, _, end in queries)}).all()
        found = self._with_extensions(rows)
        return [[a for a in found if a.member_id == member_id and a.valid_to >= start and a.valid_from <= end][:limit]
                for member_id, start, end in queries]

    def draw(self, number: str, units: int) -> bool:
        # One statement: on PostgreSQL a concurrent draw on the same row waits for this one to end and
        # then re-checks the condition against the row as committed, so the last unit goes once.
        done = self.conn.execute(update(t).where(t.c.authorization_number == number,
                                                 t.c.status.in_(sorted(USABLE)),
                                                 t.c.units_used + units <= t.c.units)
                                 .values(units_used=t.c.units_used + units))
        return done.rowcount == 1

    def metrics(self, issued_from: dt.date | None = None, issued_to: dt.date | None = None) -> Metrics:
        conditions = []
        if issued_from is not None:
            conditions.append(t.c.issued_at >= dt.datetime.combine(issued_from, dt.time(), tzinfo=dt.UTC))
        if issued_to is not None:
            conditions.append(t.c.issued_at < dt.datetime.combine(issued_to + dt.timedelta(days=1), dt.time(),
                                                                  tzinfo=dt.UTC))

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        row = self.conn.execute(select(
            *(count(t.c.status == s).label(s) for s in ("approved", "partially_approved", "modified", "denied",
                                                         "cancelled")),
            count(and_(t.c.approved_after_appeal.is_(True), or_(*(t.c.status == s for s in sorted(USABLE)))))
            .label("after_appeal")).where(*conditions)).one()
        return Metrics(approved=int(row.approved), partially_approved=int(row.partially_approved),
                       modified=int(row.modified), denied=int(row.denied), cancelled=int(row.cancelled),
                       approved_after_appeal=int(row.after_appeal))


class SqlUnitDrawRepository(ports.UnitDrawRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, claim_line_id: str) -> UnitDraw | None:
        row = self.conn.execute(select(unit_draws).where(unit_draws.c.claim_line_id == claim_line_id)).first()
        if row is None:
            return None
        return UnitDraw(claim_line_id=row.claim_line_id, authorization_number=row.authorization_number,
                        units=row.units, fingerprint=row.fingerprint, drawn_at=ensure_utc(row.drawn_at))

    def add(self, draw: UnitDraw) -> None:
        with duplicate_keys_raised_as(f"a draw for claim line {draw.claim_line_id!r}"):
            self.conn.execute(insert(unit_draws).values(
                claim_line_id=draw.claim_line_id, authorization_number=draw.authorization_number, units=draw.units,
                fingerprint=draw.fingerprint, drawn_at=draw.drawn_at))


class SqlAuthorizationUnitOfWork(SqlUnitOfWork, ports.AuthorizationUnitOfWork):
    service = "authorization"

    def __enter__(self) -> SqlAuthorizationUnitOfWork:
        super().__enter__()
        self.authorizations = SqlAuthorizationRepository(self.conn)
        self.draws = SqlUnitDrawRepository(self.conn)
        return self
