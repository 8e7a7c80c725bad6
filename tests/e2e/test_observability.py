"""Observability end to end: the services and the workbench as processes, exporting their spans to a
tiny OTLP/HTTP collector run by this test, with the sample members of `make run`.

* One request's trace holds spans of intake, review and authorization, linked across Kafka: each
  service's CONSUMER span is the child of the PRODUCER span of the service that wrote the event.
* Every process's /metrics moves while the sample workload goes through intake and reviewers act
  (over gRPC, the scripted shift of `make run`, and through the workbench's pages).
* No log line of any process holds a member id, a date of birth, a diagnosis code, or a name written
  into a case note or a reviewer's note; every line is JSON, and lines logged inside a span carry its
  trace id.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.cli import scripted_review, workload
from services.cli.platform import Platform
from tests.conftest import REPO
from tests.e2e.conftest import Clients
from tests.e2e.test_workbench import TOKENS, Reviewer
from tests.factories import lumbar_mri
from tests.polling import wait_until
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e

SAMPLE = REPO / "deploy" / "sample"
#: A member of the sample population (deploy/sample/members.yaml) the trace test submits for.
TRACED_MEMBER = "MA100001"
#: A patient's name as a case manager and a physician might write it into free text.
PATIENT_NAME = "Rosalind Quintero-Haskell"
PROCESSES = ("intake", "review", "authorization", "workbench")


# -- a collector that keeps what it is sent ------------------------------------------------------

@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str


class Collector:
    """OTLP/HTTP traces endpoint (protobuf), keeping every span it receives."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.receive(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1/traces"

    def receive(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        found: list[Span] = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                found.extend(Span(attributes.get("service.name", ""), s.name, s.kind, s.trace_id.hex(),
                                  s.span_id.hex(), s.parent_span_id.hex()) for s in scope.spans)
        with self.lock:
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[str], str], kafka_bootstrap: str,
             collector: Collector) -> Iterator[Platform]:
    """The platform with the sample members and reviewers, tracing into ``collector``, metrics every
    second; the workbench in front of it."""
    running = Platform(
        var_dir=tmp_path_factory.mktemp("observed"), kafka_bootstrap=kafka_bootstrap,
        topic_prefix=new_topic_prefix(),
        database_urls={s: make_database(s) for s in ("intake", "review", "authorization")},
        ports={s: 0 for s in ("intake", "review", "authorization")},
        extra_env={"UR_LOG_LEVEL": "INFO", "UR_TOPIC_PARTITIONS": "3", "UR_METRICS_INTERVAL_S": "1",
                   "UR_INTAKE_RATE_PER_S": "0",  # one submitter polling faster than a caller may
                   "UR_OTLP_TRACES_ENDPOINT": collector.endpoint,
                   # The SDK's batch processor exports every 5 s by default; sooner here.
                   "OTEL_BSP_SCHEDULE_DELAY": "200"})
    try:
        running.start()
        running.wait_healthy(timeout_s=120)
        running.start_workbench(port=0)
    except RuntimeError:
        running.stop()
        raise
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clients(platform: Platform) -> Iterator[Clients]:
    c = Clients(platform)
    yield c
    c.close()


