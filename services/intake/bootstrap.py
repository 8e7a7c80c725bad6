"""Intake's composition root: the one place real pieces are wired together.
Nothing connects at import time; ``build()`` does, when asked."""

from __future__ import annotations

from pathlib import Path

from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common.clock import utcnow
from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.wiring import assemble, infrastructure
from services.intake.adapters import tables
from services.intake.adapters.repository import SqlIntakeUnitOfWork
from services.intake.adapters.seed import load_members
from services.intake.entrypoints.grpc_api import IntakeServicer
from services.intake.service_layer.handlers import IntakeHandlers, Waiters


def build(settings: ServiceSettings) -> ServiceRuntime:
    infra = infrastructure(settings, tables.outbox)

    def uow() -> SqlIntakeUnitOfWork:
        return SqlIntakeUnitOfWork(infra.engine, tables.outbox, tables.processed_events, after_commit=infra.relay.wake)

    seed = settings.extra.get("UR_INTAKE_MEMBERS_SEED", "")
    if seed:
        load_members(Path(seed), uow)
    handlers = IntakeHandlers(uow, infra.topics, Waiters(), clock=utcnow,
                              max_wait_ms=int(settings.extra.get("UR_INTAKE_MAX_WAIT_MS", "15000")))
    runtime = assemble(
        infra, handlers, [infra.topics.determination_made, infra.topics.authorizations_issued],
        [events_pb2.DeterminationMade, events_pb2.AuthorizationsIssued],
        Registration(intake_pb2_grpc.add_IntakeServiceServicer_to_server, IntakeServicer(handlers),
                     intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name),
        on_applied=handlers.notify)
    runtime.start()
    return runtime
