"""Review's composition root. Nothing connects at import time; ``build()`` reads the
configuration files, prepares the database and wires the rest, ``runtime.start()``
connects to Kafka and serves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ur.events.v1 import events_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common import tls
from services.common.clock import Clock, utcnow
from services.common.credentials import CredentialsSource, TokenFile
from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import ReviewSettings
from services.common.wiring import assemble, infrastructure
from services.review.adapters import tables
from services.review.adapters.appeal_rights_loader import load_appeal_rights
from services.review.adapters.authorization_client import GrpcDuplicateChecker
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import CriteriaLibrary, load_library
from services.review.adapters.criteria_reload import CriteriaReloader
from services.review.adapters.holiday_calendars import load_calendars
from services.review.adapters.metrics import PrometheusDecisions, QueueSampler
from services.review.adapters.notice_pdf import ReportLabNoticeRenderer
from services.review.adapters.policy_loader import DEFAULT_NO_PA_LIST, load_no_prior_auth
from services.review.adapters.repository import ReviewUnitOfWork
from services.review.adapters.reviewers_loader import load_reviewers
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.deadlines import ClockEngine
from services.review.domain.policy import GoldCardPolicy, Policies
from services.review.entrypoints.access import POLICY
from services.review.entrypoints.grpc_api import ReviewerServicer
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.notices import NoticeWriter
from services.review.service_layer.ports import DuplicateChecker, Evaluator
from services.review.service_layer.workflow import ReviewEvents, ReviewWorkflow

logger = logging.getLogger(__name__)

DEFAULT_CRITERIA_DIR = Path(__file__).resolve().parent / "criteria"


@dataclass(frozen=True)
class Review:
    """The wired review service; ``runtime.start()`` serves it."""

    runtime: ServiceRuntime
    handlers: ReviewHandlers
    workflow: ReviewWorkflow
    uow: Callable[[], ReviewUnitOfWork]


def build(settings: ReviewSettings, *, clock: Clock = utcnow, duplicates: DuplicateChecker | None = None,
          evaluator: Evaluator | None = None) -> Review:
    """Review on ``settings``' database (migrated, reviewers seeded), not started.

    ``duplicates`` replaces the gRPC client of the authorization service; ``evaluator`` replaces the
    criteria library of ``settings.criteria_dir`` (which is then neither compiled nor watched).
    Configuration files are read before the database is touched, so a bad one fails first."""
    policies = _policies(settings)
    rights = load_appeal_rights()
    clocks = ClockEngine(load_calendars())
    credentials = CredentialsSource(settings.credentials_file)
    token = TokenFile(settings.grpc_token_file) if settings.grpc_token_file is not None else None
    reviewers = load_reviewers(settings.reviewers_seed) if settings.reviewers_seed is not None else []
    criteria: CriteriaReloader | None = None
    criteria_dir = settings.criteria_dir or DEFAULT_CRITERIA_DIR
    if evaluator is None:
        criteria = _criteria(criteria_dir)
        current_evaluator: Callable[[], Evaluator] = criteria.current
    else:
        fixed = evaluator
        current_evaluator = lambda: fixed  # noqa: E731
    infra = infrastructure(settings, tables.outbox, clock=clock)

    def uow() -> ReviewUnitOfWork:
        return ReviewUnitOfWork(infra.engine, tables.outbox, tables.processed_events, after_commit=infra.wake,
                                audit=infra.audit)

    checker = duplicates if duplicates is not None else GrpcDuplicateChecker(
        settings.authorization_target, security=tls.from_settings(settings), token=token)
    notices = NoticeWriter(rights, infra.topics)
    decisions = PrometheusDecisions(infra.metrics)
    handlers = ReviewHandlers(uow, infra.topics, current_evaluator(), checker, clocks, clock=clock,
                              policies=policies, current_evaluator=current_evaluator,
                              at_risk_fraction=settings.at_risk_fraction, notices=notices, metrics=decisions)
    workflow = ReviewWorkflow(uow, infra.topics, current_evaluator, clocks, clock=clock,
                              lease_s=settings.lease_s, at_risk_fraction=settings.at_risk_fraction, notices=notices,
                              metrics=decisions)
    if reviewers:
        workflow.directory.seed(reviewers)
        logger.info("reviewer directory: %d reviewers from %s", len(reviewers), settings.reviewers_seed)
    runtime = assemble(
        infra, ReviewEvents(handlers, workflow),
        [infra.topics.request_submitted, infra.topics.additional_information, infra.topics.request_updated,
         infra.topics.appeal_filed],
        [events_pb2.RequestSubmitted, events_pb2.AdditionalInformationReceived, events_pb2.RequestCancelled,
         events_pb2.RequestRevised, events_pb2.AppealFiled],
        Registration(review_pb2_grpc.add_ReviewServiceServicer_to_server,
                     ReviewerServicer(handlers, workflow, ReportLabNoticeRenderer()),
                     review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name),
        POLICY, credentials)
    if isinstance(checker, GrpcDuplicateChecker):
        runtime.on_stop.append(checker.close)
    runtime.periodic.append(("deadline-monitor", settings.monitor_s, workflow.monitor.run))
    runtime.samplers.append(QueueSampler(infra.engine, infra.metrics, clock=clock).sample)
    if criteria is not None and settings.criteria_reload_s > 0:
        # Stopped with the runtime's other periodic threads (the runtime's stop event ends it).
        runtime.periodic.append(("criteria-reload", settings.criteria_reload_s, criteria.check))
        logger.info("watching %s for criteria changes every %g s", criteria_dir, settings.criteria_reload_s)
    return Review(runtime, handlers, workflow, uow)


def _criteria(directory: Path) -> CriteriaReloader:
    """The criteria library of ``directory``, compiled for the rules engine, ready to be reloaded."""
    library = load_library(directory)
    # Compiled at start: a ruleset durable-rules refuses fails here, not on the first request.
    matcher = DurableRulesMatcher(library.all())
    logger.info("loaded %d criteria sets from %s", len(library.all()), directory)

    def evaluator_of(lib: CriteriaLibrary) -> LibraryEvaluator:
        return LibraryEvaluator(lib, matcher)

    return CriteriaReloader(directory, library, matcher, evaluator_of)


def _policies(settings: ReviewSettings) -> Policies:
    """The no-prior-authorization list and the gold-card policy, from the settings."""
    no_pa_file = settings.no_pa_list or DEFAULT_NO_PA_LIST
    no_prior_auth = load_no_prior_auth(no_pa_file)
    # The settings' ranges are GoldCardPolicy's own, so this cannot refuse them.
    gold_card = GoldCardPolicy(approval_rate=settings.gold_card_approval_rate,
                               min_requests=settings.gold_card_min_requests,
                               window_days=settings.gold_card_window_days)
    logger.info("no-prior-authorization list %s: %d codes; gold card at %.0f %% of at least %d requests over %d days",
                no_pa_file, len(no_prior_auth.codes()), gold_card.approval_rate * 100, gold_card.min_requests,
                gold_card.window_days)
    return Policies(no_prior_auth, gold_card)
