"""The platform over encrypted links: Kafka that speaks only SASL_SSL (SCRAM-SHA-512) or SSL with
client certificates, and PostgreSQL that refuses TCP without TLS and is verified (verify-full)
against a throw-away CA. Both are servers of their own (tests/secure_infra.py), never the shared
broker or cluster, stopped afterwards.

The services get everything from their settings: UR_KAFKA_* (the broker script's sasl_ssl.env) and
UR_DATABASE_SSLMODE/SSLROOTCERT/PASSWORD_FILE with database URLs that carry no password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.cli.platform import Platform
from services.common import kafka_io
from services.common.db import make_engine
from services.common.kafka_io import KafkaSecurity
from services.common.settings import PlatformSettings
from tests.conftest import REPO
from tests.e2e.conftest import Clients, start_platform
from tests.factories import lumbar_mri
from tests.secure_infra import SecureKafka, TlsPostgres, secure_kafka, tls_postgres
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e

DATABASES = {service: f"ur_{service}" for service in ("intake", "review", "authorization")}


@pytest.fixture(scope="module")
def kafka_tls() -> Iterator[SecureKafka]:
    with secure_kafka() as kafka:
        yield kafka


@pytest.fixture(scope="module")
def pg_tls() -> Iterator[TlsPostgres]:
    with tls_postgres(list(DATABASES.values())) as pg:
        yield pg


def _security(env: dict[str, str]) -> KafkaSecurity:
    """What a service makes of these settings."""
    return KafkaSecurity.of(PlatformSettings.model_validate(env))


# Run in a process of its own: a KafkaAdminClient whose bootstrap failed leaves its I/O thread running
# (kafka-python), reconnecting and leaking sockets into whatever runs next.
_REFUSAL_PROBE = """
import os, sys
from kafka.errors import KafkaTimeoutError
from services.common import kafka_io, settings
security = kafka_io.KafkaSecurity.of(settings.load(settings.PlatformSettings))
try:
    kafka_io.make_admin(sys.argv[1], "ur-refused", security, bootstrap_timeout_ms=3000, request_timeout_ms=3000)
    print("connected", flush=True)
except KafkaTimeoutError as exc:
    print("refused:", exc, flush=True)
os._exit(0)
"""


def _refused(bootstrap: str, settings: dict[str, str]) -> str:
    """How a client with these settings (UR_KAFKA_*) fares against ``bootstrap``: 'refused: ...'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UR_")} | settings
    result = subprocess.run([sys.executable, "-c", _REFUSAL_PROBE, bootstrap], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    return result.stdout.strip() or result.stderr.strip()[-500:]


def test_the_platform_runs_end_to_end_over_sasl_ssl_and_verified_tls_postgres(
        kafka_tls: SecureKafka, pg_tls: TlsPostgres, tmp_path: Path) -> None:
    env = {k: v for k, v in kafka_tls.sasl_ssl.items() if k.startswith("UR_KAFKA_")}
    env.update(UR_DATABASE_SSLMODE="verify-full", UR_DATABASE_SSLROOTCERT=str(pg_tls.ca),
               UR_DATABASE_PASSWORD_FILE=str(pg_tls.password_file))
    platform: Platform = start_platform(tmp_path, lambda service: pg_tls.url(DATABASES[service], password=False),
                                        kafka_tls.sasl_ssl["KAFKA_BOOTSTRAP_SERVERS"], new_topic_prefix(),
                                        extra_env=env)
    clients = Clients(platform)
    try:
        approved = lumbar_mri(meets=True)
        approved.wait_ms = 15000
        view = clients.intake.SubmitRequest(approved, timeout=30).request
        if view.status != intake_pb2.REQUEST_STATUS_COMPLETE:
            view = clients.settle(view.request_id)
        assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE, view
        assert view.lines[0].authorization.authorization_number.startswith("UR")
        pended = clients.intake.SubmitRequest(lumbar_mri(meets=False, member_id="T-COM-0003", state="NY",
                                                         lob=types_pb2.LINE_OF_BUSINESS_COMMERCIAL), timeout=30)
        assert clients.settle(pended.request.request_id).status == intake_pb2.REQUEST_STATUS_PENDED
        # Every connection the services hold to PostgreSQL is TLS (the cluster would refuse others anyway).
        engine = create_engine(pg_tls.url("postgres", query=f"sslmode=verify-full&sslrootcert={pg_tls.ca}"))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT a.datname, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s "
                                     "ON s.pid = a.pid WHERE a.datname LIKE 'ur\\_%'")).all()
        engine.dispose()
        assert {r.datname for r in rows} == set(DATABASES.values())
        assert all(r.ssl for r in rows)
    finally:
        clients.close()
        platform.stop()


