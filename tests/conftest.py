"""Fixtures for the real infrastructure: PostgreSQL and Kafka.

Integration and end-to-end tests need both; when either is missing they FAIL
with a message saying how to start it (``make test`` starts both). They never skip.

Time travel: with ``UR_TEST_TRAVEL_TO`` set, the whole session runs with the wall clock moved
there (``time_machine``, ticking on from it): ``make test-timetravel`` runs the unit and integration
tiers at each of the Makefile's TRAVEL_DATES. The value is ISO 8601 with an offset
(``2031-06-15T12:00:00+00:00``) or a local time with a zone name in brackets
(``2028-03-11T22:30:00[America/New_York]``), which also makes that zone the local one (TZ).
Monotonic clocks do not move, so timeouts keep their meaning.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from tests.topics import delete_run_topics, new_topic_prefix

REPO = Path(__file__).resolve().parents[1]
TRAVEL_ENV = "UR_TEST_TRAVEL_TO"


def travel_destination(value: str) -> dt.datetime:
    """``UR_TEST_TRAVEL_TO`` as an aware datetime; a naive one would depend on the machine's zone."""
    zone = None
    if value.endswith("]") and "[" in value:
        value, zone = value[:-1].split("[", 1)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{TRAVEL_ENV}={value!r} is not an ISO 8601 date and time") from exc
    if zone is not None:
        try:
            tz = ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise pytest.UsageError(f"{TRAVEL_ENV}: unknown time zone {zone!r}") from exc
        return when.replace(tzinfo=tz) if when.tzinfo is None else when.astimezone(tz)
    if when.tzinfo is None:
        raise pytest.UsageError(f"{TRAVEL_ENV}={value!r} needs an offset (+00:00) or a [Zone/Name]")
    return when


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, so that dates computed when test modules are imported travel too.
    value = os.environ.get(TRAVEL_ENV)
    if not value:
        return
    import time_machine

    _keep_grpc_on_the_real_clock()
    traveller = time_machine.travel(travel_destination(value), tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


def _keep_grpc_on_the_real_clock() -> None:
    """gRPC turns timeouts into absolute deadlines with ``time.time()`` and hands them to its C
    core, which reads the real clock: a deadline years ahead turns a 0.2 s wait into years
    (``Server.start`` never returns), one years back expires every call at once. gRPC's modules
    therefore keep the real clock; everything else, the code under test included, travels."""
    import importlib
    import time
    import types

    import grpc._channel
    import grpc._common
    import grpc._server
    import grpc._utilities
    import time_machine

    real = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("__")})
    real.time = time_machine.escape_hatch.time.time
    real.time_ns = time_machine.escape_hatch.time.time_ns
    cygrpc = importlib.import_module("grpc._cython.cygrpc")  # compiled: no type information
    modules: tuple[types.ModuleType, ...] = (cygrpc, grpc._channel, grpc._common, grpc._server, grpc._utilities)
    for module in modules:
        assert module.time is time, f"{module.__name__} no longer imports time as a module; revisit this shim"
        module.__dict__["time"] = real


def pytest_report_header(config: pytest.Config) -> str | None:
    value = os.environ.get(TRAVEL_ENV)
    return f"time travel: {TRAVEL_ENV}={value} (now {dt.datetime.now().astimezone().isoformat()})" if value else None


def _pg_admin_url() -> str:
    url = os.environ.get("UR_TEST_PG_URL")
    if url:
        return url
    script = REPO / "deploy" / "postgres" / "pg.sh"
    result = subprocess.run([str(script), "url", "postgres"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(f"cannot determine the PostgreSQL URL ({script} url failed: {result.stderr.strip()}); "
                    "run `make test` (it starts PostgreSQL) or set UR_TEST_PG_URL", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = _pg_admin_url()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        pytest.fail(f"PostgreSQL is required for this test and does not answer at "
                    f"{make_url(url).render_as_string(hide_password=True)}: {exc}\n"
                    "Start it with `deploy/postgres/pg.sh start` (or `make test`).", pytrace=False)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def make_database(pg_admin_url: str) -> Iterator[Callable[[str], str]]:
    """Creates throw-away databases on the test server; returns their URLs."""
    created: list[str] = []
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")

    def make(label: str) -> str:
        name = f"ur_t_{label}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    from services.common.kafka_io import wait_for_broker

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    try:
        wait_for_broker(bootstrap, timeout_s=20)
    except RuntimeError as exc:
        pytest.fail(f"a Kafka broker is required for this test: {exc}\n"
                    "Start one with `deploy/kafka/kafka.sh start` (or `make test`).", pytrace=False)
    yield bootstrap
    delete_run_topics(bootstrap)


def travelling() -> bool:
    return bool(os.environ.get(TRAVEL_ENV))


@pytest.fixture
def make_topics(kafka_bootstrap: str) -> Callable[[Iterable[str], int], None]:
    """Creates topics on the test broker, as the services do. Under time travel the broker stamps
    records with its own clock (LogAppendTime): it keeps the real clock, and a Kafka 4 broker
    refuses records stamped more than an hour ahead, i.e. every one a travelling producer writes."""
    from kafka import KafkaAdminClient

    from services.common import kafka_io

    def make(names: Iterable[str], partitions: int) -> None:
        if not travelling():
            kafka_io.ensure_topics(kafka_bootstrap, names, partitions)
            return
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="ur-test-topics")
        try:
            admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1,
                                        "configs": {"message.timestamp.type": "LogAppendTime"}} for name in names})
        finally:
            admin.close()

    return make


@pytest.fixture
def refused_target() -> Iterator[str]:
    """host:port where nothing listens while the test runs: this socket holds the port without
    listening, so connections are refused and no other process can take the port meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def topic_prefix() -> str:
    return new_topic_prefix()
