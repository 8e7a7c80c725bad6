"""Intake's composition root: the one place real pieces are wired together.
Nothing connects at import time; ``build()`` prepares the database and wires the
rest, ``runtime.start()`` connects to Kafka and serves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common.access import RateLimiter
from services.common.clock import Clock, utcnow
from services.common.credentials import CredentialsSource
from services.common.fact_catalog import DEFAULT_CATALOG, load_catalog
from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import IntakeSettings
from services.common.wiring import assemble, infrastructure
from services.intake.adapters import tables
from services.intake.adapters.repository import SqlIntakeUnitOfWork
from services.intake.adapters.seed import read_members, store_members
from services.intake.entrypoints.access import POLICY
from services.intake.entrypoints.grpc_api import IntakeServicer
from services.intake.service_layer.handlers import IntakeHandlers, RequestChanger, Waiters
from services.intake.service_layer.ports import IntakeUnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    """The wired intake service; ``runtime.start()`` serves it."""

    runtime: ServiceRuntime
    handlers: IntakeHandlers
    uow: Callable[[], IntakeUnitOfWork]


def build(settings: IntakeSettings, *, clock: Clock = utcnow) -> Intake:
    """Intake on ``settings``' database (migrated, members seeded), not started.

    Configuration files are read before the database is touched, so a bad one fails first."""
    members = read_members(settings.members_seed) if settings.members_seed is not None else []
    credentials = CredentialsSource(settings.credentials_file)
    # The criteria's facts (types, units), generated from the review service's criteria library.
    facts = load_catalog(settings.fact_catalog or DEFAULT_CATALOG)
    infra = infrastructure(settings, tables.outbox, clock=clock)

    def uow() -> SqlIntakeUnitOfWork:
        return SqlIntakeUnitOfWork(infra.engine, tables.outbox, tables.processed_events, after_commit=infra.wake,
                                   audit=infra.audit)

    if members:
        store_members(members, uow)
        logger.info("loaded %d members from %s", len(members), settings.members_seed)
    handlers = IntakeHandlers(uow, infra.topics, Waiters(), clock=clock, max_wait_ms=settings.max_wait_ms,
                              facts=facts)
    runtime = assemble(
        infra, handlers, [infra.topics.determination_made, infra.topics.authorizations_issued],
        [events_pb2.DeterminationMade, events_pb2.AuthorizationsIssued],
        Registration(intake_pb2_grpc.add_IntakeServiceServicer_to_server,
                     IntakeServicer(handlers, RequestChanger(uow, infra.topics, clock=clock)),
                     intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name),
        POLICY, credentials, on_applied=handlers.notify,
        limiter=RateLimiter(settings.rate_per_s, settings.rate_burst) if settings.rate_per_s > 0 else None)
    return Intake(runtime, handlers, uow)
