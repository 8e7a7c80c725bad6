"""Review's composition root. Nothing connects at import time."""

from __future__ import annotations

import logging
from pathlib import Path

from ur.events.v1 import events_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common import kafka_io, migrations
from services.common.consumer import ConsumerLoop
from services.common.db import make_engine
from services.common.grpc_server import Registration, create_server
from services.common.outbox import OutboxRelay
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.review.adapters import tables
from services.review.adapters.authorization_client import GrpcDuplicateChecker
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import load_library
from services.review.adapters.repository import ReviewUnitOfWork
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.entrypoints.grpc_api import ReviewServicer
from services.review.service_layer.handlers import CONSUMER_NAME, ReviewHandlers

logger = logging.getLogger(__name__)

DEFAULT_CRITERIA_DIR = Path(__file__).resolve().parent / "criteria"


def build(settings: ServiceSettings) -> ServiceRuntime:
    criteria_dir = Path(settings.extra.get("UR_REVIEW_CRITERIA_DIR") or DEFAULT_CRITERIA_DIR)
    library = load_library(criteria_dir)
    logger.info("loaded %d criteria sets from %s", len(library.all()), criteria_dir)
    engine = make_engine(settings.database_url, pool_size=max(10, settings.grpc_max_workers))
    if settings.auto_migrate:
        migrations.upgrade("review", engine)
    topics = settings.topics
    kafka_io.wait_for_broker(settings.kafka_bootstrap)
    kafka_io.ensure_topics(settings.kafka_bootstrap, topics.all(), settings.topic_partitions)
    producer = kafka_io.make_producer(settings.kafka_bootstrap, client_id="ur-review")
    relay = OutboxRelay(engine, tables.outbox, producer, "review", batch_size=settings.relay_batch,
                        idle_s=settings.relay_idle_s)

    def uow() -> ReviewUnitOfWork:
        return ReviewUnitOfWork(engine, tables.outbox, tables.processed_events, after_commit=relay.wake)

    duplicates = GrpcDuplicateChecker(settings.extra.get("UR_AUTHORIZATION_TARGET", "127.0.0.1:50053"))
    handlers = ReviewHandlers(uow, topics, LibraryEvaluator(library, DurableRulesMatcher()), duplicates)
    consumer = ConsumerLoop(
        kafka_io.make_consumer(settings.kafka_bootstrap, group_id=topics.consumer_group("review"),
                               client_id="ur-review",
                               topics=[topics.request_submitted]),
        handlers, {"ur.events.v1.RequestSubmitted": events_pb2.RequestSubmitted.FromString},
        name=CONSUMER_NAME, dlq_producer=producer, dlq_topic=topics.dead_letter("review"),
        max_batch=settings.consumer_max_batch)
    server = create_server(settings.grpc_listen, [
        Registration(review_pb2_grpc.add_ReviewServiceServicer_to_server, ReviewServicer(handlers),
                     review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name)],
        max_workers=settings.grpc_max_workers)
    runtime = ServiceRuntime(name="review", server=server, engine=engine, relay=relay, consumer=consumer,
                             producer=producer, grace_s=settings.grpc_shutdown_grace_s)
    runtime.on_stop.append(duplicates.close)
    runtime.start()
    return runtime
