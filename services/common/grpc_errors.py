"""The platform's errors (services/common/errors.py) → gRPC status, in one place: a table.

    ValidationFailed     → INVALID_ARGUMENT with google.rpc.BadRequest field violations (the
                           first MAX_VIOLATIONS; the message says how many were left out)
    IdempotencyConflict  → ALREADY_EXISTS
    NotFound             → NOT_FOUND
    PermissionDenied     → PERMISSION_DENIED
    Unauthenticated      → UNAUTHENTICATED
    FailedPrecondition   → FAILED_PRECONDITION
    ResourceExhausted    → RESOURCE_EXHAUSTED (with google.rpc.RetryInfo when it names a delay)
    Unavailable          → UNAVAILABLE with google.rpc.RetryInfo
    a storage error that means the database cannot be reached (services/common/db_errors.py)
                         → UNAVAILABLE with google.rpc.RetryInfo; logged once when the outage
                           starts and once when a call succeeds again, not once per call
    anything else        → INTERNAL (logged with its traceback, message kept generic)

Before the method runs, the request is held to the limits of every API
(services/common/request_checks.py): a violation is a ValidationFailed too.

:func:`translate_errors` decorates servicer methods, plain or ``async``; both run on the asyncio
server of services/common/grpc_server.py (plain ones in its thread pool).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import SQLAlchemyError

from services.common import db_errors
from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from services.common.request_checks import request_problems

logger = logging.getLogger(__name__)


# Status message and details travel as trailing metadata, which clients refuse beyond 8 KiB by
# default (they then see RESOURCE_EXHAUSTED instead of the status): keep both well under it.
MAX_VIOLATIONS = 50
MAX_VIOLATIONS_BYTES = 4096
MAX_MESSAGE_CHARS = 1000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bad_request(violations: Sequence[FieldViolation]) -> tuple[str, error_details_pb2.BadRequest]:
    """The status message and BadRequest detail of a validation failure: the first violations, at
    most MAX_VIOLATIONS and MAX_VIOLATIONS_BYTES of them; the message counts those left out."""
    detail = error_details_pb2.BadRequest()
    for v in violations[:MAX_VIOLATIONS]:
        entry = error_details_pb2.BadRequest.FieldViolation(field=_cut(v.field, 200),
                                                            description=_cut(v.description, 300))
        if detail.ByteSize() + entry.ByteSize() + 3 > MAX_VIOLATIONS_BYTES:
            break
        detail.field_violations.append(entry)
    listed = len(detail.field_violations)
    left_out = f"; {len(violations) - listed} more not listed" if listed < len(violations) else ""
    shown = "; ".join(f"{e.field}: {e.description}" for e in detail.field_violations[:5])
    return f"request is invalid ({len(violations)} problem(s){left_out}): {shown}", detail


STATUS_OF: dict[type, int] = {
    IdempotencyConflict: code_pb2.ALREADY_EXISTS,
    NotFound: code_pb2.NOT_FOUND,
    PermissionDenied: code_pb2.PERMISSION_DENIED,
    Unauthenticated: code_pb2.UNAUTHENTICATED,
    FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    Unavailable: code_pb2.UNAVAILABLE,
}


def status_code_of(exc: ServiceError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return int(STATUS_OF[kind])
    return int(code_pb2.INTERNAL)


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    whole = int(seconds)
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
        seconds=whole, nanos=round((seconds - whole) * 1e9)))


def rich_status(code: int, message: str, details: Sequence[Message] = ()) -> grpc.Status:
    """A status with google.rpc details, as the ``grpc-status-details-bin`` trailer carries them."""
    status = status_pb2.Status(code=code, message=_cut(message, MAX_MESSAGE_CHARS))
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


class Condition:
    """A condition that calls keep running into (the database is down), logged when it starts and when
    it ends rather than once per call. Thread-safe; :meth:`cleared` costs one attribute read while
    nothing is wrong, so every successful call can report it."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._lock = threading.Lock()
        self._failing = False
        self._refused = 0

    @property
    def failing(self) -> bool:
        return self._failing

    def failed(self, reason: str) -> None:
        with self._lock:
            self._refused += 1
            if self._failing:
                return
            self._failing = True
        logger.warning("%s unavailable: %s; calls that need it answer UNAVAILABLE until it returns", self.what,
                       reason)

    def cleared(self) -> None:
        if not self._failing:
            return
        with self._lock:
            if not self._failing:
                return
            self._failing, refused, self._refused = False, self._refused, 0
        logger.info("%s available again; %d call(s) were answered UNAVAILABLE meanwhile", self.what, refused)


