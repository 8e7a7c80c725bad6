"""The composition roots: ``build(settings, overrides)`` wires a service on its real database without
connecting to Kafka or binding a port; ``runtime.start()`` does both, ``runtime.stop()`` undoes them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.authorization import bootstrap as authorization_bootstrap
from services.common.settings import AuthorizationSettings, IntakeSettings, ReviewSettings
from services.intake import bootstrap as intake_bootstrap
from services.intake.entrypoints.mapping import to_domain
from services.review import bootstrap as review_bootstrap
from tests.conftest import REPO
from tests.factories import lumbar_mri
from tests.fakes.review import NoDuplicates

pytestmark = pytest.mark.integration

PINNED = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def test_build_wires_without_connecting_and_uses_the_injected_clock(make_database: Callable[[str], str]) -> None:
    app = intake_bootstrap.build(IntakeSettings(database_url=make_database("intake"), topic_prefix="t",
                                                members_seed=REPO / "tests" / "data" / "members.yaml"),
                                 clock=lambda: PINNED)
    runtime = app.runtime
    try:
        assert runtime.server is None
        assert runtime.producer is None
        assert runtime.consumer is None
        with pytest.raises(RuntimeError, match="not started"):
            _ = runtime.port
        message = lumbar_mri()
        result = app.handlers.submit(to_domain(message), message, submitter="sample-clinic")
        assert result.record.received_at == PINNED
        # The unit of work's after_commit is the runtime's relay signal: a started relay publishes at once.
        assert runtime.wakeup.is_set()
    finally:
        runtime.engine.dispose()


def test_review_takes_its_collaborators_and_the_settings_files(make_database: Callable[[str], str]) -> None:
    duplicates = NoDuplicates()
    app = review_bootstrap.build(
        ReviewSettings(database_url=make_database("review"), reviewers_seed=REPO / "deploy" / "sample" /
                       "reviewers.yaml", lease_s=60.0),
        clock=lambda: PINNED, duplicates=duplicates)
    try:
        assert app.runtime.server is None
        assert [name for name, _, _ in app.runtime.periodic] == ["credentials-reload", "deadline-monitor",
                                                                 "criteria-reload"]
        assert app.runtime.on_stop == []  # no gRPC client of authorization was made to be closed
        assert app.workflow.directory.whoami("rn-alvarez").name == "Maria Alvarez"  # seeded from the settings' file
    finally:
        app.runtime.engine.dispose()


def test_start_connects_serves_and_stop_closes(make_database: Callable[[str], str], kafka_bootstrap: str,
                                               topic_prefix: str) -> None:
    app = authorization_bootstrap.build(AuthorizationSettings(
        database_url=make_database("authorization"), topic_prefix=topic_prefix, kafka_bootstrap_servers=kafka_bootstrap,
        grpc_listen="127.0.0.1:0", topic_partitions=1, grpc_shutdown_grace_s=0.0,
        processed_events_retention_days=0.001))
    runtime = app.runtime
    runtime.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            runtime.start()
        with grpc.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert runtime.relay is not None
        assert runtime.consumer is not None
        # Retention runs, and keeps consumed ids at least as long as the broker keeps the records (plus
        # a day), not the minute and a half configured.
        assert runtime.retention is not None
        assert f"{runtime.name}-retention" in [t.name for t in runtime._threads]
        window = runtime.retention.processed_after()
        assert window is not None
        assert window > dt.timedelta(days=1)
        assert runtime.retention.prune() == {"outbox": 0, "processed_events": 0}
    finally:
        runtime.stop()
    assert all(not thread.is_alive() for thread in runtime._threads)