def scrape(platform: Platform, process: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the process's /metrics, by (name, labels)."""
    with urllib.request.urlopen(platform.metrics_url(process), timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


# -- 1. one request, one trace -------------------------------------------------------------------

def test_a_trace_follows_one_request_through_intake_review_and_authorization(
        platform: Platform, clients: Clients, collector: Collector) -> None:
    submitted = clients.intake.SubmitRequest(lumbar_mri(member_id=TRACED_MEMBER, state="CA"), timeout=10)
    view = clients.settle(submitted.request.request_id)
    assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE, view  # approved by criteria, authorized

    def root() -> Span | None:
        return next((s for s in list(collector.spans) if s.service == "ur-intake" and s.kind == SERVER
                     and s.name.endswith("/SubmitRequest") and not s.parent_id), None)

    submit = wait_until(root, 30, what="intake's SubmitRequest span", until=lambda s: s is not None)
    assert submit is not None

    def whole() -> list[Span]:
        return collector.trace(submit.trace_id)

    hops = (("ur-review", "request-submitted"), ("ur-authorization", "determination-made"),
            ("ur-intake", "authorizations-issued"))

    def complete(spans: list[Span]) -> bool:
        # Each process exports its spans in its own batches: wait for every hop's consumer span and
        # authorization's answer to the duplicate check, not just the last hop's.
        return all(any(s.service == service and s.kind == CONSUMER and part in s.name for s in spans)
                   for service, part in hops) and any(
            s.service == "ur-authorization" and s.kind == SERVER and s.name.endswith("/FindOverlappingAuthorizations")
            for s in spans)

    spans = wait_until(whole, 30, what="every hop of the trace", until=complete)
    by_id = {s.span_id: s for s in spans}
    assert {s.service for s in spans} >= {"ur-intake", "ur-review", "ur-authorization"}

    def consumed(service: str, topic_part: str) -> Span:
        return next(s for s in spans if s.service == service and s.kind == CONSUMER and topic_part in s.name)

    # Each hop across Kafka: the consumer's span is the child of the producer's, in another service.
    for service, topic_part, producer in (("ur-review", "request-submitted", "ur-intake"),
                                          ("ur-authorization", "determination-made", "ur-review"),
                                          ("ur-intake", "authorizations-issued", "ur-authorization")):
        hop = consumed(service, topic_part)
        parent = by_id[hop.parent_id]
        assert (parent.service, parent.kind) == (producer, PRODUCER), (hop, parent)
        assert parent.name.startswith("create ")
        assert topic_part in parent.name
    # Review's duplicate check reached authorization over gRPC within the same trace.
    served = [s for s in spans if s.service == "ur-authorization" and s.kind == SERVER]
    assert any(s.name.endswith("/FindOverlappingAuthorizations") and by_id[s.parent_id].service == "ur-review"
               for s in served)
    # And intake's log line about the request carries the trace id.
    line = wait_until(lambda: [ln for ln in platform.log_path("intake").read_text().splitlines()
                               if submitted.request.request_id in ln and "recorded" in ln], 10,
                      what="intake's log line of the request", until=bool)[0]
    assert json.loads(line)["trace_id"] == submit.trace_id


SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # opentelemetry.proto Span.SpanKind


# -- 2. the counters move ------------------------------------------------------------------------

def test_every_process_metrics_move_with_the_sample_workload_and_reviewers(platform: Platform) -> None:
    before = {p: scrape(platform, p) for p in PROCESSES}
    quiet = Console(file=io.StringIO())
    summary = workload.run_workload(platform.target("intake"), workload.load_workload(), concurrency=4,
                                    console=quiet, token=platform.tokens["intake"])
    assert summary.submitted > 0
    scripted_review.run_shift(platform.target("review"), quiet, nurse_tasks=4, physician_tasks=2,
                              service_token=platform.tokens["review"])
    browse_the_workbench(platform)

    def moved() -> dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
        return {p: scrape(platform, p) for p in PROCESSES}

    def all_moved(now: dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]) -> bool:
        return not stalled(before, now)

    after = wait_until(moved, 30, what="every process's counters to move", until=all_moved)
    assert not stalled(before, after)
    review = after["review"]
    assert total(review, "ur_review_queue_depth") > 0  # lines wait for people
    assert total(review, "ur_review_time_to_decision_seconds_count", urgency="standard") > 0
    # Everything published: the backlog gauge is sampled, so wait for a sample taken after the relay
    # caught up rather than reading the one scraped with the counters.
    wait_until(lambda: total(scrape(platform, "authorization"), "ur_outbox_backlog"), 30,
               what="authorization's ur_outbox_backlog gauge to fall to 0", until=lambda backlog: backlog == 0)
    assert any(n == "ur_consumer_lag" for n, _ in after["intake"])


def stalled(before: dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]],
            after: dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]) -> list[str]:
    """The counters that should have moved and have not ("process: name{labels}")."""
    expected = {
        "intake": [("grpc_server_handled_total", {"grpc_method": "SubmitRequest", "grpc_code": "OK"}),
                   ("grpc_server_handling_seconds_count", {"grpc_method": "SubmitRequest"}),
                   ("ur_consumer_records_total", {"result": "applied"}),
                   ("ur_outbox_published_total", {})],
        "review": [("ur_review_decisions_total", {"decider": "software"}),
                   ("ur_review_decisions_total", {"decider": "software", "outcome": "certified_in_total"}),
                   ("ur_review_decisions_total", {"decider": "nurse"}),
                   ("ur_review_decisions_total", {"decider": "physician"}),
                   ("grpc_server_handled_total", {"grpc_method": "ClaimNextTask", "grpc_code": "OK"}),
                   ("ur_consumer_records_total", {"result": "applied"}),
                   ("ur_outbox_published_total", {})],
        "authorization": [("grpc_server_handled_total", {"grpc_method": "FindOverlappingAuthorizations"}),
                          ("ur_consumer_records_total", {"result": "applied"}),
                          ("ur_outbox_published_total", {})],
        "workbench": [("ur_workbench_http_requests_total", {"route": "/tasks/{task_id}", "status": "200"}),
                      ("ur_workbench_http_requests_total", {"route": "/members/{member_id}", "status": "200"}),
                      ("ur_workbench_http_request_duration_seconds_count", {"route": "/queue"})],
    }
    return [f"{process}: {name}{labels}" for process, wanted in expected.items() for name, labels in wanted
            if total(after[process], name, **labels) <= total(before[process], name, **labels)]


