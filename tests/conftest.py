"""Fixtures for the real infrastructure: PostgreSQL and Kafka.

Integration and end-to-end tests need both; when either is missing they FAIL
with a message saying how to start it (``make test`` starts both). They never skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

REPO = Path(__file__).resolve().parents[1]


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
    except Exception as exc:
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
def kafka_bootstrap() -> str:
    from services.common.kafka_io import wait_for_broker

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    try:
        wait_for_broker(bootstrap, timeout_s=20)
    except RuntimeError as exc:
        pytest.fail(f"a Kafka broker is required for this test: {exc}\n"
                    "Start one with `deploy/kafka/kafka.sh start` (or `make test`).", pytrace=False)
    return bootstrap


@pytest.fixture
def refused_target() -> Iterator[str]:
    """host:port where nothing listens while the test runs: this socket holds the port without
    listening, so connections are refused and no other process can take the port meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def topic_prefix() -> str:
    return f"urt{uuid.uuid4().hex[:10]}"
