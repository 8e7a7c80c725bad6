"""The in-memory unit of work every service's fake builds on (``services/common/ports.py``)."""

from __future__ import annotations

import abc
import copy
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar

from services.common.audit.chain import AuditRecord
from services.common.audit.store import prepare
from services.common.events import OutgoingEvent
from services.common.ports import UnitOfWork

#: The key the fakes make member references with.
FAKE_AUDIT_KEY = b"fake-audit-key-for-the-tests"


class FakeStore:
    """What a fake database holds. Subclasses add their tables as attributes; every attribute is a
    container (dict, list, set) of immutable values, so copying each container is a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outbox: list[OutgoingEvent] = []
        self.processed: set[tuple[str, str]] = set()  # (consumer, event id)
        #: What the units of work recorded and committed, in order (actors filled in, members as references).
        self.audit: list[AuditRecord] = []

    def _tables(self) -> dict[str, object]:
        return {name: value for name, value in vars(self).items() if name != "_lock"}

    def snapshot(self) -> Self:
        """A private copy for one transaction."""
        with self._lock:
            twin = copy.copy(self)
            for name, value in self._tables().items():
                setattr(twin, name, copy.copy(value))
        return twin

    def take(self, working: Self) -> None:
        """Commit: the transaction's copy becomes the state."""
        with self._lock:
            for name, value in working._tables().items():
                setattr(self, name, copy.copy(value))


S = TypeVar("S", bound=FakeStore)


class FakeUnitOfWork(UnitOfWork, Generic[S]):
    """Works on a snapshot of ``store``; ``commit`` makes the snapshot (with the staged events, audit
    records and processed ids) the store's state, so whatever is not committed simply disappears."""

    #: The service the fake stands for (the actor of what it does outside a call).
    service = "fake"

    def __init__(self, store: S) -> None:
        self.store = store
        self._read_only = False
        self._working: S | None = None
        self._events: list[OutgoingEvent] = []
        self._records: list[AuditRecord] = []

    @abc.abstractmethod
    def _open(self, working: S) -> None:
        """Point the repositories at this transaction's copy of the store."""

    @property
    def working(self) -> S:
        if self._working is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._working

    def _begin(self) -> None:
        self._working = self.store.snapshot()
        self._events = []
        self._records = []
        self._open(self._working)

    def read_only(self) -> Self:
        self._read_only = True
        return self

    def __enter__(self) -> Self:
        self._begin()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._working = None
        self._events = []

    def publish(self, event: OutgoingEvent) -> None:
        self._events.append(event)

    def audit(self, *records: AuditRecord) -> None:
        self.working  # noqa: B018 - outside the 'with' block this raises, as the SQL one does
        self._records.extend(prepare(records, service=self.service, key=FAKE_AUDIT_KEY))

    def already_processed(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        return {e for e in event_ids if (consumer, e) in self.working.processed}

    def mark_processed(self, consumer: str, event_ids: Sequence[str]) -> None:
        self.working.processed.update((consumer, e) for e in event_ids)

    def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        working = self.working
        working.outbox.extend(self._events)
        working.audit.extend(self._records)
        self.store.take(working)
        self._begin()

    def rollback(self) -> None:
        if self._working is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        self._begin()
