"""Throw-away Kafka and PostgreSQL servers that only speak TLS, for the tests of the platform over
encrypted links (tests/e2e/test_secure_transport.py). Never the shared ones: each gets its own
directory and free ports, and is stopped (and its directory removed) afterwards.

- Kafka: ``deploy/kafka/kafka.sh secure-start`` (SASL_SSL with SCRAM-SHA-512, and SSL requiring a
  client certificate), whose ``*.env`` files hold the settings a client needs.
- PostgreSQL: initdb/pg_ctl of the installed server in a temporary directory, ``ssl=on`` with a
  server certificate from a throw-away CA, and a pg_hba.conf that refuses every connection over TCP
  that is not TLS. As root the cluster belongs to the ``postgres`` user (initdb refuses root), as in
  deploy/postgres/pg.sh.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
PG_OS_USER = "postgres"


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held until all are chosen, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def read_env(path: Path) -> dict[str, str]:
    """NAME=value lines."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _run(command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result  # type: ignore[no-any-return]


# -- Kafka ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureKafka:
    directory: Path
    sasl_ssl: dict[str, str]  # settings of a SASL_SSL client (KAFKA_BOOTSTRAP_SERVERS, UR_KAFKA_*)
    ssl: dict[str, str]  # settings of an SSL client with its certificate


@contextlib.contextmanager
def secure_kafka() -> Iterator[SecureKafka]:
    directory = Path(tempfile.mkdtemp(prefix="ur-kafka-tls-"))
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    try:
        _run([str(KAFKA_SH), "secure-start", str(directory), *map(str, free_ports(3))], env=env, timeout=300)
        yield SecureKafka(directory, read_env(directory / "sasl_ssl.env"), read_env(directory / "ssl.env"))
    finally:
        subprocess.run([str(KAFKA_SH), "secure-stop", str(directory)], capture_output=True, check=False, env=env,
                       timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


# -- certificates -----------------------------------------------------------------------------------


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A throw-away CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-subj", f"/CN=ur test {name}",
          "-keyout", str(key), "-out", str(cert), "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return cert, key


def issue(directory: Path, name: str, ca: tuple[Path, Path], host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` (and localhost) signed by ``ca``: (certificate, key)."""
    cert, key, csr, ext = (directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr",
                           directory / f"{name}.ext")
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", str(key),
          "-out", str(csr)])
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
          "-days", "3", "-extfile", str(ext), "-out", str(cert)])
    return cert, key


# -- PostgreSQL -------------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The server binaries: ``pg_config --bindir`` when it holds initdb, else the newest installed."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                    check=True).stdout.strip())
        if (found / "initdb").exists() and (found / "pg_ctl").exists():
            return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    for candidate in reversed(candidates):
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


@dataclass(frozen=True)
class TlsPostgres:
    directory: Path
    port: int
    password_file: Path  # the password of the `ur` role
    ca: Path  # the CA that signed the server's certificate
    other_ca: Path  # a CA that did not

    def url(self, database: str, *, query: str = "", password: bool = True) -> str:
        secret = f":{self.password_file.read_text().strip()}" if password else ""
        return f"postgresql+psycopg://ur{secret}@127.0.0.1:{self.port}/{database}{'?' + query if query else ''}"


def _as_owner(command: Sequence[str]) -> list[str]:
    return ["runuser", "-u", PG_OS_USER, "--", *command] if os.geteuid() == 0 else list(command)


@contextlib.contextmanager
def tls_postgres(databases: Sequence[str] = ()) -> Iterator[TlsPostgres]:
    """A cluster on a free port of 127.0.0.1 that accepts TCP only over TLS (scram-sha-256 for `ur`),
    with ``databases`` created."""
    bindir = postgres_bindir()
    directory = Path(tempfile.mkdtemp(prefix="ur-pg-tls-"))
    data, run, log = directory / "data", directory / "run", directory / "postgres.log"
    port = free_ports(1)[0]
    password_file = directory / "ur.password"
    password_file.write_text(secrets.token_hex(16) + "\n")
    ca = make_ca(directory, "ca")
    other_ca, _ = make_ca(directory, "other-ca")
    server_cert, server_key = issue(directory, "server", ca)
    run.mkdir()
    if os.geteuid() == 0:
        shutil.chown(directory, PG_OS_USER)
        for path in (run, password_file, server_cert, server_key):
            shutil.chown(path, PG_OS_USER)
    directory.chmod(0o755)  # the clients (this process) read the CA; the keys stay 0600
    server_key.chmod(0o600)
    started = False
    try:
        _run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "ur", f"--pwfile={password_file}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]))
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{run}'\n"
                       f"ssl = on\nssl_cert_file = '{server_cert}'\nssl_key_file = '{server_key}'\n"
                       "fsync = off\nsynchronous_commit = off\nmax_connections = 200\nshared_buffers = 32MB\n")
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
                                          "hostnossl all all all reject\n")
        _run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"]))
        started = True
        for database in databases:
            _run(_as_owner([str(bindir / "psql"), "-h", str(run), "-p", str(port), "-U", "ur", "-d", "postgres",
                            "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{database}"']))
        yield TlsPostgres(directory, port, password_file, ca[0], other_ca)
    finally:
        if started:
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)
