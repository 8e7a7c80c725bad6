"""``make bench``: the platform end to end on PostgreSQL, next to the raw
ceilings of its parts on this machine, and issue 17's targets with what this run measured.

Phases (each printed with a progress bar, all figures also written to JSON):

1. throughput  - N requests (default 10,000) through SubmitRequest with C concurrent
                 callers; end-to-end rate = settled requests / wall time, where a request
                 is settled when its AuthorizationsIssued event (approved) or its
                 DeterminationMade event (queued for review) reaches a Kafka consumer in
                 this process. Also measured over this phase:
                 flatness - the settlements made while submissions were still coming in, in
                   time order; the first tenth's rate is its count over the time from the 1st
                   settlement to the (N/10)-th (so the pipeline's fill is left out), the last
                   tenth's likewise over the last N/10; the target is last / first >= 0.9 on
                   100,000 requests (--requests 100000). Settlements after the last submission
                   returned (a backlog drained with no new requests coming in, when
                   SubmitRequest outruns the pipeline) are left out and counted ("drained");
                 RSS      - each service's VmRSS (/proc/<pid>/status) at the start of the phase,
                   once its first tenth has settled (the connection pools, caches and Kafka
                   clients' buffers grown to their working size: about 6,000 requests grow
                   review and authorization by 10-15 % and then they stay level) and at the end;
                   the growth from the first tenth to the end is the target's (< 10 % on
                   100,000 requests), the growth from the start is shown too.
2. latency     - an open-loop offered load (default 500 requests/s for 20 s, issue 17's
                 p99 target's rate); latency is submit → authorization event, p50/p95/p99,
                 timed from when the request was offered (a request waiting for a free
                 caller thread counts that wait).
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

CPU seconds used by each process (intake, review, authorization, Kafka, PostgreSQL, the bench
client) in phases 1 and 2 are read from /proc, which says where the time goes, and divided by the
phase's requests: CPU milliseconds per request by process and in total (cpu_ms_per_request).

Phases 1-3 run once per gRPC transport (``--transports``, default ``plaintext,tls``): in plaintext,
then with every gRPC link over mutual TLS (throw-away certificates from tests/tls_material.py, made
in the bench's directory), each on fresh databases and topics, so that `make bench` quotes the
throughput with TLS on next to plaintext (``--tls``: the TLS run only). Either way every call is
authenticated (the sample's development credentials); the intake rate limit is off, as the bench is
one caller sending as fast as it can.

The bench's topics (its platform's, the ceiling's and those of --unrelated-partitions) are deleted when
it ends, however it ends: each run leaves the broker as it found it. With --unrelated-partitions N
(issue 17: 2,000) the first transport's phases 1-2 run a second time, after every transport has run
on the broker as it was: N partitions of topics nothing uses are created, as a broker shared with
other applications has, and the same phases run again on fresh databases and topics (no ceilings).
The cost of the cluster is (end-to-end rate without - with) / without (target: < 5 %); every metadata
request of the services and the bench names its topics.

At the end, after the main table, a table of issue 17's targets: each with what this run measured
and met, NOT met, or not measured (the run did not have the target's conditions: the p99 target at
an offered rate other than 500/s, the cluster one without --unrelated-partitions, the rules one with
--rule-evaluations 0, the throughput one on more than 2 cores). Flatness and RSS growth are targets
on 100,000 requests; a shorter run's are judged too, and say on how many requests they were measured.
The JSON has them under "targets".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field, replace
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


def cpu_ms_per_request(used: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request of each process of ``used`` (:meth:`CpuMeter.read`: seconds by
    process; its ``wall_s`` is left out) and of all of them ("total"); nothing without requests."""
    if requests <= 0:
        return {}
    seconds = {name: value for name, value in used.items() if name != "wall_s"}
    per = {name: round(1000 * value / requests, 2) for name, value in seconds.items()}
    per["total"] = round(1000 * sum(seconds.values()) / requests, 2)
    return per


