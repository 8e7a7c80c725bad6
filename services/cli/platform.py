"""Start the three services as separate processes, wait for health, and (for
``make run``/``make demo``) push the bundled sample workload through them.

    python -m services.cli.platform run    # serve until Ctrl-C
    python -m services.cli.platform demo   # exit after the summary

The same :class:`Platform` drives the end-to-end tests and the benchmark.

The services go down with their supervisor however it ends: a normal exit, Ctrl-C, SIGTERM (as
``timeout``, a process supervisor or ``make`` send) or SIGHUP (a closed terminal) all stop them
(:func:`stop_on_signals`), and each service also stops when the supervisor dies without a chance to
clean up (``kill -9``): it is started with UR_SUPERVISOR_PID (services/common/lifetime.py). A service that cannot
start stops the run with an error that names the port and, where it can be seen, who holds it.

Set UR_GRPC_TLS_CA_FILE, UR_GRPC_TLS_CERT_FILE and UR_GRPC_TLS_KEY_FILE (and
UR_GRPC_TLS_REQUIRE_CLIENT_CERT) to run the platform over TLS; the supervisor passes them on to the
services and uses them itself.

Every component gets development credentials from deploy/sample/: the services the callers of
``credentials.dev.yaml`` (UR_CREDENTIALS_FILE), review and the workbench their own service tokens
(UR_GRPC_TOKEN_FILE, from deploy/sample/tokens/), and the supervisor's own clients (the workload,
the tests) the tokens of :data:`DEV_TOKENS`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import kafka_io, lifetime, settings, tls
from services.common.errors import ConfigurationError
from services.common.listeners import port_holder
from services.common.tls import TransportSecurity, open_channel
from services.common.topics import Topics

if TYPE_CHECKING:
    from rich.console import Console

REPO = Path(__file__).resolve().parents[2]
SERVICES = settings.SERVICES
SAMPLE = REPO / "deploy" / "sample"

#: The callers every service of `make run` (and the tests, and the bench) knows: development only.
DEV_CREDENTIALS = SAMPLE / "credentials.dev.yaml"
#: The token each component that calls another sends (UR_GRPC_TOKEN_FILE), from DEV_CREDENTIALS.
DEV_TOKEN_FILES = {"review": SAMPLE / "tokens" / "svc-review.dev-token",
                   "workbench": SAMPLE / "tokens" / "svc-workbench.dev-token"}
#: What the supervisor's own clients (the sample workload, the tests, the bench) send to each service:
#: a submitter to intake, an operator's read access to review and authorization.
DEV_TOKENS = {"intake": "dev-only-token-sample-clinic", "review": "dev-only-token-ops-console",
              "authorization": "dev-only-token-ops-console"}


#: Where `make run` serves the workbench.
WORKBENCH_PORT = 8080
#: Where `make run` serves the FHIR (PAS) and X12 door.
FHIR_PORT = 8090
#: The payers the sample door serves (UR_FHIR_PAYERS_FILE).
SAMPLE_PAYERS = REPO / "deploy" / "sample" / "payers.yaml"

#: Intake's subscription worker (a process of its own, on intake's database).
SUBSCRIPTIONS = "intake-subscriptions"

#: Services that are started with another one's address (review asks authorization about duplicates).
NEEDS_ADDRESS_OF = {"review": ("authorization",)}

def service_of(process: str) -> str:
    """The service a process runs: ``review`` for ``review`` and for its replicas ``review-2``, ``review-3``..."""
    return process.split("-", 1)[0]


def replica_name(service: str, number: int) -> str:
    """The process name of the ``number``-th replica of ``service`` (the first is the service's own name)."""
    return service if number == 1 else f"{service}-{number}"


class Stopped(Exception):
    """The supervisor received a signal that ends it (SIGTERM, SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(*signums: int) -> Iterator[None]:
    """Turn SIGTERM and SIGHUP (or ``signums``) into :class:`Stopped` raised in the main thread while
    the block runs, so that its ``finally`` clauses (stopping the services) run; SIGINT raises
    KeyboardInterrupt, also in a process that inherited it ignored (started with ``&`` by a script
    without job control, as a CI runner may: Python then leaves SIGINT ignored, and ``kill -INT`` did
    nothing). Main thread only (Python delivers signals there)."""

    def raise_stopped(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signum)

    wanted = signums or (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, raise_stopped) for signum in wanted}
    if signal.SIGINT not in previous and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class Platform:
    """Three service processes sharing one Kafka and one database server (or SQLite files).

    ``ports`` are the ports the services bind; 0 lets each one bind a free port and report it
    (``UR_GRPC_PORT_FILE``), which is what the tests do: nothing can take a port between choosing
    it and binding it. A service started again (after ``kill``) binds the port it had, so its
    clients' addresses stay right, as with a fixed port.

    More replicas of a service are processes named ``review-2``, ``review-3``... (:func:`replica_name`):
    ``start("review-2")`` runs another review on the same database and topics, in the same consumer
    group (they share the partitions, and take turns at relaying the outbox), with a port, port file,
    metrics port and log of its own (any free port unless ``ports`` names one). Every method that takes a
    service takes a replica's name too; ``target("review")`` stays the first replica's address, which
    the other services are given.
    """

    var_dir: Path
    kafka_bootstrap: str
    topic_prefix: str = "ur"
    database_urls: Mapping[str, str] = field(default_factory=dict)  # service → URL; default SQLite
    ports: Mapping[str, int] = field(default_factory=lambda: dict(settings.DEFAULT_PORTS))
    members_seed: Path | None = REPO / "deploy" / "sample" / "members.yaml"
    reviewers_seed: Path | None = REPO / "deploy" / "sample" / "reviewers.yaml"
    #: UR_CREDENTIALS_FILE of every service (None: every call refused).
    credentials_file: Path | None = DEV_CREDENTIALS
    #: component → its UR_GRPC_TOKEN_FILE.
    token_files: Mapping[str, Path] = field(default_factory=lambda: dict(DEV_TOKEN_FILES))
    #: service → the token :meth:`channel` sends.
    tokens: Mapping[str, str] = field(default_factory=lambda: dict(DEV_TOKENS))
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: The port the workbench binds (0: any free one, reported); see :meth:`start_workbench`.
    workbench_port: int = WORKBENCH_PORT
    #: The port the FHIR and X12 door binds (0: any free one, reported); see :meth:`start_fhir`.
    fhir_port: int = FHIR_PORT
    #: TLS for the services (their UR_GRPC_TLS_* settings) and for the platform's own calls.
    security: TransportSecurity | None = None
    #: How the platform's own admin calls reach the broker (deleting its topics).
    kafka_security: kafka_io.KafkaSecurity = kafka_io.PLAINTEXT
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: service → the port it reported binding
    bound: dict[str, int] = field(default_factory=dict)
    #: The ports of the services' (and the workbench's) Prometheus /metrics listeners; a process
    #: missing here binds the default one, or any free port (reported) when its own port is 0.
    metrics_ports: Mapping[str, int] = field(default_factory=dict)
    #: service → the /metrics port it reported binding
    metrics_bound: dict[str, int] = field(default_factory=dict)
    #: The audit key the services sign their audit checkpoints with (UR_AUDIT_KEY_FILE); None: the
    #: environment's, else one made at the first start in ``var_dir/audit.key``.
    audit_key_file: Path | None = None

    def _fixed_port(self, process: str) -> int:
        """The port ``process`` is to bind: its own in ``ports``, else 0 (any) for a further replica."""
        return self.ports.get(process, 0)

    def port(self, service: str) -> int:
        """The port the service serves on: the one it reported, else the fixed one it was given."""
        port = self.bound.get(service) or self._fixed_port(service)
        if not port:
            raise RuntimeError(f"{service} has not reported its port yet (start it, then wait_healthy)")
        return port

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.port(service)}"

    def channel(self, service: str, token: str | None = None, *, anonymous: bool = False) -> grpc.Channel:
        """A channel to the service as the platform reaches it (TLS when it runs with TLS), whose calls
        send ``token`` (default: the platform's own for that service, :attr:`tokens`) unless they carry
        credentials of their own; ``anonymous``: none at all."""
        chosen = None if anonymous else token or self.tokens.get(service)
        return open_channel(self.target(service), self.security, token=chosen)

    def port_file(self, service: str) -> Path:
        return self.var_dir / "ports" / f"{service}.port"

    def metrics_port_file(self, process: str) -> Path:
        return self.var_dir / "ports" / f"{process}.metrics.port"

    def _metrics_listen(self, process: str, port: int) -> str:
        """The /metrics address of ``process`` (a service or the workbench) whose own port is ``port``:
        the one it had when started again (its scrapers keep their target)."""
        chosen = self.metrics_bound.get(process) or self.metrics_ports.get(
            process, 0 if port == 0 or process not in settings.DEFAULT_METRICS_PORTS
            else settings.DEFAULT_METRICS_PORTS[process])
        return f"127.0.0.1:{chosen}"

    def metrics_url(self, process: str) -> str:
        """Where the process serves its Prometheus metrics (it must have reported its port: a service
        does before its gRPC port, the workbench before it answers)."""
        port = self.metrics_bound.get(process)
        if port is None:
            path = self.metrics_port_file(process)
            if not path.exists():
                raise RuntimeError(f"{process} has reported no metrics port in {path}")
            port = self.metrics_bound[process] = int(path.read_text(encoding="ascii"))
        return f"http://127.0.0.1:{port}/metrics"

    def env_for(self, process: str) -> dict[str, str]:
        """The environment of ``process`` (a service, or a replica of one: same settings, own ports)."""
        service = service_of(process)
        env = {k: v for k, v in os.environ.items() if not k.startswith("UR_")}
        upper = service.upper()
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "UR_TOPIC_PREFIX": self.topic_prefix,
            "UR_VAR_DIR": str(self.var_dir),
            f"UR_{upper}_GRPC_LISTEN": f"127.0.0.1:{self.bound.get(process) or self._fixed_port(process)}",
            "UR_GRPC_PORT_FILE": str(self.port_file(process)),
            f"UR_{upper}_METRICS_LISTEN": self._metrics_listen(process, self._fixed_port(process)),
            "UR_METRICS_PORT_FILE": str(self.metrics_port_file(process)),
            # The service stops when this process dies, even by kill -9 (services/common/lifetime.py).
            "UR_SUPERVISOR_PID": str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        })
        for other in NEEDS_ADDRESS_OF.get(service, ()):
            env[f"UR_{other.upper()}_TARGET"] = self.target(other)
        if service in self.database_urls:
            env[f"UR_{upper}_DATABASE_URL"] = self.database_urls[service]
        if self.audit_key_file is not None:
            env["UR_AUDIT_KEY_FILE"] = str(self.audit_key_file)
        if service == "intake" and self.members_seed is not None:
            env["UR_INTAKE_MEMBERS_SEED"] = str(self.members_seed)
        if service == "review" and self.reviewers_seed is not None:
            env["UR_REVIEW_REVIEWERS_SEED"] = str(self.reviewers_seed)
        if self.credentials_file is not None:
            env["UR_CREDENTIALS_FILE"] = str(self.credentials_file)
        env.update(self._client_env(service))
        env.update(self.extra_env)
        return env

    def _client_env(self, component: str) -> dict[str, str]:
        """What ``component`` needs to call the services: TLS material and its own token file."""
        env: dict[str, str] = {}
        if component in self.token_files:
            env["UR_GRPC_TOKEN_FILE"] = str(self.token_files[component])
        if self.security is not None:
            env.update({name: str(path) for name, path in (
                ("UR_GRPC_TLS_CA_FILE", self.security.ca_file), ("UR_GRPC_TLS_CERT_FILE", self.security.cert_file),
                ("UR_GRPC_TLS_KEY_FILE", self.security.key_file)) if path is not None})
            env["UR_GRPC_TLS_REQUIRE_CLIENT_CERT"] = "true" if self.security.require_client_cert else "false"
        return env

    def log_path(self, service: str) -> Path:
        return self.var_dir / "logs" / f"{service}.log"

    def start(self, *services: str, timeout_s: float = 90.0) -> None:
        """Start the services; one that needs another's address whose port is still to be reported
        starts once that port is known (at most ``timeout_s`` later)."""
        wanted = services or SERVICES
        for sub in ("logs", "ports"):
            (self.var_dir / sub).mkdir(parents=True, exist_ok=True)
        if self.audit_key_file is None:
            self.audit_key_file = audit_key(self.var_dir)
        for service in wanted:
            if service_of(service) not in SERVICES:
                raise ValueError(f"{service} runs no service of {SERVICES}")
            taken = self._taken(service)
            if taken:
                raise RuntimeError(f"cannot start {service}: {taken}")
        later = [s for s in wanted
                 if not all(self._port_known(o) for o in NEEDS_ADDRESS_OF.get(service_of(s), ()))]
        for service in wanted:
            if service not in later:
                self._spawn(service)
        deadline = time.monotonic() + timeout_s
        for service in later:
            for other in NEEDS_ADDRESS_OF[service_of(service)]:
                self.wait_port(other, timeout_s=max(0.0, deadline - time.monotonic()))
            self._spawn(service)

    def _port_known(self, service: str) -> bool:
        return bool(self.bound.get(service) or self._fixed_port(service))

    def _taken(self, service: str) -> str | None:
        """Why the fixed port ``service`` is to bind is not free ('port N is in use by pid...'), or None."""
        port = self.bound.get(service) or self._fixed_port(service)
        if not port:
            return None
        holder = port_holder(port)
        return None if holder is None else f"port {port} is in use by {holder}"

    def _spawn(self, service: str) -> None:
        # A port file left by an earlier run (or a killed process) must not pass for this one's.
        self.port_file(service).unlink(missing_ok=True)
        self.metrics_port_file(service).unlink(missing_ok=True)
        log = self.log_path(service).open("ab")
        # Its own session: a terminal's Ctrl-C or hang-up reaches the supervisor, which stops the
        # services in order; UR_SUPERVISOR_PID (env_for) covers a supervisor killed outright.
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service_of(service)}.entrypoints.main"], env=self.env_for(service),
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        log.close()

    def wait_port(self, service: str, timeout_s: float = 90.0) -> int:
        """Wait until the running process of ``service`` reports the port it serves on."""
        deadline = time.monotonic() + timeout_s
        path = self.port_file(service)
        while not path.exists():
            self._check_alive(service, f"reported no port in {path} within {timeout_s:.0f}s", deadline)
            time.sleep(0.05)
        self.bound[service] = int(path.read_text(encoding="ascii"))
        metrics = self.metrics_port_file(service)
        if metrics.exists():  # written before the gRPC port (absent when metrics are off)
            self.metrics_bound[service] = int(metrics.read_text(encoding="ascii"))
        return self.bound[service]

    def wait_healthy(self, *services: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        for service in services or SERVICES:
            self.wait_port(service, timeout_s=max(0.0, deadline - time.monotonic()))
            while not self.is_serving(service):
                self._check_alive(service, f"not SERVING after {timeout_s:.0f}s", deadline)
                time.sleep(0.2)

    def _check_alive(self, service: str, late: str, deadline: float) -> None:
        proc = self.procs.get(service)
        if proc is None:
            raise RuntimeError(f"{service} is not running")
        if proc.poll() is not None:
            taken = self._taken(service)
            why = f"{service} could not bind its port: {taken}" if taken else \
                f"{service} exited with {proc.returncode}"
            raise RuntimeError(f"{why}; log:\n{self.tail(service)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service} {late}; log:\n{self.tail(service)}")

    def is_serving(self, service: str) -> bool:
        with self.channel(service) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                                  timeout=1.0)
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.log_path(service)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- the workbench (web application) in front of the services ---------------------------------
    def start_workbench(self, port: int | None = None, timeout_s: float = 60.0,
                        extra_env: Mapping[str, str] | None = None) -> str:
        """Start the workbench against the running services (their ports must be known: call after
        :meth:`wait_healthy`) and wait until it answers; its URL. Port 0: any free port. The
        session cookie is not marked Secure: this is plain HTTP on localhost."""
        chosen = self.workbench_port if port is None else port
        self._start_web("workbench", "services.workbench.entrypoints.main", chosen, {
            "UR_WORKBENCH_LISTEN": f"127.0.0.1:{chosen}", "UR_WORKBENCH_PORT_FILE": str(self.port_file("workbench")),
            "UR_WORKBENCH_METRICS_LISTEN": self._metrics_listen("workbench", chosen),
            "UR_WORKBENCH_COOKIE_SECURE": "false", "UR_INTAKE_TARGET": self.target("intake"),
            "UR_REVIEW_TARGET": self.target("review"), "UR_AUTHORIZATION_TARGET": self.target("authorization"),
            **self._client_env("workbench")}, extra_env, timeout_s)
        return self.workbench_url()

    def _start_web(self, process: str, module: str, port: int, env: Mapping[str, str],
                   extra_env: Mapping[str, str] | None, timeout_s: float) -> None:
        """Run ``module`` (a web process that reports its HTTP port in its port file) and wait until it
        serves; its port in :attr:`bound`."""
        for sub in ("logs", "ports"):
            (self.var_dir / sub).mkdir(parents=True, exist_ok=True)
        port_file = self.port_file(process)
        port_file.unlink(missing_ok=True)
        self.metrics_port_file(process).unlink(missing_ok=True)
        self.metrics_bound.pop(process, None)
        full = {k: v for k, v in os.environ.items() if not k.startswith("UR_")}
        full.update({**env, "UR_METRICS_PORT_FILE": str(self.metrics_port_file(process)),
                     "UR_VAR_DIR": str(self.var_dir), "UR_SUPERVISOR_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1",
                     **self.extra_env, **(extra_env or {})})
        log = self.log_path(process).open("ab")
        self.procs[process] = subprocess.Popen([sys.executable, "-m", module], env=full, stdout=log,
                                               stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not port_file.exists():
            self._check_alive(process, f"reported no port in {port_file} within {timeout_s:.0f}s", deadline)
            time.sleep(0.05)
        self.bound[process] = int(port_file.read_text(encoding="ascii"))

    # -- intake's standard front doors (Da Vinci PAS over FHIR, the X12 278) --------------------------
    def start_fhir(self, port: int | None = None, timeout_s: float = 60.0, database_url: str | None = None,
                   extra_env: Mapping[str, str] | None = None) -> str:
        """Start the FHIR and X12 door against the running intake (its port must be known: call after
        :meth:`wait_healthy`) and wait until it serves; its FHIR base URL. Port 0: any free port.
        ``database_url``: the door's own database (default SQLite under the var directory). Its clients
        authenticate against the platform's credentials file, as intake's do."""
        chosen = self.fhir_port if port is None else port
        self._start_web("fhir", "services.intake.entrypoints.fhir_main", chosen, {
            "UR_FHIR_LISTEN": f"127.0.0.1:{chosen}", "UR_FHIR_PORT_FILE": str(self.port_file("fhir")),
            "UR_FHIR_METRICS_LISTEN": self._metrics_listen("fhir", chosen),
            "UR_INTAKE_TARGET": self.target("intake"), "UR_FHIR_PAYERS_FILE": str(SAMPLE_PAYERS),
            **({"UR_FHIR_DATABASE_URL": database_url} if database_url else {}),
            # The Subscription routes keep subscriptions in intake's database.
            **({"UR_INTAKE_DATABASE_URL": self.database_urls["intake"]} if "intake" in self.database_urls else {}),
            **({"UR_CREDENTIALS_FILE": str(self.credentials_file)} if self.credentials_file else {}),
            **self._client_env("fhir")}, extra_env, timeout_s)
        return self.fhir_url()

    def fhir_url(self) -> str:
        """The door's FHIR base URL (its X12 278 endpoint is ``/x12/278`` on the same host)."""
        return f"http://127.0.0.1:{self.bound['fhir']}/fhir"

    # -- intake's subscription worker (FHIR Subscription notifications) ---------------------------------
    def start_subscriptions(self, timeout_s: float = 60.0, fhir_database_url: str | None = None) -> None:
        """Start ``ur-intake-subscriptions`` on intake's database and settings (intake must have
        migrated it: call after :meth:`wait_healthy`) and wait until it runs (it reports its metrics
        port once it does). ``fhir_database_url``: the FHIR door's database, where the PAS Bundles
        notifications answer are (default, like the door's: SQLite under the var directory)."""
        process = SUBSCRIPTIONS
        port_file = self.metrics_port_file(process)
        port_file.unlink(missing_ok=True)
        env = self.env_for("intake")
        env.update({"UR_INTAKE_SUBSCRIPTIONS_METRICS_LISTEN": self._metrics_listen(process, self._fixed_port("intake")),
                    "UR_METRICS_PORT_FILE": str(port_file)})
        env.pop("UR_GRPC_PORT_FILE", None)  # intake's: the worker serves no gRPC
        if fhir_database_url:
            env["UR_FHIR_DATABASE_URL"] = fhir_database_url
        log = self.log_path(process).open("ab")
        self.procs[process] = subprocess.Popen(
            [sys.executable, "-m", "services.intake.entrypoints.fhir_subscriptions_worker"], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not port_file.exists():
            self._check_alive(process, f"reported no metrics port in {port_file} within {timeout_s:.0f}s", deadline)
            time.sleep(0.05)
        self.metrics_bound[process] = int(port_file.read_text(encoding="ascii"))

    def metrics_urls(self) -> dict[str, str]:
        """Each running process's /metrics URL (those with metrics on)."""
        found = {}
        for process in (*SERVICES, SUBSCRIPTIONS, "workbench", "fhir"):
            if process in self.procs:
                with contextlib.suppress(RuntimeError):
                    found[process] = self.metrics_url(process)
        return found

    def workbench_url(self) -> str:
        return f"http://127.0.0.1:{self.bound['workbench']}"

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(service)
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def delete_topics(self, *extra: str) -> list[str]:
        """Delete the platform's topics (those of its prefix, services/common/topics.py) and ``extra``,
        by name: nothing else on the broker is listed or touched. Returns the names deleted. A
        throw-away platform's (the bench's) would otherwise pile up on the broker; ``make run`` keeps
        its own."""
        names = [*Topics(self.topic_prefix).all(), *extra]
        return kafka_io.delete_topics(self.kafka_bootstrap, names, security=self.kafka_security)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to every service, SIGKILL to those still running after ``timeout_s``. Another
        SIGTERM or SIGHUP meanwhile does not interrupt it (in the main thread: elsewhere signals
        cannot arrive)."""
        with _signals_ignored():
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            for proc in self.procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.procs.clear()


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def platform_security() -> TransportSecurity | None:
    """TLS for ``make run`` and the bench from the environment's UR_GRPC_TLS_* settings (None:
    plaintext); raises ConfigurationError for a setting that names no file."""
    client = tls.for_clients()
    if client is None:
        return None
    require = settings.get("UR_GRPC_TLS_REQUIRE_CLIENT_CERT").strip().lower() in ("1", "true", "yes", "on")
    return TransportSecurity(ca_file=client.ca_file, cert_file=client.cert_file, key_file=client.key_file,
                             require_client_cert=require)


def audit_key(var_dir: Path) -> Path:
    """The audit key file of a platform run: UR_AUDIT_KEY_FILE when set, else ``var_dir/audit.key``,
    made once (32 random bytes, hex; readable by its owner only). A real deployment keeps its key
    away from the databases; a demonstration keeps it beside them for `urctl audit verify`."""
    configured = os.environ.get("UR_AUDIT_KEY_FILE")
    if configured:
        return Path(configured)
    path = var_dir / "audit.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="platform", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["run", "demo"])
    parser.add_argument("--var-dir", default=os.environ.get("UR_VAR_DIR", str(REPO / "var" / "run")))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stop-with-parent", action="store_true",
                        help="end (stopping the services) when the process that started this one ends; `make run` "
                             "passes it, since make does not pass SIGTERM or SIGHUP on to what it runs")
    args = parser.parse_args(argv)
    if args.stop_with_parent:
        lifetime.stop_with_supervisor(os.getppid())
    console = Console()
    bootstrap = settings.get("KAFKA_BOOTSTRAP_SERVERS")
    database_urls = {s: os.environ[f"UR_{s.upper()}_DATABASE_URL"] for s in SERVICES
                     if os.environ.get(f"UR_{s.upper()}_DATABASE_URL")}
    try:
        security = platform_security()
    except ConfigurationError as exc:
        console.print(f"[red]configuration error: {exc}[/red]")
        return 2
    var_dir = Path(args.var_dir)
    if var_dir.exists() and not database_urls:
        # The sample workload's approvals would overlap the last run's authorizations and be
        # referred as possible duplicates: each run starts from fresh demo databases, and the
        # previous run's data stays readable beside them.
        previous = var_dir.with_name(var_dir.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        var_dir.rename(previous)
    # Each service's listen address setting gives its port (port 0: any free one, reported).
    ports = {s: _port_of(settings.get(f"UR_{s.upper()}_GRPC_LISTEN")) for s in SERVICES}
    platform = Platform(var_dir=var_dir, kafka_bootstrap=bootstrap, topic_prefix=settings.get("UR_TOPIC_PREFIX"),
                        database_urls=database_urls, ports=ports, security=security,
                        workbench_port=_port_of(settings.get("UR_WORKBENCH_LISTEN")),
                        fhir_port=_port_of(settings.get("UR_FHIR_LISTEN")))
    console.print(f"[bold]Starting the UR platform[/bold] (Kafka {bootstrap}; data in {args.var_dir}"
                  f"{'; TLS' if security is not None else ''})")
    try:
        with stop_on_signals():
            return _run(platform, args, console)
    except (KeyboardInterrupt, Stopped) as exc:
        if isinstance(exc, Stopped):
            console.print(f"{exc}")
        return 0
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    finally:
        console.print("stopping services...")
        platform.stop()


def _run(platform: Platform, args: argparse.Namespace, console: Console) -> int:
    """Start the services, submit the sample workload, run a shift of scripted reviewers, then
    (``run``) serve until a service exits."""
    from services.cli import fhir_demo, lifecycle, scripted_review, workload

    platform.start()
    with console.status("waiting for the services to report SERVING..."):
        platform.wait_healthy()
    where = ", ".join(f"{s} {platform.target(s)}" for s in SERVICES)
    console.print(f"[green]all three services are SERVING[/green]: {where}")
    platform.start_subscriptions(fhir_database_url=os.environ.get("UR_FHIR_DATABASE_URL") or None)
    workbench = platform.start_workbench()
    console.print(f"[green]the workbench serves on {workbench}/[/green]")
    fhir = platform.start_fhir(database_url=os.environ.get("UR_FHIR_DATABASE_URL") or None)
    console.print(f"[green]the FHIR door (Da Vinci PAS) serves on {fhir} (metadata: {fhir}/metadata; X12 278: "
                  f"POST {fhir.removesuffix('/fhir')}/x12/278)[/green]")
    console.print("Prometheus metrics: " + ", ".join(f"{p} {url}" for p, url in platform.metrics_urls().items())
                  + " (scrape configuration and Grafana dashboard in deploy/prometheus and deploy/grafana)")
    requests = workload.load_workload()
    # A run prefix keeps each run's idempotency keys apart while data accumulates across runs.
    run_id = time.strftime("%Y%m%d%H%M%S")
    for request in requests:
        request.idempotency_key = f"{run_id}-{request.idempotency_key}"[:100]
    summary = workload.run_workload(platform.target("intake"), requests, concurrency=args.concurrency,
                                    console=console, security=platform.security, token=platform.tokens["intake"])
    workload.render_summary(summary, console)
    fhir_demo.run(fhir, console)
    shift = scripted_review.run_shift(platform.target("review"), console, security=platform.security,
                                      service_token=platform.tokens["review"])
    lifecycle.run_lifecycle({s: platform.target(s) for s in SERVICES}, shift, console, platform.var_dir / "notices",
                            security=platform.security, tokens=platform.tokens)
    console.print("Audit: [bold].venv/bin/urctl audit verify[/bold] checks the services' audit logs, "
                  "[bold].venv/bin/urctl audit trail <request-id>[/bold] tells one request's story; the CMS-0057-F "
                  f"public report: [bold].venv/bin/urctl report cms-0057f --year {time.gmtime().tm_year}[/bold]")
    if args.mode == "demo":
        return 0
    console.print(f"\n[bold]The workbench: {workbench}/[/bold] (sign in with a development token from "
                  "deploy/sample/credentials.dev.yaml, e.g. dev-only-token-rn-alvarez)")
    console.print("The platform keeps serving; try [bold]UR_REVIEWER_TOKEN=dev-only-token-rn-alvarez "
                  ".venv/bin/urctl queue list[/bold] or [bold]UR_INTAKE_TOKEN=dev-only-token-sample-clinic "
                  ".venv/bin/urctl request show <id>[/bold]. Ctrl-C stops it.")
    while all(p.poll() is None for p in platform.procs.values()):
        time.sleep(1)
    console.print("[red]a service exited[/red]")
    return 1


if __name__ == "__main__":
    sys.exit(main())
