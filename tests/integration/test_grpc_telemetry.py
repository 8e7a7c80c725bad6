"""The telemetry interceptor (services/common/grpc_telemetry.py) on a real server over loopback: every
call counted by method and status code and timed, whatever answered it (the method, an error it
raised, the decoding step, an async health check); with tracing on, a SERVER span per call, the child
of the caller's CLIENT span, current while the method runs; health checks counted, not traced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc

from services.authorization.entrypoints.grpc_api import AuthorizationServicer
from services.common import tracing
from services.common.errors import NotFound
from services.common.grpc_server import Registration, RunningServer, create_server
from services.common.grpc_telemetry import TelemetryInterceptor
from services.common.metrics import Metrics
from services.common.tls import open_channel
from tests.grpc_helpers import GARBAGE, raw

pytestmark = pytest.mark.integration

SERVICE = "ur.authorization.v1.AuthorizationService"


class Handlers:
    """What AuthorizationServicer asks: nothing is on file; it notes the trace each call ran in."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str] | None] = []

    def get(self, number: str) -> Any:
        self.seen.append(tracing.current_ids())
        raise NotFound(f"no authorization {number}")

    def for_member(self, *args: Any, **kwargs: Any) -> list[Any]:
        self.seen.append(tracing.current_ids())
        return []


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(process_collectors=False)


@pytest.fixture
def server(handlers: Handlers, metrics: Metrics) -> Iterator[RunningServer]:
    registration = Registration(authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server,
                                AuthorizationServicer(cast(Any, handlers)), SERVICE)
    running = create_server("127.0.0.1:0", [registration], interceptors=[TelemetryInterceptor(metrics)])
    yield running
    running.stop(0)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.reset()


def handled(metrics: Metrics, method: str, code: str, service: str = SERVICE) -> float:
    return metrics.value("grpc_server_handled_total",
                         {"grpc_service": service, "grpc_method": method, "grpc_code": code}) or 0.0


def test_every_call_is_counted_by_method_and_code_and_timed(server: RunningServer, metrics: Metrics) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        stub.ListMemberAuthorizations(authorization_pb2.ListMemberAuthorizationsRequest(member_id="m"), timeout=10)
        stub.ListMemberAuthorizations(authorization_pb2.ListMemberAuthorizationsRequest(member_id="m"), timeout=10)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetAuthorization(authorization_pb2.GetAuthorizationRequest(authorization_number="A1"), timeout=10)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as garbage:
            raw(channel, f"/{SERVICE}/GetAuthorization")(GARBAGE, timeout=10)
        assert garbage.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert handled(metrics, "ListMemberAuthorizations", "OK") == 2
    assert handled(metrics, "GetAuthorization", "NOT_FOUND") == 1
    assert handled(metrics, "GetAuthorization", "INVALID_ARGUMENT") == 1
    assert handled(metrics, "Check", "OK", "grpc.health.v1.Health") == 1
    assert metrics.value("grpc_server_handling_seconds_count",
                         {"grpc_service": SERVICE, "grpc_method": "ListMemberAuthorizations"}) == 2


def test_with_tracing_on_a_call_is_a_server_span_under_its_callers_span(
        server: RunningServer, handlers: Handlers, spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span("caller") as caller, \
            open_channel(f"127.0.0.1:{server.port}") as channel:  # traced: tracing is on
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        stub.ListMemberAuthorizations(authorization_pb2.ListMemberAuthorizationsRequest(member_id="m"), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.GetAuthorization(authorization_pb2.GetAuthorizationRequest(authorization_number="A1"), timeout=10)
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    finished = spans.get_finished_spans()
    by_kind = {(s.kind, s.name): s for s in finished}
    listed = by_kind[(SpanKind.SERVER, f"{SERVICE}/ListMemberAuthorizations")]
    client = by_kind[(SpanKind.CLIENT, f"{SERVICE}/ListMemberAuthorizations")]
    trace_id = caller.get_span_context().trace_id
    assert client.parent is not None
    assert listed.parent is not None
    assert (client.context.trace_id, client.parent.span_id) == (trace_id, caller.get_span_context().span_id)
    assert (listed.context.trace_id, listed.parent.span_id) == (trace_id, client.context.span_id)
    # The method ran inside its span (in the server's thread pool, where context does not follow by itself).
    assert handlers.seen[0] == (f"{trace_id:032x}", f"{listed.context.span_id:016x}")
    refused = by_kind[(SpanKind.SERVER, f"{SERVICE}/GetAuthorization")]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert not [s for s in finished if s.kind is SpanKind.SERVER and "Health" in s.name]
