"""Kafka over SSL/SASL_SSL and PostgreSQL over TLS, from settings: files, checked when read, and
combinations that cannot work refused with the variable that is wrong."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common import kafka_io
from services.common.kafka_io import PLAINTEXT, KafkaSecurity
from services.common.runtime import Kafka
from services.common.settings import IntakeSettings, SettingsError, load


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("UR_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


@pytest.fixture
def secret(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str = "-----BEGIN CERTIFICATE-----\n") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def problems() -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(IntakeSettings)
    return str(caught.value).splitlines()


def test_plaintext_is_the_default() -> None:
    loaded = load(IntakeSettings)
    assert KafkaSecurity.of(loaded) == PLAINTEXT
    assert PLAINTEXT.options() == {"security_protocol": "PLAINTEXT"}
    assert loaded.libpq_options() == {}


def test_sasl_ssl_with_scram(monkeypatch: pytest.MonkeyPatch, secret: Callable[[str, str], Path]) -> None:
    monkeypatch.setenv("UR_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("UR_KAFKA_SSL_CAFILE", str(secret("ca.pem", "x")))
    monkeypatch.setenv("UR_KAFKA_SASL_USERNAME", "ur-intake")
    password = secret("password", "s3cret-from-a-mounted-secret\n")
    monkeypatch.setenv("UR_KAFKA_SASL_PASSWORD_FILE", str(password))
    security = KafkaSecurity.of(load(IntakeSettings))
    assert security.options() == {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": str(password.parent / "ca.pem"),
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "ur-intake",
        "sasl_plain_password": "s3cret-from-a-mounted-secret"}
    password.write_text("rotated")  # read again for every client made
    assert security.options()["sasl_plain_password"] == "rotated"


def test_ssl_with_a_client_certificate(monkeypatch: pytest.MonkeyPatch, secret: Callable[[str, str], Path]) -> None:
    monkeypatch.setenv("UR_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("UR_KAFKA_SSL_CERTFILE", str(secret("client.pem", "x")))
    monkeypatch.setenv("UR_KAFKA_SSL_KEYFILE", str(secret("client.key", "x")))
    options = KafkaSecurity.of(load(IntakeSettings)).options()
    assert options["security_protocol"] == "SSL"
    assert "ssl_cafile" not in options
    assert str(options["ssl_certfile"]).endswith("client.pem")
    assert str(options["ssl_keyfile"]).endswith("client.key")
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize(("env", "expected"), [
    ({"UR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
     ["UR_KAFKA_SASL_USERNAME: required with UR_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
      "UR_KAFKA_SASL_PASSWORD_FILE: required with UR_KAFKA_SECURITY_PROTOCOL=SASL_SSL"]),
    ({"UR_KAFKA_SECURITY_PROTOCOL": "TLS"}, ["UR_KAFKA_SECURITY_PROTOCOL: "]),
    ({"UR_KAFKA_SSL_CAFILE": "ca.pem"}, ["UR_KAFKA_SSL_CAFILE: needs UR_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"]),
    ({"UR_KAFKA_SECURITY_PROTOCOL": "SSL", "UR_KAFKA_SSL_CERTFILE": "ca.pem"},
     ["UR_KAFKA_SSL_KEYFILE: give both this and UR_KAFKA_SSL_CERTFILE, or neither"]),
    ({"UR_KAFKA_SECURITY_PROTOCOL": "SSL", "UR_KAFKA_SASL_USERNAME": "ur"},
     ["UR_KAFKA_SASL_USERNAME: only with UR_KAFKA_SECURITY_PROTOCOL=SASL_SSL"]),
    ({"UR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "UR_KAFKA_SASL_USERNAME": "ur",
      "UR_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password"},
     ["UR_KAFKA_SASL_PASSWORD_FILE: no such file: '/nonexistent/password'"]),
    ({"UR_DATABASE_SSLMODE": "verify"}, ["UR_DATABASE_SSLMODE: "]),
    ({"UR_DATABASE_SSLCERT": "ca.pem"}, ["UR_DATABASE_SSLKEY: give both this and UR_DATABASE_SSLCERT, or neither"]),
    ({"UR_INTAKE_DATABASE_URL": "postgresql+psycopg://h/db?sslmode=verify"},
     ["UR_INTAKE_DATABASE_URL: sslmode='verify' is not one of disable, allow, prefer, require, verify-ca, "
      "verify-full"]),
    ({"UR_INTAKE_DATABASE_URL": "postgresql+psycopg://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"},
     ["UR_INTAKE_DATABASE_URL: sslrootcert: no such file: '/nonexistent/ca.pem'"]),
])
def test_what_cannot_work_is_refused(monkeypatch: pytest.MonkeyPatch, secret: Callable[[str, str], Path],
                                     env: dict[str, str], expected: list[str]) -> None:
    ca = secret("ca.pem", "x")
    for name, value in env.items():
        monkeypatch.setenv(name, str(ca) if value == "ca.pem" else value)
    found = problems()
    assert len(found) == len(expected)
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), line


def test_database_tls_from_settings_and_from_the_url(monkeypatch: pytest.MonkeyPatch,
                                                     secret: Callable[[str, str], Path]) -> None:
    ca = secret("pg-ca.pem", "x")
    monkeypatch.setenv("UR_DATABASE_SSLMODE", "verify-full")
    monkeypatch.setenv("UR_DATABASE_SSLROOTCERT", str(ca))
    monkeypatch.setenv("UR_INTAKE_DATABASE_URL",
                       f"postgresql+psycopg://ur@db.internal:5432/ur_intake?sslmode=verify-full&sslrootcert={ca}")
    loaded = load(IntakeSettings)
    assert loaded.libpq_options() == {"sslmode": "verify-full", "sslrootcert": str(ca)}
    assert "sslrootcert=" in loaded.database


class _Recorded:
    """A kafka-python client class stand-in that records the options it was made with."""

    made: list[dict[str, object]]

    def __init__(self, *topics: str, **options: object) -> None:
        self.made.append(options)

    def describe_cluster(self) -> dict[str, object]:
        return {}

    def describe_configs(self, *_args: object, **_kw: object) -> dict[str, object]:
        return {"topic": {}}

    def describe_topics(self, topics: list[str]) -> list[dict[str, object]]:
        # Named topics only: the stand-in has no way to list or describe the whole cluster.
        return [{"name": t, "error_code": 0, "partitions": [{"partition_index": 0}]} for t in topics]

    def subscribe(self, _topics: list[str]) -> None:
        pass

    def close(self, *_args: object, **_kw: object) -> None:
        pass


def test_every_kafka_client_of_the_runtime_carries_the_security(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """Producer, consumer, topic admin, the health probe's admin client and the retention's lookup of
    the topics' retention.ms: each made with the TLS options (a client without them could not reach a
    broker that only listens with SSL or SASL_SSL)."""
    made: list[dict[str, object]] = []
    recorded = type("Client", (_Recorded,), {"made": made})
    for name in ("KafkaAdminClient", "KafkaProducer", "KafkaConsumer"):
        monkeypatch.setattr(kafka_io, name, recorded)
    security = KafkaSecurity(protocol="SSL", cafile=tmp_path / "ca.pem")
    kafka = Kafka("broker:9093", security)
    kafka.prepare(["t"], 1)
    kafka.producer("p")
    kafka.consumer("g", "c", ["t"])
    assert kafka.probe(1.0) is None
    assert kafka.retention_ms(["t"]) == {}
    kafka.close()
    # wait_for_broker, ensure_topics, producer, the consumer's wait for its topics, consumer, probe, retention
    assert len(made) == 7
    assert all(options["security_protocol"] == "SSL" for options in made)
    assert all(options["ssl_cafile"] == str(tmp_path / "ca.pem") for options in made)
