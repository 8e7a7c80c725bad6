"""The FHIR door under load: ``Claim/$submit`` at an offered rate (default 100 requests/s), next to
intake's gRPC ``SubmitRequest`` at the same rate with the same wait, on the platform it starts on fresh
PostgreSQL databases (intake, review, authorization and the door's own).

Both doors get the same requests (services/cli/bench.py ``make_request``: a lumbar spine MRI, four in
five meeting criteria, one in five referred to a nurse); the FHIR ones as PAS Bundles
(services/cli/pas_bundles.py). Each call is timed from send to answer: for gRPC, SubmitRequest with
``wait_ms`` as the door sets it (UR_FHIR_WAIT_MS); for FHIR, the POST with its bearer token (from
``[base]/auth/token``) until the PAS response Bundle is read. A call still waiting for a person is
answered pended (A4) by both once the determination says so.

    python -m services.cli.bench_fhir [--rate 100] [--seconds 20] [--json FILE]

``make bench`` runs it in a process of its own (its own platform) and prints its p99s next to each other.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli.bench import (
    eligible_members,
    fresh_databases,
    make_request,
    percentile,
    pg_admin_url,
    write_bench_members,
)
from services.cli.pas_bundles import pas_bundle
from services.cli.platform import REPO, Platform, Stopped, platform_security, stop_on_signals
from services.common import kafka_io
from services.intake.interop.answers import line_answers
from services.intake.interop.pas.response import action_codes

WAIT_MS = 13_000
#: The submitter the bench sends as (deploy/sample/credentials.dev.yaml).
CLIENT_ID, CLIENT_SECRET = "sample-clinic", "dev-only-token-sample-clinic"
DB_SERVICES = ("intake", "review", "authorization", "fhir")

Call = Callable[[], str]


def paced(calls: list[Call], rate: float, concurrency: int) -> list[tuple[float, str]]:
    """Start ``calls`` at ``rate`` a second (open loop: a slow answer does not slow the offer), up to
    ``concurrency`` at once; each call's (seconds from start to answer, outcome)."""
    results: list[tuple[float, str]] = []
    lock = threading.Lock()

    def timed(call: Call, due: float) -> None:
        began = time.perf_counter()
        try:
            outcome = call()
        except Exception as exc:  # noqa: BLE001 - a failed call is a measured outcome, not a crash
            outcome = f"error: {type(exc).__name__}"
        elapsed = time.perf_counter() - max(began, due)
        with lock:
            results.append((elapsed, outcome))

    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        start = time.perf_counter()
        pending = []
        for i, call in enumerate(calls):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pending.append(pool.submit(timed, call, due))
        for f in pending:
            f.result()
    return results


def summary(results: list[tuple[float, str]]) -> dict[str, Any]:
    latencies = [r[0] * 1000 for r in results if not r[1].startswith(("error", "HTTP"))]
    outcomes: dict[str, int] = {}
    for _latency, outcome in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"requests": len(results), "answered": len(latencies), "outcomes": dict(sorted(outcomes.items())),
            "ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                   "p99": round(percentile(latencies, 99), 1),
                   "max": round(max(latencies), 1) if latencies else None}}


class FhirClient:
    """One keep-alive HTTP connection per thread to the door."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.local = threading.local()
        self.token = ""

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return conn

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self._connection()
        try:
            conn.request(method, self.path + path, body=body, headers=headers)
            reply = conn.getresponse()
            return reply.status, reply.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise

    def authenticate(self) -> None:
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                       "client_secret": CLIENT_SECRET}).encode()
        status, answer = self.request("POST", "/auth/token", body,
                                      {"content-type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise RuntimeError(f"the door refused the bench's client credentials: {status} {answer[:200]!r}")
        self.token = str(json.loads(answer)["access_token"])

    def submit(self, bundle: dict[str, Any]) -> str:
        headers = {"content-type": "application/fhir+json", "authorization": f"Bearer {self.token}"}
        status, answer = self.request("POST", "/Claim/$submit", json.dumps(bundle).encode(), headers)
        if status != 200:
            return f"HTTP {status}"
        codes = action_codes(json.loads(answer))
        return codes.get(1, "error response")


def _grpc_outcome(reply: intake_pb2.SubmitRequestResponse) -> str:
    answers = line_answers(reply.request)
    return answers[0].action if answers else intake_pb2.RequestStatus.Name(reply.request.status)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    """The run's topics go with it: a shared broker must not grow with every bench run."""
    try:
        kafka_io.delete_topics_under(bootstrap, [prefix])
    except (KafkaError, OSError) as exc:
        print(f"bench_fhir: could not delete the run's topics ({exc})", file=sys.stderr)


