"""PostgreSQL fails under load: its postmaster and backends are killed (``kill -9``) and it is
started again (crash recovery). Requests keep coming in across the outage; none is lost or decided
twice, and a request submitted once the database is back is decided within 15 s of its return."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import pytest

from services.cli.platform import Platform
from tests.e2e.conftest import Clients, start_platform
from tests.faults.conftest import health_turns, recovers, streaming
from tests.faults.infra import ThrowawayBroker, ThrowawayPostgres

pytestmark = pytest.mark.faults

OUTAGE_S = 5.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, postgres: ThrowawayPostgres,
             broker: ThrowawayBroker) -> Iterator[Platform]:
    numbers = itertools.count()
    running = start_platform(tmp_path_factory.mktemp("platform"),
                             lambda service: postgres.create_database(f"{service}_{next(numbers)}"),
                             broker.bootstrap, f"urf{uuid.uuid4().hex[:10]}")
    yield running
    running.stop()


def test_postgres_killed_and_restarted_loses_nothing_and_decisions_resume_promptly(
        platform: Platform, postgres: ThrowawayPostgres) -> None:
    clients = Clients(platform)
    # The stream retries UNAVAILABLE (and deadlines) only: any other code during the outage fails it.
    with streaming(clients) as stream:
        postgres.kill()
        killed = time.monotonic()
        health_turns(platform, "NOT_SERVING", killed, "PostgreSQL's death")
        health_turns(platform, "NOT_SERVING", killed, "PostgreSQL's death", services=("intake",),
                     name="ur.intake.v1.IntakeService")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed)))
        assert stream.refused > 0, "no submission met the outage"
        assert stream.unexpected == [], f"intake answered {stream.unexpected} during the outage, not UNAVAILABLE"
        postgres.start()
        back = time.monotonic()
        health_turns(platform, "SERVING", back, "PostgreSQL's restart")
        recovers(platform, clients, stream, back, "PostgreSQL's restart")
    clients.close()
