"""Settings: typed models read from the environment, strictly, with one message shape for every problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common import settings
from services.common.errors import ConfigurationError
from services.common.settings import (
    AuthorizationSettings,
    IntakeSettings,
    ReviewSettings,
    SettingsError,
    load,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test sets: the developer's or CI's variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("UR_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def problems(model: type[settings.ServiceSettings]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(model)
    return str(caught.value).splitlines()


def test_defaults_are_the_documented_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR_VAR_DIR", str(tmp_path))
    review = load(ReviewSettings)
    assert review.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert review.grpc_listen == "127.0.0.1:50052"
    assert review.lease_s == 900.0
    assert review.at_risk_fraction == 0.2
    assert review.auto_migrate is True
    assert review.credentials_file is None
    assert review.credentials_reload_s == 5.0
    assert review.grpc_token_file is None
    assert load(IntakeSettings).rate_per_s == 50.0
    assert review.criteria_dir is None
    assert review.database == f"sqlite:///{(tmp_path / 'review.db').resolve()}"
    assert review.topics.request_submitted == "ur.intake.request-submitted.v1"
    # Defaults are not validated when used; given explicitly, they must pass their own checks.
    for model in settings.MODELS:
        model(**{name: f.default for name, f in model.model_fields.items() if f.default is not None})


def test_values_are_read_as_their_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "credentials.yaml"
    tokens.write_text("principals: []\n")
    for name, value in {"UR_REVIEW_LEASE_S": "60", "UR_REVIEW_AT_RISK_FRACTION": "0.25", "UR_AUTO_MIGRATE": "0",
                        "UR_LOG_LEVEL": "debug", "UR_CREDENTIALS_FILE": str(tokens),
                        "UR_REVIEW_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/review",
                        "KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092", "UR_REVIEW_GOLD_CARD_MIN_REQUESTS": "3",
                        "UR_REVIEW_CRITERIA_RELOAD_S": "0"}.items():
        monkeypatch.setenv(name, value)
    review = load(ReviewSettings)
    assert review.lease_s == 60.0
    assert review.at_risk_fraction == 0.25
    assert review.auto_migrate is False
    assert review.log_level == "DEBUG"
    assert review.credentials_file == tokens
    assert review.database == "postgresql+psycopg://u:p@db:5432/review"
    assert review.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert review.gold_card_min_requests == 3
    assert review.criteria_reload_s == 0.0


def test_an_empty_value_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR_INTAKE_MAX_WAIT_MS", "")
    monkeypatch.setenv("UR_INTAKE_DATABASE_URL", "")
    intake = load(IntakeSettings)
    assert intake.max_wait_ms == 15000
    assert intake.database_url is None


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("UR_REVIEW_LEASE_S", "-5", "UR_REVIEW_LEASE_S: must be greater than 0, got -5.0"),
    ("UR_REVIEW_LEASE_S", "soon", "UR_REVIEW_LEASE_S: expected a number, got text ('soon')"),
    ("UR_REVIEW_AT_RISK_FRACTION", "1", "UR_REVIEW_AT_RISK_FRACTION: must be less than 1, got 1.0"),
    ("UR_REVIEW_GOLD_CARD_APPROVAL_RATE", "0", "UR_REVIEW_GOLD_CARD_APPROVAL_RATE: must be greater than 0, got 0.0"),
    ("UR_REVIEW_GOLD_CARD_WINDOW_DAYS", "3.5", "UR_REVIEW_GOLD_CARD_WINDOW_DAYS: expected a whole number, got text"),
    ("UR_TOPIC_PARTITIONS", "0", "UR_TOPIC_PARTITIONS: must be greater than or equal to 1, got 0"),
    ("UR_AUTO_MIGRATE", "maybe", "UR_AUTO_MIGRATE: expected true or false, got text ('maybe')"),
    ("UR_LOG_LEVEL", "LOUD", "UR_LOG_LEVEL: 'LOUD' is not one of 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
    ("UR_REVIEW_GRPC_LISTEN", "50052", "UR_REVIEW_GRPC_LISTEN: expected host:port, got '50052'"),
    ("UR_AUTHORIZATION_TARGET", "auth:99999", "UR_AUTHORIZATION_TARGET: expected host:port, got 'auth:99999'"),
    ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,,k2", "KAFKA_BOOTSTRAP_SERVERS: expected host:port, got 'k2'"),
    ("UR_TOPIC_PREFIX", "my topics", "UR_TOPIC_PREFIX: letters, digits, '.', '_' and '-' only"),
    ("UR_REVIEW_DATABASE_URL", "review.db", "UR_REVIEW_DATABASE_URL: not a SQLAlchemy database URL"),
    ("UR_CREDENTIALS_FILE", "/nonexistent/credentials.yaml",
     "UR_CREDENTIALS_FILE: no such file: '/nonexistent/credentials.yaml'"),
    ("UR_GRPC_TOKEN_FILE", "/nonexistent/token", "UR_GRPC_TOKEN_FILE: no such file: '/nonexistent/token'"),
    ("UR_CREDENTIALS_RELOAD_S", "0", "UR_CREDENTIALS_RELOAD_S: must be greater than 0"),
    ("UR_REVIEW_NO_PA_LIST", "/", "UR_REVIEW_NO_PA_LIST: '/' is not a file"),
    ("UR_REVIEW_CRITERIA_DIR", "/nonexistent", "UR_REVIEW_CRITERIA_DIR: no such directory: '/nonexistent'"),
    ("UR_REVIEW_METRICS_LISTEN", "9102", "UR_REVIEW_METRICS_LISTEN: expected host:port, got '9102'"),
    ("UR_TRACE_SAMPLE_RATIO", "2", "UR_TRACE_SAMPLE_RATIO: must be less than or equal to 1, got 2.0"),
])
def test_a_bad_value_names_the_variable_and_the_problem(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                        problem: str) -> None:
    monkeypatch.setenv(name, value)
    (line,) = problems(ReviewSettings)
    assert line.startswith(problem), line


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR_AUTHORIZATION_VALIDITY_DAYS", "0")
    monkeypatch.setenv("UR_RELAY_IDLE_S", "never")
    monkeypatch.setenv("UR_AUTHORIZATION_DATABASE_ULR", "sqlite://")
    lines = problems(AuthorizationSettings)
    assert lines[0] == ("UR_AUTHORIZATION_DATABASE_ULR: unknown setting (did you mean "
                        "UR_AUTHORIZATION_DATABASE_URL?); see `urctl settings`")
    assert sorted(line.split(":")[0] for line in lines[1:]) == ["UR_AUTHORIZATION_VALIDITY_DAYS", "UR_RELAY_IDLE_S"]


def test_an_undeclared_ur_variable_is_refused_but_others_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_GROWN", "1")  # not ours
    monkeypatch.setenv("UR_TEST_PG_URL", "postgresql://x")  # declared (the tests'), ignored by services
    monkeypatch.setenv("UR_REVIEW_LEASE_S", "60")  # another service's: compose may pass one environment
    assert load(IntakeSettings).max_wait_ms == 15000
    monkeypatch.setenv("UR_INTAKE_MAXWAIT_MS", "10")
    assert problems(IntakeSettings) == [
        "UR_INTAKE_MAXWAIT_MS: unknown setting (did you mean UR_INTAKE_MAX_WAIT_MS?); see `urctl settings`"]


def test_settings_error_is_a_configuration_error() -> None:
    assert issubclass(SettingsError, ConfigurationError)


def test_models_are_immutable_and_refuse_unknown_fields(tmp_path: Path) -> None:
    intake = IntakeSettings(database_url="sqlite://")
    with pytest.raises(ValueError, match="frozen"):
        intake.max_wait_ms = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="Extra inputs"):
        IntakeSettings(max_wait=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="valid integer"):
        IntakeSettings(max_wait_ms="3")  # type: ignore[arg-type]  # strict: no coercion from Python


def test_every_variable_is_documented_once() -> None:
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.help.strip() for s in settings.SETTINGS)
    # One row, every reader, for a variable two models declare.
    (target,) = (s for s in settings.SETTINGS if s.name == "UR_AUTHORIZATION_TARGET")
    assert target.used_by == ("review", "workbench", "cli")
    declared = {f.validation_alias for m in settings.MODELS for f in m.model_fields.values()
                if isinstance(f.validation_alias, str)}
    assert declared == settings.known_env_vars()


def test_get_reads_text_for_the_cli() -> None:
    assert settings.get("UR_INTAKE_TARGET", {}) == "127.0.0.1:50051"
    assert settings.get("UR_INTAKE_TARGET", {"UR_INTAKE_TARGET": "intake:50051"}) == "intake:50051"
    assert settings.get("UR_REVIEWER_TOKEN", {}) == ""


# -- gRPC transport --------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["127.0.0.1:50051", "127.3.4.5:1", "localhost:0", "[::1]:50051"])
def test_plaintext_on_loopback_is_the_zero_setup_default(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("UR_INTAKE_GRPC_LISTEN", address)
    assert load(IntakeSettings).transport_problems() == []


@pytest.mark.parametrize("address", ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "intake.internal:50051"])
def test_plaintext_beyond_loopback_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("UR_INTAKE_GRPC_LISTEN", address)
    [problem] = problems(IntakeSettings)
    assert problem.startswith(f"UR_INTAKE_GRPC_LISTEN: {address} is not a loopback address and the server has no "
                              "TLS certificate")
    monkeypatch.setenv("UR_GRPC_ALLOW_PLAINTEXT", "true")
    assert load(IntakeSettings).grpc_listen == address


def test_tls_settings_must_make_sense_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("not checked here: the server reads it when it starts\n")
    monkeypatch.setenv("UR_REVIEW_GRPC_LISTEN", "0.0.0.0:50052")
    monkeypatch.setenv("UR_GRPC_TLS_CERT_FILE", str(pem))
    monkeypatch.setenv("UR_GRPC_TLS_REQUIRE_CLIENT_CERT", "true")
    assert problems(ReviewSettings) == [
        "UR_GRPC_TLS_KEY_FILE: set UR_GRPC_TLS_CERT_FILE and UR_GRPC_TLS_KEY_FILE together",
        "UR_GRPC_TLS_REQUIRE_CLIENT_CERT: needs UR_GRPC_TLS_CA_FILE (to check client certificates) and a server "
        "certificate (UR_GRPC_TLS_CERT_FILE, UR_GRPC_TLS_KEY_FILE)",
    ]
    monkeypatch.setenv("UR_GRPC_TLS_KEY_FILE", str(pem))
    monkeypatch.setenv("UR_GRPC_TLS_CA_FILE", str(pem))
    loaded = load(ReviewSettings)  # TLS with client certificates: any address
    assert loaded.grpc_tls_require_client_cert
    assert loaded.transport_problems() == []
    monkeypatch.setenv("UR_GRPC_TLS_CA_FILE", str(tmp_path / "missing.pem"))
    assert problems(ReviewSettings) == [f"UR_GRPC_TLS_CA_FILE: no such file: '{tmp_path / 'missing.pem'}'"]


def test_metrics_listen_on_a_port_or_off_and_tracing_is_off_unless_an_endpoint_is_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(ReviewSettings).metrics_listen == "127.0.0.1:9102"
    assert load(ReviewSettings).otlp_traces_endpoint is None
    monkeypatch.setenv("UR_REVIEW_METRICS_LISTEN", "OFF")
    monkeypatch.setenv("UR_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    loaded = load(ReviewSettings)
    assert (loaded.metrics_listen, loaded.otlp_traces_endpoint) == ("off", "http://collector:4318/v1/traces")
