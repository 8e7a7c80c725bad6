"""Running one service process: gRPC server, consumer loop, outbox relay and health monitor on
their own threads, stopped gracefully on SIGTERM/SIGINT.

A runtime is built wired but idle (``bootstrap.build()``: the database is ready, nothing else is
connected); :meth:`ServiceRuntime.start` connects to Kafka (creating missing topics), starts the
threads and then binds the gRPC server, so SERVING means every part is up.

From then on health follows the dependencies (services/common/health.py): the database (a
``SELECT 1``), the broker (it describes the cluster) and the consumer (it polls, and holds partitions)
are checked every UR_HEALTH_INTERVAL_S. Health name ``""`` needs all of them; the service's own
name (``ur.intake.v1.IntakeService``...) needs what its API needs, the database: a broker outage
delays decisions but the API still answers, so readiness probes should ask for the service's name.
A service adds checks with :attr:`ServiceRuntime.checks` (and names that need them with
:attr:`ServiceRuntime.api_checks`).

Shutdown order: health → NOT_SERVING and the server refuses new calls while
in-flight ones finish; the consumer finishes its batch and commits offsets;
the relay publishes what has committed; then connections close.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc.aio
from kafka.errors import KafkaError
from sqlalchemy import Engine, Table, text

from services.common import kafka_io, lifetime, outbox, tls
from services.common.clock import Clock, utcnow
from services.common.consumer import ConsumerLoop, Decoders, EventHandler
from services.common.events import IncomingEvent
from services.common.grpc_server import Registration, RunningServer, create_server
from services.common.grpc_telemetry import TelemetryInterceptor
from services.common.health import Check, ConsumerWatch, HealthMonitor
from services.common.metrics import Metrics
from services.common.outbox import OutboxRelay, RelayLease, relay_identity
from services.common.retention import Retention, dedupe_window
from services.common.settings import ServiceSettings, SettingsError

logger = logging.getLogger(__name__)

#: The first retention pass comes this soon after start (or after one interval, if shorter): a service
#: restarted more often than the interval still prunes.
RETENTION_FIRST_PASS_S = 60.0


class Kafka:
    """The Kafka clients a runtime opens when it starts (kafka-python, configured in kafka_io)."""

    def __init__(self, bootstrap: str, security: kafka_io.KafkaSecurity = kafka_io.PLAINTEXT) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self._admin: Any = None
        self._admin_lock = threading.Lock()

    def prepare(self, topics: Sequence[str], partitions: int) -> None:
        """Wait for the broker, then create the topics that are missing."""
        kafka_io.wait_for_broker(self.bootstrap, security=self.security)
        kafka_io.ensure_topics(self.bootstrap, topics, partitions, security=self.security)

    def producer(self, client_id: str) -> kafka_io.Producer:
        return kafka_io.make_producer(self.bootstrap, client_id=client_id, security=self.security)

    def consumer(self, group_id: str, client_id: str, topics: Sequence[str]) -> kafka_io.Consumer:
        return kafka_io.make_consumer(self.bootstrap, group_id=group_id, client_id=client_id, topics=topics,
                                      security=self.security)

    def probe(self, timeout_s: float) -> str | None:
        """The health check: the broker answers a cluster description within ``timeout_s`` (a reused
        admin client; a fresh one after a failure, so a restarted broker is found again)."""
        timeout_ms = max(100, int(timeout_s * 1000))
        with self._admin_lock:
            try:
                if self._admin is None:
                    self._admin = kafka_io.make_admin(self.bootstrap, "ur-health", self.security,
                                                      request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
                self._admin.describe_cluster()  # a small answer: list_topics would parse every topic
            except Exception:
                self.close()
                raise
        return None

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:  # closing a client whose broker is gone: nothing more to do
                logger.debug("closing the health admin client failed", exc_info=True)

    def retention_ms(self, topics: Sequence[str]) -> dict[str, int | None]:
        """The topics' ``retention.ms``; raises when the broker cannot say."""
        return kafka_io.topic_retention_ms(self.bootstrap, topics, security=self.security)


