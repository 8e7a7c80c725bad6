"""The composition root of intake's standard front doors (``ur-fhir``): the gRPC client of intake,
the doors' own database (migrated), the payers file, the token issuer and the clock, wired into the
HTTP application. Nothing connects at import time; :func:`build` returns the application and what it
holds; intake's channel opens on first use."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from services.common import tls
from services.common.clock import Clock, utcnow
from services.common.db import make_engine
from services.common.http_telemetry import HttpMetrics
from services.common.metrics import Metrics
from services.common.settings import FhirSettings, sqlite_url
from services.intake.adapters.door_intake import GrpcIntake
from services.intake.adapters.door_payers import read_payers
from services.intake.adapters.door_store import SqlSubmissionStore, migrate
from services.intake.entrypoints.fhir_http import Doors, create_app
from services.intake.interop.pas.capability import capability_statement
from services.intake.interop.pas.guard import Limits
from services.intake.service_layer.door_auth import TokenIssuer
from services.intake.service_layer.door_ports import ClientDirectory, IntakeApi, SubmissionStore
from services.intake.service_layer.doors import PasDoor, X12Door


@dataclass
class Built:
    app: ASGIApp
    doors: Doors
    intake: IntakeApi
    store: SubmissionStore
    engine: Engine | None
    #: The door's Prometheus metrics (its requests, and the process's), served apart from its API.
    metrics: Metrics


def _version() -> str:
    try:
        return importlib.metadata.version("ur-platform")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def build(settings: FhirSettings, clients: ClientDirectory, *, intake: IntakeApi | None = None,
          store: SubmissionStore | None = None, clock: Clock = utcnow, metrics: Metrics | None = None,
          extra_routes: Sequence[BaseRoute] = ()) -> Built:
    """The doors wired to what ``settings`` name; tests pass fakes for any part. ``clients``: who may
    obtain access tokens (the platform's credentials file). ``extra_routes`` are mounted under the FHIR
    base, authenticated (the Subscription resource)."""
    metrics = metrics or Metrics()
    payers = read_payers(settings.payers_file) if settings.payers_file is not None else {}
    engine = None
    if store is None:
        engine = make_engine(settings.database_url or sqlite_url("fhir", settings.var_dir), pool_size=10,
                             libpq=settings.libpq_options(), password_file=settings.database_password_file)
        if settings.auto_migrate:
            migrate(engine)
        store = SqlSubmissionStore(engine)
    grpc_intake = None
    if intake is None:
        grpc_intake = GrpcIntake(settings.intake_target, timeout_s=settings.rpc_timeout_s,
                                 security=tls.from_settings(settings),
                                 max_message_bytes=settings.grpc_max_message_bytes)
        intake = grpc_intake
    version = _version()
    limits = Limits(max_bytes=settings.max_body_bytes)
    doors = Doors(
        pas=PasDoor(intake, store, clock=clock, payers=payers, wait_ms=settings.wait_ms, limits=limits),
        x12=X12Door(intake, store, clock=clock, payers=payers, wait_ms=settings.wait_ms),
        tokens=TokenIssuer(clients, clock=clock, lifetime_s=settings.token_ttl_s),
        capability=lambda base: capability_statement(base, software_version=version,
                                                     date=clock().date().isoformat()),
        max_body_bytes=settings.max_body_bytes, base_url=settings.base_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if grpc_intake is not None:
            await grpc_intake.close()
        if engine is not None:
            engine.dispose()

    app = create_app(doors, extra_routes=extra_routes, lifespan=lifespan, metrics=HttpMetrics(metrics, "fhir"))
    return Built(app, doors, intake, store, engine, metrics)
