"""A web process's HTTP requests in metrics and traces, by route, never by path (the workbench, the
FHIR door).

    ur_<process>_http_requests_total{route, method, status}
    ur_<process>_http_request_duration_seconds{route, method}

``route`` is the matched route's template (``/tasks/{task_id}``, ``/members/{member_id}``): a path
holds task, member and request ids, which are neither metric labels nor anything a trace or log should
carry.
Requests that match no route count as ``unmatched``. With tracing on, each request is a SERVER span
named ``METHOD route`` (services/common/tracing.py), current while the page is built, so the gRPC
calls it makes to the services are its children.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import tracing
from services.common.metrics import Metrics

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """The families of ``process`` (``workbench``, ``fhir``), in ``metrics``' registry."""

    def __init__(self, metrics: Metrics, process: str) -> None:
        self.requests = Counter(f"ur_{process}_http_requests", f"HTTP requests the {process} process answered, by "
                                "route, method and status.", ["route", "method", "status"], registry=metrics.registry)
        self.seconds = Histogram(f"ur_{process}_http_request_duration_seconds", f"Time the {process} process took to "
                                 "answer, by route and method.", ["route", "method"], buckets=BUCKETS,
                                 registry=metrics.registry)


def route_of(scope: Scope) -> str:
    """The template of the route the router matched (set on the scope as it routes)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class HttpTelemetry:
    """ASGI middleware: counts, times and (tracing on) traces every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = str(scope.get("method", ""))
        status = 500
        span: Any = None
        token: object = None
        if tracing.enabled():
            span = tracing.tracer().start_span(method, context=tracing.extract(_headers(scope)), kind=SpanKind.SERVER,
                                               attributes={"http.request.method": method})
            token = otel_context.attach(trace.set_span_in_context(span))

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            route = route_of(scope)
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.seconds.labels(route, method).observe(time.perf_counter() - started)
            if span is not None:
                otel_context.detach(token)  # type: ignore[arg-type]  # attach's own token
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                span.end()


def _headers(scope: Scope) -> list[tuple[str, bytes]]:
    return [(k.decode("latin-1").lower(), v) for k, v in scope.get("headers", [])]