def flatness(settled_at: Iterable[float], submitted_until: float | None = None) -> dict[str, Any] | None:
    """The rate of the first tenth of the settlements (monotonic seconds) against the last tenth's:
    each tenth's count over the time from its first settlement to its last, so that the first tenth
    leaves out the pipeline's fill. None with fewer than 20 settlements; a rate is None when its
    tenth settled within one instant (the tracker stamps a polled batch at once).
    ``submitted_until``: when the last submission returned. Only the settlements until then count:
    when SubmitRequest outruns the pipeline, what settles afterwards is a backlog drained with no new
    request coming in, faster than the platform runs under load; how many did is ``drained``."""
    every = sorted(settled_at)
    times = every if submitted_until is None else [t for t in every if t <= submitted_until]
    tenth = len(times) // 10
    if tenth < 2:
        return None
    first_span = times[tenth - 1] - times[0]
    last_span = times[-1] - times[-tenth]
    first = tenth / first_span if first_span > 0 else None
    last = tenth / last_span if last_span > 0 else None
    return {"requests": len(times), "tenth": tenth, "drained": len(every) - len(times),
            "first_tenth_per_s": round(first, 1) if first is not None else None,
            "last_tenth_per_s": round(last, 1) if last is not None else None,
            "last_vs_first": round(last / first, 3) if first is not None and last is not None else None}


