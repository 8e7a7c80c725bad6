"""The platform's errors (services/common/errors.py) → gRPC status, in one place: a table.

    ValidationFailed     → INVALID_ARGUMENT with google.rpc.BadRequest field violations (the
                           first MAX_VIOLATIONS; the message says how many were left out)
    IdempotencyConflict  → ALREADY_EXISTS
    NotFound             → NOT_FOUND
    PermissionDenied     → PERMISSION_DENIED
    Unauthenticated      → UNAUTHENTICATED
    FailedPrecondition   → FAILED_PRECONDITION
    ResourceExhausted    → RESOURCE_EXHAUSTED
    Unavailable          → UNAVAILABLE
    anything else        → INTERNAL (logged with its traceback, message kept generic)

Before the method runs, the request is held to the limits of every API
(services/common/request_checks.py): a violation is a ValidationFailed too.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

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


def _abort(context: grpc.ServicerContext, code: int, message: str,
           details: Sequence[Any] = ()) -> None:
    status = status_pb2.Status(code=code, message=_cut(message, MAX_MESSAGE_CHARS))
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    context.abort_with_status(rpc_status.to_status(status))


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


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(method: F) -> F:
    """Decorate a servicer method so domain errors leave as precise statuses."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            # The limits every field of every API keeps (control characters, sizes), before any handler.
            if isinstance(request, Message) and (problems := request_problems(request)):
                raise ValidationFailed(problems)
            return method(self, request, context)
        except ValidationFailed as exc:
            message, detail = bad_request(exc.violations)
            _abort(context, code_pb2.INVALID_ARGUMENT, message, [detail])
        except ServiceError as exc:
            _abort(context, status_code_of(exc), str(exc))
        except Exception:
            logger.exception("unhandled error in %s", method.__name__)
            _abort(context, code_pb2.INTERNAL, "internal error; see the service log")
        return None  # unreachable: abort raises

    return wrapper  # type: ignore[return-value]
