"""``make bench``: the platform end to end on PostgreSQL, next to the raw
ceilings of its parts on this machine.

Phases (each printed with a progress bar, all figures also written to JSON):

1. throughput  - N requests (default 10,000) through SubmitRequest with C concurrent
                 callers; end-to-end rate = settled requests / wall time, where a request
                 is settled when its AuthorizationsIssued event (approved) or its
                 DeterminationMade event (queued for review) reaches a Kafka consumer in
                 this process.
2. latency     - an open-loop offered load (default 200 requests/s for 20 s); latency is
                 submit → authorization event, p50/p95/p99.
3. ceilings    - kafka-python produce and consume on the same broker, a trivial gRPC
                 unary call (health check) at the same concurrency.
4. queue       - after the platform stops, services/cli/bench_queue.py in a process of its own:
                 claim-next at 50,000 open tasks on a fresh PostgreSQL database (--queue-tasks).
5. workbench   - services/cli/bench_workbench.py in a process of its own: the workbench's queue
                 and task pages at 10,000 open tasks (--workbench-tasks).
6. rules       - after the platform stops, services/cli/bench_rules.py in a process of its
                 own: whole-library line evaluations/s next to raw durable-rules on the
                 same lines and rulesets, RSS before and after N evaluations (default
                 1,000,000; --rule-evaluations 0 skips it).
7. fhir        - services/cli/bench_fhir.py in a process of its own (its own platform and FHIR
                 door): Claim/$submit p99 at 100 requests/s offered (--fhir-rate) next to
                 gRPC SubmitRequest with the same wait at the same rate (--fhir-seconds 0 skips).

CPU seconds used by each service process in each phase are read from /proc, which
says where the time goes.

Phases 1-3 run once per gRPC transport (``--transports``, default ``plaintext,tls``): in plaintext,
then with every gRPC link over mutual TLS (throw-away certificates from tests/tls_material.py, made
in the bench's directory), each on fresh databases and topics, so that `make bench` quotes the
throughput with TLS on next to plaintext (``--tls``: the TLS run only). Either way every call is
authenticated (the sample's development credentials); the intake rate limit is off, as the bench is
one caller sending as fast as it can.

The bench's topics (its platform's, the ceiling's and those of --unrelated-partitions) are deleted when
it ends, however it ends: each run leaves the broker as it found it. With --unrelated-partitions N the
broker first gets N partitions of topics nothing uses, as a broker shared with other applications
has: the platform's figures next to a run without them say how indifferent it is to the cluster (every
metadata request of the services and the bench names its topics).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, make_url, text
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli.platform import REPO, Platform, Stopped, platform_security, stop_on_signals
from services.common import kafka_io, lifetime, settings
from services.common.config_files import load_yaml
from services.common.proto_enums import to_number
from services.common.tls import TransportSecurity, open_channel

NPIS = ("1234567893", "1245319599")
LUMBAR_CODES = ("72148", "72149", "72158")


# -- the workload ----------------------------------------------------------------------------------

def write_bench_members(path: Path, count: int) -> None:
    """A synthetic population large enough that no two bench requests for one member and code
    overlap in time (overlaps are, rightly, referred to a nurse as possible duplicates)."""
    lobs = ("medicare_advantage", "medicaid", "commercial", "workers_comp")
    states = ("CA", "TX", "NY", "FL", "IL", "PA", "OH", "GA", "NC", "MI")
    members = [{"member_id": f"B{i:07d}", "birth_date": "1960-01-01",
                "coverages": [{"line_of_business": lobs[i % 4], "plan_id": f"BENCH-{i % 4}",
                               "state": states[i % len(states)], "effective": "2026-01-01", "termination": None}]}
               for i in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"members": members}, sort_keys=False))


Member = tuple[str, types_pb2.LineOfBusiness.ValueType, str]


def eligible_members(seed: Path) -> list[Member]:
    """(member id, line of business number, state) of members with coverage active in early 2027."""
    doc = load_yaml(seed.read_text())
    found = []
    for member in doc["members"]:
        for cov in member.get("coverages") or []:
            term = cov.get("termination")
            if term is None or str(term) >= "2027-06-30":
                lob = to_number(types_pb2.LineOfBusiness, cov["line_of_business"])
                found.append((str(member["member_id"]), lob, str(cov["state"])))
                break
    return found


def make_request(i: int, members: list[Member], run: str) -> intake_pb2.SubmitRequestRequest:
    """A lumbar spine MRI; 4 in 5 meet criteria, 1 in 5 goes to a nurse. Dates spread so
    that the same member's requests rarely overlap."""
    member_id, lob, state = members[i % len(members)]
    meets = i % 5 != 0
    start = dt.date(2027, 1, 4) + dt.timedelta(days=(i // len(members)) * 16)
    end = start + dt.timedelta(days=14)

    def d(x: dt.date) -> types_pb2.Date:
        return types_pb2.Date(year=x.year, month=x.month, day=x.day)

    def num(name: str, value: float, unit: str = "") -> types_pb2.ClinicalFact:
        return types_pb2.ClinicalFact(name=name, number_value=value, unit=unit)

    def flag(name: str) -> types_pb2.ClinicalFact:
        return types_pb2.ClinicalFact(name=name, bool_value=False)

    return intake_pb2.SubmitRequestRequest(
        idempotency_key=f"bench-{run}-{i}", member_id=member_id,
        coverage=types_pb2.Coverage(line_of_business=lob, member_state=state, plan_id="BENCH"),
        requesting_provider=types_pb2.Provider(npi=NPIS[0]), servicing_provider=types_pb2.Provider(npi=NPIS[1]),
        diagnoses=[types_pb2.Diagnosis(code="M54.16", primary=True)],
        service_lines=[types_pb2.ServiceLine(line_number=1, procedure_code=LUMBAR_CODES[i % 3], units=1,
                                             start_date=d(start), end_date=d(end),
                                             place_of_service=types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL)],
        review_type=types_pb2.REVIEW_TYPE_PROSPECTIVE, urgency=types_pb2.URGENCY_STANDARD,
        clinical_facts=[num("symptom_duration_weeks", 8 if meets else 2, "weeks"),
                        num("conservative_therapy_weeks", 7 if meets else 1, "weeks"),
                        flag("suspected_cauda_equina"), flag("suspected_cancer"), flag("suspected_infection"),
                        flag("suspected_fracture"), flag("progressive_neurologic_deficit")])


# -- observing completions -------------------------------------------------------------------------

@dataclass
class Tracker:
    """Follows the determination and authorization topics; records when each request settled."""

    bootstrap: str
    prefix: str
    security: kafka_io.KafkaSecurity = kafka_io.PLAINTEXT
    settled_at: dict[str, float] = field(default_factory=dict)
    authorized_at: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        consumer = kafka_io.make_consumer(
            self.bootstrap, group_id=f"bench-tracker-{uuid.uuid4().hex[:8]}", client_id="bench-tracker",
            security=self.security,
            topics=[f"{self.prefix}.review.determination-made.v1",
                    f"{self.prefix}.authorization.authorizations-issued.v1"],
            auto_offset_reset="latest", fetch_max_wait_ms=20)
        while not consumer.assignment():
            consumer.poll(timeout_ms=100)
        self._ready.set()
        while not self._stop.is_set():
            for records in consumer.poll(timeout_ms=100, max_records=2000).values():
                now = time.monotonic()
                for r in records:
                    if r.topic.endswith("authorizations-issued.v1"):
                        rid = events_pb2.AuthorizationsIssued.FromString(r.value or b"").request_id
                        self.authorized_at.setdefault(rid, now)
                        self.settled_at.setdefault(rid, now)
                    else:
                        det = events_pb2.DeterminationMade.FromString(r.value or b"").determination
                        if not any(ln.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL for ln in det.lines):
                            self.settled_at.setdefault(det.request_id, now)
        consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# -- measurement helpers ---------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def broker_pid() -> int | None:
    pid_file = REPO / ".cache" / "kafka" / "broker.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if Path(f"/proc/{pid}/stat").exists():
        return pid
    # A stale pid file: another checkout's broker serves this machine; find it by its main class.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"kafka.Kafka" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def postgres_cpu_seconds() -> float:
    """All PostgreSQL server processes on this machine (backends are pooled, so they persist)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


class CpuMeter:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.start_pg = postgres_cpu_seconds()
        self.wall = time.monotonic()

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.wall
        used = {name: round(cpu_seconds(pid) - self.start[name], 2) for name, pid in self.pids.items()}
        used["postgres"] = round(postgres_cpu_seconds() - self.start_pg, 2)
        used["wall_s"] = round(elapsed, 2)
        return used


# -- phases ----------------------------------------------------------------------------------------

def submit_all(stub: intake_pb2_grpc.IntakeServiceStub, requests: list[intake_pb2.SubmitRequestRequest],
               concurrency: int, console: Console, label: str,
               rate: float | None = None) -> tuple[dict[str, float], int]:
    """Submits every request; returns request id → submit start time, and the error count."""
    started: dict[str, float] = {}
    errors = 0
    lock = threading.Lock()
    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool, progress(console) as bar:
        task = bar.add_task(label, total=len(requests))

        def one(request: intake_pb2.SubmitRequestRequest) -> None:
            nonlocal errors
            t0 = time.monotonic()
            try:
                rid = stub.SubmitRequest(request, timeout=30).request.request_id
                with lock:
                    started[rid] = t0
            except grpc.RpcError:
                with lock:
                    errors += 1
            bar.advance(task)

        begin = time.monotonic()
        pending = []
        for i, request in enumerate(requests):
            if rate:
                delay = begin + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            pending.append(pool.submit(one, request))
        for f in pending:
            f.result()
    return started, errors


def wait_settled(tracker: Tracker, ids: Iterator[str] | list[str], timeout_s: float, console: Console,
                 label: str) -> None:
    wanted = list(ids)
    deadline = time.monotonic() + timeout_s
    with progress(console) as bar:
        task = bar.add_task(label, total=len(wanted))
        while time.monotonic() < deadline:
            done = sum(1 for rid in wanted if rid in tracker.settled_at)
            bar.update(task, completed=done)
            if done == len(wanted):
                return
            time.sleep(0.2)


def ceiling_topic(prefix: str) -> str:
    return f"{prefix}.bench.ceiling"


def ceiling_kafka(bootstrap: str, prefix: str, count: int, console: Console,
                  security: kafka_io.KafkaSecurity = kafka_io.PLAINTEXT) -> dict[str, float]:
    topic = ceiling_topic(prefix)
    kafka_io.ensure_topics(bootstrap, [topic], 6, security=security)
    payload = make_request(1, [("M", types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, "CA")], "x").SerializeToString()
    producer = kafka_io.make_producer(bootstrap, client_id="bench-ceiling", security=security)
    with progress(console) as bar:
        task = bar.add_task("ceiling: kafka-python produce (acks=all)", total=count)
        t0 = time.monotonic()
        for i in range(count):
            producer.send(topic, key=str(i).encode(), value=payload,
                          headers=[("event-type", b"x"), ("event-id", str(i).encode())])
            if i % 1000 == 999:
                bar.update(task, completed=i + 1)
        producer.flush()
        produce_rate = count / (time.monotonic() - t0)
        bar.update(task, completed=count)
    producer.close()
    consumer = kafka_io.make_consumer(bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}", client_id="bench",
                                      topics=[topic], security=security)
    seen = 0
    with progress(console) as bar:
        task = bar.add_task("ceiling: kafka-python consume", total=count)
        t0 = time.monotonic()
        while seen < count and time.monotonic() - t0 < 120:
            for records in consumer.poll(timeout_ms=500, max_records=2000).values():
                seen += len(records)
            bar.update(task, completed=seen)
        consume_rate = seen / (time.monotonic() - t0)
    consumer.close()
    return {"kafka_produce_per_s": round(produce_rate), "kafka_consume_per_s": round(consume_rate)}


def queue_phase(database_url: str, open_tasks: int, output: Path) -> dict[str, Any]:
    """services/cli/bench_queue.py in its own process: claim-next at ``open_tasks`` open tasks."""
    subprocess.run([sys.executable, "-m", "services.cli.bench_queue", "--database-url", database_url,
                    "--open", str(open_tasks), "--json", str(output)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def workbench_phase(database_url: str, tasks: int, output: Path) -> dict[str, Any]:
    """services/cli/bench_workbench.py in its own process: the queue and task pages at ``tasks`` open
    tasks."""
    subprocess.run([sys.executable, "-m", "services.cli.bench_workbench", "--tasks", str(tasks),
                    "--database-url", database_url, "--json", str(output)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def fhir_results(args: argparse.Namespace, output: Path, console: Console) -> dict[str, Any]:
    """``{"fhir": ...}`` of the FHIR door phase, or nothing when --fhir-seconds is 0."""
    if args.fhir_seconds <= 0:
        return {}
    console.print(f"FHIR $submit at {args.fhir_rate:g} requests/s offered (services/cli/bench_fhir.py)...")
    return {"fhir": fhir_phase(args.fhir_rate, args.fhir_seconds, args.db_prefix, output)}


def fhir_phase(rate: float, seconds: float, db_prefix: str, output: Path) -> dict[str, Any]:
    """services/cli/bench_fhir.py in its own process: $submit next to gRPC at an offered rate."""
    subprocess.run([sys.executable, "-m", "services.cli.bench_fhir", "--rate", str(rate), "--seconds", str(seconds),
                    "--db-prefix", f"{db_prefix}_fhir", "--var-dir", str(output.parent / "fhir"),
                    "--json", str(output)], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def rule_evaluations(count: int, output: Path) -> dict[str, Any]:
    """services/cli/bench_rules.py in its own process (its RSS is its own); its JSON report."""
    subprocess.run([sys.executable, "-m", "services.cli.bench_rules", "--evaluations", str(count),
                    "--json", str(output)], cwd=REPO, check=True)
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def ceiling_grpc(target: str, count: int, concurrency: int, console: Console,
                 security: TransportSecurity | None = None) -> dict[str, float]:
    channel = open_channel(target, security)
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool, progress(console) as bar:
        task = bar.add_task("ceiling: trivial gRPC unary (health check)", total=count)
        t0 = time.monotonic()

        def worker(n: int) -> None:
            for _ in range(n):
                stub.Check(request, timeout=10)
                bar.advance(task)

        per = count // concurrency
        list(pool.map(worker, [per] * concurrency))
        rate = per * concurrency / (time.monotonic() - t0)
    channel.close()
    return {"grpc_unary_per_s": round(rate)}


# -- profiles --------------------------------------------------------------------------------------

def start_profiles(pids: dict[str, int], seconds: int, out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Sample every thread of each service with py-spy (installed with `pip install py-spy`)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return [subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
                              "--format", "raw", "--nonblocking", "--output", str(out_dir / f"{name}.folded")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pid in pids.items() if name in ("intake", "review", "authorization")]


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Self time by leaf function, and inclusive time by our own functions, from py-spy's folded stacks."""
    leaf: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if frames and "(threading.py)" in frames[-1] and "wait" in frames[-1]:
            continue  # idle threads
        total += count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
        for frame in {f for f in frames if "services/" in f}:
            ours[frame] = ours.get(frame, 0) + count

    def share(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "self_pct": share(leaf), "inclusive_ours_pct": share(ours)}


# -- main ------------------------------------------------------------------------------------------

def throwaway_tls(directory: Path) -> TransportSecurity:
    """Mutual TLS from a CA and certificates made for this run (the tests' generator)."""
    from tests.tls_material import make_material  # a development tool: the repository's tests are here

    return make_material(directory).services(require_client_cert=True)


def pg_admin_url() -> str:
    url = os.environ.get("UR_BENCH_PG_URL") or os.environ.get("UR_TEST_PG_URL")
    if url:
        return url
    return subprocess.run([str(REPO / "deploy" / "postgres" / "pg.sh"), "url", "postgres"], capture_output=True,
                          text=True, check=True).stdout.strip()


def fresh_databases(admin_url: str, prefix: str = "ur_bench",
                    services: tuple[str, ...] = ("intake", "review", "authorization")) -> dict[str, str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    urls = {}
    with admin.connect() as conn:
        for service in services:
            name = f"{prefix}_{service}"
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            urls[service] = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", "10000")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "32")))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RATE", "200")),
                        help="offered load of the latency phase, requests/s")
    parser.add_argument("--rate-seconds", type=float, default=float(os.environ.get("BENCH_RATE_SECONDS", "20")))
    parser.add_argument("--ceiling-count", type=int, default=50000)
    parser.add_argument("--output", default=os.environ.get("BENCH_OUTPUT", "bench-results.json"))
    parser.add_argument("--skip-ceilings", action="store_true")
    parser.add_argument("--rule-evaluations", type=int,
                        default=int(os.environ.get("BENCH_RULE_EVALUATIONS", "1000000")),
                        help="line evaluations of the criteria-library phase (services/cli/bench_rules.py); 0 skips it")
    parser.add_argument("--queue-tasks", type=int, default=int(os.environ.get("BENCH_QUEUE_TASKS", "50000")),
                        help="open tasks of the claim-next phase (services/cli/bench_queue.py); 0 skips it")
    parser.add_argument("--workbench-tasks", type=int, default=int(os.environ.get("BENCH_WORKBENCH_TASKS", "10000")),
                        help="open tasks of the workbench page phase (services/cli/bench_workbench.py); 0 skips it")
    parser.add_argument("--fhir-rate", type=float, default=float(os.environ.get("BENCH_FHIR_RATE", "100")),
                        help="offered requests/s of the FHIR door phase (services/cli/bench_fhir.py)")
    parser.add_argument("--fhir-seconds", type=float, default=float(os.environ.get("BENCH_FHIR_SECONDS", "20")),
                        help="seconds of the FHIR door phase, for each door; 0 skips it")
    parser.add_argument("--grpc-workers", type=int, default=int(os.environ.get("BENCH_GRPC_WORKERS", "16")),
                        help="UR_GRPC_MAX_WORKERS of the services under test")
    parser.add_argument("--profile", action="store_true",
                        help="sample each service with py-spy during phase 1 and print where the time goes")
    parser.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench",
                        help="the services' logs, ports and the bench's members file")
    parser.add_argument("--db-prefix", default="ur_bench",
                        help="the bench's databases are PREFIX_intake, PREFIX_review and PREFIX_authorization "
                             "(dropped and created afresh)")
    parser.add_argument("--stop-with-parent", action="store_true",
                        help="end (stopping the services) when the process that started this one ends (make bench)")
    parser.add_argument("--transports", default=os.environ.get("BENCH_TRANSPORTS", "plaintext,tls"),
                        help="the gRPC transports the platform phases (1-3) run over, in turn, each on fresh "
                             "databases and topics: plaintext, tls (mutual TLS with throw-away certificates made "
                             "for the run) or settings (the UR_GRPC_TLS_* settings); default plaintext,tls, so "
                             "that TLS figures sit next to plaintext ones")
    parser.add_argument("--tls", action="store_true", help="the same as --transports tls")
    parser.add_argument("--unrelated-partitions", type=int,
                        default=int(os.environ.get("BENCH_UNRELATED_PARTITIONS", "0")),
                        help="first create this many partitions (topics of 100) that nothing uses, as on a broker "
                             "shared with other applications; deleted at the end with the bench's own topics")
    args = parser.parse_args(argv)
    transports = ["tls"] if args.tls else [t.strip() for t in args.transports.split(",") if t.strip()]
    unknown = sorted(set(transports) - set(TRANSPORTS))
    if unknown or not transports:
        parser.error(f"--transports: {', '.join(unknown) or 'none given'}; choose from {', '.join(TRANSPORTS)}")
    if args.stop_with_parent:
        lifetime.stop_with_supervisor(os.getppid())
    console = Console()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    kafka_security = kafka_io.KafkaSecurity.of(settings.load(settings.PlatformSettings))  # as the services have it
    var_dir = args.var_dir
    seed = var_dir / "members.yaml"
    total = args.requests + int(args.rate * args.rate_seconds) + 200
    # About six requests per member, 16 days apart: none overlap.
    write_bench_members(seed, max(1000, total // 6))
    members = eligible_members(seed)
    results: dict[str, Any] = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "machine": {"cpus": os.cpu_count()},
                               "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    runs: dict[str, dict[str, Any]] = {}
    prefix = f"urbench{time.strftime('%H%M%S')}"
    unrelated: list[str] = []
    try:
        if args.unrelated_partitions > 0:
            console.print(f"creating {args.unrelated_partitions:,} unrelated partitions...")
            unrelated = kafka_io.create_partitions(bootstrap, prefix, args.unrelated_partitions,
                                                   security=kafka_security)
            results["unrelated_partitions"] = args.unrelated_partitions
        for n, transport in enumerate(transports):
            security = transport_security(transport, var_dir)
            runs[transport] = platform_phases(args, PlatformRun(
                bootstrap=bootstrap, kafka_security=kafka_security, prefix=f"{prefix}{n}", security=security,
                members=members, seed=seed, var_dir=var_dir), console, kafka_ceilings=n == 0)
    finally:
        if unrelated:
            try:
                kafka_io.delete_topics(bootstrap, unrelated, security=kafka_security)
            except (KafkaError, OSError) as exc:  # the broker gone: the bench's figures still stand
                console.print(f"[red]could not delete the unrelated topics ({prefix}.*): {exc}[/red]")
    first = runs[transports[0]]
    # The first run's figures where one run's go (what the ratios and the rules phase compare with).
    results.update({"transport": first["transport"], "throughput": first["throughput"],
                    "latency_at_rate": first["latency_at_rate"], "runs": runs})
    if "ceilings" in first:
        results["ceilings"] = first["ceilings"]
        results["ratios"] = ceiling_ratios(first["throughput"], first["ceilings"])
    if len(runs) > 1:
        results["transports_compared"] = compare_runs(runs)
    if args.queue_tasks > 0:
        console.print(f"claim-next at {args.queue_tasks:,} open tasks (services/cli/bench_queue.py)...")
        [queue_db] = fresh_databases(pg_admin_url(), args.db_prefix, ("queue",)).values()
        results["queue"] = queue_phase(queue_db, args.queue_tasks, var_dir / "bench-queue.json")
    if args.workbench_tasks > 0:
        console.print(f"workbench pages at {args.workbench_tasks:,} open tasks (services/cli/bench_workbench.py)...")
        [pages_db] = fresh_databases(pg_admin_url(), args.db_prefix, ("workbench",)).values()
        results["workbench"] = workbench_phase(pages_db, args.workbench_tasks, var_dir / "bench-workbench.json")
    results.update(fhir_results(args, var_dir / "bench-fhir.json", console))
    if args.rule_evaluations > 0:
        rules = rule_evaluations(args.rule_evaluations, var_dir / "bench-rules.json")
        results["rule_evaluations"] = rules
        ratios = results.setdefault("ratios", {})
        ratios["library_vs_durable_rules_raw"] = rules["ratio_vs_raw"]
        ratios["line_evals_vs_durable_rules_raw"] = round(results["throughput"]["end_to_end_per_s"]
                                                          / rules["raw_per_s"], 3)
    Path(args.output).write_text(json.dumps(results, indent=2, default=str))  # paths among the parameters
    render(results, console)
    console.print(f"results written to {args.output}")
    return 0


def fhir_rows(fhir: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The FHIR door's $submit figures next to gRPC's, at the same offered rate."""
    rows: list[tuple[str, Any]] = []
    for door, label in (("fhir_submit", "FHIR Claim/$submit"), ("grpc_submit", "gRPC SubmitRequest, same wait")):
        if not fhir:
            break
        figures = fhir[door]
        rows.append((f"{label} at {fhir['offered_per_s']:g} req/s offered: p50/p95/p99 (ms); answered",
                     f"{figures['ms']['p50']}/{figures['ms']['p95']}/{figures['ms']['p99']}; "
                     f"{figures['answered']} of {figures['requests']}"))
    return rows


#: The transports the platform phases can run over (``--transports``).
TRANSPORTS = ("plaintext", "tls", "settings")


def transport_security(transport: str, var_dir: Path) -> TransportSecurity | None:
    """plaintext: None; tls: mutual TLS made for the run; settings: the UR_GRPC_TLS_* settings."""
    if transport == "tls":
        return throwaway_tls(var_dir / "tls")
    if transport == "settings":
        return platform_security()
    return None


@dataclass(frozen=True)
class PlatformRun:
    """What one run of the platform phases needs besides the command line."""

    bootstrap: str
    kafka_security: kafka_io.KafkaSecurity
    prefix: str  # the run's topics
    security: TransportSecurity | None
    members: list[Member]
    seed: Path
    var_dir: Path


def platform_phases(args: argparse.Namespace, run: PlatformRun, console: Console, *,
                    kafka_ceilings: bool) -> dict[str, Any]:
    """Phases 1-3 over one transport: the platform started on fresh databases and topics, measured,
    stopped. ``kafka_ceilings``: measure Kafka's raw rates too (they do not depend on the gRPC transport)."""
    security = run.security
    transport = "plaintext" if security is None else "mutual TLS" if security.require_client_cert else "TLS"
    urls = fresh_databases(pg_admin_url(), args.db_prefix)
    # Ports as for `make run`: the services' listen settings (port 0: any free one, reported).
    ports = {s: int(settings.get(f"UR_{s.upper()}_GRPC_LISTEN").rpartition(":")[2]) for s in settings.SERVICES}
    platform = Platform(var_dir=run.var_dir, kafka_bootstrap=run.bootstrap, topic_prefix=run.prefix,
                        database_urls=urls, members_seed=run.seed, ports=ports, security=security,
                        kafka_security=run.kafka_security,
                        extra_env={"UR_LOG_LEVEL": "WARNING", "UR_GRPC_MAX_WORKERS": str(args.grpc_workers),
                                   "UR_INTAKE_RATE_PER_S": "0"})
    results: dict[str, Any] = {"transport": transport}
    console.print(f"[bold]make bench[/bold]: PostgreSQL, Kafka {run.bootstrap}, topics {run.prefix}.*, "
                  f"{len(run.members)} eligible members, gRPC over {transport}")
    members = run.members
    try:
        platform.start()
        platform.wait_healthy(timeout_s=120)
        pids = {name: proc.pid for name, proc in platform.procs.items()}
        broker = broker_pid()
        if broker:
            pids["kafka"] = broker
        pids["bench-client"] = os.getpid()
        tracker = Tracker(run.bootstrap, run.prefix, run.kafka_security)
        tracker.start()
        channel = platform.channel("intake")
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        tag = uuid.uuid4().hex[:6]
        # warm-up: connections, JIT-free but caches and pools
        warm = [make_request(i, members, f"warm{tag}") for i in range(200)]
        started, _ = submit_all(stub, warm, args.concurrency, console, "warm-up")
        wait_settled(tracker, list(started), 60, console, "warm-up settling")

        # phase 1: throughput
        requests = [make_request(i, members, tag) for i in range(args.requests)]
        meter = CpuMeter(pids)
        spies = start_profiles(pids, 20, run.var_dir) if args.profile else []
        t0 = time.monotonic()
        started, errors = submit_all(stub, requests, args.concurrency, console, "phase 1: SubmitRequest")
        submit_wall = time.monotonic() - t0
        wait_settled(tracker, list(started), 300, console, "phase 1: settled end to end")
        settled = [rid for rid in started if rid in tracker.settled_at]
        end = max((tracker.settled_at[r] for r in settled), default=t0)
        lat = [(tracker.authorized_at[r] - started[r]) * 1000 for r in started if r in tracker.authorized_at]
        results["throughput"] = {
            "requests": len(requests), "errors": errors, "settled": len(settled),
            "submit_per_s": round(len(started) / submit_wall, 1),
            "end_to_end_per_s": round(len(settled) / (end - t0), 1) if end > t0 else 0.0,
            "authorized": len(lat),
            "submit_to_authorization_ms": {"p50": round(percentile(lat, 50), 1),
                                           "p95": round(percentile(lat, 95), 1),
                                           "p99": round(percentile(lat, 99), 1)},
            "cpu_seconds": meter.read(),
        }
        for spy in spies:
            spy.wait(60)
        if spies:
            results["profiles"] = {name: summarize_profile(run.var_dir / f"{name}.folded")
                                   for name in ("intake", "review", "authorization")
                                   if (run.var_dir / f"{name}.folded").exists()}
            missed = [name for name in ("intake", "review", "authorization") if name not in results["profiles"]]
            if missed:  # py-spy 0.3-0.4 panics on intake's asyncio process: say so rather than leave it out
                console.print(f"[yellow]py-spy could not sample {', '.join(missed)} (see README, make bench)[/yellow]")

        # phase 2: latency at an offered rate
        count = int(args.rate * args.rate_seconds)
        paced = [make_request(i, members, f"rate{tag}") for i in range(args.requests, args.requests + count)]
        meter = CpuMeter(pids)
        started, errors = submit_all(stub, paced, max(args.concurrency, 64), console,
                                     f"phase 2: {args.rate:.0f} requests/s offered", rate=args.rate)
        wait_settled(tracker, list(started), 120, console, "phase 2: settled end to end")
        lat = [(tracker.authorized_at[r] - started[r]) * 1000 for r in started if r in tracker.authorized_at]
        results["latency_at_rate"] = {
            "offered_per_s": args.rate, "requests": count, "errors": errors, "authorized": len(lat),
            "submit_to_authorization_ms": {"p50": round(percentile(lat, 50), 1),
                                           "p95": round(percentile(lat, 95), 1),
                                           "p99": round(percentile(lat, 99), 1),
                                           "mean": round(statistics.fmean(lat), 1) if lat else None},
            "cpu_seconds": meter.read(),
        }
        tracker.stop()
        channel.close()

        if not args.skip_ceilings:
            ceilings: dict[str, float] = {}
            ceilings.update(ceiling_grpc(platform.target("review"), 20000, args.concurrency, console, security))
            if kafka_ceilings:
                ceilings.update(ceiling_kafka(run.bootstrap, run.prefix, args.ceiling_count, console,
                                              run.kafka_security))
            results["ceilings"] = ceilings
    finally:
        platform.stop()
        try:
            deleted = platform.delete_topics(ceiling_topic(run.prefix))
            console.print(f"deleted the run's {len(deleted)} topics ({run.prefix}.*)")
        except (KafkaError, OSError) as exc:  # the broker gone: the bench's figures still stand
            console.print(f"[red]could not delete the run's topics ({run.prefix}.*): {exc}[/red]")
    return results


def ceiling_ratios(throughput: dict[str, Any], ceilings: dict[str, float]) -> dict[str, float]:
    """The platform's rates against its parts' raw ones. Each request produces three events (submitted,
    determination, authorization) and is consumed four times (review, authorization, intake twice)."""
    ratios = {"submit_vs_grpc_unary": round(throughput["submit_per_s"] / ceilings["grpc_unary_per_s"], 3)}
    if "kafka_produce_per_s" in ceilings:
        ratios["events_produced_vs_kafka_produce"] = round(
            3 * throughput["end_to_end_per_s"] / ceilings["kafka_produce_per_s"], 3)
        ratios["events_consumed_vs_kafka_consume"] = round(
            4 * throughput["end_to_end_per_s"] / ceilings["kafka_consume_per_s"], 3)
    return ratios


def compare_runs(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each run's headline figures, and each against the first's (1.0: as fast)."""
    names = list(runs)
    base = runs[names[0]]["throughput"]
    compared: dict[str, dict[str, Any]] = {}
    for name in names:
        tp = runs[name]["throughput"]
        compared[name] = {
            "transport": runs[name]["transport"], "submit_per_s": tp["submit_per_s"],
            "end_to_end_per_s": tp["end_to_end_per_s"],
            "submit_to_authorization_p50_ms": tp["submit_to_authorization_ms"]["p50"],
            "end_to_end_vs_first": round(tp["end_to_end_per_s"] / base["end_to_end_per_s"], 3)
            if base["end_to_end_per_s"] else None,
            "grpc_unary_per_s": runs[name].get("ceilings", {}).get("grpc_unary_per_s"),
        }
    return compared


def transport_rows(results: dict[str, Any]) -> list[tuple[str, Any]]:
    """Each transport's headline figures, next to each other (``transports_compared``)."""
    rows: list[tuple[str, Any]] = []
    for run in results.get("transports_compared", {}).values():
        rows.append((f"{run['transport']}: SubmitRequest / end-to-end (req/s), p50 (ms)",
                     f"{run['submit_per_s']} / {run['end_to_end_per_s']}, {run['submit_to_authorization_p50_ms']}"))
        rows.append((f"{run['transport']}: end-to-end vs the first run; gRPC unary ceiling (req/s)",
                     f"{run['end_to_end_vs_first']}; {run['grpc_unary_per_s']}"))
    return rows


def render_profiles(results: dict[str, Any], console: Console) -> None:
    profiles = {f"{service} ({name})": profile for name, run in results.get("runs", {}).items()
                for service, profile in run.get("profiles", {}).items()}
    for service, profile in profiles.items():
        console.print(f"[bold]{service}[/bold]: {profile['samples']} busy samples; self time by function:")
        for frame, pct in profile["self_pct"]:
            console.print(f"  {pct:5.1f} %  {frame}")
        console.print("  inclusive, our code:")
        for frame, pct in profile["inclusive_ours_pct"]:
            console.print(f"  {pct:5.1f} %  {frame}")


def render(results: dict[str, Any], console: Console) -> None:
    table = Table(title="make bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    tp = results.get("throughput", {})
    lr = results.get("latency_at_rate", {})
    rows: list[tuple[str, Any]] = [
        ("gRPC transport", results.get("transport")),
        ("phase 1 requests / errors", f"{tp.get('requests')} / {tp.get('errors')}"),
        ("SubmitRequest rate (req/s)", tp.get("submit_per_s")),
        ("end-to-end throughput (req/s)", tp.get("end_to_end_per_s")),
        ("phase 1 submit→authorization p50/p95/p99 (ms)",
         "/".join(str(v) for v in tp.get("submit_to_authorization_ms", {}).values())),
        (f"at {lr.get('offered_per_s')} req/s offered: p50/p95/p99 (ms)",
         "/".join(str(lr.get("submit_to_authorization_ms", {}).get(k)) for k in ("p50", "p95", "p99"))),
    ]
    for name, used in (("phase 1", tp.get("cpu_seconds", {})), ("phase 2", lr.get("cpu_seconds", {}))):
        rows.append((f"{name} CPU seconds by process", ", ".join(f"{k} {v}" for k, v in used.items())))
    rows.extend(transport_rows(results))
    for key, value in results.get("ceilings", {}).items():
        rows.append((f"ceiling: {key}", value))
    for key, value in results.get("ratios", {}).items():
        rows.append((f"ratio: {key}", value))
    queue = results.get("queue")
    if queue:
        claim = queue["claim_next_ms"]
        rows.append((f"queue: claim-next at {queue['open_tasks']:,} open tasks p50/p95/max of "
                     f"{queue['claims']} (ms; target < {queue['target_ms']:g})",
                     f"{claim['p50']}/{claim['p95']}/{claim['max']}"))
        if queue.get("first_claim_ms") is not None:
            rows.append((f"queue: a fresh process's first claim (of {queue['warm_up_claims']} untimed) (ms)",
                         queue["first_claim_ms"]))
        rows.append(("queue: claimable query in PostgreSQL (ms)", queue["claimable_query_db_ms"]))
    pages = results.get("workbench")
    if pages:
        rows.append((f"workbench: queue page p50/p95 at {pages['open_tasks']:,} open tasks (ms; target p95 < "
                     f"{pages['targets']['queue_page_p95_ms']})",
                     f"{pages['queue_page']['p50_ms']}/{pages['queue_page']['p95_ms']}"))
        rows.append((f"workbench: task page p50/p95 (ms; target p95 < {pages['targets']['task_page_p95_ms']})",
                     f"{pages['task_page']['p50_ms']}/{pages['task_page']['p95_ms']}"))
    rows.extend(fhir_rows(results.get("fhir")))
    rules = results.get("rule_evaluations")
    if rules:
        from services.cli.bench_rules import report_rows
        rows.extend((f"rules: {name}", value) for name, value in report_rows(rules))
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if rules:
        console.print(f"rules: raw = {rules['raw_measures']}")
    render_profiles(results, console)

if __name__ == "__main__":
    # SIGTERM or SIGHUP (timeout, a closed terminal) stop the bench like Ctrl-C: its platform's
    # `finally` stops the services.
    with stop_on_signals():
        try:
            sys.exit(main())
        except Stopped as stopped:
            print(f"bench: {stopped}; its services were stopped", file=sys.stderr)
            sys.exit(128 + stopped.signum)