def rss_kib(pid: int) -> int | None:
    """The resident set size (VmRSS) of process ``pid`` in KiB; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def rss_growth(start_kib: Mapping[str, int | None], end_kib: Mapping[str, int | None],
               warm_kib: Mapping[str, int | None] | None = None) -> dict[str, dict[str, float]]:
    """Each process's RSS at the start and the end (MiB) and its growth in percent; a process without
    both readings is left out. With ``warm_kib`` (the readings once the first tenth of the phase had
    settled: pools, caches and the clients' buffers grown to their working size), the growth is from
    then (``growth_pct``), and from the start too (``growth_from_start_pct``)."""
    grown: dict[str, dict[str, float]] = {}
    for name, start in start_kib.items():
        end = end_kib.get(name)
        if not start or end is None:
            continue
        grown[name] = {"start": round(start / 1024, 1), "end": round(end / 1024, 1),
                       "growth_pct": round(100 * (end - start) / start, 2)}
        warm = (warm_kib or {}).get(name)
        if warm:
            grown[name].update(warm=round(warm / 1024, 1), growth_pct=round(100 * (end - warm) / warm, 2),
                               growth_from_start_pct=grown[name]["growth_pct"])
    return grown


class RssSampler:
    """Reads the RSS of ``pids`` every ``every_s`` seconds on a thread of its own, so that a phase's
    RSS can be read at any moment of it afterwards (:meth:`at`)."""

    def __init__(self, pids: Mapping[str, int], every_s: float = 0.5) -> None:
        self._pids = dict(pids)
        self._every_s = every_s
        self.samples: list[tuple[float, dict[str, int | None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), {name: rss_kib(pid) for name, pid in self._pids.items()}))
            if self._stop.wait(self._every_s):
                return

    def at(self, moment: float) -> dict[str, int | None] | None:
        """The first reading taken at or after ``moment`` (monotonic), or None if none was."""
        return next((readings for taken, readings in self.samples if taken >= moment), None)


# -- phases ----------------------------------------------------------------------------------------

def submit_all(stub: intake_pb2_grpc.IntakeServiceStub, requests: list[intake_pb2.SubmitRequestRequest],
               concurrency: int, console: Console, label: str,
               rate: float | None = None) -> tuple[dict[str, float], int]:
    """Submits every request; returns request id → submit start time, and the error count. With
    ``rate`` (open loop) a request's start is when it was offered: a wait for a free caller thread,
    when the platform falls behind, counts in its latency."""
    started: dict[str, float] = {}
    errors = 0
    lock = threading.Lock()
    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool, progress(console) as bar:
        task = bar.add_task(label, total=len(requests))

        def one(request: intake_pb2.SubmitRequestRequest, offered: float) -> None:
            nonlocal errors
            t0 = offered if rate else time.monotonic()
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
            pending.append(pool.submit(one, request, time.monotonic()))
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


# -- issue 17's targets ----------------------------------------------------------------------------

TARGET_END_TO_END_PER_S = 1000.0
TARGET_CORES = 2
TARGET_P99_MS = 250.0
TARGET_P99_OFFERED_PER_S = 500.0
TARGET_RUN_REQUESTS = 100_000  # the run over which flatness and RSS growth are targets
TARGET_LAST_VS_FIRST = 0.9
TARGET_RSS_GROWTH_PCT = 10.0
TARGET_UNRELATED_PARTITIONS = 2000
TARGET_CLUSTER_COST_PCT = 5.0
TARGET_RULES_VS_RAW = 0.5

TARGET_TEXTS = {
    "throughput": "≥ 1,000 requests/s end to end on PostgreSQL, the whole platform and the bench client on 2 cores",
    "p99": "p99 submit → authorization ≤ 250 ms at 500 requests/s offered",
    "flatness": "flat as data grows: on 100,000 requests the last tenth's rate ≥ 90 % of the first tenth's",
    "rss": "every service's RSS grows < 10 % over a 100,000-request run",
    "cluster": "a broker that also carries 2,000 unrelated partitions costs < 5 % end to end",
    "topics": "bench topics deleted after each run",
    "rules": "criteria evaluation ≥ 50 % of raw durable-rules on the same lines",
}


def _target(key: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"target": TARGET_TEXTS[key], "measured": measured, "met": met}


def _on_requests(requests: int) -> str:
    """'on N requests', and the run the target is set on when this one is shorter."""
    shorter = f"; the target's run is {TARGET_RUN_REQUESTS:,}" if requests < TARGET_RUN_REQUESTS else ""
    return f"on {requests:,} requests{shorter}"


def _throughput_target(results: dict[str, Any]) -> dict[str, Any]:
    tp = results.get("throughput")
    if not tp:
        return _target("throughput", "not measured: no platform run", None)
    rate = tp["end_to_end_per_s"]
    cpus = results.get("machine", {}).get("cpus")
    measured = (f"{rate:,} req/s end to end ({tp['settled']:,} of {tp['requests']:,} settled, "
                f"{results.get('transport', '?')}, {cpus} CPUs)")
    if cpus is not None and cpus > TARGET_CORES:
        return _target("throughput", f"{measured}: not on {TARGET_CORES} cores", None)
    return _target("throughput", measured, rate >= TARGET_END_TO_END_PER_S)


def _p99_target(results: dict[str, Any]) -> dict[str, Any]:
    lr = results.get("latency_at_rate")
    if not lr:
        return _target("p99", "not measured: no platform run", None)
    p99 = lr["submit_to_authorization_ms"]["p99"]
    offered = lr["offered_per_s"]
    measured = f"p99 {p99} ms at {offered:g} req/s offered ({lr['authorized']:,} authorized of {lr['requests']:,})"
    if offered != TARGET_P99_OFFERED_PER_S:
        return _target("p99", f"{measured}: not measured at {TARGET_P99_OFFERED_PER_S:g} req/s", None)
    unsettled = lr["requests"] - lr.get("settled", lr["requests"] - lr["errors"])
    if unsettled > 0:  # never settled (or refused): later than any p99 the others give
        return _target("p99", f"{measured}; {unsettled:,} refused or not settled within the wait", False)
    return _target("p99", measured, lr["authorized"] > 0 and p99 <= TARGET_P99_MS)


def _flatness_target(results: dict[str, Any]) -> dict[str, Any]:
    flat = results.get("throughput", {}).get("flatness")
    if not flat or flat.get("last_vs_first") is None:
        return _target("flatness", "not measured: too few settlements, or a tenth settled at once", None)
    ratio = flat["last_vs_first"]
    measured = (f"last tenth {flat['last_tenth_per_s']:,} req/s vs first {flat['first_tenth_per_s']:,}: "
                f"{ratio} ({_on_requests(results['throughput'].get('requests', flat['requests']))}: "
                f"{flat['requests']:,} settled while submissions came in")
    drained = flat.get("drained")
    measured += f"; {drained:,} more drained after them)" if drained else ")"
    return _target("flatness", measured, ratio >= TARGET_LAST_VS_FIRST)


def _rss_text(name: str, v: Mapping[str, float]) -> str:
    if "warm" not in v:
        return f"{name} {v['start']} → {v['end']} MB ({v['growth_pct']:+} %)"
    return (f"{name} {v['start']} → {v['warm']} after the first tenth → {v['end']} MB ({v['growth_pct']:+} % after "
            f"the first tenth, {v['growth_from_start_pct']:+} % from the start)")


def _rss_target(results: dict[str, Any]) -> dict[str, Any]:
    tp = results.get("throughput", {})
    rss = tp.get("rss_mb")
    if not rss:
        return _target("rss", "not measured: no RSS readings", None)
    growth = ", ".join(_rss_text(name, v) for name, v in rss.items())
    missing = [name for name in settings.SERVICES if name not in rss]
    measured = f"{growth} ({_on_requests(tp['requests'])})"
    if missing:
        return _target("rss", f"{measured}; no reading for {', '.join(missing)}", False)
    return _target("rss", measured, all(v["growth_pct"] < TARGET_RSS_GROWTH_PCT for v in rss.values()))


def _cluster_target(results: dict[str, Any]) -> dict[str, Any]:
    cluster = results.get("cluster")
    if not cluster:
        return _target("cluster", f"not measured: run with --unrelated-partitions {TARGET_UNRELATED_PARTITIONS}",
                       None)
    partitions = cluster["unrelated_partitions"]
    cost = cluster["cost_pct"]
    measured = (f"{cluster['without_per_s']:,} req/s end to end without, {cluster['with_per_s']:,} with "
                f"{partitions:,} unrelated partitions: cost {cost} %")
    if partitions != TARGET_UNRELATED_PARTITIONS:
        measured += f" (the target's broker has {TARGET_UNRELATED_PARTITIONS:,})"
    if cost is None:
        return _target("cluster", f"{measured}: no rate without them", None)
    return _target("cluster", measured, cost < TARGET_CLUSTER_COST_PCT)


def _topics_target(results: dict[str, Any]) -> dict[str, Any]:
    cleanup = results.get("topics_deleted")
    if not cleanup:
        return _target("topics", "not measured: no platform run", None)
    measured = "; ".join(f"{run}: {n} deleted" if isinstance(n, int) else f"{run}: {n}" for run, n in cleanup.items())
    return _target("topics", measured, all(isinstance(n, int) for n in cleanup.values()))


def _rules_target(results: dict[str, Any]) -> dict[str, Any]:
    rules = results.get("rule_evaluations")
    if not rules or rules.get("ratio_vs_raw") is None:
        return _target("rules", "not measured: --rule-evaluations 0 (or no raw evaluations)", None)
    ratio = rules["ratio_vs_raw"]
    measured = (f"{rules['line_evals_per_s']:,} line evaluations/s vs {rules['raw_per_s']:,} raw durable-rules: "
                f"{ratio}")
    return _target("rules", measured, ratio >= TARGET_RULES_VS_RAW)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17's targets against this run's figures: each as {"target", "measured", "met"}, met None
    when the run did not have the target's conditions (the rate, the partitions, the cores) or skipped
    the phase that measures it."""
    return [check(results) for check in (_throughput_target, _p99_target, _flatness_target, _rss_target,
                                         _cluster_target, _topics_target, _rules_target)]


def render_targets(targets: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="issue 17 targets")
    table.add_column("target")
    table.add_column("measured")
    table.add_column("met")
    verdicts = {True: "[green]met[/green]", False: "[red]NOT met[/red]", None: "[dim]not measured[/dim]"}
    for target in targets:
        table.add_row(target["target"], target["measured"], verdicts[target["met"]])
    console.print(table)


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


def topics_cleaned(run: dict[str, Any]) -> int | str:
    """How many topics a platform run deleted when it ended, or why it could not."""
    deleted = run.get("topics_deleted")
    return deleted if isinstance(deleted, int) else f"error: {run.get('topics_delete_error')}"


def run_platforms(args: argparse.Namespace, transports: list[str], base: PlatformRun, console: Console,
                  results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Phases 1-3 over each transport in turn (topics ``<base.prefix><n>.*``); with --unrelated-partitions N,
    then N unrelated partitions created and the first transport's phases 1-2 run again, for
    ``results["cluster"]``. Every topic the bench made is deleted however it ends; ``results["topics_deleted"]``
    says how many, by run. Returns each transport's figures."""
    runs: dict[str, dict[str, Any]] = {}
    cleanup: dict[str, int | str] = {}
    unrelated: list[str] = []
    try:
        for n, transport in enumerate(transports):
            run = replace(base, prefix=f"{base.prefix}{n}", security=transport_security(transport, base.var_dir))
            runs[transport] = platform_phases(args, run, console, kafka_ceilings=n == 0)
            cleanup[transport] = topics_cleaned(runs[transport])
        if args.unrelated_partitions > 0:
            console.print(f"creating {args.unrelated_partitions:,} unrelated partitions, then {transports[0]} again...")
            unrelated = kafka_io.create_partitions(base.bootstrap, base.prefix, args.unrelated_partitions,
                                                   security=base.kafka_security)
            run = replace(base, prefix=f"{base.prefix}{len(transports)}",
                          security=transport_security(transports[0], base.var_dir))
            with_them = platform_phases(args, run, console, kafka_ceilings=False, ceilings=False)
            cleanup[f"{transports[0]} with unrelated partitions"] = topics_cleaned(with_them)
            results["cluster"] = cluster_cost(args.unrelated_partitions, runs[transports[0]], with_them)
    finally:
        if unrelated:
            try:
                cleanup["unrelated"] = len(kafka_io.delete_topics(base.bootstrap, unrelated,
                                                                   security=base.kafka_security))
            except (KafkaError, OSError) as exc:  # the broker gone: the bench's figures still stand
                console.print(f"[red]could not delete the unrelated topics ({base.prefix}.*): {exc}[/red]")
                cleanup["unrelated"] = f"error: {exc}"
        results["topics_deleted"] = cleanup
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", "10000")),
                        help="requests of the throughput phase (issue 17's flatness and RSS targets: 100000)")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "32")),
                        help="concurrent callers of the throughput phase")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RATE", "500")),
                        help="offered load of the latency phase, requests/s (default 500, the rate of issue 17's "
                             "p99 target; at another rate that target is reported as not measured)")
    parser.add_argument("--rate-seconds", type=float, default=float(os.environ.get("BENCH_RATE_SECONDS", "20")),
                        help="seconds of the latency phase")
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
                        help="after the runs, create this many partitions (topics of 100) that nothing uses, as "
                             "on a broker shared with other applications, and run the first transport's phases 1-2 "
                             "again: the end-to-end rates without and with them, and what they cost (issue 17: "
                             "2000 cost < 5 %%); deleted at the end with the bench's own topics")
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
    prefix = f"urbench{time.strftime('%H%M%S')}"
    base = PlatformRun(bootstrap=bootstrap, kafka_security=kafka_security, prefix=prefix, security=None,
                       members=members, seed=seed, var_dir=var_dir)
    runs = run_platforms(args, transports, base, console, results)
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
    results["targets"] = evaluate_targets(results)
    Path(args.output).write_text(json.dumps(results, indent=2, default=str))  # paths among the parameters
    render(results, console)
    render_targets(results["targets"], console)
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


