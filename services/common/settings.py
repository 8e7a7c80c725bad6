"""Configuration of every service, read from the environment.

Every variable a service reads is declared once in :data:`SETTINGS`, with its
default and meaning. ``deploy/`` (compose, Kubernetes) may only pass variables
declared here; a test enforces it, and the README's configuration table is
generated from the same list (``urctl settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("intake", "review", "authorization")

#: Default gRPC ports, one per service.
DEFAULT_PORTS = {"intake": 50051, "review": 50052, "authorization": 50053}


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    #: which services read it ("*" for all, "cli" for urctl/tools)
    used_by: tuple[str, ...] = ("*",)


def _repo_var_dir() -> Path:
    return Path(os.environ.get("UR_VAR_DIR", "var"))


SETTINGS: tuple[Setting, ...] = (
    Setting("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092",
            "Kafka bootstrap servers (comma separated). `make run`/`make test` start a local "
            "broker only when this is unset."),
    Setting("UR_TOPIC_PREFIX", "ur", "Prefix of every Kafka topic name; lets several platforms share a cluster."),
    Setting("UR_TOPIC_PARTITIONS", "6", "Partitions of topics the services create when missing."),
    Setting("UR_LOG_LEVEL", "INFO", "Python log level of the services."),
    Setting("UR_VAR_DIR", "var", "Directory for SQLite files when no database URL is given."),
    Setting("UR_AUTO_MIGRATE", "1", "Run Alembic migrations to head when a service starts (0 to disable)."),
    Setting("UR_GRPC_MAX_WORKERS", "16", "Threads serving gRPC calls in each service."),
    Setting("UR_GRPC_SHUTDOWN_GRACE_S", "10", "Seconds in-flight gRPC calls get to finish on SIGTERM."),
    Setting("UR_GRPC_PORT_FILE", "",
            "File the service writes the port its gRPC server bound to, once it serves; with a listen address "
            "of port 0 this is how a supervisor (the tests' Platform) learns the port."),
    Setting("UR_CONSUMER_MAX_BATCH", "500", "Most Kafka records one consumer transaction processes."),
    Setting("UR_RELAY_BATCH", "500", "Most outbox rows the relay publishes per round."),
    Setting("UR_RELAY_IDLE_S", "0.2", "How often the outbox relay polls when nothing woke it."),
    # intake
    Setting("UR_INTAKE_DATABASE_URL", "", "SQLAlchemy URL of intake's database (default: SQLite under UR_VAR_DIR).",
            ("intake",)),
    Setting("UR_INTAKE_GRPC_LISTEN", "127.0.0.1:50051", "Address the intake gRPC server binds.", ("intake",)),
    Setting("UR_INTAKE_MEMBERS_SEED", "",
            "YAML file of members and coverage loaded into intake's database at start (upsert).", ("intake",)),
    Setting("UR_INTAKE_MAX_WAIT_MS", "15000", "Upper bound on SubmitRequest.wait_ms (Da Vinci PAS targets 15 s).",
            ("intake",)),
    # review
    Setting("UR_REVIEW_DATABASE_URL", "", "SQLAlchemy URL of review's database (default: SQLite under UR_VAR_DIR).",
            ("review",)),
    Setting("UR_REVIEW_GRPC_LISTEN", "127.0.0.1:50052", "Address the review gRPC server binds.", ("review",)),
    Setting("UR_REVIEW_CRITERIA_DIR", "",
            "Directory of criteria YAML files (default: the library shipped with the review service).",
            ("review",)),
    Setting("UR_REVIEW_TOKENS_FILE", "",
            "YAML file mapping bearer tokens (SHA-256, or plain in development) to reviewer ids; "
            "without it reviewer calls are refused.", ("review",)),
    Setting("UR_REVIEW_REVIEWERS_SEED", "",
            "YAML file of reviewers loaded into the directory at start (insert or update).", ("review",)),
    Setting("UR_REVIEW_LEASE_S", "900",
            "Seconds a claimed task stays with its reviewer before it returns to the queue.", ("review",)),
    Setting("UR_REVIEW_MONITOR_S", "30",
            "Seconds between deadline monitor passes (lease expiry, escalation, alerts).", ("review",)),
    Setting("UR_REVIEW_AT_RISK_FRACTION", "0.2",
            "A task is at risk when less than this share of its time to deadline is left.", ("review",)),
    Setting("UR_REVIEW_CRITERIA_RELOAD_S", "5",
            "Seconds between checks of the criteria directory; a changed library is loaded without a restart "
            "(requests in flight finish on the old one). 0 disables.", ("review",)),
    Setting("UR_REVIEW_NO_PA_LIST", "",
            "YAML file of codes needing no prior authorization, per line of business (default: the list shipped "
            "with the review service, services/review/policy/no-prior-auth.yaml).", ("review",)),
    Setting("UR_REVIEW_GOLD_CARD_MIN_REQUESTS", "10",
            "Fewest criteria-decided requests of a provider in a service category, within the window, before "
            "a gold-card exemption can apply.", ("review",)),
    Setting("UR_REVIEW_GOLD_CARD_APPROVAL_RATE", "0.90",
            "Share of a provider's requests in a category that must have been approved for the gold-card "
            "exemption (Texas HB 3459: 90 %).", ("review",)),
    Setting("UR_REVIEW_GOLD_CARD_WINDOW_DAYS", "183",
            "Days of decisions the gold-card approval rate is computed over (six months).", ("review",)),
    Setting("UR_AUTHORIZATION_TARGET", "127.0.0.1:50053",
            "Where review (and urctl) reach the authorization gRPC service.", ("review", "cli")),
    # authorization
    Setting("UR_AUTHORIZATION_DATABASE_URL", "",
            "SQLAlchemy URL of authorization's database (default: SQLite under UR_VAR_DIR).", ("authorization",)),
    Setting("UR_AUTHORIZATION_GRPC_LISTEN", "127.0.0.1:50053", "Address the authorization gRPC server binds.",
            ("authorization",)),
    Setting("UR_AUTHORIZATION_VALIDITY_DAYS", "90",
            "Validity of an authorization when the line names no end date.", ("authorization",)),
    # clients
    Setting("UR_INTAKE_TARGET", "127.0.0.1:50051", "Where urctl and tools reach intake.", ("cli",)),
    Setting("UR_REVIEW_TARGET", "127.0.0.1:50052", "Where urctl and tools reach review.", ("cli",)),
    Setting("UR_REVIEWER_TOKEN", "", "Bearer token urctl review commands send (a reviewer's secret).", ("cli",)),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def known_env_vars() -> frozenset[str]:
    return frozenset(_BY_NAME)


def get(name: str, env: Mapping[str, str] | None = None) -> str:
    """The value of a declared setting (environment first, then its default)."""
    spec = _BY_NAME[name]  # KeyError: an undeclared setting is a programming error
    source = os.environ if env is None else env
    value = source.get(name, "")
    return value if value != "" else spec.default


class SettingsError(ValueError):
    """A setting has a value the service cannot use."""


@dataclass(frozen=True)
class ServiceSettings:
    service: str
    database_url: str
    grpc_listen: str
    kafka_bootstrap: str
    topic_prefix: str
    topic_partitions: int
    log_level: str
    auto_migrate: bool
    grpc_max_workers: int
    grpc_shutdown_grace_s: float
    grpc_port_file: str
    consumer_max_batch: int
    relay_batch: int
    relay_idle_s: float
    extra: Mapping[str, str]

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


@dataclass(frozen=True)
class Topics:
    """Kafka topic names; every event topic is versioned with its schema."""

    prefix: str

    @property
    def request_submitted(self) -> str:
        return f"{self.prefix}.intake.request-submitted.v1"

    @property
    def determination_made(self) -> str:
        return f"{self.prefix}.review.determination-made.v1"

    @property
    def authorizations_issued(self) -> str:
        return f"{self.prefix}.authorization.authorizations-issued.v1"

    @property
    def additional_information(self) -> str:
        return f"{self.prefix}.intake.additional-information.v1"

    @property
    def review_alerts(self) -> str:
        return f"{self.prefix}.review.alerts.v1"

    def consumer_group(self, service: str) -> str:
        """Groups carry the prefix too: platforms sharing a cluster must not share groups."""
        return f"{self.prefix}.{service}"

    def dead_letter(self, service: str) -> str:
        return f"{self.prefix}.{service}.dead-letter.v1"

    def all(self) -> list[str]:
        return [self.request_submitted, self.determination_made, self.authorizations_issued,
                self.additional_information, self.review_alerts, *(self.dead_letter(s) for s in SERVICES)]


def _int(name: str, env: Mapping[str, str] | None) -> int:
    raw = get(name, env)
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from exc


def _float(name: str, env: Mapping[str, str] | None) -> float:
    raw = get(name, env)
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def default_database_url(service: str, env: Mapping[str, str] | None = None) -> str:
    var_dir = Path(get("UR_VAR_DIR", env))
    return f"sqlite:///{(var_dir / f'{service}.db').resolve()}"


def load(service: str, env: Mapping[str, str] | None = None) -> ServiceSettings:
    if service not in SERVICES:
        raise SettingsError(f"unknown service {service!r}")
    upper = service.upper()
    database_url = get(f"UR_{upper}_DATABASE_URL", env) or default_database_url(service, env)
    extra = {s.name: get(s.name, env) for s in SETTINGS if service in s.used_by}
    return ServiceSettings(
        service=service,
        database_url=database_url,
        grpc_listen=get(f"UR_{upper}_GRPC_LISTEN", env),
        kafka_bootstrap=get("KAFKA_BOOTSTRAP_SERVERS", env),
        topic_prefix=get("UR_TOPIC_PREFIX", env),
        topic_partitions=_int("UR_TOPIC_PARTITIONS", env),
        log_level=get("UR_LOG_LEVEL", env).upper(),
        auto_migrate=get("UR_AUTO_MIGRATE", env) not in ("0", "false", "no"),
        grpc_max_workers=_int("UR_GRPC_MAX_WORKERS", env),
        grpc_shutdown_grace_s=_float("UR_GRPC_SHUTDOWN_GRACE_S", env),
        grpc_port_file=get("UR_GRPC_PORT_FILE", env),
        consumer_max_batch=_int("UR_CONSUMER_MAX_BATCH", env),
        relay_batch=_int("UR_RELAY_BATCH", env),
        relay_idle_s=_float("UR_RELAY_IDLE_S", env),
        extra=extra,
    )
