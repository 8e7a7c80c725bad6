"""The workbench's composition root: the gRPC clients, the session store, the access log and the
clock, wired into the web application. Nothing connects at import time; :func:`build` returns the
application and what it holds, and the channels open on first use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.types import ASGIApp

from services.common import tls
from services.common.clock import Clock, utcnow
from services.common.credentials import TokenFile
from services.common.metrics import Metrics
from services.common.settings import WorkbenchSettings
from services.workbench.adapters.access_log import LogAccessLog
from services.workbench.adapters.platform_client import GrpcPlatform
from services.workbench.adapters.sessions import MemorySessionStore
from services.workbench.entrypoints.telemetry import HttpMetrics
from services.workbench.entrypoints.web import Workbench, create_app
from services.workbench.service_layer.pages import Pages
from services.workbench.service_layer.ports import AccessLog, Platform, SessionStore
from services.workbench.service_layer.sessions import Sessions


@dataclass
class Built:
    app: ASGIApp
    workbench: Workbench
    platform: Platform
    sessions: SessionStore
    #: The workbench's Prometheus metrics (its requests, and the process's), served apart from its pages.
    metrics: Metrics


def build(settings: WorkbenchSettings, *, platform: Platform | None = None, sessions: SessionStore | None = None,
          access: AccessLog | None = None, clock: Clock = utcnow, metrics: Metrics | None = None) -> Built:
    """The workbench wired to the services ``settings`` name; tests pass fakes for any part."""
    metrics = metrics or Metrics()
    if platform is None:
        token = TokenFile(settings.grpc_token_file) if settings.grpc_token_file is not None else None
        platform = GrpcPlatform(settings.intake_target, settings.review_target, settings.authorization_target,
                                timeout_s=settings.rpc_timeout_s, security=tls.from_settings(settings), token=token)
    store = sessions or MemorySessionStore()
    workbench = Workbench(
        Sessions(platform, store, clock=clock, idle_timeout_s=settings.idle_timeout_s,
                 max_age_s=settings.session_max_s),
        Pages(platform, access or LogAccessLog(settings.access_log_key), clock=clock), platform, clock=clock,
        cookie_secure=settings.cookie_secure, idle_timeout_s=settings.idle_timeout_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if isinstance(platform, GrpcPlatform):
            await platform.close()

    return Built(create_app(workbench, lifespan=lifespan, metrics=HttpMetrics(metrics)), workbench, platform, store,
                 metrics)