@dataclass(frozen=True)
class Live:
    """The running platform as phases 1 and 2 use it."""

    stub: intake_pb2_grpc.IntakeServiceStub
    tracker: Tracker
    pids: dict[str, int]  # process name → pid: the services, Kafka, the bench client
    members: list[Member]
    tag: str  # the run's idempotency keys
    console: Console


def latencies_ms(tracker: Tracker, started: dict[str, float]) -> list[float]:
    """Submit → authorization event of the requests authorized, in milliseconds."""
    return [(tracker.authorized_at[r] - started[r]) * 1000 for r in started if r in tracker.authorized_at]


def throughput_phase(args: argparse.Namespace, live: Live) -> dict[str, Any]:
    """Phase 1: ``args.requests`` through SubmitRequest as fast as ``args.concurrency`` callers go, the
    rate end to end, its flatness, CPU per request and each service's RSS."""
    requests = [make_request(i, live.members, live.tag) for i in range(args.requests)]
    services = {name: pid for name, pid in live.pids.items() if name in settings.SERVICES}
    rss_start = {name: rss_kib(pid) for name, pid in services.items()}
    meter = CpuMeter(live.pids)
    t0 = time.monotonic()
    with RssSampler(services) as rss:
        started, errors = submit_all(live.stub, requests, args.concurrency, live.console, "phase 1: SubmitRequest")
        submit_wall = time.monotonic() - t0
        wait_settled(live.tracker, list(started), max(300.0, len(requests) / 50), live.console,
                     "phase 1: settled end to end")
    used = meter.read()
    rss_end = {name: rss_kib(pid) for name, pid in services.items()}
    settled_at = [live.tracker.settled_at[r] for r in started if r in live.tracker.settled_at]
    tenth = len(settled_at) // 10
    rss_warm = rss.at(sorted(settled_at)[tenth - 1]) if tenth else None
    end = max(settled_at, default=t0)
    lat = latencies_ms(live.tracker, started)
    return {
        "requests": len(requests), "errors": errors, "settled": len(settled_at),
        "submit_per_s": round(len(started) / submit_wall, 1),
        "end_to_end_per_s": round(len(settled_at) / (end - t0), 1) if end > t0 else 0.0,
        "authorized": len(lat),
        "submit_to_authorization_ms": {"p50": round(percentile(lat, 50), 1),
                                       "p95": round(percentile(lat, 95), 1),
                                       "p99": round(percentile(lat, 99), 1)},
        "cpu_seconds": used,
        "cpu_ms_per_request": cpu_ms_per_request(used, len(requests)),
        "flatness": flatness(settled_at, submitted_until=t0 + submit_wall),
        "rss_mb": rss_growth(rss_start, rss_end, rss_warm),
    }


