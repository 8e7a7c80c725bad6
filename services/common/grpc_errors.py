"""The platform's errors (services/common/errors.py) → gRPC status, in one place: a table.

    ValidationFailed     → INVALID_ARGUMENT with google.rpc.BadRequest field violations
    IdempotencyConflict  → ALREADY_EXISTS
    NotFound             → NOT_FOUND
    PermissionDenied     → PERMISSION_DENIED
    Unauthenticated      → UNAUTHENTICATED
    FailedPrecondition   → FAILED_PRECONDITION
    ResourceExhausted    → RESOURCE_EXHAUSTED
    Unavailable          → UNAVAILABLE
    anything else        → INTERNAL (logged with its traceback, message kept generic)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.errors import (
    FailedPrecondition,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)

logger = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, code: int, message: str,
           details: Sequence[Message] = ()) -> NoReturn:
    status = status_pb2.Status(code=code, message=message)
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


S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def translate_errors(
        method: Callable[[S, Req, grpc.ServicerContext], Resp]) -> Callable[[S, Req, grpc.ServicerContext], Resp]:
    """Decorate a servicer method so domain errors leave as precise statuses."""

    @functools.wraps(method)
    def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Resp:
        try:
            return method(self, request, context)
        except ValidationFailed as exc:
            bad_request = error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in exc.violations])
            _abort(context, code_pb2.INVALID_ARGUMENT,
                   f"request is invalid ({len(exc.violations)} problem(s)): {exc}", [bad_request])
        except ServiceError as exc:
            _abort(context, status_code_of(exc), str(exc))
        except Exception:
            logger.exception("unhandled error in %s", method.__name__)
            _abort(context, code_pb2.INTERNAL, "internal error; see the service log")

    return wrapper