@dataclass
class ServiceRuntime:
    """One service, wired: its database, the handler of the events it consumes, its gRPC servicers
    and periodic work. Nothing runs until :meth:`start`."""

    name: str
    settings: ServiceSettings
    engine: Engine
    outbox: Table
    handler: EventHandler
    consumes: Sequence[str]
    decoders: Decoders
    registrations: Sequence[Registration]
    on_applied: Callable[[Sequence[IncomingEvent]], None] | None = None
    #: Set after every commit that staged events (the units of work's ``after_commit``); the relay
    #: publishes at once instead of at its next poll.
    wakeup: threading.Event = field(default_factory=threading.Event)
    kafka: Kafka | None = None  # default: the brokers of settings.kafka_bootstrap_servers, as its security says
    # Periodic work of a service (name, seconds between runs, function); runs until stop.
    periodic: list[tuple[str, float, Callable[[], object]]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    #: gRPC server interceptors, run in order before every call (authentication, issue 10), after the
    #: telemetry interceptor (services/common/grpc_telemetry.py), which counts and traces every call.
    interceptors: list[grpc.aio.ServerInterceptor] = field(default_factory=list)
    #: The process's Prometheus metrics (services/common/metrics.py); services/common/main.py serves
    #: them. The runtime counts calls, records, the outbox and the consumer's lag into them.
    metrics: Metrics = field(default_factory=Metrics)
    #: The time the relay's lease and marks go by (services/common/clock.py).
    clock: Clock = utcnow
    #: A service's own metrics read from its database (review's queue), run with :meth:`sample`.
    samplers: list[Callable[[], None]] = field(default_factory=list)
    #: Health checks besides the database, broker and consumer ones (which start() adds).
    checks: list[Check] = field(default_factory=list)
    #: Checks the service's API needs (its health names follow them; "" follows every check).
    api_checks: list[str] = field(default_factory=lambda: ["database"])
    # What start() opens:
    server: RunningServer | None = None
    monitor: HealthMonitor | None = None
    relay: OutboxRelay | None = None
    consumer: ConsumerLoop | None = None
    producer: kafka_io.Producer | None = None
    retention: Retention | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _relay_stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Connect to Kafka, start the relay, the consumer and periodic work, then serve gRPC.
        On failure, :meth:`stop` closes what was opened."""
        if self.server is not None or self._threads:
            raise RuntimeError(f"{self.name} is already started")
        settings = self.settings
        problems = settings.transport_problems()
        if problems:
            raise SettingsError(problems)
        topics = settings.topics
        kafka = self.kafka or Kafka(settings.kafka_bootstrap_servers, kafka_io.KafkaSecurity.of(settings))
        self.on_stop.append(kafka.close)
        kafka.prepare(topics.all(), settings.topic_partitions)
        self.producer = kafka.producer(client_id=f"ur-{self.name}")
        # One relay of all the service's replicas publishes at a time (per-request order; outbox.py).
        holder = relay_identity(self.name, int(settings.grpc_listen.rpartition(":")[2] or 0))
        lease = RelayLease(self.outbox.metadata.tables["relay_lease"], self.name, holder, settings.relay_lease_s,
                           clock=self.clock)
        self.relay = OutboxRelay(self.engine, self.outbox, self.producer, self.name,
                                 batch_size=settings.relay_batch, idle_s=settings.relay_idle_s, wakeup=self.wakeup,
                                 metrics=self.metrics, lease=lease, standby_s=settings.relay_lease_s / 5,
                                 clock=self.clock)
        raw = kafka.consumer(group_id=topics.consumer_group(self.name), client_id=f"ur-{self.name}",
                             topics=self.consumes)
        watched = ConsumerWatch(raw, stall_s=settings.health_consumer_stall_s)
        # Lag needs the broker's end offsets, which only kafka-python's own consumer asks for.
        lag = functools.partial(kafka_io.consumer_lag, raw) if hasattr(raw, "end_offsets") else None
        self.consumer = ConsumerLoop(
            watched,
            self.handler, self.decoders, name=self.name, dlq_producer=self.producer,
            dlq_topic=topics.dead_letter(self.name), max_batch=settings.consumer_max_batch,
            on_applied=self.on_applied, metrics=self.metrics, lag=lag, lag_interval_s=settings.metrics_interval_s)
        for name, every_s, work in self.periodic:
            self._threads.append(self._spawn(name, self._every(every_s, work, name)))
        self._threads.append(self._spawn("metrics", self._every(settings.metrics_interval_s, self.sample,
                                                                "metrics", first_after=0.0)))
        self.retention = self._retention(kafka)
        self._threads.append(self._spawn("retention", self._every(
            settings.retention_interval_s, self.retention.prune, "retention",
            first_after=min(settings.retention_interval_s, RETENTION_FIRST_PASS_S))))
        relay, consumer = self.relay, self.consumer
        self._threads.append(self._spawn("outbox-relay", lambda: relay.run(self._relay_stop)))
        self._threads.append(self._spawn("consumer", lambda: consumer.run(self.stop_event)))
        interceptors = [TelemetryInterceptor(self.metrics), *self.interceptors]
        self.server = create_server(settings.grpc_listen, self.registrations, max_workers=settings.grpc_max_workers,
                                    interceptors=interceptors, security=tls.from_settings(settings),
                                    max_message_bytes=settings.grpc_max_message_bytes)
        self.monitor = self._health_monitor(kafka, watched, self.server)
        monitor = self.monitor
        self._threads.append(self._spawn("health", lambda: monitor.run(self.stop_event)))

    def _health_monitor(self, kafka: Kafka, consumer: ConsumerWatch, server: RunningServer) -> HealthMonitor:
        settings = self.settings
        checks = [Check("database", self._database_probe),
                  Check("broker", lambda: kafka.probe(settings.health_timeout_s)),
                  Check("consumer", consumer.probe), *self.checks]
        every = [c.name for c in checks]
        names = {"": every, **{name: self.api_checks for name in server.service_names}}
        return HealthMonitor(checks, names, server.health.set, interval_s=settings.health_interval_s,
                             timeout_s=settings.health_timeout_s, failures=settings.health_failures,
                             successes=settings.health_successes)

    def sample(self) -> None:
        """The metrics read from the database: the outbox's backlog, then the service's own
        :attr:`samplers` (a pass at start, then every UR_METRICS_INTERVAL_S)."""
        count, oldest_s = outbox.backlog(self.engine, self.outbox, utcnow())
        self.metrics.outbox_backlog.set(count)
        self.metrics.outbox_oldest_s.set(oldest_s)
        for sampler in self.samplers:
            sampler()

    def _database_probe(self) -> str | None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None

    def _retention(self, kafka: Kafka) -> Retention:
        """Retention of the outbox and the processed event ids (services/common/retention.py); the
        deduplication window is worked out again at each pass from the consumed topics' retention,
        and a pass that cannot read it leaves the processed event ids alone."""
        configured = dt.timedelta(days=self.settings.processed_events_retention_days)

        def window() -> dt.timedelta | None:
            try:
                return dedupe_window(configured, kafka.retention_ms(self.consumes))
            except (KafkaError, OSError) as exc:
                logger.warning("retention: cannot read the retention of %s (%s); processed event ids are kept "
                               "this time", ", ".join(self.consumes), exc)
                return None

        return Retention(self.engine, self.outbox, self.outbox.metadata.tables["processed_events"],
                         outbox_after=dt.timedelta(days=self.settings.outbox_retention_days), processed_after=window)

    def _every(self, every_s: float, work: Callable[[], object], name: str, *,
               first_after: float | None = None) -> Callable[[], None]:
        """Run ``work`` every ``every_s`` until stop (first after ``first_after``, when given)."""
        def loop() -> None:
            failing = False

            def attempt() -> None:
                nonlocal failing
                try:
                    work()
                except Exception:
                    # A periodic pass that fails (database briefly away) is retried next time; the
                    # log says so once, with the traceback, not on every pass.
                    if not failing:
                        logger.exception("%s pass failed; retrying every %.0f s", name, every_s)
                    failing = True
                    return
                if failing:
                    logger.info("%s passes again", name)
                    failing = False

            if first_after is not None and not self.stop_event.wait(first_after):
                attempt()
            while not self.stop_event.wait(every_s):
                attempt()
        return loop

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except Exception:
                logger.exception("%s thread died; stopping the service", name)
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=f"{self.name}-{name}", daemon=True)
        thread.start()
        return thread

    @property
    def port(self) -> int:
        """The bound gRPC port (once started)."""
        if self.server is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.server.port

    def stop(self) -> None:
        """Stop what is running (all of it, or what a failed start opened) and close connections."""
        logger.info("%s stopping", self.name)
        self.stop_event.set()
        if self.server is not None:
            self.server.stop(self.settings.grpc_shutdown_grace_s)
        for thread in self._threads:
            if thread.name.endswith("consumer"):
                thread.join(timeout=30)
        if self.consumer is not None:
            self.consumer.close()
        self._relay_stop.set()
        self.wakeup.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for hook in self.on_stop:
            hook()
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)
        self.engine.dispose()
        logger.info("%s stopped", self.name)

    def serve_forever(self) -> None:
        """Block until SIGTERM/SIGINT (or a worker thread dies), then stop gracefully, within
        :data:`~services.common.lifetime.STOP_DEADLINE_S`."""
        lifetime.serve_until_signalled(self.stop_event, self.stop, name=self.name, deadline_s=max(
            lifetime.STOP_DEADLINE_S, self.settings.grpc_shutdown_grace_s + 35))


class Runnable(Protocol):
    """What ``services/common/main.py`` does with a runtime (:class:`ServiceRuntime` is the real one)."""

    @property
    def port(self) -> int: ...

    @property
    def metrics(self) -> Metrics: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def serve_forever(self) -> None: ...


class Application(Protocol):
    """What a service's ``bootstrap.build()`` returns: its runtime, and the parts tests reach for."""

    @property
    def runtime(self) -> Runnable: ...
