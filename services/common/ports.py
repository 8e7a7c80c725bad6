"""The unit of work every service's ports build on: one transaction, the events it announces and
the record of the events it has consumed. Infrastructure only: no service's domain lives here.

A service's ``service_layer/ports.py`` subclasses :class:`UnitOfWork` and adds its repositories;
``services/common/uow.py`` is the SQL implementation, ``tests/fakes/`` the in-memory one, and one
contract test suite (``tests/contract/``) runs against both so that they behave alike.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from services.common.audit.chain import AuditRecord
from services.common.events import OutgoingEvent


class UnitOfWork(abc.ABC):
    """One transaction, used as a context manager.

    Contract:
    * ``with uow:`` opens the transaction; leaving the block without :meth:`commit` (or by an
      exception) rolls back: nothing it wrote, staged or marked exists afterwards;
    * :meth:`publish` stages an event; it is stored (in the outbox) atomically with the changes,
      on commit, in the order published, and vanishes on rollback;
    * :meth:`mark_processed` records consumed events in the same transaction, so applying an event
      and remembering that it was applied happen together; :meth:`already_processed` reads that
      record (the idempotent consumer);
    * a unit of work opened with :meth:`read_only` only reads; its :meth:`commit` raises
      ``RuntimeError``;
    * :meth:`audit` stages audit records; on commit they are appended to the service's audit log
      (services/common/audit/) in the same transaction, in the order recorded, after the entries
      of every transaction committed before; on rollback they vanish with the changes.
    """

    @abc.abstractmethod
    def read_only(self) -> Self:
        """Mark this unit of work as queries only (cheaper on a database); returns it for ``with``."""

    @abc.abstractmethod
    def __enter__(self) -> Self:
        """Open the transaction."""

    @abc.abstractmethod
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Roll back whatever was not committed, and release the transaction."""

    @abc.abstractmethod
    def publish(self, event: OutgoingEvent) -> None:
        """Stage an event to be stored with this transaction's changes when it commits."""

    @abc.abstractmethod
    def already_processed(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """Which of these events ``consumer`` has already applied (committed)."""

    @abc.abstractmethod
    def mark_processed(self, consumer: str, event_ids: Sequence[str]) -> None:
        """Record that ``consumer`` applied these events (ids it has not recorded before)."""

    @abc.abstractmethod
    def audit(self, *records: AuditRecord) -> None:
        """Stage audit records to be appended to the audit log with this transaction's changes."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the changes, the staged events, the audit records and the processed-event record
        durable, together."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Discard the changes and staged events so far."""
