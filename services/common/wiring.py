"""The infrastructure every service wires the same way: database (migrated),
Kafka topics, producer, outbox relay, consumer loop, gRPC server. Each service's
``bootstrap.py`` adds only its own pieces (unit of work, handlers, servicer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table

from services.common import kafka_io, migrations
from services.common.consumer import ConsumerLoop, EventHandler
from services.common.db import make_engine
from services.common.events import IncomingEvent
from services.common.grpc_server import Registration, create_server
from services.common.outbox import OutboxRelay
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings, Topics


@dataclass
class Infrastructure:
    settings: ServiceSettings
    engine: Engine
    topics: Topics
    producer: Any
    relay: OutboxRelay


def infrastructure(settings: ServiceSettings, outbox: Table) -> Infrastructure:
    """Connect, migrate and make sure the topics exist; nothing consumes or serves yet."""
    # Every gRPC worker, the consumer, the relay and waiting callers may hold a connection at once;
    # a pool smaller than that churns connections (a new PostgreSQL backend each time).
    engine = make_engine(settings.database_url, pool_size=settings.grpc_max_workers + 4)
    if settings.auto_migrate:
        migrations.upgrade(settings.service, engine)
    topics = settings.topics
    kafka_io.wait_for_broker(settings.kafka_bootstrap)
    kafka_io.ensure_topics(settings.kafka_bootstrap, topics.all(), settings.topic_partitions)
    producer = kafka_io.make_producer(settings.kafka_bootstrap, client_id=f"ur-{settings.service}")
    relay = OutboxRelay(engine, outbox, producer, settings.service, batch_size=settings.relay_batch,
                        idle_s=settings.relay_idle_s)
    return Infrastructure(settings, engine, topics, producer, relay)


def decoders(*message_types: Any) -> dict[str, Callable[[bytes], Any]]:
    """Event type header value → parser, for the protobuf event classes a service consumes."""
    return {t.DESCRIPTOR.full_name: t.FromString for t in message_types}


def assemble(infra: Infrastructure, handler: EventHandler, consumes: Sequence[str], event_types: Sequence[Any],
             registration: Registration,
             on_applied: Callable[[Sequence[IncomingEvent]], None] | None = None) -> ServiceRuntime:
    """The consumer loop and gRPC server around a service's handler; the runtime is not started."""
    settings = infra.settings
    service = settings.service
    consumer = ConsumerLoop(
        kafka_io.make_consumer(settings.kafka_bootstrap, group_id=infra.topics.consumer_group(service),
                               client_id=f"ur-{service}", topics=consumes),
        handler, decoders(*event_types), name=service, dlq_producer=infra.producer,
        dlq_topic=infra.topics.dead_letter(service), max_batch=settings.consumer_max_batch, on_applied=on_applied)
    server = create_server(settings.grpc_listen, [registration], max_workers=settings.grpc_max_workers)
    return ServiceRuntime(name=service, server=server, engine=infra.engine, relay=infra.relay, consumer=consumer,
                          producer=infra.producer, grace_s=settings.grpc_shutdown_grace_s)
