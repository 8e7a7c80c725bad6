"""Prometheus metrics of one process: a registry of its own, the families every service shares, and
the HTTP listener that serves them at ``/metrics``.

Each process (a service or the workbench) builds one :class:`Metrics` in its composition root and
hands it to what counts: the gRPC interceptor (services/common/grpc_telemetry.py), the consumer loop,
the outbox relay, and the service's own adapters (review's decisions and queue). Nothing is
registered at import time, so tests build as many as they like and read them back with
:meth:`Metrics.value`. :func:`serve` starts the listener on the address a setting names
(``UR_<SERVICE>_METRICS_LISTEN``); ``deploy/prometheus`` scrapes it.

What the shared families mean (names follow the Prometheus conventions; ``_total`` are counters):

    grpc_server_handled_total{grpc_service, grpc_method, grpc_code}   calls finished, by status
    grpc_server_handling_seconds{grpc_service, grpc_method}           call latency (histogram)
    ur_consumer_records_total{topic, result}    records the consumer settled: applied, duplicate
                                                (a copy dropped in the batch) or dead_lettered
    ur_consumer_dead_lettered_total{topic}      records parked on the dead-letter topic
    ur_consumer_lag{topic, partition}           end offset minus the consumer's position (records
                                                still to apply), measured every UR_METRICS_INTERVAL_S
    ur_outbox_published_total{topic}            events the relay published
    ur_outbox_backlog                           outbox rows not yet published (periodic)
    ur_outbox_oldest_unpublished_seconds        age of the oldest of them (0 when none)
    ur_outbox_relay_active                      1 while this replica's relay holds the outbox lease

Label values are code-defined names (methods, topics, outcomes), never identifiers: a metric never
carries a request, member or reviewer id.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

from services.common.listeners import port_holder

logger = logging.getLogger(__name__)

#: Latency buckets of gRPC calls, in seconds: most calls take milliseconds; SubmitRequest may wait
#: up to UR_INTAKE_MAX_WAIT_MS (15 s) for a decision.
GRPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)


class Metrics:
    """The metric families of one process, in a registry of its own (with the process, platform and
    garbage-collector collectors prometheus-client offers)."""

    def __init__(self, *, process_collectors: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.grpc_handled = Counter(
            "grpc_server_handled_total", "gRPC calls completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"], registry=r)
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds", "Time a gRPC call took on the server, from its arrival to its status.",
            ["grpc_service", "grpc_method"], buckets=GRPC_BUCKETS, registry=r)
        self.consumer_records = Counter(
            "ur_consumer_records", "Kafka records the consumer settled: applied, a duplicate copy dropped, or "
            "dead-lettered.", ["topic", "result"], registry=r)
        self.dead_lettered = Counter(
            "ur_consumer_dead_lettered", "Records the consumer parked on its dead-letter topic.", ["topic"],
            registry=r)
        self.consumer_lag = Gauge(
            "ur_consumer_lag", "Records on a partition the consumer has not applied yet (end offset minus "
            "position), measured periodically.", ["topic", "partition"], registry=r)
        self.outbox_published = Counter(
            "ur_outbox_published", "Events the outbox relay published to Kafka.", ["topic"], registry=r)
        self.outbox_backlog = Gauge(
            "ur_outbox_backlog", "Outbox rows not published yet, measured periodically.", registry=r)
        self.outbox_relay_active = Gauge(
            "ur_outbox_relay_active", "1 while this process's outbox relay holds the lease (publishes), 0 while "
            "another replica's does.", registry=r)
        self.outbox_oldest_s = Gauge(
            "ur_outbox_oldest_unpublished_seconds",
            "Age of the oldest outbox row not published yet (0 when there is none), measured periodically.",
            registry=r)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample's current value (for tests and the CLI); None when it has none yet."""
        found = self.registry.get_sample_value(name, labels or {})
        return None if found is None else float(found)


@dataclass
class MetricsServer:
    """A running /metrics listener: its bound port; :meth:`stop` closes it."""

    server: WSGIServer
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetricsBindError(RuntimeError):
    """The /metrics listener could not bind its address (the message names the port and its holder)."""


def serve(address: str, metrics: Metrics) -> MetricsServer:
    """Serve ``metrics`` at ``http://address/metrics`` on a daemon thread (port 0: any free port).
    Raises :class:`MetricsBindError` when the address cannot be bound."""
    # Counters and histograms without their `_created` twins: half the series, nothing lost.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    try:
        server, thread = start_http_server(int(port_text), addr=host, registry=metrics.registry)
    except OSError as exc:
        holder = port_holder(int(port_text)) if int(port_text) > 0 else None
        where = f"port {port_text} is in use by {holder}" if holder is not None else str(exc)
        raise MetricsBindError(f"cannot bind the metrics listener to {address}: {where}") from exc
    port = int(server.server_port)
    logger.info("metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread, port)
