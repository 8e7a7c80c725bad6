"""The infrastructure every service wires the same way: database (migrated), then
a runtime holding the consumer's handler, the gRPC servicer and the outbox to relay.
Each service's ``bootstrap.py`` adds only its own pieces (unit of work, handlers,
servicer). Nothing here connects to Kafka or binds a port: ``runtime.start()`` does."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message
from sqlalchemy import Engine, Table

from services.common import migrations
from services.common.access import AccessControl, AccessPolicy, RateLimiter, current_caller
from services.common.audit import actor as actors
from services.common.audit.interceptor import CallerActor
from services.common.audit.store import AuditLog, AuditTables, read_key
from services.common.clock import Clock, utcnow
from services.common.credentials import CredentialsSource
from services.common.db import make_engine
from services.common.errors import Unauthenticated
from services.common.events import EventHandler, IncomingEvent
from services.common.grpc_server import Registration
from services.common.metrics import Metrics
from services.common.runtime import Kafka, ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.topics import Topics

logger = logging.getLogger(__name__)


@dataclass
class Infrastructure:
    settings: ServiceSettings
    engine: Engine
    topics: Topics
    outbox: Table
    wakeup: threading.Event = field(default_factory=threading.Event)
    #: The process's metrics: the runtime's, and those of the service's own adapters.
    metrics: Metrics = field(default_factory=Metrics)
    #: The service's audit log (its units of work append to it); see :func:`infrastructure`.
    audit: AuditLog | None = None

    def wake(self) -> None:
        """A unit of work's ``after_commit``: the relay publishes what was just committed at once."""
        self.wakeup.set()


def infrastructure(settings: ServiceSettings, outbox: Table, *, clock: Clock = utcnow) -> Infrastructure:
    """The service's database, migrated to head unless ``auto_migrate`` is off, and its audit log
    (the tables of ``outbox``'s metadata) on ``clock``, signed with UR_AUDIT_KEY_FILE's key."""
    # Every gRPC worker thread, the consumer, the relay and the health monitor may hold a connection
    # at once (a waiting SubmitRequest holds none: it only borrows a worker to re-read its request);
    # a pool smaller than that churns connections (a new PostgreSQL backend each time).
    engine = make_engine(settings.database, pool_size=settings.grpc_max_workers + 4,
                         libpq=settings.libpq_options(), password_file=settings.database_password_file)
    if settings.auto_migrate:
        migrations.upgrade(settings.service, engine)
    key = read_key(settings.audit_key_file) if settings.audit_key_file is not None else None
    if key is None:
        logger.warning("%s: UR_AUDIT_KEY_FILE is not set: the audit log gets no signed checkpoints (a truncated "
                       "tail would go unnoticed) and its entries name no member", settings.service)
    tables = AuditTables.of(outbox.metadata)
    audit = AuditLog(tables, service=settings.service, clock=clock, key=key) if tables is not None else None
    return Infrastructure(settings, engine, settings.topics, outbox, audit=audit)


def decoders(*message_types: type[Message]) -> dict[str, Callable[[bytes], Message]]:
    """Event type header value → parser, for the protobuf event classes a service consumes."""
    return {t.DESCRIPTOR.full_name: t.FromString for t in message_types}


def assemble(infra: Infrastructure, handler: EventHandler, consumes: Sequence[str],
             event_types: Sequence[type[Message]], registration: Registration, policy: AccessPolicy,
             credentials: CredentialsSource, on_applied: Callable[[Sequence[IncomingEvent]], None] | None = None,
             kafka: Kafka | None = None, limiter: RateLimiter | None = None) -> ServiceRuntime:
    """The runtime around a service's handler and servicer; not started. Every call of the servicer
    goes through :class:`~services.common.access.AccessControl` with ``policy``, against the callers
    of ``credentials`` (checked for changes every UR_CREDENTIALS_RELOAD_S) and ``limiter``; the
    runtime's telemetry interceptor runs before it, so refusals are counted. Inside it, the caller it
    admitted is the actor of what the call records in the audit log (services/common/audit/actor.py);
    the runtime signs the audit log's head every UR_AUDIT_CHECKPOINT_S and once more when it stops."""
    runtime = ServiceRuntime(name=infra.settings.service, settings=infra.settings, engine=infra.engine,
                             outbox=infra.outbox, handler=handler, consumes=consumes,
                             decoders=decoders(*event_types), registrations=[registration], on_applied=on_applied,
                             wakeup=infra.wakeup, kafka=kafka, metrics=infra.metrics,
                             interceptors=[AccessControl([policy], credentials, limiter), CallerActor(caller_actor)])
    runtime.periodic.append(("credentials-reload", infra.settings.credentials_reload_s, credentials.check))
    audit = infra.audit
    if audit is not None and audit.signs:
        runtime.periodic.append(("audit-checkpoint", infra.settings.audit_checkpoint_s,
                                 lambda: audit.checkpoint(infra.engine)))
        runtime.on_stop.append(lambda: _final_checkpoint(audit, infra.engine))
    return runtime


def caller_actor(_context: object) -> str:
    """The audit actor of a call: the principal access control admitted (``anonymous`` on a server
    that does not authenticate)."""
    try:
        return actors.caller(current_caller().principal)
    except Unauthenticated:
        return actors.ANONYMOUS


def _final_checkpoint(audit: AuditLog, engine: Engine) -> None:
    try:
        audit.checkpoint(engine)
    except Exception:  # the database may be what stopped the service: nothing more to do
        logger.exception("the audit checkpoint at stop failed; the next periodic one signs the head")