def latency_phase(args: argparse.Namespace, live: Live) -> dict[str, Any]:
    """Phase 2: ``args.rate`` requests/s offered for ``args.rate_seconds``; submit → authorization."""
    count = int(args.rate * args.rate_seconds)
    paced = [make_request(i, live.members, f"rate{live.tag}") for i in range(args.requests, args.requests + count)]
    meter = CpuMeter(live.pids)
    started, errors = submit_all(live.stub, paced, max(args.concurrency, 64), live.console,
                                 f"phase 2: {args.rate:.0f} requests/s offered", rate=args.rate)
    # At 250/s settled, 10,000 requests need 40 s after the last is offered: the wait grows with the count.
    wait_settled(live.tracker, list(started), max(120.0, count / 50), live.console, "phase 2: settled end to end")
    used = meter.read()
    lat = latencies_ms(live.tracker, started)
    return {
        "offered_per_s": args.rate, "requests": count, "errors": errors,
        "settled": sum(1 for r in started if r in live.tracker.settled_at), "authorized": len(lat),
        "submit_to_authorization_ms": {"p50": round(percentile(lat, 50), 1),
                                       "p95": round(percentile(lat, 95), 1),
                                       "p99": round(percentile(lat, 99), 1),
                                       "mean": round(statistics.fmean(lat), 1) if lat else None},
        "cpu_seconds": used,
        "cpu_ms_per_request": cpu_ms_per_request(used, count),
    }


