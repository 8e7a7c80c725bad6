"""Recording views: what a use case that only reads appends to the audit log, in a short
transaction of its own after the read (the read itself runs read-only). A view that cannot be
recorded fails the call: patient data is not shown unaudited."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol

from services.common.audit.chain import AuditRecord


class Auditing(Protocol):
    """A unit of work that records (services/common/ports.py UnitOfWork, review's own)."""

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def audit(self, *records: AuditRecord) -> None: ...

    def commit(self) -> None: ...


def record_views(uow_factory: Callable[[], Auditing], records: Sequence[AuditRecord]) -> None:
    """Append ``records`` in a transaction of their own (nothing when there are none)."""
    if not records:
        return
    uow = uow_factory()
    with uow:
        uow.audit(*records)
        uow.commit()
