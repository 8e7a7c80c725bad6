"""Intake's composition root: the one place real pieces are wired together.
Nothing connects at import time; ``build()`` does, when asked."""

from __future__ import annotations

import logging
from pathlib import Path

from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common import kafka_io, migrations
from services.common.consumer import ConsumerLoop
from services.common.db import make_engine
from services.common.grpc_server import Registration, create_server
from services.common.outbox import OutboxRelay
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.intake.adapters import tables
from services.intake.adapters.repository import IntakeUnitOfWork
from services.intake.adapters.seed import load_members
from services.intake.entrypoints.grpc_api import IntakeServicer
from services.intake.service_layer.handlers import CONSUMER_NAME, IntakeHandlers, Waiters

logger = logging.getLogger(__name__)


def build(settings: ServiceSettings) -> ServiceRuntime:
    engine = make_engine(settings.database_url, pool_size=max(10, settings.grpc_max_workers))
    if settings.auto_migrate:
        migrations.upgrade("intake", engine)
    topics = settings.topics
    kafka_io.wait_for_broker(settings.kafka_bootstrap)
    kafka_io.ensure_topics(settings.kafka_bootstrap, topics.all(), settings.topic_partitions)
    producer = kafka_io.make_producer(settings.kafka_bootstrap, client_id="ur-intake")
    relay = OutboxRelay(engine, tables.outbox, producer, "intake", batch_size=settings.relay_batch,
                        idle_s=settings.relay_idle_s)

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(engine, tables.outbox, tables.processed_events, after_commit=relay.wake)

    seed = settings.extra.get("UR_INTAKE_MEMBERS_SEED", "")
    if seed:
        load_members(Path(seed), uow)
    handlers = IntakeHandlers(uow, topics, Waiters(),
                              max_wait_ms=int(settings.extra.get("UR_INTAKE_MAX_WAIT_MS", "15000")))
    consumer = ConsumerLoop(
        kafka_io.make_consumer(settings.kafka_bootstrap, group_id=topics.consumer_group("intake"),
                               client_id="ur-intake",
                               topics=[topics.determination_made, topics.authorizations_issued]),
        handlers,
        {"ur.events.v1.DeterminationMade": events_pb2.DeterminationMade.FromString,
         "ur.events.v1.AuthorizationsIssued": events_pb2.AuthorizationsIssued.FromString},
        name=CONSUMER_NAME, dlq_producer=producer, dlq_topic=topics.dead_letter("intake"),
        max_batch=settings.consumer_max_batch, on_applied=handlers.notify)
    server = create_server(settings.grpc_listen, [
        Registration(intake_pb2_grpc.add_IntakeServiceServicer_to_server, IntakeServicer(handlers),
                     intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name)],
        max_workers=settings.grpc_max_workers)
    runtime = ServiceRuntime(name="intake", server=server, engine=engine, relay=relay, consumer=consumer,
                             producer=producer, grace_s=settings.grpc_shutdown_grace_s)
    runtime.start()
    return runtime