#: The database outage as the gRPC calls meet it (one per process: a service has one database).
DATABASE = Condition("database")


INTERNAL = rich_status(code_pb2.INTERNAL, "internal error; see the service log")


def status_for(exc: ServiceError | SQLAlchemyError, where: str) -> grpc.Status:
    """The status a call that raised ``exc`` answers with (a storage error that is not an outage is
    an internal error, logged with its traceback)."""
    if isinstance(exc, ValidationFailed):
        message, detail = bad_request(exc.violations)
        return rich_status(code_pb2.INVALID_ARGUMENT, message, [detail])
    if isinstance(exc, Unavailable):
        return rich_status(code_pb2.UNAVAILABLE, str(exc), [retry_info(exc.retry_after_s)])
    if isinstance(exc, ResourceExhausted) and exc.retry_after_s is not None:
        return rich_status(code_pb2.RESOURCE_EXHAUSTED, str(exc), [retry_info(exc.retry_after_s)])
    if isinstance(exc, ServiceError):
        return rich_status(status_code_of(exc), str(exc))
    reason = db_errors.unavailable_reason(exc)
    if reason is None:
        logger.error("unhandled storage error in %s", where, exc_info=exc)
        return INTERNAL
    DATABASE.failed(reason)
    unavailable = Unavailable(db_errors.MESSAGE)
    return rich_status(code_pb2.UNAVAILABLE, str(unavailable), [retry_info(unavailable.retry_after_s)])


F = TypeVar("F", bound=Callable[..., Any])


def check_limits(request: object) -> None:
    """The limits every field of every API keeps (control characters, sizes), before any handler:
    raises ValidationFailed naming the fields that break them."""
    if isinstance(request, Message) and (problems := request_problems(request)):
        raise ValidationFailed(problems)


def translate_errors(method: F) -> F:
    """Decorate a servicer method (plain or ``async``) so errors leave as precise statuses."""
    where = method.__name__
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def async_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                check_limits(request)
                result = await method(self, request, context)
            except grpc.aio.AbortError:
                raise  # the method answered with a status itself
            except (ServiceError, SQLAlchemyError) as exc:
                status = status_for(exc, where)
            except Exception:
                logger.exception("unhandled error in %s", where)
                status = INTERNAL
            else:
                DATABASE.cleared()
                return result
            await context.abort(status.code, status.details, status.trailing_metadata)

        return cast(F, async_wrapper)

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            check_limits(request)
            result = method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except (ServiceError, SQLAlchemyError) as exc:
            status = status_for(exc, where)
        except Exception:
            logger.exception("unhandled error in %s", where)
            status = INTERNAL
        else:
            DATABASE.cleared()
            return result
        context.set_trailing_metadata(status.trailing_metadata)
        context.abort(status.code, status.details)

    return cast(F, wrapper)


# -- the client side: a failed call back to the platform's error ---------------------------------------

#: The reverse of :data:`STATUS_OF`: one mapping, both ways.
ERROR_OF: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode[code_pb2.Code.Name(code)]: kind for kind, code in STATUS_OF.items()}


def _details(call: grpc.Call | grpc.aio.AioRpcError) -> list[any_pb2.Any]:
    status = rpc_status.from_call(cast(grpc.Call, call))  # an AioRpcError has what from_call reads
    return list(status.details) if status is not None else []


def error_of(call: grpc.Call | grpc.aio.AioRpcError) -> ServiceError:
    """The platform's error for a failed call (a ``grpc.RpcError`` that is a ``grpc.Call``, or an
    ``AioRpcError``): INVALID_ARGUMENT keeps its field violations, RESOURCE_EXHAUSTED and UNAVAILABLE
    their retry delay; DEADLINE_EXCEEDED and anything not in the table is Unavailable."""
    code, message = call.code(), call.details() or ""
    details = _details(call)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations: list[FieldViolation] = []
        for packed in details:
            bad = error_details_pb2.BadRequest()
            if packed.Unpack(bad):
                violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        return ValidationFailed(violations or [FieldViolation("", message)])
    retry_after: float | None = None
    for packed in details:
        info = error_details_pb2.RetryInfo()
        if packed.Unpack(info):
            retry_after = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    kind = ERROR_OF.get(code)
    if kind is ResourceExhausted:
        return ResourceExhausted(message, retry_after_s=retry_after)
    if kind is Unavailable or kind is None:
        what = message if kind is Unavailable else f"{code.name}: {message}"
        return Unavailable(what, retry_after_s=retry_after or 1.0)
    return kind(message)