def run(rate: float, seconds: float, var_dir: Path, db_prefix: str, concurrency: int = 256) -> dict[str, Any]:
    """Start the platform and the door, offer both doors ``rate`` requests/s for ``seconds``; the figures."""
    count = max(1, int(rate * seconds))
    seed = var_dir / "members.yaml"
    write_bench_members(seed, max(1000, 3 * count))
    members = eligible_members(seed)
    urls = fresh_databases(pg_admin_url(), db_prefix, DB_SERVICES)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    prefix = f"urbenchfhir{time.strftime('%H%M%S')}"
    platform = Platform(var_dir=var_dir, kafka_bootstrap=bootstrap, topic_prefix=prefix,
                        database_urls={s: urls[s] for s in DB_SERVICES[:3]}, members_seed=seed,
                        ports={s: 0 for s in DB_SERVICES[:3]}, security=platform_security(),
                        # One submitter offering a fixed rate: intake's per-caller limit is not what is measured.
                        extra_env={"UR_LOG_LEVEL": "WARNING", "UR_INTAKE_RATE_PER_S": "0"})
    run_id = uuid.uuid4().hex[:6]
    try:
        platform.start()
        platform.wait_healthy(timeout_s=120)
        base = platform.start_fhir(port=0, database_url=urls["fhir"], extra_env={"UR_FHIR_WAIT_MS": str(WAIT_MS)})
        client = FhirClient(base)
        client.authenticate()
        channel = platform.channel("intake")
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

        def grpc_call(i: int, label: str) -> Call:
            request = make_request(i, members, f"{label}{run_id}")
            request.wait_ms = WAIT_MS

            def call() -> str:
                return _grpc_outcome(stub.SubmitRequest(request, timeout=WAIT_MS / 1000 + 30))

            return call

        def fhir_call(i: int, label: str) -> Call:
            request = make_request(i, members, f"{label}{run_id}")
            bundle = pas_bundle(request, transaction=f"{label}-{run_id}-{i}", trace=f"T{i}", timestamp=now)

            def call() -> str:
                return client.submit(bundle)

            return call

        # Each door's requests are other members' (their dates would otherwise overlap: duplicates).
        warm = 50
        paced([grpc_call(i, "gw") for i in range(warm)], 50, 32)
        paced([fhir_call(warm + i, "fw") for i in range(warm)], 50, 32)
        offset = 2 * warm
        grpc_results = paced([grpc_call(offset + i, "g") for i in range(count)], rate, concurrency)
        fhir_results = paced([fhir_call(offset + count + i, "f") for i in range(count)], rate, concurrency)
        channel.close()
    finally:
        platform.stop()
        _delete_topics(bootstrap, prefix)
    result = {"offered_per_s": rate, "seconds": seconds, "wait_ms": WAIT_MS,
              "grpc_submit": summary(grpc_results), "fhir_submit": summary(fhir_results)}
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fhir", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="offered requests/s of each door (default 100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each door is offered it (default 20)")
    parser.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench-fhir")
    parser.add_argument("--db-prefix", default="ur_bench_fhir")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.rate, args.seconds, args.var_dir, args.db_prefix)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    with stop_on_signals():
        try:
            sys.exit(main())
        except Stopped as stopped:
            print(f"bench_fhir: {stopped}; its services were stopped", file=sys.stderr)
            sys.exit(128 + stopped.signum)