def test_kafka_clients_over_ssl_present_their_certificate(kafka_tls: SecureKafka) -> None:
    bootstrap, security = kafka_tls.ssl["KAFKA_BOOTSTRAP_SERVERS"], _security(kafka_tls.ssl)
    assert security.protocol == "SSL"
    assert security.certfile is not None
    topic = f"urt-ssl-{uuid.uuid4().hex[:8]}"
    kafka_io.ensure_topics(bootstrap, [topic], 1, security=security)
    producer = kafka_io.make_producer(bootstrap, "ur-test-ssl", security=security)
    producer.send(topic, value=b"over TLS").get(timeout=30)
    producer.close()
    consumer = kafka_io.make_consumer(bootstrap, f"urt-{topic}", "ur-test-ssl", [topic], security=security)
    received: list[bytes | None] = []
    deadline = time.monotonic() + 60
    try:
        while not received and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += [r.value for r in records]
    finally:
        consumer.close()
    assert received == [b"over TLS"]


def test_kafka_refuses_clients_without_the_right_credentials(kafka_tls: SecureKafka, pg_tls: TlsPostgres,
                                                           tmp_path: Path) -> None:
    sasl, ssl = kafka_tls.sasl_ssl["KAFKA_BOOTSTRAP_SERVERS"], kafka_tls.ssl["KAFKA_BOOTSTRAP_SERVERS"]
    good = {k: v for k, v in kafka_tls.sasl_ssl.items() if k.startswith("UR_KAFKA_")}
    assert _refused(sasl, good) == "connected"
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    cases = {
        "a wrong password": (sasl, good | {"UR_KAFKA_SASL_PASSWORD_FILE": str(wrong)}),
        "no TLS and no login": (sasl, {}),
        "a broker certificate another CA signed": (sasl, good | {"UR_KAFKA_SSL_CAFILE": str(pg_tls.ca)}),
        "no client certificate": (ssl, {"UR_KAFKA_SECURITY_PROTOCOL": "SSL",
                                        "UR_KAFKA_SSL_CAFILE": kafka_tls.ssl["UR_KAFKA_SSL_CAFILE"]}),
    }
    outcomes = {case: _refused(bootstrap, settings) for case, (bootstrap, settings) in cases.items()}
    assert all(outcome.startswith("refused: ") for outcome in outcomes.values()), outcomes


def test_postgres_urls_with_verify_full_work_and_other_links_are_refused(pg_tls: TlsPostgres) -> None:
    database = DATABASES["intake"]
    verified = make_engine(pg_tls.url(database, query=f"sslmode=verify-full&sslrootcert={pg_tls.ca}"))
    with verified.connect() as conn:
        assert conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one() is True
    verified.dispose()
    # The settings' way: no password in the URL, the CA and mode from settings (a URL's own would win).
    from_settings = make_engine(pg_tls.url(database, password=False),
                                libpq={"sslmode": "verify-full", "sslrootcert": str(pg_tls.ca)},
                                password_file=pg_tls.password_file)
    with from_settings.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    from_settings.dispose()
    for query in (f"sslmode=verify-full&sslrootcert={pg_tls.other_ca}", "sslmode=disable"):
        refused = make_engine(pg_tls.url(database, query=query))
        with pytest.raises(OperationalError, match=r"certificate verify failed|rejects connection"):
            refused.connect().close()
        refused.dispose()
