"""Metrics and traces of gRPC calls: a server interceptor for the platform's asyncio servers, and
client interceptors (plain and asyncio channels) that carry the trace on.

:class:`TelemetryInterceptor` is the first interceptor of every service's server
(services/common/runtime.py puts it before the others, authentication included, so that refused
calls are counted too). For each call it

* counts it by method and status code and observes its latency
  (``grpc_server_handled_total``, ``grpc_server_handling_seconds``, services/common/metrics.py);
* when tracing is on, makes a SERVER span, the child of the ``traceparent`` the call's metadata
  carries, current while the method runs, so that what it logs, publishes and calls belongs to the
  trace (services/common/tracing.py). Health checks and reflection are counted, not traced.

Why not opentelemetry-instrumentation-grpc: its asyncio server interceptor awaits every behaviour,
and the platform's servicer methods are mostly plain functions the asyncio server runs in its thread
pool (services/common/grpc_server.py); and that pool does not carry context variables into the
thread, so the span must be made current inside the behaviour itself, as here.

The status code is read from the servicer context: the behaviour gets a thin proxy of it that notes
``abort``, ``abort_with_status`` and ``set_code`` (the synchronous context grpc hands thread-pool
methods has no ``code()`` to ask afterwards).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common import tracing
from services.common.grpc_server import Behaviour, with_behaviour
from services.common.metrics import Metrics

#: Services counted but never traced (probes call them every second or so).
UNTRACED = ("grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection")


class _Noting:
    """A servicer context that notes the status code the method sets; everything else passes through."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.code: grpc.StatusCode | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code
        self._context.set_code(code)

    def abort(self, code: grpc.StatusCode, details: str = "", *args: Any) -> Any:
        self.code = code
        return self._context.abort(code, details, *args)

    def abort_with_status(self, status: grpc.Status) -> Any:
        self.code = status.code
        return self._context.abort_with_status(status)


def _split(method: str | bytes) -> tuple[str, str]:
    """(service, method) of ``/pkg.Service/Method`` (asyncio clients name it in bytes)."""
    text = method.decode("ascii", errors="replace") if isinstance(method, bytes) else method
    service, _, name = text.lstrip("/").rpartition("/")
    return service, name


class _Call:
    """One call being observed: its clock, its span (tracing on), its outcome."""

    __slots__ = ("_method", "_metrics", "_service", "_span", "_started", "_token", "noting")

    def __init__(self, metrics: Metrics, service: str, method: str, context: Any, traced: bool) -> None:
        self._metrics = metrics
        self._service = service
        self._method = method
        self._started = time.perf_counter()
        self.noting = _Noting(context)
        self._span: Any = None
        self._token: object = None
        if traced:
            parent = tracing.extract(context.invocation_metadata())
            self._span = tracing.tracer().start_span(
                f"{service}/{method}", context=parent, kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method})

    def enter(self) -> None:
        """Make the span current in this thread or task (until :meth:`finish`)."""
        if self._span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def finish(self, code: grpc.StatusCode) -> None:
        self._metrics.grpc_handled.labels(self._service, self._method, code.name).inc()
        self._metrics.grpc_seconds.labels(self._service, self._method).observe(time.perf_counter() - self._started)
        if self._span is not None:
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]  # attach's own token
            self._span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                self._span.set_status(Status(StatusCode.ERROR, code.name))
            self._span.end()

    def failed(self, exc: BaseException) -> grpc.StatusCode:
        """The code a call that raised ``exc`` ends with."""
        if self.noting.code is not None:
            return self.noting.code
        if isinstance(exc, asyncio.CancelledError):
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.UNKNOWN


