"""A failed gRPC call becomes the platform's error with the service's own words
(services/workbench/adapters/platform_client.py), the reverse of services/common/grpc_errors.py."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ServiceError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from services.workbench.adapters.platform_client import service_error


def failed(code: grpc.StatusCode, details: str, trailing: grpc.aio.Metadata | None = None) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing or grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(("code", "kind"), [
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied), (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition), (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
    (grpc.StatusCode.UNAVAILABLE, Unavailable), (grpc.StatusCode.INTERNAL, Unavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, Unavailable),
])
def test_each_status_becomes_its_error_with_the_message(code: grpc.StatusCode, kind: type[ServiceError]) -> None:
    error = service_error(failed(code, "the task is held by another reviewer"))
    assert type(error) is kind
    assert "the task is held by another reviewer" in str(error)


def test_invalid_argument_keeps_the_field_violations() -> None:
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="reason", description="states its reason")])
    packed = any_pb2.Any()
    packed.Pack(bad)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="request is invalid", details=[packed])
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    error = service_error(failed(grpc.StatusCode.INVALID_ARGUMENT, "request is invalid", trailing))
    assert isinstance(error, ValidationFailed)
    assert [(v.field, v.description) for v in error.violations] == [("reason", "states its reason")]
    plain = service_error(failed(grpc.StatusCode.INVALID_ARGUMENT, "no details"))
    assert isinstance(plain, ValidationFailed)
    assert "no details" in str(plain)
