"""Authorization's composition root. Nothing connects at import time."""

from __future__ import annotations

from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.events.v1 import events_pb2

from services.authorization.adapters import tables
from services.authorization.adapters.repository import AuthorizationUnitOfWork
from services.authorization.entrypoints.grpc_api import AuthorizationServicer
from services.authorization.service_layer.handlers import CONSUMER_NAME, AuthorizationHandlers
from services.common import kafka_io, migrations
from services.common.consumer import ConsumerLoop
from services.common.db import make_engine
from services.common.grpc_server import Registration, create_server
from services.common.outbox import OutboxRelay
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings


def build(settings: ServiceSettings) -> ServiceRuntime:
    engine = make_engine(settings.database_url, pool_size=max(10, settings.grpc_max_workers))
    if settings.auto_migrate:
        migrations.upgrade("authorization", engine)
    topics = settings.topics
    kafka_io.wait_for_broker(settings.kafka_bootstrap)
    kafka_io.ensure_topics(settings.kafka_bootstrap, topics.all(), settings.topic_partitions)
    producer = kafka_io.make_producer(settings.kafka_bootstrap, client_id="ur-authorization")
    relay = OutboxRelay(engine, tables.outbox, producer, "authorization", batch_size=settings.relay_batch,
                        idle_s=settings.relay_idle_s)

    def uow() -> AuthorizationUnitOfWork:
        return AuthorizationUnitOfWork(engine, tables.outbox, tables.processed_events, after_commit=relay.wake)

    handlers = AuthorizationHandlers(uow, topics,
                                     int(settings.extra.get("UR_AUTHORIZATION_VALIDITY_DAYS", "90")))
    consumer = ConsumerLoop(
        kafka_io.make_consumer(settings.kafka_bootstrap, group_id=topics.consumer_group("authorization"),
                               client_id="ur-authorization", topics=[topics.determination_made]),
        handlers, {"ur.events.v1.DeterminationMade": events_pb2.DeterminationMade.FromString},
        name=CONSUMER_NAME, dlq_producer=producer, dlq_topic=topics.dead_letter("authorization"),
        max_batch=settings.consumer_max_batch)
    server = create_server(settings.grpc_listen, [
        Registration(authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server,
                     AuthorizationServicer(handlers),
                     authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name)],
        max_workers=settings.grpc_max_workers)
    runtime = ServiceRuntime(name="authorization", server=server, engine=engine, relay=relay,
                             consumer=consumer, producer=producer, grace_s=settings.grpc_shutdown_grace_s)
    runtime.start()
    return runtime
