"""Validation failures reach the client as INVALID_ARGUMENT with their field violations, however
many there are: status message and details travel as trailing metadata, which a client refuses
beyond 8 KiB (it would then see RESOURCE_EXHAUSTED)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.common.errors import FieldViolation, NotFound, ServiceError, ValidationFailed
from services.common.grpc_errors import MAX_MESSAGE_CHARS, MAX_VIOLATIONS, bad_request, status_for, translate_errors


class _Refusing(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # generated: Any
    """A servicer whose Check raises whatever the test put in ``error``."""

    def __init__(self) -> None:
        self.error: ServiceError = NotFound("nothing")

    @translate_errors
    def Check(self, request: health_pb2.HealthCheckRequest,
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        raise self.error


@pytest.fixture
def refusing() -> Iterator[tuple[_Refusing, health_pb2_grpc.HealthStub]]:
    servicer = _Refusing()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, health_pb2_grpc.HealthStub(channel)
    finally:
        channel.close()
        server.stop(0)


def _violations(n: int, description: str = "is not an ICD-10-CM code (e.g. M54.50)") -> list[FieldViolation]:
    return [FieldViolation(f"diagnoses[{i}].code", f"'bad{i}' {description}") for i in range(n)]


def test_few_violations_are_all_listed() -> None:
    message, detail = bad_request(_violations(3))
    assert [v.field for v in detail.field_violations] == ["diagnoses[0].code", "diagnoses[1].code",
                                                          "diagnoses[2].code"]
    assert message.startswith("request is invalid (3 problem(s)): diagnoses[0].code: 'bad0' is not")
    assert "not listed" not in message


def test_many_violations_are_cut_and_counted() -> None:
    message, detail = bad_request(_violations(10_000))
    assert len(detail.field_violations) == MAX_VIOLATIONS
    assert message.startswith(f"request is invalid (10000 problem(s); {10_000 - MAX_VIOLATIONS} more not listed)")


def test_long_violations_are_cut_by_size_too() -> None:
    message, detail = bad_request(_violations(MAX_VIOLATIONS, "x" * 5000))
    assert detail.ByteSize() <= 4096
    assert 0 < len(detail.field_violations) < MAX_VIOLATIONS
    assert f"{MAX_VIOLATIONS - len(detail.field_violations)} more not listed" in message


def test_ten_thousand_violations_reach_the_client_as_invalid_argument(
        refusing: tuple[_Refusing, health_pb2_grpc.HealthStub]) -> None:
    servicer, stub = refusing
    servicer.error = ValidationFailed(_violations(10_000))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)
    assert status is not None
    found = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(found)
    assert len(found.field_violations) == MAX_VIOLATIONS
    assert found.field_violations[0].field == "diagnoses[0].code"
    assert "9950 more not listed" in (error.details() or "")


def test_long_messages_are_cut(refusing: tuple[_Refusing, health_pb2_grpc.HealthStub]) -> None:
    servicer, stub = refusing
    servicer.error = NotFound("no request " + "x" * 1_000_000)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert len(caught.value.details() or "") == MAX_MESSAGE_CHARS


def test_the_status_of_a_validation_failure_is_capped_for_async_methods_too() -> None:
    """``status_for`` builds the status both wrappers (plain and ``async``) answer with."""
    status = status_for(ValidationFailed(_violations(10_000)), "SubmitRequest")
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    [details] = [value for key, value in status.trailing_metadata if key == "grpc-status-details-bin"]
    decoded = status_pb2.Status.FromString(details)
    assert len(decoded.message) <= MAX_MESSAGE_CHARS
    found = error_details_pb2.BadRequest()
    assert decoded.details[0].Unpack(found)
    assert len(found.field_violations) == MAX_VIOLATIONS