class TelemetryInterceptor(grpc.aio.ServerInterceptor):
    """Counts, times and (tracing on) traces every call; see the module's docstring."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None:
            return handler  # type: ignore[return-value]  # grpc answers UNIMPLEMENTED; unknown names are not labels
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        service, name = _split(method)
        wrapped = with_behaviour(handler, lambda behaviour: self._observing(behaviour, service, name))
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _observing(self, behaviour: Behaviour, service: str, method: str) -> Behaviour:
        traced = service not in UNTRACED
        if inspect.isasyncgenfunction(behaviour):
            return _observed_stream(behaviour, self._metrics, service, method, traced)
        if inspect.iscoroutinefunction(behaviour):
            return _observed_coroutine(behaviour, self._metrics, service, method, traced)
        if inspect.isgeneratorfunction(behaviour):
            return behaviour  # grpc runs plain streams on its loop; the platform has none to observe
        return _observed_blocking(behaviour, self._metrics, service, method, traced)


def _observed_stream(behaviour: Behaviour, metrics: Metrics, service: str, method: str, traced: bool) -> Behaviour:
    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        # Not made current: a context attached in an async generator cannot be detached safely.
        call = _Call(metrics, service, method, context, traced and tracing.enabled())
        try:
            async for item in behaviour(request, call.noting):
                yield item
        except BaseException as exc:
            call.finish(call.failed(exc))
            raise
        call.finish(call.noting.code or grpc.StatusCode.OK)

    return stream


def _observed_coroutine(behaviour: Behaviour, metrics: Metrics, service: str, method: str,
                        traced: bool) -> Behaviour:
    async def unary(request: Any, context: Any) -> Any:
        call = _Call(metrics, service, method, context, traced and tracing.enabled())
        call.enter()
        try:
            result = await behaviour(request, call.noting)
        except BaseException as exc:
            call.finish(call.failed(exc))
            raise
        call.finish(call.noting.code or grpc.StatusCode.OK)
        return result

    return unary


def _observed_blocking(behaviour: Behaviour, metrics: Metrics, service: str, method: str,
                       traced: bool) -> Behaviour:
    def blocking(request: Any, context: Any) -> Any:  # runs in the server's thread pool
        call = _Call(metrics, service, method, context, traced and tracing.enabled())
        call.enter()
        try:
            result = behaviour(request, call.noting)
        except BaseException as exc:
            call.finish(call.failed(exc))
            raise
        call.finish(call.noting.code or grpc.StatusCode.OK)
        return result

    return blocking


# -- clients -------------------------------------------------------------------------------------

def _client_span(method: str) -> Any:
    service, name = _split(method)
    return tracing.tracer().start_span(f"{service}/{name}", kind=SpanKind.CLIENT, attributes={
        "rpc.system": "grpc", "rpc.service": service, "rpc.method": name})


def _with_trace(details: Any, span: Any) -> list[tuple[str, str | bytes]]:
    metadata = list(details.metadata or ())
    metadata.extend(tracing.inject(trace.set_span_in_context(span)))
    return metadata


def _end_client_span(span: Any, code: grpc.StatusCode | None) -> None:
    if code is not None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


class _ClientCallDetails(grpc.ClientCallDetails):
    def __init__(self, details: Any, metadata: list[tuple[str, str | bytes]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = tuple(metadata)
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class ClientTracing(grpc.UnaryUnaryClientInterceptor):
    """A CLIENT span per unary call on a plain channel, its context in the call's metadata; the span
    ends when the call completes (``.future()`` calls too)."""

    def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any], client_call_details: Any,
                              request: Any) -> Any:
        span = _client_span(client_call_details.method)
        outcome = continuation(_ClientCallDetails(client_call_details, _with_trace(client_call_details, span)),
                               request)

        def done(call: Any) -> None:
            try:
                code = call.code()
            except Exception:  # noqa: BLE001 - a call that cannot say how it ended still ends its span
                code = None
            _end_client_span(span, code)

        outcome.add_done_callback(done)
        return outcome


class AioClientTracing(grpc.aio.UnaryUnaryClientInterceptor):
    """The same for asyncio channels (the workbench's)."""

    async def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any], client_call_details: Any,
                                    request: Any) -> Any:
        span = _client_span(client_call_details.method)
        details = grpc.aio.ClientCallDetails(
            client_call_details.method, client_call_details.timeout,
            grpc.aio.Metadata(*_with_trace(client_call_details, span)), client_call_details.credentials,
            client_call_details.wait_for_ready)
        call = await continuation(details, request)
        try:
            code = await call.code()
        except BaseException:
            _end_client_span(span, None)
            raise
        _end_client_span(span, code)
        return call


def client_interceptors() -> list[ClientTracing]:
    """What a plain channel is wrapped with: tracing when it is on, nothing otherwise."""
    return [ClientTracing()] if tracing.enabled() else []


def aio_client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [AioClientTracing()] if tracing.enabled() else []