def platform_phases(args: argparse.Namespace, run: PlatformRun, console: Console, *,
                    kafka_ceilings: bool, ceilings: bool = True) -> dict[str, Any]:
    """Phases 1-3 over one transport: the platform started on fresh databases and topics, measured,
    stopped. ``kafka_ceilings``: measure Kafka's raw rates too (they do not depend on the gRPC transport);
    ``ceilings`` False: no phase 3 at all (nor with --skip-ceilings)."""
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
        live = Live(stub=intake_pb2_grpc.IntakeServiceStub(channel), tracker=tracker, pids=pids,
                    members=run.members, tag=uuid.uuid4().hex[:6], console=console)
        # warm-up: connections, JIT-free but caches and pools
        warm = [make_request(i, run.members, f"warm{live.tag}") for i in range(200)]
        started, _ = submit_all(live.stub, warm, args.concurrency, console, "warm-up")
        wait_settled(tracker, list(started), 60, console, "warm-up settling")

        spies = start_profiles(pids, 20, run.var_dir) if args.profile else []
        results["throughput"] = throughput_phase(args, live)
        for spy in spies:
            spy.wait(60)
        if spies:
            results["profiles"] = profiles_of(run.var_dir, console)
        results["latency_at_rate"] = latency_phase(args, live)
        tracker.stop()
        channel.close()

        if ceilings and not args.skip_ceilings:
            results["ceilings"] = ceiling_grpc(platform.target("review"), 20000, args.concurrency, console, security)
            if kafka_ceilings:
                results["ceilings"].update(ceiling_kafka(run.bootstrap, run.prefix, args.ceiling_count, console,
                                                         run.kafka_security))
    finally:
        platform.stop()
        try:
            deleted = platform.delete_topics(ceiling_topic(run.prefix))
            console.print(f"deleted the run's {len(deleted)} topics ({run.prefix}.*)")
            results["topics_deleted"] = len(deleted)
        except (KafkaError, OSError) as exc:  # the broker gone: the bench's figures still stand
            console.print(f"[red]could not delete the run's topics ({run.prefix}.*): {exc}[/red]")
            results["topics_delete_error"] = str(exc)
    return results


