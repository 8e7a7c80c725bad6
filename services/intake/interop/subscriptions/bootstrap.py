"""Subscriptions' composition root: the service behind the FHIR door's Subscription routes, and the
worker process that records and delivers notifications. Nothing connects at import time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.common import migrations
from services.common.clock import Clock, utcnow
from services.common.db import make_engine
from services.common.errors import ConfigurationError
from services.common.metrics import Metrics
from services.common.runtime import Kafka
from services.common.settings import IntakeSettings, sqlite_url
from services.intake.interop.subscriptions.adapters.door_submissions import DoorSubmissions
from services.intake.interop.subscriptions.adapters.http_sender import HttpSender
from services.intake.interop.subscriptions.adapters.repository import SqlSubscriptionsUnitOfWork
from services.intake.interop.subscriptions.adapters.results import PasSubmissions, no_submissions
from services.intake.interop.subscriptions.domain.model import Backoff
from services.intake.interop.subscriptions.service_layer.handlers import (
    Deliverer,
    NotificationRecorder,
    SubscriptionService,
)
from services.intake.interop.subscriptions.service_layer.ports import Sender
from services.intake.interop.subscriptions.worker import Worker

logger = logging.getLogger(__name__)

#: Where the PAS request Bundles the FHIR door stored are read (the door's storage).
DEFAULT_SUBMISSIONS: PasSubmissions = no_submissions
#: How long the worker waits for intake to have migrated the database it shares.
SCHEMA_WAIT_S = 120.0


def unit_of_work(engine: Engine, submissions: PasSubmissions | None = None
                 ) -> Callable[[], SqlSubscriptionsUnitOfWork]:
    chosen = submissions or DEFAULT_SUBMISSIONS
    return lambda: SqlSubscriptionsUnitOfWork(engine, chosen)


def subscription_service(engine: Engine, *, clock: Clock = utcnow,
                         submissions: PasSubmissions | None = None) -> SubscriptionService:
    """The organization-facing use cases on intake's database."""
    return SubscriptionService(unit_of_work(engine, submissions), clock=clock)


def wait_for_schema(engine: Engine, timeout_s: float = SCHEMA_WAIT_S) -> None:
    """Until intake's database is at the newest revision (intake migrates it when it starts; the
    worker only shares it). Raises ConfigurationError after ``timeout_s``."""
    script = ScriptDirectory.from_config(migrations.alembic_config("intake", "sqlite://"))
    heads = set(script.get_heads())
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with engine.connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
        except SQLAlchemyError as exc:  # not reachable yet: the same as not migrated yet
            current = set()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            reason = f"at {sorted(current) or 'no revision'}"
        if current == heads:
            return
        if time.monotonic() >= deadline:
            raise ConfigurationError(f"intake's database is not at revision {sorted(heads)} after {timeout_s:.0f} s "
                                     f"({reason}); start intake (it migrates) or run `ur-intake migrate`")
        time.sleep(0.5)


def build_worker(settings: IntakeSettings, *, clock: Clock = utcnow, submissions: PasSubmissions | None = None,
                 sender: Sender | None = None, kafka: Kafka | None = None,
                 schema_wait_s: float = SCHEMA_WAIT_S) -> Worker:
    """The subscription worker on intake's database (once intake has migrated it), not started;
    ``submissions``: where the PAS request Bundles are (default: the FHIR door's database)."""
    engine = make_engine(settings.database, pool_size=8, libpq=settings.libpq_options(),
                         password_file=settings.database_password_file)
    wait_for_schema(engine, schema_wait_s)
    engines = []
    if submissions is None:
        door = make_engine(settings.fhir_database_url or sqlite_url("fhir", settings.var_dir),
                           pool_size=4, libpq=settings.libpq_options(), password_file=settings.database_password_file)
        submissions = DoorSubmissions(door)
        engines.append(door)
    uow = unit_of_work(engine, submissions)
    recorder = NotificationRecorder(uow, clock=clock, pause=time.sleep)
    deliverer = Deliverer(uow, sender or HttpSender(), clock=clock,
                          backoff=Backoff(first_s=settings.subscriptions_retry_first_s,
                                          max_s=settings.subscriptions_retry_max_s),
                          hold_s=settings.subscriptions_hold_s)
    return Worker(settings, engine, recorder, deliverer, Metrics(), kafka=kafka, engines=engines)
