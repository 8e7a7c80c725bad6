"""Throw-away infrastructure the fault tests may break: a Kafka broker and a PostgreSQL cluster of
their own, on their own ports and data directories.

The broker and PostgreSQL that ``make test`` and other sessions share are never touched: a fault
test kills, pauses and restarts only what it started here, by process id.

* :class:`ThrowawayBroker` runs the broker of ``deploy/kafka/kafka.sh`` (the jars it fetched into
  ``.cache/kafka/libs``; fetched first when missing) from a ``server.properties`` of its own:
  single-node KRaft, a free port pair, a data directory under the test's temporary directory.
* :class:`ThrowawayPostgres` is an ``initdb`` cluster in a fresh directory under /tmp, on a free
  port, found the way ``deploy/postgres/pg.sh`` finds the server binaries. Run as root (the tests
  are), initdb and postgres refuse to run as root: the cluster then belongs to the ``postgres`` OS
  user, and its commands run through ``runuser``, as pg.sh does.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from services.common.kafka_io import wait_for_broker

REPO = Path(__file__).resolve().parents[2]
KAFKA_LIBS = REPO / ".cache" / "kafka" / "libs"
PG_OS_USER = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kafka_jars() -> Path:
    if not glob.glob(str(KAFKA_LIBS / "kafka_2.13-*.jar")):
        # kafka.sh fetches them with Maven (from the local repository when it holds them).
        result = subprocess.run([str(REPO / "deploy" / "kafka" / "kafka.sh"), "fetch"], capture_output=True,
                                text=True, check=False, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"cannot fetch the Kafka broker jars: {result.stderr.strip()}")
    return KAFKA_LIBS


class ThrowawayBroker:
    """A single-node Kafka broker this test session owns; ``kill``/``pause`` act on its JVM only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.data = root / "data"
        self.properties = root / "server.properties"
        self.log = root / "broker.out"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str) -> list[str]:
        # C1 only and a small serial heap: a test broker starts faster and leaves the cores to the services.
        return ["java", "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.root / 'log4j2.xml'}",
                f"-Dkafka.logs.dir={self.root}", "-cp", f"{_kafka_jars()}/*", *args]

    def _configure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.data}
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
# A restarted node waits for its previous incarnation's session to lapse before it serves again:
# 3 s instead of 9 s keeps each restart of the tests short.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
""", encoding="ascii")
        (self.root / "log4j2.xml").write_text(f"""\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><File name="file" fileName="{self.root / 'broker.log'}">
    <PatternLayout pattern="[%d{{ISO8601}}] %-5p %m (%c{{1}})%n"/></File></Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="file"/></Root></Loggers>
</Configuration>
""", encoding="ascii")
        cluster_id = _cluster_id()
        subprocess.run(self._java("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                                  "-c", str(self.properties)),
                       check=True, capture_output=True, timeout=120)

    def start(self, timeout_s: float = 90.0) -> None:
        """Start (configuring and formatting on first use) and wait until it answers."""
        if not self.properties.exists():
            self._configure()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self._java("kafka.Kafka", str(self.properties)), stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        # Port first: kafka-python leaks the socket of each refused bootstrap attempt.
        while not _accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test broker did not open port {self.port}\n{self.tail()}")
            time.sleep(0.1)
        try:
            wait_for_broker(self.bootstrap, timeout_s=max(1.0, deadline - time.monotonic()))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.tail()}") from exc

    def tail(self, lines: int = 30) -> str:
        logs = [p for p in (self.root / "broker.log", self.log) if p.exists()]
        return "\n".join(line for p in logs for line in p.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush; the log recovers on the next start."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung broker, a long GC pause)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _pg_bindir() -> Path:
    """Like deploy/postgres/pg.sh: ``pg_config --bindir`` when it holds the server, else the newest
    /usr/lib/postgresql/*/bin."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if found and all((Path(found) / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")


class ThrowawayPostgres:
    """A PostgreSQL cluster this test owns: role ``ur``/``ur``, on 127.0.0.1 and a free port."""

    ROLE = "ur"
    PASSWORD = "ur"

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.as_root = os.geteuid() == 0
        # Under /tmp, not the test's tmp_path: the postgres user must be able to reach it.
        self.base = Path(tempfile.mkdtemp(prefix="ur-faults-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.port = free_port()

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [*(["runuser", "-u", PG_OS_USER, "--"] if self.as_root else []), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.ROLE}:{self.PASSWORD}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        if self.as_root:
            shutil.chown(self.base, PG_OS_USER)
        password = self.base / "pw"
        password.write_text(self.PASSWORD, encoding="ascii")
        if self.as_root:
            shutil.chown(password, PG_OS_USER)
        done = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.ROLE,
                         f"--pwfile={password}", "--encoding=UTF8", "--no-locale", "--auth-local=trust",
                         "--auth-host=scram-sha-256", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        with (self.data / "postgresql.conf").open("a", encoding="ascii") as conf:
            # What is tested is a killed server, not a crashed machine: what was written survives
            # in the OS cache, so fsync can go. Commits stay synchronous: a commit the services were
            # told of must survive the kill (with synchronous_commit off it may not, and a decision
            # whose Kafka offset was committed would be lost).
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.data}'\n"
                       "max_connections = 150\nshared_buffers = 32MB\nfsync = off\nfull_page_writes = off\n")

    def start(self, timeout_s: float = 60.0) -> None:
        done = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w",
                         "-t", str(int(timeout_s)), "start", timeout=timeout_s + 10)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{self.tail()}")
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        engine = create_engine(self.url("postgres"))
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                except OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
                else:
                    return
        finally:
            engine.dispose()

    def create_database(self, name: str) -> str:
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text(encoding="ascii").splitlines()[0])

    def kill(self) -> None:
        """``kill -9`` of the postmaster and of every backend it had (what an OOM kill of the
        container does): the next start runs crash recovery."""
        pid = self.postmaster_pid()
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]
        for victim in (pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in (pid, *children)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL processes {pid}, {children} survived SIGKILL")
            time.sleep(0.05)
        # Until it is reaped, the dead postmaster's pid still answers kill(pid, 0) and a new one
        # takes it for a live server; once no process of it is left, its lock file is stale.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            (self.data / "postmaster.pid").unlink()

    def tail(self, lines: int = 30) -> str:
        if not self.logfile.exists():
            return "(no log)"
        return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def _ppid(proc: Path) -> int:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return -1
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cluster_id() -> str:
    """A random KRaft cluster id. One in 64 base64url ids starts with '-', which the storage tool
    reads as an option (CI met one: every fault test errored); Kafka's own random-uuid skips them too."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not candidate.startswith("-"):
            return candidate