def profiles_of(var_dir: Path, console: Console) -> dict[str, Any]:
    """The services' py-spy profiles of phase 1, summarized; says which py-spy could not sample."""
    profiles = {name: summarize_profile(var_dir / f"{name}.folded") for name in ("intake", "review", "authorization")
                if (var_dir / f"{name}.folded").exists()}
    missed = [name for name in ("intake", "review", "authorization") if name not in profiles]
    if missed:  # py-spy 0.3-0.4 panics on intake's asyncio process: say so rather than leave it out
        console.print(f"[yellow]py-spy could not sample {', '.join(missed)} (see README, make bench)[/yellow]")
    return profiles


def cluster_cost(partitions: int, without: dict[str, Any], with_them: dict[str, Any]) -> dict[str, Any]:
    """The same phases without and with ``partitions`` unrelated partitions on the broker: the end-to-end
    rates and what the partitions cost, in percent of the rate without them (negative: faster with)."""
    before = without["throughput"]["end_to_end_per_s"]
    after = with_them["throughput"]["end_to_end_per_s"]
    return {"unrelated_partitions": partitions, "without_per_s": before, "with_per_s": after,
            "cost_pct": round(100 * (before - after) / before, 1) if before else None,
            "without_p99_at_rate_ms": without["latency_at_rate"]["submit_to_authorization_ms"]["p99"],
            "with_p99_at_rate_ms": with_them["latency_at_rate"]["submit_to_authorization_ms"]["p99"],
            "offered_per_s": with_them["latency_at_rate"]["offered_per_s"],
            "run_with": with_them}


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


def platform_rows(results: dict[str, Any]) -> list[tuple[str, Any]]:
    """Phases 1 and 2 of the first run: rates, latencies, flatness, RSS, CPU by process."""
    tp = results.get("throughput", {})
    lr = results.get("latency_at_rate", {})
    rows: list[tuple[str, Any]] = [
        ("gRPC transport", results.get("transport")),
        ("phase 1 requests / errors", f"{tp.get('requests')} / {tp.get('errors')}"),
        ("SubmitRequest rate (req/s)", tp.get("submit_per_s")),
        ("end-to-end throughput (req/s)", tp.get("end_to_end_per_s")),
        ("phase 1 submit→authorization p50/p95/p99 (ms)",
         "/".join(str(v) for v in tp.get("submit_to_authorization_ms", {}).values())),
        (f"at {lr.get('offered_per_s')} req/s offered: p50/p95/p99 (ms); settled",
         "/".join(str(lr.get("submit_to_authorization_ms", {}).get(k)) for k in ("p50", "p95", "p99"))
         + f"; {lr.get('settled')} of {lr.get('requests')}"),
    ]
    flat = tp.get("flatness")
    if flat:
        rows.append((f"phase 1 first / last tenth of the {flat['requests']:,} settled while submitting (req/s); "
                     "last / first; drained after the last submission",
                     f"{flat['first_tenth_per_s']} / {flat['last_tenth_per_s']}; {flat['last_vs_first']}; "
                     f"{flat.get('drained')}"))
    if tp.get("rss_mb"):
        rows.append(("phase 1 RSS start → after the first tenth → end (MB, growth) by service",
                     ", ".join(_rss_text(name, v) for name, v in tp["rss_mb"].items())))
    for name, phase in (("phase 1", tp), ("phase 2", lr)):
        rows.append((f"{name} CPU seconds by process",
                     ", ".join(f"{k} {v}" for k, v in phase.get("cpu_seconds", {}).items())))
        rows.append((f"{name} CPU ms per request by process",
                     ", ".join(f"{k} {v}" for k, v in phase.get("cpu_ms_per_request", {}).items())))
    return rows


def cluster_rows(cluster: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The first transport's rates without and with the unrelated partitions (``--unrelated-partitions``)."""
    if not cluster:
        return []
    partitions = f"{cluster['unrelated_partitions']:,}"
    return [(f"cluster: end to end without / with {partitions} unrelated partitions (req/s); cost",
             f"{cluster['without_per_s']} / {cluster['with_per_s']}; {cluster['cost_pct']} %"),
            (f"cluster: p99 at {cluster['offered_per_s']:g} req/s offered without / with them (ms)",
             f"{cluster['without_p99_at_rate_ms']} / {cluster['with_p99_at_rate_ms']}")]


def render(results: dict[str, Any], console: Console) -> None:
    table = Table(title="make bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = platform_rows(results)
    rows.extend(transport_rows(results))
    rows.extend(cluster_rows(results.get("cluster")))
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
