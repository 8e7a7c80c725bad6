"""Acceptance (issue 11.9): the platform's services do not outlive their supervisor.

``make run`` (``python -m services.cli.platform run``) and ``make bench`` (``python -m
services.cli.bench``) are ended the ways a terminal, ``timeout`` or a process supervisor end them
(SIGTERM, SIGHUP, SIGINT, and kill -9); afterwards none of their services runs. A platform started
with a port already taken stops at once with an error naming the port and who holds it.

The services are found through /proc: each carries its supervisor's pid (UR_SUPERVISOR_PID)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from services.common.settings import SERVICES
from tests.conftest import REPO
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


def services_of(supervisor: int) -> dict[int, str]:
    """pid → command of every process started with UR_SUPERVISOR_PID=supervisor."""
    return processes_with(f"UR_SUPERVISOR_PID={supervisor}")


def processes_with(variable: str) -> dict[int, str]:
    """pid → command of every process whose environment holds ``variable`` (NAME=value)."""
    marker = variable.encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def environment(topic_prefix: str, kafka_bootstrap: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UR_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "UR_TOPIC_PREFIX": topic_prefix, "PYTHONUNBUFFERED": "1",
                **{f"UR_{s.upper()}_GRPC_LISTEN": "127.0.0.1:0" for s in SERVICES},
                "UR_WORKBENCH_LISTEN": "127.0.0.1:0", "UR_FHIR_LISTEN": "127.0.0.1:0", **settings})
    return env


def launch(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)


def serving(var_dir: Path, supervisor: subprocess.Popen[bytes], log: Path,
            started: tuple[str, ...] = (*SERVICES, "workbench", "fhir")) -> dict[int, str]:
    """Wait until the ``started`` processes (the three services and, for ``make run``, the workbench and
    the FHIR door) report their ports (they serve); their pids and commands."""
    ports = var_dir / "ports"

    def reported() -> bool:
        if supervisor.poll() is not None:
            raise AssertionError(f"the supervisor exited with {supervisor.returncode}:\n{log.read_text()[-3000:]}")
        return all((ports / f"{s}.port").exists() for s in started)

    wait_until(reported, 120, what=f"{', '.join(started)} to serve", interval_s=0.2)
    found = services_of(supervisor.pid)
    assert len(found) == len(started), found
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def run_and_end(args: list[str], env: dict[str, str], var_dir: Path, log: Path, signum: int,
                started: tuple[str, ...] = (*SERVICES, "workbench", "fhir")) -> int:
    """Start a supervisor, wait until its services serve, send it ``signum``; its exit status, once no
    service of it is left."""
    supervisor = launch(args, env, log)
    try:
        return end_and_check(supervisor, serving(var_dir, supervisor, log, started), signum)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def end_and_check(supervisor: subprocess.Popen[bytes], services: dict[int, str], signum: int) -> int:
    supervisor.send_signal(signum)
    try:
        code = supervisor.wait(timeout=90)
    except subprocess.TimeoutExpired:
        supervisor.kill()
        raise AssertionError(f"the supervisor did not end on {signal.Signals(signum).name}") from None
    # kill -9 leaves the services to the kernel's parent-death signal: they stop, gracefully, soon after.
    wait_until(lambda: [cmd for pid, cmd in services.items() if alive(pid)], 60, until=lambda left: not left,
               what=f"no service left after {signal.Signals(signum).name} to the supervisor")
    return code


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL],
                         ids=lambda s: signal.Signals(s).name)
def test_ending_make_run_ends_its_services(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str,
                                           signum: int) -> None:
    log = tmp_path / "platform.out"
    code = run_and_end(["services.cli.platform", "run", "--var-dir", str(tmp_path / "var")],
                       environment(topic_prefix, kafka_bootstrap), tmp_path / "var", log, signum)
    if signum != signal.SIGKILL:
        assert code == 0, log.read_text()[-3000:]
        assert "stopping services" in log.read_text()


@pytest.mark.parametrize(("signum", "to_group"),
                         [(signal.SIGTERM, False), (signal.SIGHUP, True), (signal.SIGKILL, False)],
                         ids=["SIGTERM to make", "SIGHUP to the terminal's job", "SIGKILL to make"])
def test_ending_make_itself_ends_make_run(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str,
                                         signum: int, to_group: bool) -> None:
    """``make run`` itself ended: make passes SIGTERM on to the platform (its child, by exec), a closed
    terminal hangs up the whole job, and a make killed outright takes the platform with it
    (--stop-with-parent); in every case the platform stops its services."""
    var_dir = tmp_path / "var"
    log = tmp_path / "make.out"
    env = environment(topic_prefix, kafka_bootstrap, UR_VAR_DIR=str(var_dir))
    with log.open("wb") as out:
        # -o: the set-up stamps count as done (the suite runs in a checkout that is set up). A session
        # of its own stands for the terminal's job.
        make = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "-o", "gen/.stamp", "run"],
                                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: all((var_dir / "ports" / f"{s}.port").exists() for s in (*SERVICES, "workbench", "fhir"))
                   or make.poll(), 120, what="make run's services, workbench and FHIR door to serve", interval_s=0.2)
        assert make.poll() is None, log.read_text()[-3000:]
        started = {pid: command for pid, command in processes_with(f"UR_VAR_DIR={var_dir}").items()
                   if pid != make.pid}  # the platform, its three services, the workbench and the door
        assert len(started) == 6, started
        assert sum("services.cli.platform" in c for c in started.values()) == 1, started
        if to_group:
            os.killpg(make.pid, signum)
        else:
            make.send_signal(signum)
        make.wait(timeout=60)
        wait_until(lambda: [cmd for pid, cmd in started.items() if alive(pid)], 60, until=lambda left: not left,
                   what=f"neither the platform nor a service left after {signal.Signals(signum).name}")
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    assert "stopping services" in log.read_text()


@pytest.fixture
def bench_databases(pg_admin_url: str) -> Iterator[str]:
    prefix = f"ur_t_bench_{uuid.uuid4().hex[:8]}"
    yield prefix
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for service in SERVICES:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_ending_the_bench_ends_its_services(tmp_path: Path, kafka_bootstrap: str, pg_admin_url: str,
                                            bench_databases: str, signum: int) -> None:
    log = tmp_path / "bench.out"
    code = run_and_end(["services.cli.bench", "--requests", "50", "--rate", "1", "--rate-seconds", "1",
                        "--skip-ceilings", "--rule-evaluations", "0", "--var-dir", str(tmp_path / "var"),
                        "--db-prefix", bench_databases, "--output", str(tmp_path / "bench.json")],
                       environment("unused", kafka_bootstrap, UR_BENCH_PG_URL=pg_admin_url), tmp_path / "var", log,
                       signum, started=SERVICES)
    assert code == 128 + signum, log.read_text()[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in log.read_text()


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as held:
        yield held.getsockname()[1]


def run_with_intake_on(port: int, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
                       ) -> subprocess.CompletedProcess[str]:
    env = environment(topic_prefix, kafka_bootstrap, UR_INTAKE_GRPC_LISTEN=f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-m", "services.cli.platform", "run", "--var-dir", str(tmp_path / "var")],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=180, check=False)


def test_a_taken_port_stops_the_run_naming_port_and_holder(tmp_path: Path, kafka_bootstrap: str,
                                                           topic_prefix: str, listening_port: int) -> None:
    done = run_with_intake_on(listening_port, tmp_path, kafka_bootstrap, topic_prefix)
    assert done.returncode == 1, done.stdout
    said = " ".join(done.stdout.split())  # rich wraps long lines
    assert f"cannot start intake: port {listening_port} is in use by pid {os.getpid()}" in said, said


def test_a_port_the_service_cannot_bind_stops_the_run_with_its_error(
        tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, refused_target: str) -> None:
    """A port held without listening passes the supervisor's check; the service's bind fails, and the
    run stops with the service's own message instead of waiting for it."""
    port = int(refused_target.rpartition(":")[2])
    done = run_with_intake_on(port, tmp_path, kafka_bootstrap, topic_prefix)
    assert done.returncode == 1, done.stdout
    said = " ".join(done.stdout.split())
    assert "intake exited with 1" in said, said
    assert f"cannot bind gRPC server to 127.0.0.1:{port}" in said, said
