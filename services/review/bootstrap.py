"""Review's composition root. Nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from ur.events.v1 import events_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common.auth import load_tokens
from services.common.clock import utcnow
from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings, SettingsError
from services.common.wiring import assemble, infrastructure
from services.review.adapters import tables
from services.review.adapters.authorization_client import GrpcDuplicateChecker
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.adapters.criteria_reload import CriteriaReloader
from services.review.adapters.holiday_calendars import load_calendars
from services.review.adapters.policy_loader import DEFAULT_NO_PA_LIST, load_no_prior_auth
from services.review.adapters.repository import ReviewUnitOfWork
from services.review.adapters.reviewers_loader import load_reviewers
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.deadlines import ClockEngine
from services.review.domain.policy import GoldCardPolicy, Policies
from services.review.entrypoints.grpc_api import ReviewerServicer
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.workflow import ReviewEvents, ReviewWorkflow

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
    extra = settings.extra
    policies = _policies(extra)

    def evaluator_of(lib: CriteriaLibrary) -> LibraryEvaluator:
        return LibraryEvaluator(lib, matcher)

    criteria = CriteriaReloader(criteria_dir, library, matcher, evaluator_of)
    clocks = ClockEngine(load_calendars())
    at_risk = _number(extra, "UR_REVIEW_AT_RISK_FRACTION", 0.2)
    if not 0 < at_risk < 1:
        raise SettingsError(f"UR_REVIEW_AT_RISK_FRACTION must be between 0 and 1, got {at_risk}")
    handlers = ReviewHandlers(uow, infra.topics, criteria.current(), duplicates, clocks, clock=utcnow,
                              policies=policies, current_evaluator=criteria.current, at_risk_fraction=at_risk)
    workflow = ReviewWorkflow(uow, infra.topics, criteria.current, clocks, clock=utcnow,
                              lease_s=_number(extra, "UR_REVIEW_LEASE_S", 900), at_risk_fraction=at_risk)
    tokens_file = extra.get("UR_REVIEW_TOKENS_FILE") or ""
    tokens = load_tokens(tokens_file) if tokens_file else None
    if tokens is None:
        logger.warning("UR_REVIEW_TOKENS_FILE is not set: reviewer calls will be refused (UNAUTHENTICATED)")
    seed = extra.get("UR_REVIEW_REVIEWERS_SEED") or ""
    if seed:
        reviewers = load_reviewers(seed)
        workflow.directory.seed(reviewers)
        logger.info("reviewer directory: %d reviewers from %s", len(reviewers), seed)
    runtime = assemble(
        infra, ReviewEvents(handlers, workflow),
        [infra.topics.request_submitted, infra.topics.additional_information],
        [events_pb2.RequestSubmitted, events_pb2.AdditionalInformationReceived],
        Registration(review_pb2_grpc.add_ReviewServiceServicer_to_server,
                     ReviewerServicer(handlers, workflow, tokens),
                     review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name))
    runtime.on_stop.append(duplicates.close)
    runtime.periodic.append(("deadline-monitor", float(extra.get("UR_REVIEW_MONITOR_S") or 30), workflow.monitor.run))
    reload_s = _number(extra, "UR_REVIEW_CRITERIA_RELOAD_S", 5.0)
    if reload_s > 0:
        # Stopped with the runtime's other periodic threads (the runtime's stop event ends it).
        runtime.periodic.append(("criteria-reload", reload_s, criteria.check))
        logger.info("watching %s for criteria changes every %g s", criteria_dir, reload_s)
    runtime.start()
    return runtime


def _number(extra: Mapping[str, str], name: str, default: float) -> float:
    raw = extra.get(name) or ""
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _policies(extra: Mapping[str, str]) -> Policies:
    """The no-prior-authorization list and the gold-card policy, from the settings."""
    no_pa_file = Path(extra.get("UR_REVIEW_NO_PA_LIST") or DEFAULT_NO_PA_LIST)
    no_prior_auth = load_no_prior_auth(no_pa_file)
    try:
        gold_card = GoldCardPolicy(approval_rate=_number(extra, "UR_REVIEW_GOLD_CARD_APPROVAL_RATE", 0.90),
                                   min_requests=int(_number(extra, "UR_REVIEW_GOLD_CARD_MIN_REQUESTS", 10)),
                                   window_days=int(_number(extra, "UR_REVIEW_GOLD_CARD_WINDOW_DAYS", 183)))
    except ValueError as exc:
        raise SettingsError(f"gold-card settings: {exc}") from exc
    logger.info("no-prior-authorization list %s: %d codes; gold card at %.0f %% of at least %d requests over %d days",
                no_pa_file, len(no_prior_auth.codes()), gold_card.approval_rate * 100, gold_card.min_requests,
                gold_card.window_days)
    return Policies(no_prior_auth, gold_card)
