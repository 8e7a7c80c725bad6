"""The subscription worker's runtime: the Kafka consumer that records notifications, the delivery
loop that sends them, and periodic upkeep, each on its own thread; stopped gracefully.

The consumer (group ``<prefix>.intake-subscriptions``) reads the determination and authorization
topics with the shared loop (``services/common/consumer.py``: one transaction per batch, offsets
after the commit, dead letters to intake's dead-letter topic). After every applied batch it wakes
the delivery loop, which otherwise looks for what is due (retries, heartbeats) every ``poll_s``.
Attempts run on a small pool so that one slow endpoint does not hold the others up (each
subscription has at most one attempt in flight: it is leased while it runs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine
from ur.events.v1 import events_pb2

from services.common import kafka_io, lifetime
from services.common.consumer import ConsumerLoop
from services.common.events import IncomingEvent
from services.common.metrics import Metrics
from services.common.runtime import Kafka
from services.common.settings import IntakeSettings
from services.common.wiring import decoders
from services.intake.interop.subscriptions.adapters.repository import backlog
from services.intake.interop.subscriptions.domain.model import Delivery
from services.intake.interop.subscriptions.service_layer.handlers import (
    CONSUMER_NAME,
    Deliverer,
    NotificationRecorder,
)

logger = logging.getLogger(__name__)

#: Concurrent delivery attempts (to different subscriptions).
ATTEMPTS = 4
#: Seconds between upkeep passes (forgetting old delivered notifications, the backlog gauge).
UPKEEP_S = 60.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0


class SubscriptionMetrics:
    """The worker's own families, in the process's registry:

    ur_subscription_notifications_total{kind, result}  attempts by notification type and result
                                                        (delivered, failed)
    ur_subscription_backlog{state}                      event notifications owed: held, pending
    """

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.attempts = Counter("ur_subscription_notifications", "Notification attempts, by type and result.",
                                ["kind", "result"], registry=r)
        self.backlog = Gauge("ur_subscription_backlog", "Event notifications owed to subscribers (held: waiting "
                             "for authorization numbers; pending: to send).", ["state"], registry=r)


@dataclass
class Worker:
    settings: IntakeSettings
    engine: Engine
    recorder: NotificationRecorder
    deliverer: Deliverer
    metrics: Metrics
    kafka: Kafka | None = None
    #: Other engines the worker's parts hold (the FHIR door's database), disposed on stop.
    engines: list[Engine] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    consumer: ConsumerLoop | None = None
    producer: kafka_io.Producer | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self.counts = SubscriptionMetrics(self.metrics)

    def start(self) -> None:
        """Connect to Kafka and start the consumer, the delivery loop and the upkeep."""
        settings = self.settings
        topics = settings.topics
        kafka = self.kafka or Kafka(settings.kafka_bootstrap_servers, kafka_io.KafkaSecurity.of(settings))
        self.kafka = kafka
        kafka.prepare(topics.all(), settings.topic_partitions)
        self.producer = kafka.producer(client_id=f"ur-{CONSUMER_NAME}")
        consumes = [topics.determination_made, topics.authorizations_issued]
        raw = kafka.consumer(group_id=topics.consumer_group(CONSUMER_NAME), client_id=f"ur-{CONSUMER_NAME}",
                             topics=consumes)
        self.consumer = ConsumerLoop(
            raw, self.recorder, decoders(events_pb2.DeterminationMade, events_pb2.AuthorizationsIssued),
            name=CONSUMER_NAME, dlq_producer=self.producer, dlq_topic=topics.dead_letter("intake"),
            max_batch=settings.consumer_max_batch, on_applied=self._applied, metrics=self.metrics)
        self._pool = ThreadPoolExecutor(ATTEMPTS, thread_name_prefix="subscription-attempt")
        consumer = self.consumer
        self._spawn("consumer", lambda: consumer.run(self.stop_event))
        self._spawn("delivery", self._deliver_forever)
        self._spawn("upkeep", self._upkeep_forever)
        logger.info("subscription worker started: consuming %s", ", ".join(consumes))

    def _applied(self, _events: Sequence[IncomingEvent]) -> None:
        self.wake.set()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                logger.exception("%s thread died; stopping the worker", name)
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=f"{CONSUMER_NAME}-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _deliver_forever(self) -> None:
        backoff = FIRST_BACKOFF_S
        failing = False
        while not self.stop_event.is_set():
            self.wake.clear()  # before the pass, so that a wake during it is not lost
            try:
                self.deliverer.release_held()
                claimed = self.deliverer.claim()
                self._attempt_all(claimed)
            except Exception:
                # The database away: the claims' leases expire and the pass is tried again.
                if not failing:
                    logger.exception("delivery pass failed; retrying")
                failing = True
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if failing:
                logger.info("delivery passes again")
                failing = False
            backoff = FIRST_BACKOFF_S
            if not claimed:
                self.wake.wait(self.settings.subscriptions_poll_s)

    def _attempt_all(self, claimed: Sequence[Delivery]) -> None:
        if not claimed or self._pool is None:
            return
        futures = [(d, self._pool.submit(self.deliverer.attempt, d)) for d in claimed]
        for delivery, future in futures:
            try:
                ok = future.result()
            except Exception:
                logger.exception("recording a %s attempt of subscription %s failed; its lease expires and it is "
                                 "tried again", delivery.kind.value, delivery.subscription.subscription_id)
                continue
            self.counts.attempts.labels(delivery.kind.value, "delivered" if ok else "failed").inc()

    def _upkeep_forever(self) -> None:
        while not self.stop_event.is_set():
            try:
                pruned = self.deliverer.prune()
                if pruned:
                    logger.info("forgot %d delivered notifications", pruned)
                for state, count in backlog(self.engine).items():
                    self.counts.backlog.labels(state).set(count)
            except Exception:
                logger.warning("subscription upkeep failed; tried again in %.0f s", UPKEEP_S, exc_info=True)
            self.stop_event.wait(UPKEEP_S)

    def stop(self) -> None:
        logger.info("subscription worker stopping")
        self.stop_event.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.consumer is not None:
            self.consumer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.kafka is not None:
            self.kafka.close()
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)
        self.engine.dispose()
        for engine in self.engines:
            engine.dispose()
        logger.info("subscription worker stopped")

    def serve_forever(self) -> None:
        """Block until SIGTERM/SIGINT (or a thread dies), then stop gracefully, within
        :data:`~services.common.lifetime.STOP_DEADLINE_S`."""
        lifetime.serve_until_signalled(self.stop_event, self.stop, name="subscription worker")
