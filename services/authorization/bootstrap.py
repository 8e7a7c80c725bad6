"""Authorization's composition root. Nothing connects at import time."""

from __future__ import annotations

from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.events.v1 import events_pb2

from services.authorization.adapters import tables
from services.authorization.adapters.repository import SqlAuthorizationUnitOfWork
from services.authorization.entrypoints.grpc_api import AuthorizationServicer
from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common.clock import utcnow
from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.wiring import assemble, infrastructure


def build(settings: ServiceSettings) -> ServiceRuntime:
    infra = infrastructure(settings, tables.outbox)

    def uow() -> SqlAuthorizationUnitOfWork:
        return SqlAuthorizationUnitOfWork(infra.engine, tables.outbox, tables.processed_events,
                                          after_commit=infra.relay.wake)

    handlers = AuthorizationHandlers(uow, infra.topics,
                                     int(settings.extra.get("UR_AUTHORIZATION_VALIDITY_DAYS", "90")), clock=utcnow)
    runtime = assemble(
        infra, handlers, [infra.topics.determination_made], [events_pb2.DeterminationMade],
        Registration(authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server,
                     AuthorizationServicer(handlers),
                     authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name))
    runtime.start()
    return runtime