def browse_the_workbench(platform: Platform) -> None:
    """A nurse opens the queue and a task; a case manager opens a member and writes a note naming
    the patient; a physician denies a referred line with a note naming the patient."""
    url = platform.workbench_url()
    with Reviewer(url, TOKENS["nurse"]) as nurse:
        queue = nurse.http.get("/queue")
        assert queue.status_code == 200
        task_id = re.search(r'href="/tasks/([0-9a-f-]{36})"', queue.text)
        assert task_id, "the nurse's queue lists no task"
        assert nurse.http.get(f"/tasks/{task_id.group(1)}").status_code == 200
    with Reviewer(url, TOKENS["case-manager"]) as manager:
        assert manager.http.get(f"/members/{TRACED_MEMBER}").status_code == 200
        noted = manager.post(f"/members/{TRACED_MEMBER}/notes", text=f"Spoke with {PATIENT_NAME} about the MRI.",
                             amends="")
        assert noted.status_code in (200, 303), noted.text
    physician_denies_naming_the_patient(platform)


def physician_denies_naming_the_patient(platform: Platform) -> None:
    """The next task a physician may take (if any is left) denied, with the patient named in the reason."""
    metadata = (("authorization", f"Bearer {TOKENS['physician']}"),)
    clients = Clients(platform)
    try:
        try:
            task = clients.review.ClaimNextTask(review_pb2.ClaimNextTaskRequest(), metadata=metadata, timeout=10).task
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return
            raise
        clients.review.DecideTask(review_pb2.DecideTaskRequest(
            task_id=task.task.task_id,
            deny=review_pb2.DecideTaskRequest.Deny(reason=f"{PATIENT_NAME} has not tried conservative therapy",
                                                   criterion="conservative therapy first")),
            metadata=metadata, timeout=10)
    finally:
        clients.close()


# -- 3. no patient data in any log line ----------------------------------------------------------

def test_no_log_line_of_any_process_holds_patient_data(platform: Platform) -> None:
    submitted = workload.load_workload()
    members = {m["member_id"]: m for m in yaml.safe_load((SAMPLE / "members.yaml").read_text())["members"]}
    member_ids = {r.member_id for r in submitted} | {TRACED_MEMBER}
    births = {str(members[m]["birth_date"]) for m in member_ids if m in members}
    diagnoses = {d.code for r in submitted for d in r.diagnoses}
    forbidden = _patterns(member_ids, births, diagnoses)
    found: list[str] = []
    traced: set[str] = set()
    for process in PROCESSES:
        for number, line in enumerate(Path(platform.log_path(process)).read_text(errors="replace").splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                found.append(f"{process}.log:{number}: not JSON: {line[:200]}")
                continue
            if "trace_id" in entry:
                traced.add(process)
            for what, pattern in forbidden:
                if pattern.search(line):
                    found.append(f"{process}.log:{number}: {what}: {line[:300]}")
    assert not found, "\n".join(found[:40])
    assert traced >= {"intake", "review", "authorization"}


def _patterns(member_ids: set[str], births: set[str], diagnoses: set[str]) -> list[tuple[str, re.Pattern[str]]]:
    def word(text: str) -> re.Pattern[str]:
        return re.compile(rf"(?<![\w.-]){re.escape(text)}(?![\w-])")

    patterns = [(f"member id {m}", word(m)) for m in member_ids]
    for birth in births:  # as ISO, X12 (CCYYMMDD) and US dates
        year, month, day = birth.split("-")
        patterns += [(f"date of birth {birth}", word(text)) for text in (birth, f"{year}{month}{day}",
                                                                         f"{month}/{day}/{year}")]
    for code in diagnoses:
        patterns += [(f"diagnosis {code}", word(code)), (f"diagnosis {code}", word(code.replace(".", "")))]
    patterns += [(f"name {part}", re.compile(re.escape(part))) for part in PATIENT_NAME.split()]
    return patterns
