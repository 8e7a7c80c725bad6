"""Time, behind one seam.

Service-layer components read the time only through the :data:`Clock` they are given (``now()``);
the composition roots (``bootstrap.py``) hand them :func:`utcnow`, tests a pinned or moving one.
Nothing under ``domain/`` or ``service_layer/`` reads the wall clock itself (a unit test checks)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current instant as an aware UTC datetime."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
