"""Unit of work over a SQLAlchemy Core connection.

Rolls back unless ``commit()`` is called. Events staged with ``publish()`` go
into the outbox in the same transaction, and records staged with ``audit()``
into the audit log (last, so that the chain head is locked only for the end of
the transaction); after-commit hooks (waking the relay) run only once the
commit has succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import ClassVar, Self

from sqlalchemy import Connection, Engine, Table

from services.common.audit.chain import AuditRecord
from services.common.audit.store import AuditLog
from services.common.consumer import already_processed, mark_processed
from services.common.events import OutgoingEvent
from services.common.outbox import add_events
from services.common.ports import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """:class:`~services.common.ports.UnitOfWork` on one connection of ``engine``: staged events go
    into ``outbox``, consumed ones into ``processed``, audit records into ``audit`` (by default
    the audit tables of ``outbox``'s metadata, for :attr:`service`, on the wall clock and without a
    key: bootstrap passes the service's own); ``after_commit`` runs after a commit that stored
    events (it wakes the outbox relay)."""

    #: The service whose database this is (the actor of what it does on its own).
    service: ClassVar[str] = "unnamed"

    def __init__(self, engine: Engine, outbox: Table, processed: Table,
                 after_commit: Callable[[], None] | None = None, audit: AuditLog | None = None) -> None:
        self._engine = engine
        self._outbox = outbox
        self._processed = processed
        self._after_commit = after_commit
        self._audit_log = audit if audit is not None else AuditLog.of(outbox.metadata, service=self.service)
        self._records: list[AuditRecord] = []
        self._events: list[OutgoingEvent] = []
        self._conn: Connection | None = None
        self._read_only = False

    def read_only(self) -> Self:
        """Queries only: autocommit, so no BEGIN/ROLLBACK round trips; commit() is refused."""
        self._read_only = True
        return self

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._conn

    def __enter__(self) -> Self:
        self._conn = self._engine.connect()
        if self._read_only:
            self._conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self._conn.begin()
        self._events = []
        self._records = []
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        conn = self.conn
        if conn.in_transaction():
            conn.rollback()
        conn.close()
        self._conn = None

    def publish(self, event: OutgoingEvent) -> None:
        self._events.append(event)

    def audit(self, *records: AuditRecord) -> None:
        if self._audit_log is None:
            raise RuntimeError("this unit of work's database keeps no audit log")
        # Prepared now, in the caller's context: the actor is whoever is calling.
        self._records.extend(self._audit_log.prepare(records))

    def already_processed(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        return already_processed(self.conn, self._processed, consumer, event_ids)

    def mark_processed(self, consumer: str, event_ids: Sequence[str]) -> None:
        mark_processed(self.conn, self._processed, consumer, event_ids)

    def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        add_events(self.conn, self._outbox, self._events)
        had_events = bool(self._events)
        self._events = []
        if self._records and self._audit_log is not None:
            self._audit_log.append(self.conn, self._records)
        self._records = []
        self.conn.commit()
        if had_events and self._after_commit is not None:
            self._after_commit()

    def rollback(self) -> None:
        self._events = []
        self._records = []
        self.conn.rollback()
