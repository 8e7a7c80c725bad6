"""Review's composition root. Nothing connects at import time."""

from __future__ import annotations

import logging
from pathlib import Path

from ur.events.v1 import events_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.wiring import assemble, infrastructure
from services.review.adapters import tables
from services.review.adapters.authorization_client import GrpcDuplicateChecker
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import load_library
from services.review.adapters.repository import ReviewUnitOfWork
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.entrypoints.grpc_api import ReviewServicer
from services.review.service_layer.handlers import ReviewHandlers

logger = logging.getLogger(__name__)

DEFAULT_CRITERIA_DIR = Path(__file__).resolve().parent / "criteria"


def build(settings: ServiceSettings) -> ServiceRuntime:
    criteria_dir = Path(settings.extra.get("UR_REVIEW_CRITERIA_DIR") or DEFAULT_CRITERIA_DIR)
    library = load_library(criteria_dir)
    # Compiled at start: a ruleset durable-rules refuses fails here, not on the first request.
    matcher = DurableRulesMatcher(library.all())
    logger.info("loaded %d criteria sets from %s", len(library.all()), criteria_dir)
    infra = infrastructure(settings, tables.outbox)

    def uow() -> ReviewUnitOfWork:
        return ReviewUnitOfWork(infra.engine, tables.outbox, tables.processed_events, after_commit=infra.relay.wake)

    duplicates = GrpcDuplicateChecker(settings.extra.get("UR_AUTHORIZATION_TARGET", "127.0.0.1:50053"))
    handlers = ReviewHandlers(uow, infra.topics, LibraryEvaluator(library, matcher), duplicates)
    runtime = assemble(
        infra, handlers, [infra.topics.request_submitted], [events_pb2.RequestSubmitted],
        Registration(review_pb2_grpc.add_ReviewServiceServicer_to_server, ReviewServicer(handlers),
                     review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name))
    runtime.on_stop.append(duplicates.close)
    runtime.start()
    return runtime
