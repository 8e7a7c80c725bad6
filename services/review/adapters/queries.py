"""Read-only queries over the cases review has stored, for tools outside the service.

``urctl criteria replay`` (what a draft criteria set would have done to past requests) needs the
requests review received and the determinations it stored. This module is its one way in: callers
get decoded protobufs and plain facts, never review's tables or SQL, so the schema stays review's.

    with open_case_reader("sqlite:///var/run/review.db") as reader:   # NotFound, ConfigurationError
        with reader.snapshot() as cases:                               # Unavailable
            extent = cases.extent()                                    # how many, received when
            n = cases.count(received_from=start, received_before=end)
            for case in cases.received(received_from=start, received_before=end):
                ...                                                    # StoredCase | UnreadableCase
            one = cases.case(request_id)                               # or None

Read only by construction, not by promise: a SQLite file is opened through its URI with ``mode=ro``
(and ``immutable=1`` when no writer has it open, so not even a -wal or -shm file appears next to it);
PostgreSQL sessions start with ``default_transaction_read_only=on`` and each snapshot is one
REPEATABLE READ, READ ONLY transaction, so a count and the cases streamed after it agree.

Errors (services/common/errors.py): :class:`NotFound` when the SQLite file does not exist,
:class:`ConfigurationError` for a URL that is not one or names another backend, :class:`Unavailable`
when the database cannot be read (the message names the database, password hidden, and the cause).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import DecodeError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common import db
from services.common.errors import Unavailable
from services.review.adapters.tables import cases

STREAM_BATCH = 200  # rows fetched per round trip while streaming cases

#: The DeciderRef role of the rules engine; any other role is a person (nurse, physician, adjuster).
SOFTWARE_ROLE = "software"


@dataclass(frozen=True)
class StoredCase:
    """One request as review received it, and its determination as stored now: a person's later
    decision of a line replaces what software decided for that line (see :meth:`decided_by_person`)."""

    request_id: str
    received_at: dt.datetime  # aware, UTC
    request: events_pb2.RequestSubmitted
    determination: types_pb2.Determination

    def decided_by_person(self) -> dict[int, types_pb2.LineDetermination]:
        """The lines a person has decided, by line number: their ``decided_by`` names a role other
        than software (and ``action_code`` says what the person decided)."""
        return {line.line_number: line for line in self.determination.lines
                if line.decided_by.role and line.decided_by.role != SOFTWARE_ROLE}


@dataclass(frozen=True)
class UnreadableCase:
    """A stored case whose request or determination this version cannot decode."""

    request_id: str
    received_at: dt.datetime  # aware, UTC
    problem: str


@dataclass(frozen=True)
class CaseExtent:
    """How many cases are stored and when the first and the last were received (None when none)."""

    count: int
    first_received: dt.datetime | None
    last_received: dt.datetime | None


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes for timezone-aware columns; review writes them in UTC.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _decode(row: Any) -> StoredCase | UnreadableCase:
    received_at = _utc(row.received_at)
    try:
        request = events_pb2.RequestSubmitted.FromString(bytes(row.request))
        determination = types_pb2.Determination.FromString(bytes(row.determination))
    except DecodeError as exc:
        return UnreadableCase(row.request_id, received_at, f"cannot decode the stored case: {exc}")
    return StoredCase(row.request_id, received_at, request, determination)


def _window(received_from: dt.datetime, received_before: dt.datetime | None) -> sa.ColumnElement[bool]:
    condition = cases.c.received_at >= received_from
    if received_before is not None:
        condition = sa.and_(condition, cases.c.received_at < received_before)
    return condition


class CaseSnapshot:
    """The stored cases as of one read-only transaction (see :meth:`CaseReader.snapshot`).
    Windows are half-open: received at or after ``received_from`` and before ``received_before``."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def extent(self) -> CaseExtent:
        """Every stored case, whatever its window: how many, first and last receipt."""
        count, first, last = self._conn.execute(
            sa.select(sa.func.count(), sa.func.min(cases.c.received_at), sa.func.max(cases.c.received_at))
            .select_from(cases)).one()
        return CaseExtent(int(count), _utc(first) if first is not None else None,
                          _utc(last) if last is not None else None)

    def count(self, received_from: dt.datetime, received_before: dt.datetime | None = None) -> int:
        """How many cases were received in the window (what :meth:`received` will yield)."""
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(cases)
                                      .where(_window(received_from, received_before))).scalar_one())

    def received(self, received_from: dt.datetime,
                 received_before: dt.datetime | None = None) -> Iterator[StoredCase | UnreadableCase]:
        """The cases received in the window, oldest first (ties by request id), streamed in batches;
        a case that cannot be decoded comes as an :class:`UnreadableCase`, not an error."""
        columns = (cases.c.request_id, cases.c.received_at, cases.c.request, cases.c.determination)
        rows = self._conn.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(
            sa.select(*columns).where(_window(received_from, received_before))
            .order_by(cases.c.received_at, cases.c.request_id))
        for row in rows:
            yield _decode(row)

    def case(self, request_id: str) -> StoredCase | UnreadableCase | None:
        """One case by its request id; None when review stored none for it."""
        row = self._conn.execute(
            sa.select(cases.c.request_id, cases.c.received_at, cases.c.request, cases.c.determination)
            .where(cases.c.request_id == request_id)).first()
        return _decode(row) if row is not None else None


class CaseReader:
    """Read-only access to one review database; close it (or use it as a context manager)."""

    def __init__(self, engine: Engine, location: str) -> None:
        self._engine = engine
        #: The database to show people: a SQLite path, or the URL with its password hidden.
        self.location = location

    @contextmanager
    def snapshot(self) -> Iterator[CaseSnapshot]:
        """One read-only transaction. Database errors inside it (while connecting, counting or
        streaming) become :class:`Unavailable`; the caller's own exceptions pass through."""
        try:
            with self._engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield CaseSnapshot(conn)
                conn.rollback()  # nothing was written; end the transaction without a commit
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise Unavailable(f"cannot read the review database {self.location}: {str(cause).strip()}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> CaseReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def read_only_engine(url: str) -> tuple[Engine, str]:
    """An engine that cannot write to review's database, and the location to show (no password):
    :func:`services.common.db.read_only_engine`. Public so that tests can prove it refuses writes.

    Raises :class:`ConfigurationError` for a URL that is not one or a backend other than SQLite or
    PostgreSQL, :class:`NotFound` for a SQLite file that does not exist."""
    return db.read_only_engine(url, "review")


def open_case_reader(url: str) -> CaseReader:
    """A :class:`CaseReader` over review's database at ``url`` (see :func:`read_only_engine`)."""
    return CaseReader(*read_only_engine(url))
