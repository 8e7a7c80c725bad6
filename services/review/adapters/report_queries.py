"""Read-only queries over review's database for the CMS-0057-F public report (the figures:
services/review/domain/public_report.py). Review is where the truth of every figure lives: the
requests as received (line of business, plan, receipt), each line's determination, the regulatory
clock (its urgency and whether it was extended), the appeals and their outcomes, and each task's
trail (a line's first decision when an appeal has replaced it since).

    with open_report_reader(url) as reader:            # NotFound, ConfigurationError
        requests = reader.requests(received_from, received_before)   # Unavailable

Read only by construction (services/common/db.py read_only_engine); one REPEATABLE READ, READ
ONLY transaction on PostgreSQL, so the cases, appeals and trails agree with each other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import DecodeError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common import db
from services.common.clock import ensure_utc
from services.common.errors import Unavailable
from services.common.proto_enums import to_name
from services.review.adapters.tables import appeals, cases, review_tasks, task_events
from services.review.domain.public_report import ReportLine, ReportRequest

ACTION = types_pb2.ActionCode
#: A person's final word on a line, as the task's trail names it, and the ActionCode it made.
DECISION_ACTIONS = {"approve": "certified_in_total", "approve_partial": "certified_partial", "modify": "modified",
                    "deny": "not_certified"}
#: Appeal outcomes in order of weight: a line appealed twice reports the best it got.
_APPEAL_RANK = {"overturned": 2, "partially_overturned": 1, "upheld": 0}


def _first_decisions(conn: sa.Connection, request_ids: Sequence[str]) -> dict[tuple[str, int], tuple[str, Any]]:
    """(request, line) → (action, when) of the first final decision on each line's first review task."""
    t, e = review_tasks, task_events
    rows = conn.execute(
        sa.select(t.c.request_id, t.c.line_number, e.c.action, e.c.at)
        .select_from(e.join(t, t.c.task_id == e.c.task_id))
        .where(t.c.request_id.in_(request_ids), t.c.appeal_id == "", e.c.action.in_(sorted(DECISION_ACTIONS)))
        .order_by(e.c.at, e.c.id))
    first: dict[tuple[str, int], tuple[str, Any]] = {}
    for row in rows:
        first.setdefault((row.request_id, row.line_number), (DECISION_ACTIONS[row.action], ensure_utc(row.at)))
    return first


def _deemed_denials(conn: sa.Connection, request_ids: Sequence[str]) -> dict[tuple[str, int], Any]:
    """(request, line) → when a Medicaid deadline passed undecided (42 CFR 438.404(c)(5))."""
    t = review_tasks
    rows = conn.execute(sa.select(t.c.request_id, t.c.line_number, t.c.missed_at)
                        .where(t.c.request_id.in_(request_ids), t.c.appeal_id == "", t.c.deemed_denial.is_(True),
                               t.c.missed_at.is_not(None)))
    return {(r.request_id, r.line_number): ensure_utc(r.missed_at) for r in rows}


def _appeal_outcomes(conn: sa.Connection, request_ids: Sequence[str]) -> dict[tuple[str, int], str]:
    rows = conn.execute(sa.select(appeals.c.request_id, appeals.c.line_number, appeals.c.outcome)
                        .where(appeals.c.request_id.in_(request_ids), appeals.c.outcome.is_not(None)))
    best: dict[tuple[str, int], str] = {}
    for r in rows:
        key = (r.request_id, r.line_number)
        if _APPEAL_RANK.get(r.outcome, -1) > _APPEAL_RANK.get(best.get(key, ""), -1):
            best[key] = r.outcome
    return best


def _line(request_id: str, ln: types_pb2.LineDetermination, appealed: str,
          first: tuple[str, Any] | None, deemed: Any) -> ReportLine:
    action = to_name(ACTION, ln.action_code) or "unspecified"
    decided_at = ensure_utc(ln.decided_at.ToDatetime(tzinfo=dt.UTC)) if ln.HasField("decided_at") else None
    if appealed and first is not None:
        # The line now says what the appeal decided; its first decision is in its task's trail.
        action, decided_at = first
    elif action == "pended" and deemed is not None:
        action, decided_at = "not_certified", deemed
    elif action == "pended":
        decided_at = None
    return ReportLine(ln.line_number, action, decided_at, appealed, ln.procedure_code)


def _extended(clock_state: str | None) -> bool:
    if not clock_state:
        return False
    return bool(json.loads(clock_state).get("extended"))


class ReportReader:
    """Read-only access to one review database for the report; close it (or use it as a context manager)."""

    def __init__(self, engine: Engine, location: str) -> None:
        self._engine = engine
        #: The database to show people: a SQLite path, or the URL with its password hidden.
        self.location = location

    def requests(self, received_from: dt.datetime, received_before: dt.datetime) -> list[ReportRequest]:
        """The requests received in [``received_from``, ``received_before``), as the report sees them.
        Database errors become :class:`Unavailable`; a stored request this version cannot decode too."""
        try:
            with self._engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                found = self._read(conn, received_from, received_before)
                conn.rollback()
                return found
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise Unavailable(f"cannot read the review database {self.location}: {str(cause).strip()}") from exc

    @staticmethod
    def _read(conn: sa.Connection, received_from: dt.datetime, received_before: dt.datetime) -> list[ReportRequest]:
        rows = conn.execute(
            sa.select(cases.c.request_id, cases.c.line_of_business, cases.c.urgency, cases.c.received_at,
                      cases.c.request, cases.c.determination, cases.c.clock_state)
            .where(cases.c.received_at >= received_from, cases.c.received_at < received_before)
            .order_by(cases.c.received_at, cases.c.request_id)).all()
        ids = [r.request_id for r in rows]
        appealed = _appeal_outcomes(conn, ids) if ids else {}
        first = _first_decisions(conn, sorted({rid for rid, _ in appealed})) if appealed else {}
        deemed = _deemed_denials(conn, ids) if ids else {}
        found = []
        for r in rows:
            try:
                request = events_pb2.RequestSubmitted.FromString(bytes(r.request))
                determination = types_pb2.Determination.FromString(bytes(r.determination))
            except DecodeError as exc:
                raise Unavailable(f"request {r.request_id}: cannot decode the stored case: {exc}") from exc
            lines = tuple(_line(r.request_id, ln, appealed.get((r.request_id, ln.line_number), ""),
                                first.get((r.request_id, ln.line_number)), deemed.get((r.request_id, ln.line_number)))
                          for ln in determination.lines)
            found.append(ReportRequest(request_id=r.request_id, line_of_business=r.line_of_business,
                                       plan_id=request.coverage.plan_id, urgency=r.urgency,
                                       received_at=ensure_utc(r.received_at), extended=_extended(r.clock_state),
                                       lines=lines))
        return found

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> ReportReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def open_report_reader(url: str) -> ReportReader:
    """A :class:`ReportReader` over review's database at ``url`` (NotFound, ConfigurationError)."""
    return ReportReader(*db.read_only_engine(url, "review"))
