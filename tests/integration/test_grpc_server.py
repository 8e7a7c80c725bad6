"""The gRPC server every service runs (services/common/grpc_server.py), real, over TCP on loopback:
reflection that describes every method (v1 and v1alpha), health with List and Watch, undecodable
bodies answered INVALID_ARGUMENT with one log line, the interceptor hook, database outages answered
UNAVAILABLE with a retry hint and logged once, TLS and mutual TLS, and a taken port named with its
holder."""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import grpc.aio
import pytest
from cryptography import x509
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import OperationalError
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2_grpc

from services.authorization.entrypoints.grpc_api import AuthorizationServicer
from services.common import grpc_errors
from services.common.grpc_server import BindError, Registration, RunningServer, create_server, with_behaviour
from services.common.tls import TransportSecurity
from services.intake.entrypoints.grpc_api import IntakeServicer
from services.review.entrypoints.grpc_api import ReviewerServicer
from tests.grpc_helpers import GARBAGE, SERVICES, health_of, pool_of, raw, reflect
from tests.tls_material import Material, make_material, reissue_service_certificate

REFLECTION = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


class Unreachable:
    """Handlers a test never lets a call reach: any use fails the call (INTERNAL) and the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the call reached the handlers ({name})")


def registrations(authorization: Any = None) -> list[Registration]:
    unreachable = cast(Any, Unreachable())
    return [
        Registration(intake_pb2_grpc.add_IntakeServiceServicer_to_server, IntakeServicer(unreachable),
                     "ur.intake.v1.IntakeService"),
        Registration(review_pb2_grpc.add_ReviewServiceServicer_to_server,
                     ReviewerServicer(unreachable, unreachable), "ur.review.v1.ReviewService"),
        Registration(authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server,
                     AuthorizationServicer(authorization or unreachable), "ur.authorization.v1.AuthorizationService"),
    ]


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = create_server("127.0.0.1:0", registrations())
    yield running
    running.stop(0)


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


# -- reflection ------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_describes_every_method_of_every_service(channel: grpc.Channel, version: str) -> None:
    [listed] = reflect(channel, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert names == {*SERVICES, "grpc.health.v1.Health", *REFLECTION}
    described = 0
    for service_name, service in SERVICES.items():
        symbols = [m.full_name for m in service.methods]  # what `grpcurl describe pkg.Service.Method` asks
        answers = reflect(channel, version, *(reflection_pb2.ServerReflectionRequest(file_containing_symbol=s)
                                              for s in symbols))
        for method, answer in zip(service.methods, answers, strict=True):
            assert answer.WhichOneof("message_response") == "file_descriptor_response", answer
            found = pool_of(answer).FindServiceByName(service_name).FindMethodByName(method.name)
            assert found.input_type.full_name == method.input_type.full_name
            assert found.output_type.full_name == method.output_type.full_name
            described += 1
    assert described == sum(len(s.methods) for s in SERVICES.values())
    for symbol in ("grpc.health.v1.Health.List", "grpc.reflection.v1.ServerReflection.ServerReflectionInfo",
                   "ur.intake.v1.SubmitRequestRequest", "ur.review.v1.ReviewService"):
        [answer] = reflect(channel, version, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        assert answer.WhichOneof("message_response") == "file_descriptor_response", symbol
    [missing] = reflect(channel, version, reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such"))
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


# -- health ----------------------------------------------------------------------------------------

def test_health_checks_lists_and_watches(server: RunningServer, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    listed = health.List(health_pb2.HealthListRequest(), timeout=5)
    assert {name: s.status for name, s in listed.statuses.items()} == {
        name: health_pb2.HealthCheckResponse.SERVING for name in ("", *SERVICES)}
    with pytest.raises(grpc.RpcError) as unknown:
        health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=5)
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service="ur.intake.v1.IntakeService"), timeout=10)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    server.health.set("ur.intake.v1.IntakeService", False)  # from this thread, as the monitor does
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="ur.intake.v1.IntakeService"),
                        timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    watch.cancel()


# -- undecodable bodies, the interceptor hook --------------------------------------------------------



def test_an_undecodable_body_is_invalid_argument_with_one_log_line(channel: grpc.Channel,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    methods = [f"/{name}/{m.name}" for name, s in SERVICES.items() for m in s.methods]
    methods.append("/grpc.health.v1.Health/Check")
    with caplog.at_level(logging.INFO):
        for method in methods:
            with pytest.raises(grpc.RpcError) as refused:
                raw(channel, method)(GARBAGE, timeout=5)
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, method
            assert "the request body is not a valid" in (refused.value.details() or "")
    lines = [r for r in caplog.records if "undecodable request body" in r.getMessage()]
    assert len(lines) == len(methods)
    assert all(r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _bad_request(error: grpc.RpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None
    found = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(found)
    return found


def test_the_request_limits_refuse_before_any_handler_plain_or_async(channel: grpc.Channel) -> None:
    """services/common/request_checks.py runs before every servicer method, ``async`` (SubmitRequest) and
    plain (GetRequest) alike: the handlers are never reached, and the field is named."""
    intake = intake_pb2_grpc.IntakeServiceStub(channel)
    with pytest.raises(grpc.RpcError) as submit:
        intake.SubmitRequest(intake_pb2.SubmitRequestRequest(idempotency_key="k\x00"), timeout=5)
    assert submit.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in _bad_request(submit.value).field_violations] == ["idempotency_key"]
    with pytest.raises(grpc.RpcError) as get:
        intake.GetRequest(intake_pb2.GetRequestRequest(request_id="x" * 10_001), timeout=5)
    assert get.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in _bad_request(get.value).field_violations] == ["request_id"]


def test_a_flood_of_bad_fields_is_answered_with_a_capped_list(channel: grpc.Channel) -> None:
    """10,000 diagnoses with a control character each: INVALID_ARGUMENT with a bounded list (not
    RESOURCE_EXHAUSTED from trailers beyond the client's limit)."""
    flood = intake_pb2.SubmitRequestRequest(diagnoses=[types_pb2.Diagnosis(code=f"\x01{i}") for i in range(10_000)])
    with pytest.raises(grpc.RpcError) as refused:
        intake_pb2_grpc.IntakeServiceStub(channel).SubmitRequest(flood, timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert len(_bad_request(refused.value).field_violations) == grpc_errors.MAX_VIOLATIONS


class RequireMetadata(grpc.aio.ServerInterceptor):
    """A stand-in for issue 10's authentication: calls without ``x-caller`` are UNAUTHENTICATED."""

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        handler: grpc.RpcMethodHandler[Any, Any] = await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if "x-caller" in metadata:
            return handler

        def refuse(_behaviour: Callable[..., Any]) -> Callable[..., Any]:
            async def refused(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you?")

            return refused

        return with_behaviour(handler, refuse)


def test_interceptors_run_before_the_body_is_decoded() -> None:
    running = create_server("127.0.0.1:0", registrations(), interceptors=[RequireMetadata()])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            get = raw(channel, "/ur.intake.v1.IntakeService/GetRequest")
            for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED),
                                   ((("x-caller", "me"),), grpc.StatusCode.INVALID_ARGUMENT)):
                with pytest.raises(grpc.RpcError) as refused:
                    get(GARBAGE, metadata=metadata, timeout=5)
                assert refused.value.code() is code
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), metadata=(("x-caller", "me"),), timeout=5).status \
                == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0)


