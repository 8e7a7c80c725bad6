"""OpenTelemetry traces that follow one request across gRPC and Kafka, exported over OTLP/HTTP when
an endpoint is configured (UR_OTLP_TRACES_ENDPOINT) and off otherwise.

Off (the default) means off: no tracer provider, no spans, no headers, no outbox column written;
every function here returns at its first line (:func:`enabled` is one global read), so the cost is
that read. On, a process records:

* a SERVER span per gRPC call and a CLIENT span per call it makes, the W3C ``traceparent`` travelling
  in the call's metadata (services/common/grpc_telemetry.py);
* a PRODUCER span ``create <topic>`` for each event written to the outbox, as the child of whatever
  caused it (the gRPC call, or the consumed event of the same key, see below); its ``traceparent``
  is stored with the outbox row (column ``traceparent``) and the relay publishes it as a Kafka header;
* a CONSUMER span ``process <topic>`` for each event the consumer applies, the child of the
  ``traceparent`` header it arrived with. kafka-python's instrumentation only wraps the consumer's
  iterator, and the platform calls ``poll()``, so the consumer loop does this itself
  (:func:`processing`).

Linking across a consumer's batch. A batch of events is applied in one transaction, and the events
it publishes must continue the trace of the event they derive from, not the batch's. Events are
keyed by request id (services/common/events.py), so while a batch is applied the CONSUMER span of
each key is remembered (a context variable of the consumer's thread): an event published with that
key becomes its child. The span current while the handler runs (what logs and outgoing gRPC calls
see) is the record's own when the batch holds one record, else a ``process batch`` span linked to
every record's.

The OpenTelemetry API's global provider is never set: this module keeps the process's provider, so
tests can install one with an in-memory exporter (:func:`install`) and drop it again (:func:`reset`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None

#: While a consumer batch is applied: record key → the context of that record's CONSUMER span.
_batch_parents: contextvars.ContextVar[Mapping[str, Context] | None] = contextvars.ContextVar(
    "ur_batch_parents", default=None)


# -- set-up --------------------------------------------------------------------------------------

def configure(service: str, endpoint: str | None, sample_ratio: float = 1.0) -> None:
    """Tracing for this process: spans of ``service`` exported to the OTLP/HTTP ``endpoint`` in
    batches, new traces sampled at ``sample_ratio``. ``endpoint`` None: tracing stays off."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"ur-{service}"}),
                              sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    install(provider)
    logger.info("tracing on: spans exported to %s (%.0f %% of new traces)", endpoint, sample_ratio * 100)


def install(provider: TracerProvider) -> None:
    """Record spans with ``provider`` from now on (tests pass one with an in-memory exporter)."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("ur-platform")


def reset() -> None:
    """Tracing off again (the provider is shut down, flushing what it holds)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def shutdown() -> None:
    """Flush and stop the exporter at process exit (a no-op when tracing is off)."""
    reset()


def enabled() -> bool:
    return _tracer is not None


def tracer() -> Tracer:
    if _tracer is None:
        raise RuntimeError("tracing is off")
    return _tracer


# -- carriers ------------------------------------------------------------------------------------

def extract(pairs: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The context a call's metadata or a record's headers carry (an empty one when none)."""
    carrier: dict[str, str] = {}
    for key, value in pairs or ():
        if key in (TRACEPARENT, TRACESTATE) and value is not None:
            carrier[key] = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
    return _propagator.extract(carrier) if carrier else Context()


def inject(ctx: Context | None = None) -> list[tuple[str, str]]:
    """``traceparent`` (and ``tracestate``) of ``ctx`` (default: the current context) as pairs."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=ctx)
    return sorted(carrier.items())


def kafka_headers(traceparent: str | None) -> list[tuple[str, bytes]]:
    """The header an outbox row's stored ``traceparent`` travels in (none when it has none)."""
    return [(TRACEPARENT, traceparent.encode("ascii"))] if traceparent else []


# -- producing -----------------------------------------------------------------------------------

def event_created(topic: str, key: str, event_id: str) -> str | None:
    """A PRODUCER span for an event being written to the outbox, child of the consumed event of the
    same key (during a batch) or of the current span; returns its ``traceparent`` to store with the
    row. None when tracing is off."""
    if _tracer is None:
        return None
    parents = _batch_parents.get()
    parent = parents.get(key) if parents is not None else None
    span = _tracer.start_span(f"create {topic}", context=parent, kind=SpanKind.PRODUCER, attributes={
        "messaging.system": "kafka", "messaging.operation.type": "create", "messaging.destination.name": topic,
        "messaging.message.id": event_id})
    span.end()
    pairs = dict(inject(trace.set_span_in_context(span)))
    return pairs.get(TRACEPARENT)


# -- consuming -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Consumed:
    """What the consumer knows of a record it is about to apply."""

    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    event_type: str
    headers: Sequence[tuple[str, bytes]] | None


@contextlib.contextmanager
def processing(consumer: str, records: Sequence[Consumed]) -> Iterator[None]:
    """While a consumer applies ``records`` as one batch: a CONSUMER span per record (child of its
    header's context), the per-key parents of the events the batch publishes, and a current span.
    Spans end when the block does, in error when it raises."""
    if _tracer is None or not records:
        yield
        return
    spans = []
    parents: dict[str, Context] = {}
    for r in records:
        span = _tracer.start_span(f"process {r.topic}", context=extract(r.headers), kind=SpanKind.CONSUMER,
                                  attributes={
                                      "messaging.system": "kafka", "messaging.operation.type": "process",
                                      "messaging.destination.name": r.topic, "messaging.consumer.group.name": consumer,
                                      "messaging.destination.partition.id": str(r.partition),
                                      "messaging.kafka.offset": r.offset, "messaging.message.id": r.event_id,
                                      "ur.event_type": r.event_type})
        spans.append(span)
        parents.setdefault(r.key, trace.set_span_in_context(span))
    batch = None
    if len(spans) == 1:
        current = trace.set_span_in_context(spans[0])
    else:
        batch = _tracer.start_span("process batch", context=Context(), kind=SpanKind.CONSUMER,
                                   links=[Link(s.get_span_context()) for s in spans],
                                   attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(spans),
                                               "messaging.consumer.group.name": consumer})
        current = trace.set_span_in_context(batch)
    token = otel_context.attach(current)
    parents_token = _batch_parents.set(parents)
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        _batch_parents.reset(parents_token)
        otel_context.detach(token)
        for span in ([batch] if batch is not None else []) + spans:
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
            span.end()


# -- logs ----------------------------------------------------------------------------------------

def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, in hex, or None outside any span (always None while
    tracing is off)."""
    if _tracer is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
