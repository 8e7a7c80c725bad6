"""Authorization's composition root. Nothing connects at import time; ``build()``
prepares the database and wires the rest, ``runtime.start()`` connects to Kafka and serves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.events.v1 import events_pb2

from services.authorization.adapters import tables
from services.authorization.adapters.repository import SqlAuthorizationUnitOfWork
from services.authorization.entrypoints.access import POLICY
from services.authorization.entrypoints.grpc_api import AuthorizationServicer
from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.authorization.service_layer.ports import AuthorizationUnitOfWork
from services.common.clock import Clock, utcnow
from services.common.credentials import CredentialsSource
from services.common.grpc_server import Registration
from services.common.runtime import ServiceRuntime
from services.common.settings import AuthorizationSettings
from services.common.wiring import assemble, infrastructure


@dataclass(frozen=True)
class Authorization:
    """The wired authorization service; ``runtime.start()`` serves it."""

    runtime: ServiceRuntime
    handlers: AuthorizationHandlers
    uow: Callable[[], AuthorizationUnitOfWork]


def build(settings: AuthorizationSettings, *, clock: Clock = utcnow) -> Authorization:
    """Authorization on ``settings``' database (migrated), not started."""
    credentials = CredentialsSource(settings.credentials_file)
    infra = infrastructure(settings, tables.outbox, clock=clock)

    def uow() -> SqlAuthorizationUnitOfWork:
        return SqlAuthorizationUnitOfWork(infra.engine, tables.outbox, tables.processed_events,
                                          after_commit=infra.wake, audit=infra.audit)

    handlers = AuthorizationHandlers(uow, infra.topics, settings.validity_days, clock=clock)
    runtime = assemble(
        infra, handlers, [infra.topics.determination_made], [events_pb2.DeterminationMade],
        Registration(authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server,
                     AuthorizationServicer(handlers),
                     authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name),
        POLICY, credentials)
    return Authorization(runtime, handlers, uow)
