"""Configuration of every service, read from the environment as typed, validated models.

Each variable is one field of a model below (pydantic-settings): its name, type, range, default and
meaning are declared once, there. :data:`SETTINGS` lists them all for ``urctl settings``, whose
``--markdown`` form is the README's configuration table (tests/unit/test_readme.py keeps the two
identical); ``deploy/`` may only pass declared variables (tests/unit/test_deploy_settings.py).

A service reads its model with :func:`load`. Values are checked strictly (a whole number where one is
expected, a share between 0 and 1, an existing file), an empty value means "use the default", and a
``UR_*`` variable that no model declares is refused, so a typo (``UR_INTAKE_DATABASE_ULR``) stops the
service instead of being ignored. Every problem is reported as ``VARIABLE: problem`` by a
:class:`SettingsError` (a :class:`~services.common.errors.ConfigurationError`: process exit status 2).

    PlatformSettings          every service (Kafka, topics, logging, threads, batches)
    └── ServiceSettings       a service process: plus its database and gRPC address
        ├── IntakeSettings
        ├── ReviewSettings
        └── AuthorizationSettings
    └── WorkbenchSettings     the workbench web application (HTTP, sessions, where the services are)
    └── FhirSettings          intake's standard front doors (Da Vinci PAS over FHIR, X12 278 over HTTP)
    ClientSettings            urctl and the tools (where the services are, the tokens they send)
    ToolSettings              the tests and the benchmark (PostgreSQL servers)
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import AfterValidator, BeforeValidator, Field, Strict, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.exc import ArgumentError

from services.common.config_files import describe
from services.common.errors import ConfigurationError
from services.common.topics import Topics

SERVICES = ("intake", "review", "authorization")

#: Default gRPC ports, one per service.
DEFAULT_PORTS = {"intake": 50051, "review": 50052, "authorization": 50053}

#: Default ports of the Prometheus /metrics listeners, one per process (deploy/prometheus scrapes them).
DEFAULT_METRICS_PORTS = {"intake": 9101, "review": 9102, "authorization": 9103, "workbench": 9104, "fhir": 9105,
                         "intake-subscriptions": 9106}


class SettingsError(ConfigurationError):
    """Settings the service cannot use; ``str()`` is one ``VARIABLE: problem`` line per problem."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{name}: {problem}" for name, problem in self.problems))


# -- value types -----------------------------------------------------------------------------------

_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/,]+):(\d{1,5})")


def _address(value: str) -> str:
    match = _ADDRESS.fullmatch(value.strip())
    if match is None or int(match.group(2)) > 65535:  # port 0: bind any free port
        raise ValueError(f"expected host:port, got {value!r}")
    return value.strip()


def _metrics_address(value: str) -> str:
    return "off" if value.strip().lower() == "off" else _address(value)


def _addresses(value: str) -> str:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"expected host:port[,host:port...], got {value!r}")
    return ",".join(_address(p) for p in parts)


SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
SSL_MODES: tuple[str, ...] = get_args(SslMode)
#: libpq parameters of a PostgreSQL URL that name files.
_URL_FILES = ("sslrootcert", "sslcert", "sslkey", "passfile")


def _database_url(value: str) -> str:
    from sqlalchemy import make_url

    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("not a SQLAlchemy database URL (driver://user:password@host/database)") from None
    query = {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}
    if "sslmode" in query and query["sslmode"] not in SSL_MODES:
        raise ValueError(f"sslmode={query['sslmode']!r} is not one of {', '.join(SSL_MODES)}")
    for name in _URL_FILES:
        path = query.get(name)
        if path and not (name == "sslrootcert" and path == "system") and not Path(path).is_file():
            raise ValueError(f"{name}: no such file: '{path}'")
    return value


def _topic_prefix(value: str) -> str:
    # Kafka topic names: letters, digits, '.', '_' and '-', at most 249 characters in all.
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value):
        raise ValueError(f"letters, digits, '.', '_' and '-' only (a Kafka topic name), got {value!r}")
    return value


def _existing_file(value: Path) -> Path:
    if not value.exists():
        raise ValueError(f"no such file: '{value}'")
    if not value.is_file():
        raise ValueError(f"'{value}' is not a file")
    return value


def _existing_directory(value: Path) -> Path:
    if not value.is_dir():
        raise ValueError(f"no such directory: '{value}'")
    return value


Address = Annotated[str, AfterValidator(_address)]
Addresses = Annotated[str, AfterValidator(_addresses)]
#: host:port of a Prometheus /metrics listener, or "off".
MetricsAddress = Annotated[str, AfterValidator(_metrics_address)]
DatabaseUrl = Annotated[str, AfterValidator(_database_url)]
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
# Paths come as text from the environment: converted (not strict), then checked.
AnyPath = Annotated[Path, Strict(False)]
ExistingFile = Annotated[Path, Strict(False), AfterValidator(_existing_file)]
ExistingDirectory = Annotated[Path, Strict(False), AfterValidator(_existing_directory)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)]
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
Seconds = Annotated[float, Field(gt=0)]
SecondsOrZero = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]


def setting(env: str, default: Any, help: str, **constraints: Any) -> Any:
    """A field read from the environment variable ``env``."""
    return Field(default, validation_alias=env, description=help, **constraints)


def _pair(key: Path | None, certificate: object, certificate_variable: str) -> Path | None:
    """A private key comes with its certificate, and a certificate with its key."""
    if (key is None) != (certificate is None):
        raise ValueError(f"give both this and {certificate_variable}, or neither")
    return key


# -- the models ------------------------------------------------------------------------------------