# -- a database outage ---------------------------------------------------------------------------------

class FlakyAuthorizations:
    """Authorization's handlers with the database away until ``back`` is set."""

    def __init__(self) -> None:
        self.back = False

    def get(self, number: str) -> types_pb2.Authorization:
        if not self.back:
            raise OperationalError("SELECT 1", {}, Exception("connection to server at \"10.0.0.9\" failed: "
                                                              "Connection refused"))
        return types_pb2.Authorization(authorization_number=number)


def test_a_database_outage_is_unavailable_with_a_retry_hint_and_logged_once(caplog: pytest.LogCaptureFixture
                                                                            ) -> None:
    handlers = FlakyAuthorizations()
    running = create_server("127.0.0.1:0", registrations(authorization=handlers))
    grpc_errors.DATABASE.cleared()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, caplog.at_level(logging.INFO):
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            for _ in range(25):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.GetAuthorization(authorization_pb2.GetAuthorizationRequest(authorization_number="A1"),
                                          timeout=5)
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
                assert "10.0.0.9" not in (refused.value.details() or "")  # the cause stays in the log
                status = rpc_status.from_call(cast(grpc.Call, refused.value))
                assert status is not None
                assert status.code == code_pb2.UNAVAILABLE
                [detail] = status.details
                hint = error_details_pb2.RetryInfo()
                assert detail.Unpack(hint)
                assert hint.retry_delay.seconds == 1
            handlers.back = True
            for _ in range(3):
                answered = stub.GetAuthorization(authorization_pb2.GetAuthorizationRequest(authorization_number="A1"),
                                                 timeout=5)
                assert answered.authorization.authorization_number == "A1"
    finally:
        running.stop(0)
    messages = [r.getMessage() for r in caplog.records if r.name == "services.common.grpc_errors"]
    assert len(messages) == 2, messages  # the outage began, and ended: not one line per call
    assert "database unavailable" in messages[0]
    assert "Connection refused" in messages[0]
    assert "available again; 25 call(s)" in messages[1]
    assert not [r for r in caplog.records if r.exc_info]


# -- TLS ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return make_material(tmp_path_factory.mktemp("tls"))


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(material: Material) -> None:
    running = create_server("127.0.0.1:0", registrations(), security=material.services(require_client_cert=True))
    target = f"127.0.0.1:{running.port}"
    try:
        assert health_of(target, material.services()) == health_pb2.HealthCheckResponse.SERVING
        client = TransportSecurity(ca_file=material.ca, cert_file=material.client.cert, key_file=material.client.key)
        assert health_of(target, client) == health_pb2.HealthCheckResponse.SERVING
        assert health_of(target, material.client_without_certificate()) is grpc.StatusCode.UNAVAILABLE
        assert health_of(target, material.stranger_client()) is grpc.StatusCode.UNAVAILABLE
        assert health_of(target, None) is grpc.StatusCode.UNAVAILABLE  # plaintext
    finally:
        running.stop(0)


def served_serial(port: int, material: Material) -> int:
    context = ssl.create_default_context(cafile=str(material.ca))
    context.load_cert_chain(str(material.client.cert), str(material.client.key))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as wrapped:
        der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    material = make_material(tmp_path)
    running = create_server("127.0.0.1:0", registrations(), security=material.services(require_client_cert=True))
    try:
        first = served_serial(running.port, material)
        renewed = reissue_service_certificate(material)
        assert renewed != first
        assert served_serial(running.port, material) == renewed
        assert health_of(f"127.0.0.1:{running.port}", material.services()) == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0)


# -- binding -------------------------------------------------------------------------------------------

def test_a_taken_port_is_named_with_its_holder() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BindError) as refused:
            create_server(f"127.0.0.1:{port}", registrations())
    assert f"port {port} is in use by pid {os.getpid()}" in str(refused.value)
