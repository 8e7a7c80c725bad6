"""Which storage errors mean "the database is unavailable" (the call may be retried) rather than a bug.

Connection loss, a refused or timed-out connection, a server shutting down or starting up, a
standby that refuses writes after a failover, no connection free in the pool: each becomes
:class:`~services.common.errors.Unavailable` (gRPC ``UNAVAILABLE`` with a retry hint) where storage
errors meet a caller, at the adapter or entrypoint seam. Everything else stays what it is.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from services.common.errors import Unavailable

#: SQLSTATE classes and codes that mean the server cannot serve now (PostgreSQL): 08 connection
#: exception, 57 operator intervention (admin/crash shutdown, cannot connect now), 53300 too many
#: connections, 25006 read-only transaction (a standby after failover), 55000-series excluded.
_UNAVAILABLE_CLASSES = ("08", "57")
_UNAVAILABLE_CODES = frozenset({"53300", "25006"})

#: What a client reads; the log line names the cause (host names and ports stay out of answers).
MESSAGE = "the service's database is unavailable; retry later"


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` means the database cannot be used now (one line, for the log), or None when it
    means something else."""
    if isinstance(exc, sa_exc.TimeoutError):
        return f"no database connection free in the pool ({_first_line(exc)})"
    if isinstance(exc, sa_exc.DisconnectionError):
        return _first_line(exc)
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    cause = exc.orig if exc.orig is not None else exc
    sqlstate = getattr(cause, "sqlstate", None)
    if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError) or (
            isinstance(sqlstate, str) and (sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE_CODES)):
        return _first_line(cause)
    if isinstance(exc, sa_exc.InterfaceError) and "closed" in str(cause).lower():
        return _first_line(cause)
    return None


def as_unavailable(exc: BaseException) -> Unavailable | None:
    """The :class:`Unavailable` that ``exc`` amounts to (raise it ``from exc``), or None."""
    reason = unavailable_reason(exc)
    return None if reason is None else Unavailable(MESSAGE)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