class _Environment(BaseSettings):
    """Strict, immutable, from the process environment only (no .env file, no secrets directory); a
    variable set to the empty string counts as unset. Fields are also settable by name (tests)."""

    model_config = SettingsConfigDict(strict=True, extra="forbid", frozen=True, case_sensitive=True,
                                      env_ignore_empty=True, validate_by_name=True, validate_by_alias=True)

    #: Who reads these variables (the README's "used by" column): "*" for every service.
    used_by: ClassVar[tuple[str, ...]] = ("*",)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


class PlatformSettings(_Environment):
    """What every service reads."""

    kafka_bootstrap_servers: Addresses = setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092",
        "Kafka bootstrap servers (comma separated). `make run`/`make test` start a local broker only when "
        "this is unset.")
    topic_prefix: TopicPrefix = setting(
        "UR_TOPIC_PREFIX", "ur", "Prefix of every Kafka topic name; lets several platforms share a cluster.")
    topic_partitions: Count = setting("UR_TOPIC_PARTITIONS", 6, "Partitions of topics the services create when "
                                                                "missing.")
    log_level: LogLevel = setting("UR_LOG_LEVEL", "INFO", "Python log level of the services (DEBUG, INFO, "
                                                          "WARNING, ERROR, CRITICAL).")
    var_dir: AnyPath = setting("UR_VAR_DIR", Path("var"), "Directory for SQLite files when no database URL is "
                                                          "given.")
    auto_migrate: bool = setting("UR_AUTO_MIGRATE", True, "Run Alembic migrations to head when a service starts "
                                                          "(0 or false to disable).")
    grpc_max_workers: Count = setting(
        "UR_GRPC_MAX_WORKERS", 16,
        "Threads running each service's blocking gRPC work (handlers and their database calls); waiting "
        "calls, health checks and reflection hold none.")
    grpc_shutdown_grace_s: SecondsOrZero = setting(
        "UR_GRPC_SHUTDOWN_GRACE_S", 10.0, "Seconds in-flight gRPC calls get to finish on SIGTERM.")
    consumer_max_batch: Count = setting("UR_CONSUMER_MAX_BATCH", 500,
                                        "Most Kafka records one consumer transaction processes.")
    relay_batch: Count = setting("UR_RELAY_BATCH", 500, "Most outbox rows the relay publishes per round.")
    relay_idle_s: Seconds = setting("UR_RELAY_IDLE_S", 0.2, "How often the outbox relay polls when nothing woke "
                                                            "it.")
    relay_lease_s: Seconds = setting(
        "UR_RELAY_LEASE_S", 10.0,
        "Seconds the outbox relay's lease lasts unless renewed: of a service's replicas only the holder "
        "publishes (keeping each request's events in order); another takes over this long after the holder "
        "died (at once after a graceful stop). Longer than the replicas' clocks disagree.")
    outbox_retention_days: Annotated[float, Field(gt=0)] = setting(
        "UR_OUTBOX_RETENTION_DAYS", 7.0,
        "Days a published outbox row is kept (for inspection) before retention deletes it; rows not yet "
        "published are never deleted.")
    processed_events_retention_days: Annotated[float, Field(gt=0)] = setting(
        "UR_PROCESSED_EVENTS_RETENTION_DAYS", 14.0,
        "Days the id of a consumed event is remembered to drop redelivered copies; never less than the "
        "consumed topics' retention.ms plus a day (asked of the broker at each pass). Why this is safe: "
        "services/common/retention.py.")
    retention_interval_s: Seconds = setting(
        "UR_RETENTION_INTERVAL_S", 3600.0, "Seconds between retention passes over the outbox and the processed "
                                           "event ids.")
    grpc_port_file: AnyPath | None = setting(
        "UR_GRPC_PORT_FILE", None,
        "File the service writes the port its gRPC server bound to, once it serves; with a listen address of "
        "port 0 this is how a supervisor (the tests' Platform) learns the port.")
    supervisor_pid: Annotated[int, Field(ge=1)] | None = setting(
        "UR_SUPERVISOR_PID", None,
        "Set by a supervisor that starts the service as its child (`make run`, the bench, the tests): the "
        "service stops when that process dies, even by kill -9.")
    grpc_max_message_bytes: Count = setting(
        "UR_GRPC_MAX_MESSAGE_BYTES", 8 * 1024 * 1024,
        "Largest gRPC message a service receives or sends (and its clients accept), in bytes.")
    grpc_tls_cert_file: ExistingFile | None = setting(
        "UR_GRPC_TLS_CERT_FILE", None,
        "PEM certificate chain of this process: its gRPC server serves it (TLS on when set, with "
        "UR_GRPC_TLS_KEY_FILE) and its gRPC clients present it as their client certificate.")
    grpc_tls_key_file: ExistingFile | None = setting(
        "UR_GRPC_TLS_KEY_FILE", None, "PEM private key of UR_GRPC_TLS_CERT_FILE.")
    grpc_tls_ca_file: ExistingFile | None = setting(
        "UR_GRPC_TLS_CA_FILE", None,
        "PEM CA bundle: gRPC clients verify servers against it (and use TLS when it is set); a server "
        "verifies client certificates against it.")
    grpc_tls_require_client_cert: bool = setting(
        "UR_GRPC_TLS_REQUIRE_CLIENT_CERT", False,
        "A TLS gRPC server refuses clients without a certificate signed by UR_GRPC_TLS_CA_FILE (mutual TLS "
        "between the services).")
    grpc_token_file: ExistingFile | None = setting(
        "UR_GRPC_TOKEN_FILE", None,
        "File holding the bearer token this process sends on its calls to the other services (review to "
        "authorization, the workbench to intake and authorization); read again when it changes. Without it a "
        "service calls with its client certificate alone (mutual TLS).")
    grpc_allow_plaintext: bool = setting(
        "UR_GRPC_ALLOW_PLAINTEXT", False,
        "Let a service bind a non-loopback gRPC address without TLS. Off: such a service refuses to start "
        "(exit 2); plaintext is for loopback (`make run`) or a network that encrypts for you.")
    health_interval_s: Seconds = setting(
        "UR_HEALTH_INTERVAL_S", 1.0,
        "Seconds between health checks of a service's dependencies (database, broker, consumer).")
    health_timeout_s: Seconds = setting(
        "UR_HEALTH_TIMEOUT_S", 2.0, "A dependency check that takes longer than this has failed.")
    health_failures: Count = setting(
        "UR_HEALTH_FAILURES", 2,
        "Consecutive failed checks of a dependency before the gRPC health status turns NOT_SERVING.")
    health_successes: Count = setting(
        "UR_HEALTH_SUCCESSES", 2,
        "Consecutive passed checks of a failed dependency before the status turns SERVING again.")
    health_consumer_stall_s: Seconds = setting(
        "UR_HEALTH_CONSUMER_STALL_S", 60.0,
        "The Kafka consumer counts as stalled (health NOT_SERVING for service \"\") when it has not polled, or "
        "has held no partition, for this many seconds.")
    metrics_port_file: AnyPath | None = setting(
        "UR_METRICS_PORT_FILE", None,
        "File the process writes the port its Prometheus /metrics listener bound to, once it serves (how a "
        "supervisor learns a port chosen with port 0).")
    metrics_interval_s: Seconds = setting(
        "UR_METRICS_INTERVAL_S", 15.0,
        "Seconds between updates of the metrics read from the database and the broker (queue depth, tasks at "
        "risk, outbox backlog, consumer lag); about Prometheus' scrape interval.")
    otlp_traces_endpoint: str | None = setting(
        "UR_OTLP_TRACES_ENDPOINT", None,
        "OTLP/HTTP endpoint the process exports OpenTelemetry trace spans to (e.g. "
        "http://otel-collector:4318/v1/traces). Unset: tracing is off (no spans are made, nothing is exported).")
    trace_sample_ratio: Annotated[float, Field(ge=0, le=1)] = setting(
        "UR_TRACE_SAMPLE_RATIO", 1.0,
        "Share of new traces recorded when tracing is on (a call or event that arrives traced follows its "
        "caller's choice); between 0 and 1.")

    audit_key_file: ExistingFile | None = setting(
        "UR_AUDIT_KEY_FILE", None,
        "File holding the audit key (at least 16 bytes; e.g. `openssl rand -hex 32`), kept away from the databases: "
        "it signs the audit log's checkpoints (HMAC-SHA256), which make a truncated log detectable, and makes the "
        "opaque member references of audit entries. `urctl audit verify` needs the same file. Unset: no checkpoints "
        "and no member references (a warning at start).")
    audit_checkpoint_s: Seconds = setting(
        "UR_AUDIT_CHECKPOINT_S", 60.0,
        "Seconds between signed checkpoints of a service's audit log (one more at a graceful stop); entries after "
        "the last checkpoint could be cut off unnoticed.")

    # Kafka over TLS: declared in this order, each checked against the ones before it.
    kafka_security_protocol: KafkaProtocol = setting(
        "UR_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
        "How the services reach Kafka: PLAINTEXT, SSL (TLS; a client certificate too when the listener asks for "
        "one) or SASL_SSL (TLS and a SCRAM user).")
    kafka_ssl_cafile: ExistingFile | None = setting(
        "UR_KAFKA_SSL_CAFILE", None,
        "PEM bundle of the CAs that sign the brokers' certificates (default: the system's); SSL and SASL_SSL "
        "only.", validate_default=True)
    kafka_ssl_certfile: ExistingFile | None = setting(
        "UR_KAFKA_SSL_CERTFILE", None, "PEM client certificate (chain) presented to brokers that require one; "
                                       "with UR_KAFKA_SSL_KEYFILE.", validate_default=True)
    kafka_ssl_keyfile: ExistingFile | None = setting(
        "UR_KAFKA_SSL_KEYFILE", None, "PEM private key of UR_KAFKA_SSL_CERTFILE.", validate_default=True)
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = setting(
        "UR_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL mechanism with SASL_SSL.")
    kafka_sasl_username: str | None = setting(
        "UR_KAFKA_SASL_USERNAME", None, "SCRAM user the services log in as; required with SASL_SSL.",
        validate_default=True)
    kafka_sasl_password_file: ExistingFile | None = setting(
        "UR_KAFKA_SASL_PASSWORD_FILE", None,
        "File holding the SCRAM user's password (a mounted secret; read when a client connects); required with "
        "SASL_SSL.", validate_default=True)
    # PostgreSQL over TLS: libpq parameters for database URLs that do not set them.
    database_sslmode: SslMode | None = setting(
        "UR_DATABASE_SSLMODE", None,
        "libpq sslmode of PostgreSQL connections whose URL gives none (verify-full: encrypted, and the server's "
        "certificate must be signed by UR_DATABASE_SSLROOTCERT and name the host).")
    database_sslrootcert: ExistingFile | None = setting(
        "UR_DATABASE_SSLROOTCERT", None,
        "PEM bundle of the CAs that sign PostgreSQL servers' certificates, for URLs that name none (sslrootcert).")
    database_sslcert: ExistingFile | None = setting(
        "UR_DATABASE_SSLCERT", None, "PEM client certificate for PostgreSQL certificate authentication (sslcert), "
                                     "with UR_DATABASE_SSLKEY.", validate_default=True)
    database_sslkey: ExistingFile | None = setting(
        "UR_DATABASE_SSLKEY", None, "PEM private key of UR_DATABASE_SSLCERT (sslkey; mode 0600).",
        validate_default=True)
    database_password_file: ExistingFile | None = setting(
        "UR_DATABASE_PASSWORD_FILE", None,
        "File holding the PostgreSQL password, for database URLs without one (a mounted secret rather than a "
        "password in the URL).")

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile")
    @classmethod
    def _tls_only(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("kafka_security_protocol") == "PLAINTEXT":
            raise ValueError("needs UR_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (it is PLAINTEXT)")
        return value

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _key_with_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _pair(value, info.data.get("kafka_ssl_certfile"), "UR_KAFKA_SSL_CERTFILE")

    @field_validator("database_sslkey")
    @classmethod
    def _database_key_with_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _pair(value, info.data.get("database_sslcert"), "UR_DATABASE_SSLCERT")

    @field_validator("kafka_sasl_username", "kafka_sasl_password_file")
    @classmethod
    def _sasl_credentials(cls, value: str | Path | None, info: ValidationInfo) -> str | Path | None:
        sasl = info.data.get("kafka_security_protocol") == "SASL_SSL"
        if sasl and not value:
            raise ValueError("required with UR_KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        if value and not sasl and "kafka_security_protocol" in info.data:
            raise ValueError("only with UR_KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        return value

    def libpq_options(self) -> dict[str, str]:
        """libpq parameters for PostgreSQL connections (those set; a database URL's own win)."""
        options = {"sslmode": self.database_sslmode, "sslrootcert": self.database_sslrootcert,
                   "sslcert": self.database_sslcert, "sslkey": self.database_sslkey}
        return {name: str(value) for name, value in options.items() if value is not None}


class ServiceSettings(PlatformSettings):
    """A service process: the platform's settings, its database and its gRPC address (each service
    declares the variables of the last two)."""

    service: ClassVar[str]
    database_url: str | None = None
    grpc_listen: str = ""
    credentials_file: ExistingFile | None = setting(
        "UR_CREDENTIALS_FILE", None,
        "YAML file of the principals that may call this service: their scopes, token digests (HMAC-SHA256 with "
        "the file's salt) and client certificate names (services/common/credentials.py). Read again when it "
        "changes; without it every call is refused (UNAUTHENTICATED).")
    credentials_reload_s: Seconds = setting(
        "UR_CREDENTIALS_RELOAD_S", 5.0,
        "Seconds between checks of UR_CREDENTIALS_FILE; a changed file is loaded without a restart (a file that "
        "does not parse is logged and the last good one kept).")
    metrics_listen: str = "off"

    @property
    def database(self) -> str:
        """The database URL, SQLite under ``var_dir`` when none is set."""
        return self.database_url or sqlite_url(self.service, self.var_dir)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def transport_problems(self) -> list[tuple[str, str]]:
        """What is wrong with the gRPC transport settings, as (variable, problem): a plaintext listener on
        a non-loopback address that UR_GRPC_ALLOW_PLAINTEXT does not allow, half a certificate, client
        certificates required with no CA to check them. :func:`load` and the runtime refuse to start on
        any of them."""
        problems: list[tuple[str, str]] = []
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            problems.append(("UR_GRPC_TLS_CERT_FILE" if self.grpc_tls_cert_file is None else "UR_GRPC_TLS_KEY_FILE",
                             "set UR_GRPC_TLS_CERT_FILE and UR_GRPC_TLS_KEY_FILE together"))
        if self.grpc_tls_require_client_cert and (self.grpc_tls_ca_file is None or self.grpc_tls_cert_file is None):
            problems.append(("UR_GRPC_TLS_REQUIRE_CLIENT_CERT",
                             "needs UR_GRPC_TLS_CA_FILE (to check client certificates) and a server certificate "
                             "(UR_GRPC_TLS_CERT_FILE, UR_GRPC_TLS_KEY_FILE)"))
        if self.grpc_tls_cert_file is None and not self.grpc_allow_plaintext and not is_loopback(self.grpc_listen):
            problems.append((f"UR_{self.service.upper()}_GRPC_LISTEN",
                             f"{self.grpc_listen} is not a loopback address and the server has no TLS certificate; "
                             "set UR_GRPC_TLS_CERT_FILE and UR_GRPC_TLS_KEY_FILE, or UR_GRPC_ALLOW_PLAINTEXT=true "
                             "if plaintext on this network is intended"))
        return problems


class IntakeSettings(ServiceSettings):
    service: ClassVar[str] = "intake"
    used_by: ClassVar[tuple[str, ...]] = ("intake",)

    database_url: DatabaseUrl | None = setting(
        "UR_INTAKE_DATABASE_URL", None, "SQLAlchemy URL of intake's database (default: SQLite under UR_VAR_DIR).")
    grpc_listen: Address = setting("UR_INTAKE_GRPC_LISTEN", "127.0.0.1:50051", "Address the intake gRPC server "
                                                                               "binds.")
    metrics_listen: MetricsAddress = setting(
        "UR_INTAKE_METRICS_LISTEN", "127.0.0.1:9101",
        "Address of intake's Prometheus /metrics listener (port 0: any free port; off: none).")
    members_seed: ExistingFile | None = setting(
        "UR_INTAKE_MEMBERS_SEED", None,
        "YAML file of members and coverage loaded into intake's database at start (upsert).")
    max_wait_ms: Annotated[int, Field(ge=0)] = setting(
        "UR_INTAKE_MAX_WAIT_MS", 15000, "Upper bound on SubmitRequest.wait_ms (Da Vinci PAS targets 15 s).")
    rate_per_s: Annotated[float, Field(ge=0)] = setting(
        "UR_INTAKE_RATE_PER_S", 50.0,
        "Calls a second each caller (principal) may make to intake on average, a token bucket per caller; more "
        "are answered RESOURCE_EXHAUSTED with a retry hint (google.rpc.RetryInfo). 0: no limit.")
    rate_burst: Count = setting(
        "UR_INTAKE_RATE_BURST", 100, "Calls a caller may make to intake at once before UR_INTAKE_RATE_PER_S "
                                     "paces it (the bucket's size).")
    subscriptions_metrics_listen: MetricsAddress = setting(
        "UR_INTAKE_SUBSCRIPTIONS_METRICS_LISTEN", "127.0.0.1:9106",
        "Address of the Prometheus /metrics listener of intake's subscription worker (ur-intake-subscriptions, "
        "which sends the FHIR Subscription notifications) (port 0: any free port; off: none).")
    subscriptions_retry_first_s: Seconds = setting(
        "UR_INTAKE_SUBSCRIPTIONS_RETRY_FIRST_S", 5.0,
        "Seconds before the first retry of a notification a subscriber's endpoint did not accept; doubled after "
        "each further failure, up to UR_INTAKE_SUBSCRIPTIONS_RETRY_MAX_S. Notifications are retried until "
        "accepted.")
    subscriptions_retry_max_s: Seconds = setting(
        "UR_INTAKE_SUBSCRIPTIONS_RETRY_MAX_S", 300.0, "Longest wait between retries of a notification.")
    subscriptions_hold_s: Seconds = setting(
        "UR_INTAKE_SUBSCRIPTIONS_HOLD_S", 120.0,
        "Seconds a notification of an approval waits for its authorization numbers before it is sent without "
        "them (the authorization service issues them within a second when it runs).")
    subscriptions_poll_s: Seconds = setting(
        "UR_INTAKE_SUBSCRIPTIONS_POLL_S", 1.0,
        "How often the subscription worker looks for notifications due (retries, heartbeats) when nothing "
        "woke it.")
    # The FHIR door's database, as intake's subscription worker reads it (the door's own row below).
    fhir_database_url: DatabaseUrl | None = setting(
        "UR_FHIR_DATABASE_URL", None,
        "SQLAlchemy URL of the door's own database: the PAS Bundles requests came in, the Claim identifiers they "
        "are named by, X12 control numbers (default: SQLite fhir.db under UR_VAR_DIR). Intake's subscription "
        "worker reads the PAS Bundles from it.")
    subscriptions_plain_http: bool = setting(
        "UR_INTAKE_SUBSCRIPTIONS_PLAIN_HTTP", False,
        "Let subscribers name plain http:// endpoints (notifications carry PHI: development and tests only); "
        "off: https:// only.")
    fact_catalog: ExistingFile | None = setting(
        "UR_INTAKE_FACT_CATALOG", None,
        "The clinical-fact catalog (types and units of the criteria's facts) intake checks facts against "
        "(default: services/common/clinical-facts.yaml, generated from the shipped criteria by `urctl criteria "
        "catalog --write`).")


class ReviewSettings(ServiceSettings):
    service: ClassVar[str] = "review"
    used_by: ClassVar[tuple[str, ...]] = ("review",)

    database_url: DatabaseUrl | None = setting(
        "UR_REVIEW_DATABASE_URL", None, "SQLAlchemy URL of review's database (default: SQLite under UR_VAR_DIR).")
    grpc_listen: Address = setting("UR_REVIEW_GRPC_LISTEN", "127.0.0.1:50052", "Address the review gRPC server "
                                                                               "binds.")
    metrics_listen: MetricsAddress = setting(
        "UR_REVIEW_METRICS_LISTEN", "127.0.0.1:9102",
        "Address of review's Prometheus /metrics listener (port 0: any free port; off: none).")
    criteria_dir: ExistingDirectory | None = setting(
        "UR_REVIEW_CRITERIA_DIR", None,
        "Directory of criteria YAML files (default: the library shipped with the review service).")
    reviewers_seed: ExistingFile | None = setting(
        "UR_REVIEW_REVIEWERS_SEED", None,
        "YAML file of reviewers loaded into the directory at start (insert or update).")
    lease_s: Seconds = setting("UR_REVIEW_LEASE_S", 900.0, "Seconds a claimed task stays with its reviewer before "
                                                           "it returns to the queue.")
    monitor_s: Seconds = setting("UR_REVIEW_MONITOR_S", 30.0, "Seconds between deadline monitor passes (lease "
                                                              "expiry, escalation, alerts).")
    at_risk_fraction: Annotated[float, Field(gt=0, lt=1)] = setting(
        "UR_REVIEW_AT_RISK_FRACTION", 0.2,
        "A task is at risk when less than this share of its regulatory clock (receipt to deadline, less tolled "
        "time) is left; between 0 and 1.")
    criteria_reload_s: SecondsOrZero = setting(
        "UR_REVIEW_CRITERIA_RELOAD_S", 5.0,
        "Seconds between checks of the criteria directory; a changed library is loaded without a restart "
        "(requests in flight finish on the old one). 0 disables.")
    no_pa_list: ExistingFile | None = setting(
        "UR_REVIEW_NO_PA_LIST", None,
        "YAML file of codes needing no prior authorization, per line of business (default: the list shipped "
        "with the review service, services/review/policy/no-prior-auth.yaml).")
    gold_card_min_requests: Count = setting(
        "UR_REVIEW_GOLD_CARD_MIN_REQUESTS", 10,
        "Fewest criteria-decided requests of a provider in a service category, within the window, before a "
        "gold-card exemption can apply.")
    gold_card_approval_rate: Annotated[float, Field(gt=0, le=1)] = setting(
        "UR_REVIEW_GOLD_CARD_APPROVAL_RATE", 0.9,
        "Share of a provider's requests in a category that must have been approved for the gold-card "
        "exemption (Texas HB 3459: 90 %).")
    gold_card_window_days: Count = setting(
        "UR_REVIEW_GOLD_CARD_WINDOW_DAYS", 183, "Days of decisions the gold-card approval rate is computed over "
                                                "(six months).")
    authorization_target: Address = setting(
        "UR_AUTHORIZATION_TARGET", "127.0.0.1:50053", "Where review (and urctl) reach the authorization gRPC "
                                                      "service.")


class AuthorizationSettings(ServiceSettings):
    service: ClassVar[str] = "authorization"
    used_by: ClassVar[tuple[str, ...]] = ("authorization",)

    database_url: DatabaseUrl | None = setting(
        "UR_AUTHORIZATION_DATABASE_URL", None,
        "SQLAlchemy URL of authorization's database (default: SQLite under UR_VAR_DIR).")
    grpc_listen: Address = setting("UR_AUTHORIZATION_GRPC_LISTEN", "127.0.0.1:50053",
                                   "Address the authorization gRPC server binds.")
    metrics_listen: MetricsAddress = setting(
        "UR_AUTHORIZATION_METRICS_LISTEN", "127.0.0.1:9103",
        "Address of authorization's Prometheus /metrics listener (port 0: any free port; off: none).")
    validity_days: Count = setting("UR_AUTHORIZATION_VALIDITY_DAYS", 90,
                                   "Validity of an authorization when the line names no end date.")


class WorkbenchSettings(PlatformSettings):
    """The workbench (services/workbench): a web application in front of the services, holding
    nothing but sessions. It reads the platform's logging settings and these."""

    used_by: ClassVar[tuple[str, ...]] = ("workbench",)

    listen: Address = setting("UR_WORKBENCH_LISTEN", "127.0.0.1:8080",
                              "Address the workbench's HTTP server binds (port 0: any free port).")
    metrics_listen: MetricsAddress = setting(
        "UR_WORKBENCH_METRICS_LISTEN", "127.0.0.1:9104",
        "Address of the workbench's Prometheus /metrics listener, apart from the reviewers' port (port 0: any "
        "free port; off: none).")
    access_log_key: str | None = setting(
        "UR_WORKBENCH_ACCESS_LOG_KEY", None,
        "Secret key of the opaque member references in the workbench's access log (HMAC-SHA256 of the member "
        "id): with the same key an auditor can tell which member a line refers to. Unset: a random key per "
        "process, so references link lines of one process only.")
    intake_target: Address = setting("UR_INTAKE_TARGET", "127.0.0.1:50051",
                                     "Where urctl, the tools and the workbench reach intake.")
    review_target: Address = setting("UR_REVIEW_TARGET", "127.0.0.1:50052",
                                     "Where urctl, the tools and the workbench reach review.")
    authorization_target: Address = setting("UR_AUTHORIZATION_TARGET", "127.0.0.1:50053",
                                            "Where urctl and tools reach authorization.")
    cookie_secure: bool = setting(
        "UR_WORKBENCH_COOKIE_SECURE", True,
        "Mark the session cookie Secure (sent over HTTPS only); false only for plain-HTTP development on "
        "localhost, as `make run` does.")
    idle_timeout_s: Seconds = setting(
        "UR_WORKBENCH_IDLE_TIMEOUT_S", 900.0,
        "Seconds without a request after which a workbench session ends and the reviewer signs in again.")
    session_max_s: Seconds = setting(
        "UR_WORKBENCH_SESSION_MAX_S", 43200.0,
        "Longest a workbench session lasts, however active (default 12 hours: one shift).")
    rpc_timeout_s: Seconds = setting("UR_WORKBENCH_RPC_TIMEOUT_S", 10.0,
                                     "Deadline of each gRPC call the workbench makes to the services.")
    port_file: AnyPath | None = setting(
        "UR_WORKBENCH_PORT_FILE", None,
        "File the workbench writes the HTTP port it bound to, once it serves (how a supervisor learns a port "
        "chosen with port 0).")


class FhirSettings(PlatformSettings):
    """Intake's standard front doors (services/intake/entrypoints/fhir_http.py): Da Vinci PAS over FHIR R4
    and the X12 278 over HTTP, a process of its own that calls intake's gRPC API as each submitting
    organization. It reads the platform's logging and TLS settings and these."""

    used_by: ClassVar[tuple[str, ...]] = ("fhir",)

    listen: Address = setting("UR_FHIR_LISTEN", "127.0.0.1:8090",
                              "Address the FHIR and X12 door's HTTP server binds (port 0: any free port).")
    metrics_listen: MetricsAddress = setting(
        "UR_FHIR_METRICS_LISTEN", "127.0.0.1:9105",
        "Address of the door's Prometheus /metrics listener, apart from its API port (port 0: any free port; off: "
        "none).")
    database_url: DatabaseUrl | None = setting(
        "UR_FHIR_DATABASE_URL", None,
        "SQLAlchemy URL of the door's own database: the PAS Bundles requests came in, the Claim identifiers they "
        "are named by, X12 control numbers (default: SQLite fhir.db under UR_VAR_DIR).")
    intake_target: Address = setting("UR_INTAKE_TARGET", "127.0.0.1:50051",
                                     "Where urctl, the tools, the workbench and the FHIR door reach intake.")
    # The Subscription routes (services/intake/entrypoints/fhir_subscriptions.py) keep subscriptions in
    # intake's database, which intake's subscription worker delivers from; intake's rows describe both.
    intake_database_url: DatabaseUrl | None = setting(
        "UR_INTAKE_DATABASE_URL", None, "SQLAlchemy URL of intake's database (default: SQLite under UR_VAR_DIR).")
    subscriptions_plain_http: bool = setting(
        "UR_INTAKE_SUBSCRIPTIONS_PLAIN_HTTP", False,
        "Let subscribers name plain http:// endpoints (development and tests only); off: https:// only.")
    base_url: str | None = setting(
        "UR_FHIR_BASE_URL", None,
        "The FHIR base URL clients use (e.g. https://pa.example.org/fhir), named in the CapabilityStatement; "
        "default: the scheme and host each request came to, plus /fhir.")
    wait_ms: Annotated[int, Field(ge=0, le=14000)] = setting(
        "UR_FHIR_WAIT_MS", 13000,
        "How long $submit and the 278 let intake wait for a determination before answering pended (A4); PAS "
        "answers within 15 s, and the rest of the budget is the door's own work.")
    token_ttl_s: Annotated[int, Field(ge=60, le=3600)] = setting(
        "UR_FHIR_TOKEN_TTL_S", 300, "Lifetime in seconds of the bearer tokens POST [base]/auth/token issues.")
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = setting(
        "UR_FHIR_MAX_BODY_BYTES", 8 * 1024 * 1024,
        "Largest request body the door reads; a larger one is refused at once with 413 and an OperationOutcome.")
    payers_file: ExistingFile | None = setting(
        "UR_FHIR_PAYERS_FILE", None,
        "YAML file of the payers the doors serve, by identifier (a PAS insurer identifier, an X12 2010A payer "
        "id): the line of business, plan and state a request may not say (deploy/sample/payers.yaml).")
    rpc_timeout_s: Seconds = setting("UR_FHIR_RPC_TIMEOUT_S", 10.0,
                                     "Deadline of each gRPC call the door makes to intake, plus a submission's "
                                     "wait.")
    tls_cert_file: ExistingFile | None = setting(
        "UR_FHIR_TLS_CERT_FILE", None,
        "PEM certificate chain the door serves HTTPS with (with UR_FHIR_TLS_KEY_FILE); unset: plain HTTP, for "
        "loopback or behind a proxy that terminates TLS.")
    tls_key_file: ExistingFile | None = setting("UR_FHIR_TLS_KEY_FILE", None,
                                                "PEM private key of UR_FHIR_TLS_CERT_FILE.")
    credentials_file: ExistingFile | None = setting(
        "UR_CREDENTIALS_FILE", None,
        "YAML file of the principals that may call this service: their scopes, token digests (HMAC-SHA256 with "
        "the file's salt) and client certificate names (services/common/credentials.py). Read again when it "
        "changes; without it every call is refused (UNAUTHENTICATED).")
    credentials_reload_s: Seconds = setting(
        "UR_CREDENTIALS_RELOAD_S", 5.0,
        "Seconds between checks of UR_CREDENTIALS_FILE; a changed file is loaded without a restart (a file that "
        "does not parse is logged and the last good one kept).")
    port_file: AnyPath | None = setting(
        "UR_FHIR_PORT_FILE", None,
        "File the door writes the HTTP port it bound to, once it serves (how a supervisor learns a port chosen "
        "with port 0).")

    @field_validator("tls_key_file")
    @classmethod
    def _key_with_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _pair(value, info.data.get("tls_cert_file"), "UR_FHIR_TLS_CERT_FILE")

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError("an absolute http(s) URL without query or fragment, e.g. https://pa.example.org/fhir")
        return value.strip().rstrip("/") if value is not None else None


class ClientSettings(_Environment):
    """What urctl and the tools read."""

    used_by: ClassVar[tuple[str, ...]] = ("cli",)

    intake_target: Address = setting("UR_INTAKE_TARGET", "127.0.0.1:50051", "Where urctl and tools reach intake.")
    review_target: Address = setting("UR_REVIEW_TARGET", "127.0.0.1:50052", "Where urctl and tools reach review.")
    authorization_target: Address = setting("UR_AUTHORIZATION_TARGET", "127.0.0.1:50053",
                                            "Where urctl and tools reach authorization.")
    intake_token: str | None = setting("UR_INTAKE_TOKEN", None,
                                       "Bearer token urctl and the tools send to intake (a submitter's API key).")
    reviewer_token: str | None = setting("UR_REVIEWER_TOKEN", None,
                                         "Bearer token urctl and the tools send to review (a reviewer's secret).")
    authorization_token: str | None = setting(
        "UR_AUTHORIZATION_TOKEN", None, "Bearer token urctl and the tools send to authorization (a principal with "
                                        "authorizations:read).")
    # The services' variables (one row each in the table, read by both): a tool is a gRPC client like them.
    grpc_tls_cert_file: ExistingFile | None = setting(
        "UR_GRPC_TLS_CERT_FILE", None, "PEM client certificate urctl and the tools present.")
    grpc_tls_key_file: ExistingFile | None = setting("UR_GRPC_TLS_KEY_FILE", None, "PEM private key of the "
                                                                                   "client certificate.")
    grpc_tls_ca_file: ExistingFile | None = setting("UR_GRPC_TLS_CA_FILE", None, "PEM CA bundle the servers' "
                                                                               "certificates are checked against.")
    audit_key_file: ExistingFile | None = setting(
        "UR_AUDIT_KEY_FILE", None, "The audit key `urctl audit verify` checks checkpoint signatures with.")


class ToolSettings(_Environment):
    """What the tests and the benchmark read (deploy/postgres/pg.sh too); services ignore them."""

    used_by: ClassVar[tuple[str, ...]] = ("tests",)

    pg_admin_url: str | None = setting(
        "UR_PG_ADMIN_URL", None,
        "An existing PostgreSQL server (postgresql://user:pw@host:5432/postgres) for the tests and the bench; "
        "`deploy/postgres/pg.sh` then manages no local cluster.")
    test_pg_url: str | None = setting("UR_TEST_PG_URL", None,
                                      "PostgreSQL admin URL the tests create their throw-away databases on "
                                      "(default: the one `deploy/postgres/pg.sh url` names).")
    bench_pg_url: str | None = setting("UR_BENCH_PG_URL", None,
                                       "PostgreSQL admin URL of `make bench` (default: UR_TEST_PG_URL, then the "
                                       "local cluster).")
    test_travel_to: str | None = setting(
        "UR_TEST_TRAVEL_TO", None,
        "Tests only: move the tests' clock to this instant (ISO 8601 with an offset, or a zone in brackets) with "
        "time-machine; `make test-timetravel` sets it.")


MODELS: tuple[type[_Environment], ...] = (PlatformSettings, IntakeSettings, ReviewSettings, AuthorizationSettings,
                                          WorkbenchSettings, FhirSettings, ClientSettings, ToolSettings)
SERVICE_MODELS: Mapping[str, type[ServiceSettings]] = {
    m.service: m for m in (IntakeSettings, ReviewSettings, AuthorizationSettings)}


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One environment variable, as documented: its default as text ("" when there is none)."""

    name: str
    default: str
    help: str
    #: which services read it ("*" for all, "cli" for urctl/tools, "tests" for the tests and bench)
    used_by: tuple[str, ...] = ("*",)


def _env_name(name: str, field: FieldInfo) -> str:
    return field.validation_alias if isinstance(field.validation_alias, str) else name


def _own_fields(model: type[_Environment]) -> Iterator[tuple[str, FieldInfo]]:
    """The fields ``model`` declares itself (a service's model also holds the platform's)."""
    inherited = PlatformSettings.model_fields if issubclass(model, PlatformSettings) and model is not \
        PlatformSettings else {}
    for name, field in model.model_fields.items():
        if name not in inherited and field.validation_alias is not None:
            yield name, field


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _table() -> tuple[Setting, ...]:
    rows: dict[str, Setting] = {}
    for model in MODELS:
        for name, field in _own_fields(model):
            env = _env_name(name, field)
            if env in rows:  # read by several (UR_AUTHORIZATION_TARGET): one row, every reader
                seen = rows[env]
                rows[env] = Setting(env, seen.default, seen.help, (*seen.used_by, *model.used_by))
            else:
                rows[env] = Setting(env, _shown(field.default), field.description or "", model.used_by)
    return tuple(rows.values())


#: Every variable the platform reads, in the README's order.
SETTINGS: tuple[Setting, ...] = _table()
_BY_NAME = {s.name: s for s in SETTINGS}


def known_env_vars() -> frozenset[str]:
    return frozenset(_BY_NAME)


def get(name: str, env: Mapping[str, str] | None = None) -> str:
    """The text of a declared variable (the environment first, then its default); for the CLI, which
    has flags to override it."""
    spec = _BY_NAME[name]  # KeyError: an undeclared setting is a programming error
    source = os.environ if env is None else env
    value = source.get(name, "")
    return value if value != "" else spec.default


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | used by | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "`(see meaning)`"
        used_by = ", ".join("all services" if reader == "*" else reader for reader in s.used_by)
        lines.append(f"| `{s.name}` | {default} | {used_by} | {s.help} |")
    return "\n".join(lines)


# -- loading ---------------------------------------------------------------------------------------

S = TypeVar("S", bound=_Environment)


def unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """``UR_*`` variables no model declares, as (name, problem) with the nearest declared name."""
    known = known_env_vars()
    problems = []
    for name in sorted(n for n in env if n.startswith("UR_") and n not in known):
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        problems.append((name, f"unknown setting{hint}; see `urctl settings`"))
    return problems


def load(model: type[S]) -> S:
    """``model`` read from the process environment; raises :class:`SettingsError`."""
    problems = unknown_variables(os.environ)
    try:
        loaded = model()
    except ValidationError as exc:
        names = {name: _env_name(name, f) for name, f in model.model_fields.items()}
        for error in exc.errors(include_url=False):
            variable = names.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else model.__name__
            problems.append((variable, describe(error)))
        raise SettingsError(problems) from None
    if isinstance(loaded, ServiceSettings):
        problems += loaded.transport_problems()
    if problems:
        raise SettingsError(problems)
    return loaded


def is_loopback(address: str) -> bool:
    """Whether host:port names a loopback host (127.0.0.0/8, ::1, localhost): reachable from this machine
    only. Any other name counts as reachable from outside, since what it resolves to may change."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sqlite_url(service: str, var_dir: Path) -> str:
    return f"sqlite:///{(var_dir / f'{service}.db').resolve()}"


def default_database_url(service: str, env: Mapping[str, str] | None = None) -> str:
    """The SQLite URL a service uses when no database URL is set (for the CLI)."""
    return sqlite_url(service, Path(get("UR_VAR_DIR", env)))

