"""Domain errors → gRPC status, in one place.

    ValidationFailed     → INVALID_ARGUMENT with google.rpc.BadRequest field violations
    IdempotencyConflict  → ALREADY_EXISTS
    NotFound             → NOT_FOUND
    PermissionDenied     → PERMISSION_DENIED
    Unauthenticated      → UNAUTHENTICATED
    FailedPrecondition   → FAILED_PRECONDITION
    ResourceExhausted    → RESOURCE_EXHAUSTED
    anything else        → INTERNAL (logged with its traceback, message kept generic)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class ServiceError(Exception):
    """Base of the errors a servicer turns into a status."""


class ValidationFailed(ServiceError):
    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class IdempotencyConflict(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class PermissionDenied(ServiceError):
    pass


class Unauthenticated(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    pass


class ResourceExhausted(ServiceError):
    pass


def _abort(context: grpc.ServicerContext, code: int, message: str,
           details: Sequence[Any] = ()) -> None:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    context.abort_with_status(rpc_status.to_status(status))


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(method: F) -> F:
    """Decorate a servicer method so domain errors leave as precise statuses."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ValidationFailed as exc:
            bad_request = error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in exc.violations])
            _abort(context, code_pb2.INVALID_ARGUMENT,
                   f"request is invalid ({len(exc.violations)} problem(s)): {exc}", [bad_request])
        except IdempotencyConflict as exc:
            _abort(context, code_pb2.ALREADY_EXISTS, str(exc))
        except NotFound as exc:
            _abort(context, code_pb2.NOT_FOUND, str(exc))
        except PermissionDenied as exc:
            _abort(context, code_pb2.PERMISSION_DENIED, str(exc))
        except Unauthenticated as exc:
            _abort(context, code_pb2.UNAUTHENTICATED, str(exc))
        except FailedPrecondition as exc:
            _abort(context, code_pb2.FAILED_PRECONDITION, str(exc))
        except ResourceExhausted as exc:
            _abort(context, code_pb2.RESOURCE_EXHAUSTED, str(exc))
        except Exception:
            logger.exception("unhandled error in %s", method.__name__)
            _abort(context, code_pb2.INTERNAL, "internal error; see the service log")
        return None  # unreachable: abort raises

    return wrapper  # type: ignore[return-value]
