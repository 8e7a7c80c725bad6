"""Fuzzing every RPC of the three services, in process over real gRPC on PostgreSQL.

Per service, MESSAGES inputs: valid requests with a few fields mutated and messages filled at
random (tests/fuzzing.py: Unicode digits, control characters, NUL, huge and negative numbers, NaN,
impossible dates, repeated fields thousands long), with a valid, a wrong or no token (the servers
run their access control, services/common/access.py, with the sample credentials); then JUNK
request bodies of random or corrupted bytes that parse, and JUNK that do not (each of those sent by
a caller the method admits, so that it reaches the server's decoding step, and answered
INVALID_ARGUMENT there). Afterwards:

- no call got INTERNAL or UNKNOWN (or another code that means the server broke);
- nothing malformed is stored: every code column is printable ASCII, free text holds no control
  characters, every value fits its column, the protobuf payloads stored (requests, outbox events)
  hold no control characters, non-ASCII codes, non-finite numbers or impossible dates;
- nothing was half written (every recorded request or information has its event, and the reverse);
- the health service still says SERVING.

Deterministic: one seeded generator per service (SEED), calls issued in a fixed order, at most
IN_FLIGHT at a time. Bounded: a fixed number of inputs, each call with a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, LargeBinary, MetaData, String, Text, select
from ur.authorization.v1 import authorization_pb2
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.authorization import bootstrap as authorization_bootstrap
from services.authorization.adapters import tables as authorization_tables
from services.authorization.entrypoints.access import POLICY as AUTHORIZATION_POLICY
from services.common.access import AccessPolicy
from services.common.events import IncomingEvent
from services.common.grpc_server import MAX_MESSAGE_BYTES, RunningServer, create_server
from services.common.runtime import ServiceRuntime
from services.common.settings import AuthorizationSettings, IntakeSettings, ReviewSettings
from services.intake import bootstrap as intake_bootstrap
from services.intake.adapters import tables as intake_tables
from services.intake.entrypoints.access import POLICY as INTAKE_POLICY
from services.intake.entrypoints.mapping import to_domain
from services.review import bootstrap as review_bootstrap
from services.review.adapters import tables as review_tables
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import load_library
from services.review.bootstrap import DEFAULT_CRITERIA_DIR
from services.review.domain.criteria import PythonMatcher
from services.review.entrypoints.access import POLICY as REVIEW_POLICY
from tests.conftest import REPO
from tests.factories import VALID_NPI, fact, lumbar_mri, submitted_event
from tests.fakes.review import NoDuplicates
from tests.fuzzing import MessageFuzzer, parses
from tests.identity import (
    CLAIMS,
    CLEARINGHOUSE,
    CLINIC,
    CREDENTIALS,
    OPERATOR,
    REVIEW_SERVICE,
    WORKBENCH,
    scopes_of,
    token,
)

pytestmark = pytest.mark.integration

SEED = 20_261_110
MESSAGES = 10_000  # per service
JUNK = 2_000  # request bodies of random or corrupted bytes that parse, and as many that do not, per service
IN_FLIGHT = 16
CALL_TIMEOUT_S = 60.0
#: Codes that mean the server broke rather than refused.
BROKEN = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED,
                    grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
SAMPLE = REPO / "deploy" / "sample"
REVIEWERS = ("rn-alvarez", "rn-okafor", "adj-chen", "md-patel", "sup-kim", "cm-ross")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# -- the services under test ---------------------------------------------------------------------------


@dataclass
class Target:
    """One service served in process: how to call it and what it stored."""

    name: str
    service: ServiceDescriptor
    server: RunningServer
    channel: grpc.Channel
    engine: Engine
    metadata: MetaData
    #: method name → valid requests to mutate
    seeds: dict[str, list[Message]]
    #: ids the service knows, mixed into the random strings so that some calls find something
    known: list[str]
    #: Who calls it (principals of the sample credentials; the first ones most often)
    callers: tuple[str, ...]
    policy: AccessPolicy
    #: String columns of free text (Unicode allowed, control characters not); every other is a code
    free_text: frozenset[str] = frozenset()

    def methods(self) -> list[str]:
        return [m.name for m in self.service.methods]

    def call(self, method: str) -> grpc.UnaryUnaryMultiCallable[Message | bytes, Message]:
        """The RPC, taking a message or a request body of raw bytes."""
        descriptor = self.service.methods_by_name[method]
        response = GetMessageClass(descriptor.output_type)
        return self.channel.unary_unary(f"/{self.service.full_name}/{method}", request_serializer=_body,
                                        response_deserializer=response.FromString)

    def input_type(self, method: str) -> type[Message]:
        return GetMessageClass(self.service.methods_by_name[method].input_type)


def _body(request: Message | bytes) -> bytes:
    return request if isinstance(request, bytes) else request.SerializeToString()


def _serve(name: str, runtime: ServiceRuntime, metadata: MetaData, service: ServiceDescriptor,
           **rest: object) -> Target:
    """The service's servicer behind its own access control, as its runtime serves it."""
    server = create_server("127.0.0.1:0", runtime.registrations, interceptors=runtime.interceptors)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options)
    return Target(name, service, server, channel, runtime.engine, metadata, **rest)  # type: ignore[arg-type]


def _intake(url: str) -> Target:
    # No rate limit here: the limit is the access matrix's to test, and would refuse most of the fuzz.
    app = intake_bootstrap.build(IntakeSettings(database_url=url, topic_prefix="fz", credentials_file=CREDENTIALS,
                                                rate_per_s=0, members_seed=REPO / "tests" / "data" / "members.yaml"))
    submitted = [lumbar_mri(meets=meets) for meets in (True, False)]
    submitted[1].workers_comp.claim_number = "WC-FZ-0001"
    ids = [app.handlers.submit(to_domain(m), m, submitter=CLINIC).record.request_id for m in submitted]
    info = intake_pb2.SubmitAdditionalInformationRequest(
        request_id=ids[0], idempotency_key="fuzz-info", note="PT notes attached",
        clinical_facts=[fact("conservative_therapy_weeks", 7.0, "weeks"), fact("imaging_done", True),
                        types_pb2.ClinicalFact(name="therapy_start",
                                               date_value=types_pb2.Date(year=2026, month=11, day=2))])
    seeds: dict[str, list[Message]] = {
        "SubmitRequest": [*submitted, lumbar_mri(member_id="T-COM-0003")],
        "GetRequest": [intake_pb2.GetRequestRequest(request_id=i) for i in ids],
        "SubmitAdditionalInformation": [info],
        "ListMemberRequests": [intake_pb2.ListMemberRequestsRequest(member_id=m, limit=10)
                               for m in ("T-MA-0001", "T-COM-0003")],
        "ListClaimRequests": [intake_pb2.ListClaimRequestsRequest(claim_number="WC-FZ-0001", limit=10)],
        "CancelRequest": [intake_pb2.CancelRequestRequest(request_id=i, requesting_npi=VALID_NPI, reason="moved")
                          for i in ids],
        "ReviseRequest": [intake_pb2.ReviseRequestRequest(request_id=ids[0], requesting_npi=VALID_NPI,
                                                          revision=lumbar_mri(meets=True, key="fuzz-revision"))],
        "FileAppeal": [intake_pb2.FileAppealRequest(
            idempotency_key="fuzz-appeal", request_id=i, line_number=1, urgency=types_pb2.URGENCY_STANDARD,
            appellant=intake_pb2.APPELLANT_MEMBER, appellant_name="A. Member", reason="please look again",
            clinical_facts=[fact("conservative_therapy_weeks", 7.0, "weeks")]) for i in ids],
    }
    return _serve("intake", app.runtime, intake_tables.metadata,
                  intake_pb2.DESCRIPTOR.services_by_name["IntakeService"], seeds=seeds, known=ids,
                  callers=(CLINIC, CLINIC, CLINIC, CLEARINGHOUSE, WORKBENCH, "rn-alvarez"), policy=INTAKE_POLICY,
                  free_text=frozenset({"requests.status_reason", "appeals.appellant_name", "appeals.reason"}))


def _review(url: str) -> Target:
    app = review_bootstrap.build(
        ReviewSettings(database_url=url, credentials_file=CREDENTIALS, reviewers_seed=SAMPLE / "reviewers.yaml"),
        duplicates=NoDuplicates(), evaluator=LibraryEvaluator(load_library(DEFAULT_CRITERIA_DIR), PythonMatcher()))
    request_ids = []
    for i in range(24):
        lob, state = ((types_pb2.LINE_OF_BUSINESS_COMMERCIAL, "TX"), (types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,
                                                                      "CA"))[i % 2]
        request_id = str(uuid.uuid4())
        app.handlers.handle_batch([submitted_event(lumbar_mri(meets=i % 3 == 0, lob=lob, state=state), request_id,
                                                   dt.datetime.now(dt.UTC))])
        request_ids.append(request_id)
    with app.runtime.engine.connect() as conn:
        task_ids = [str(t) for t in conn.execute(select(review_tables.review_tasks.c.task_id)).scalars()]
        notice_ids = [str(n) for n in conn.execute(select(review_tables.notices.c.notice_id).limit(4)).scalars()]
    task = task_ids[0] if task_ids else str(uuid.uuid4())
    note = app.workflow.case_notes.add("cm-ross", "T-MA-0001", "Spoke with the member: PT starts Monday.", "")
    decide = review_pb2.DecideTaskRequest
    seeds: dict[str, list[Message]] = {
        "GetDetermination": [review_pb2.GetDeterminationRequest(request_id=r) for r in request_ids[:4]],
        "ListReviewQueue": [review_pb2.ListReviewQueueRequest(page_size=50)],
        "WhoAmI": [review_pb2.WhoAmIRequest()],
        "PutReviewer": [review_pb2.PutReviewerRequest(reviewer=review_pb2.Reviewer(
            reviewer_id="rn-fuzz", name="Fuzz Nurse", role=review_pb2.REVIEWER_ROLE_NURSE,
            specialties=["advanced_imaging", "general"], licence_states=["TX", "CA"],
            lines_of_business=[types_pb2.LINE_OF_BUSINESS_COMMERCIAL], capacity=5, credential="RN", active=True))],
        "ListReviewers": [review_pb2.ListReviewersRequest()],
        "ListMyTasks": [review_pb2.ListMyTasksRequest(limit=20)],
        "ClaimNextTask": [review_pb2.ClaimNextTaskRequest()],
        "ReleaseTask": [review_pb2.ReleaseTaskRequest(task_id=t, note="back to the queue") for t in task_ids[:6]],
        "ReassignTask": [review_pb2.ReassignTaskRequest(task_id=task, reviewer_id="rn-okafor", note="cover")],
        "DecideTask": [
            decide(task_id=task, approve=decide.Approve(note="meets criteria")),
            decide(task_id=task, request_information=decide.RequestInformation(
                facts=["conservative_therapy_weeks"], needed_by=types_pb2.Date(year=2026, month=12, day=10))),
            decide(task_id=task, refer_to_physician=decide.ReferToPhysician(note="unclear")),
            decide(task_id=task, approve_partial=decide.ApprovePartial(
                approved_units=1, approved_start=types_pb2.Date(year=2026, month=12, day=1),
                approved_end=types_pb2.Date(year=2026, month=12, day=5), reason="fewer days",
                criterion="imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks")),
            decide(task_id=task, deny=decide.Deny(reason="not medically necessary", criterion="x")),
        ],
        "RecordPeerToPeer": [review_pb2.RecordPeerToPeerRequest(
            task_id=task, kind=review_pb2.RecordPeerToPeerRequest.KIND_OFFERED, provider_contact="Dr. Who, x123")],
        "GetTask": [review_pb2.GetTaskRequest(task_id=t) for t in task_ids[:4]],
        "ExtendDeadline": [review_pb2.ExtendDeadlineRequest(task_id=task, ground="enrollee_request",
                                                            notice_sent=True)],
        "GetQueueOverview": [review_pb2.GetQueueOverviewRequest(limit=20)],
        "ListMemberTasks": [review_pb2.ListMemberTasksRequest(member_id=m) for m in ("T-MA-0001", "T-MA-0002")],
        "AddCaseNote": [review_pb2.AddCaseNoteRequest(member_id="T-MA-0001", text="Correction: PT starts Tuesday.",
                                                      amends=note.note_id),
                        review_pb2.AddCaseNoteRequest(member_id="T-COM-0001", text="Called the member.")],
        "ListCaseNotes": [review_pb2.ListCaseNotesRequest(member_id="T-MA-0001")],
        "SetTaskUrgency": [review_pb2.SetTaskUrgencyRequest(task_id=t, urgency=types_pb2.URGENCY_EXPEDITED,
                                                            reason="the member's symptoms worsened")
                           for t in task_ids[:4]],
        "GetNotice": [review_pb2.GetNoticeRequest(notice_id=n) for n in notice_ids],
        "ListNotices": [*(review_pb2.ListNoticesRequest(request_id=r) for r in request_ids[:4]),
                        review_pb2.ListNoticesRequest(member_id="T-MA-0001")],
        "GetAppeal": [review_pb2.GetAppealRequest(appeal_id=str(uuid.uuid4()))],
    }
    return _serve("review", app.runtime, review_tables.metadata,
                  review_pb2.DESCRIPTOR.services_by_name["ReviewService"], seeds=seeds,
                  known=[*request_ids, *task_ids, *notice_ids, *REVIEWERS, note.note_id, "T-MA-0001"],
                  callers=(*REVIEWERS, OPERATOR), policy=REVIEW_POLICY,
                  free_text=frozenset({"reviewers.name", "reviewers.credential", "case_notes.author_name"}))


def _authorization(url: str) -> Target:
    app = authorization_bootstrap.build(AuthorizationSettings(database_url=url, topic_prefix="fz",
                                                              credentials_file=CREDENTIALS))
    events = []
    for i in range(6):
        line = types_pb2.LineDetermination(line_number=1, procedure_code="72148",
                                           action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL,
                                           outcome=types_pb2.LINE_OUTCOME_MEETS_CRITERIA, approved_units=1)
        message = events_pb2.DeterminationMade(member_id=f"T-MA-000{i % 2 + 1}", determination=types_pb2.Determination(
            request_id=str(uuid.uuid4()), determination_id=str(uuid.uuid4()), lines=[line]))
        events.append(IncomingEvent(event_id=str(uuid.uuid4()), event_type=message.DESCRIPTOR.full_name,
                                    schema_version="1", key=message.determination.request_id, message=message,
                                    topic="t", partition=0, offset=0))
    app.handlers.handle_batch(events)
    with app.runtime.engine.connect() as conn:
        numbers = [str(n) for n in conn.execute(select(authorization_tables.authorizations.c.authorization_number))
                   .scalars()]
    seeds: dict[str, list[Message]] = {
        "GetAuthorization": [authorization_pb2.GetAuthorizationRequest(authorization_number=n) for n in numbers],
        "ListMemberAuthorizations": [authorization_pb2.ListMemberAuthorizationsRequest(
            member_id="T-MA-0001", procedure_code="72148", overlaps_from=types_pb2.Date(year=2026, month=1, day=1),
            overlaps_to=types_pb2.Date(year=2027, month=12, day=31), active_only=True, limit=10)],
        "CheckClaim": [authorization_pb2.CheckClaimRequest(claim=claim_line(n)) for n in numbers[:3]],
        "ConsumeUnits": [authorization_pb2.ConsumeUnitsRequest(claim_line_id=f"fuzz-claim-{i}", claim=claim_line(n))
                         for i, n in enumerate(numbers[:3])],
        "GetAuthorizationMetrics": [authorization_pb2.GetAuthorizationMetricsRequest(
            to=types_pb2.Date(year=2027, month=12, day=31))],
    }
    return _serve("authorization", app.runtime, authorization_tables.metadata,
                  authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"], seeds=seeds,
                  known=[*numbers, "T-MA-0001", "T-MA-0002", "fuzz-claim-0"],
                  callers=(CLAIMS, CLAIMS, OPERATOR, REVIEW_SERVICE, WORKBENCH), policy=AUTHORIZATION_POLICY)


def claim_line(number: str) -> authorization_pb2.ClaimLine:
    """A claim line an authorization of the fuzz's could cover (its number quoted)."""
    return authorization_pb2.ClaimLine(member_id="T-MA-0001", servicing_npi=VALID_NPI, procedure_code="72148",
                                       date_of_service=types_pb2.Date(year=2026, month=12, day=1), units=1,
                                       authorization_number=number)


BUILDERS: dict[str, Callable[[str], Target]] = {"intake": _intake, "review": _review,
                                                "authorization": _authorization}


@pytest.fixture(scope="module", params=list(BUILDERS))
def target(request: pytest.FixtureRequest, make_database: Callable[[str], str]) -> Iterator[Target]:
    built = BUILDERS[request.param](make_database(f"fuzz_{request.param}"))
    yield built
    built.channel.close()
    built.server.stop(0)
    built.engine.dispose()


# -- calling -------------------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """What the calls got back."""

    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0

    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        by_code: Counter[str] = Counter()
        for (_method, code), n in self.codes.items():
            by_code[code] += n
        return f"{self.calls} calls in {self.seconds:.1f} s ({self.rate():.0f}/s): {dict(sorted(by_code.items()))}"


Call = tuple[str, Message | bytes, tuple[tuple[str, str], ...] | None]


def _describe(body: Message | bytes) -> str:
    text = repr(body[:200]) if isinstance(body, bytes) else str(body)[:600]
    return text.replace("\n", " ")


def run(target: Target, calls: Iterator[Call], allowed: Callable[[str, grpc.StatusCode], bool]) -> Outcomes:
    """Make the calls, IN_FLIGHT at a time, and collect every status code; ``allowed`` tells which
    (method, code) pairs are fine."""
    outcomes = Outcomes()
    pending: deque[tuple[str, grpc.Future[Message], Message | bytes]] = deque()

    def settle() -> None:
        method, future, body = pending.popleft()
        try:
            future.result()
            code = grpc.StatusCode.OK
            details = ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
        outcomes.codes[(method, code.name)] += 1
        if not allowed(method, code) and len(outcomes.broken) < 25:
            outcomes.broken.append(f"{method} -> {code.name} ({details[:300]}) for {_describe(body)}")

    started = time.monotonic()
    stubs = {method: target.call(method) for method in target.methods()}
    for method, body, metadata in calls:
        stub = stubs[method]
        pending.append((method, stub.future(body, timeout=CALL_TIMEOUT_S, metadata=metadata), body))
        outcomes.calls += 1
        if len(pending) >= IN_FLIGHT:
            settle()
    while pending:
        settle()
    outcomes.seconds = time.monotonic() - started
    return outcomes


def not_broken(method: str, code: grpc.StatusCode) -> bool:
    # RESOURCE_EXHAUSTED is a refusal only where the API says so (a reviewer at capacity); elsewhere it is
    # what a client makes of trailers too large to read.
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return method == "ClaimNextTask"
    return code not in BROKEN


def _credentials(rng: random.Random, target: Target) -> tuple[tuple[str, str], ...] | None:
    """Mostly one of the target's callers (each may or may not hold the method's scope), else a
    wrong token, a malformed header or none."""
    r = rng.random()
    if r < 0.8:
        return (("authorization", f"Bearer {token(rng.choice(target.callers))}"),)
    if r < 0.9:
        return (("authorization", rng.choice(("Bearer nope-nope-nope-nope", "Basic abc", "Bearer ", "bearer"))),)
    return None


def _admitted(rng: random.Random, target: Target, method: str) -> tuple[tuple[str, str], ...]:
    """A caller the method admits (its scope), so that the call reaches the server's decoding step."""
    rule = target.policy.rules[method]
    scopes = scopes_of()
    admitted = sorted({c for c in target.callers if scopes.get(c, frozenset()) & rule.scopes})
    if not admitted:
        raise AssertionError(f"{target.name}.{method}: none of {target.callers} may call it")
    return (("authorization", f"Bearer {token(rng.choice(admitted))}"),)


def message_calls(target: Target, seed: int, count: int) -> Iterator[Call]:
    """``count`` calls spread evenly over every RPC: mostly mutated valid requests, some random ones."""
    rng = random.Random(seed)
    fuzzer = MessageFuzzer(rng, target.known)
    methods = target.methods()
    for i in range(count):
        method = methods[i % len(methods)]
        seeds = target.seeds.get(method, [])
        message = (fuzzer.mutate(rng.choice(seeds)) if seeds and rng.random() < 0.7
                   else fuzzer.fill(target.input_type(method)()))
        if message.ByteSize() > MAX_MESSAGE_BYTES // 2:  # over the server's limit is refused before any code runs
            message = fuzzer.fill(target.input_type(method)(), depth=3)
        yield method, message, _credentials(rng, target)


def junk_calls(target: Target, seed: int, count: int, *, parsable: bool) -> Iterator[Call]:
    """``count`` random or corrupted request bodies spread over every RPC: ones that parse as the RPC's
    request message or, ``parsable=False``, ones that do not (drawn until there are enough)."""
    rng = random.Random(seed)
    fuzzer = MessageFuzzer(rng, target.known)
    methods = target.methods()
    made, draws = 0, 0
    while made < count:
        draws += 1
        if draws > count * 100:
            raise AssertionError(f"{count} bodies wanted, {made} found in {draws - 1} draws")
        method = methods[made % len(methods)]
        body = fuzzer.junk(target.seeds.get(method, []))
        if parses(target.input_type(method), body) == parsable:
            made += 1
            yield method, body, _credentials(rng, target) if parsable else _admitted(rng, target, method)


# -- what was stored -----------------------------------------------------------------------------------

#: Protobuf fields that hold codes or ids: printable ASCII wherever they appear.
CODE_FIELDS = frozenset({
    "code", "procedure_code", "modifiers", "npi", "member_state", "plan_id", "member_id", "request_id",
    "idempotency_key", "determination_id", "authorization_number", "information_id", "task_id", "reviewer_id",
    "licence_states", "specialties", "requested_facts", "missing_facts", "criteria_id", "regime",
})
#: (message, field) pairs that hold codes where a field of that name elsewhere is text.
CODE_FIELDS_OF = frozenset({("ur.common.v1.ClinicalFact", "name")})
#: Stored protobuf columns (table.column) and their message type; "outbox.payload" goes by event type.
STORED_MESSAGES: dict[str, type[Message]] = {
    "requests.payload": intake_pb2.SubmitRequestRequest,
    "additional_information.payload": intake_pb2.SubmitAdditionalInformationRequest,
    "request_revisions.payload": intake_pb2.SubmitRequestRequest,
    "appeals.payload": intake_pb2.FileAppealRequest,
    "requests.determination_header": types_pb2.Determination,
    "request_lines.determination": types_pb2.LineDetermination,
    "request_lines.authorization": types_pb2.Authorization,
    "cases.request": events_pb2.RequestSubmitted,
    "cases.determination": types_pb2.Determination,
}


def message_problems(message: Message, where: str) -> list[str]:
    """Control characters, non-ASCII codes, non-finite numbers and impossible dates in ``message``."""
    problems: list[str] = []
    name = message.DESCRIPTOR.full_name
    if name == "ur.common.v1.Date" and (message.year or message.month or message.day):  # type: ignore[attr-defined]
        y, m, d = message.year, message.month, message.day  # type: ignore[attr-defined]
        try:
            dt.date(y, m, d)
        except ValueError:
            problems.append(f"{where}: impossible date {y}-{m}-{d}")
        if not 1900 <= y <= 2199:
            problems.append(f"{where}: date {y}-{m}-{d} outside 1900-2199")
    for fd, value in message.ListFields():
        path = f"{where}.{fd.name}"
        values = list(value) if fd.is_repeated else [value]
        for i, item in enumerate(values):
            at = f"{path}[{i}]" if fd.is_repeated else path
            if fd.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                problems += message_problems(item, at)
            elif fd.cpp_type == FieldDescriptor.CPPTYPE_STRING and isinstance(item, str):
                problems += _text_problems(item, at, code=fd.name in CODE_FIELDS or (name, fd.name) in CODE_FIELDS_OF)
            elif fd.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT) and \
                    not math.isfinite(item):
                problems.append(f"{at}: {item}")
    return problems


def _text_problems(value: str, where: str, *, code: bool) -> list[str]:
    if code and not PRINTABLE_ASCII.fullmatch(value):
        return [f"{where}: code {value[:40]!r} is not printable ASCII"]
    if CONTROL.search(value):
        return [f"{where}: {value[:40]!r} holds a control character"]
    return []


def _json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _json_strings(item)


def stored_problems(target: Target) -> list[str]:
    """Every malformed value stored in the target's database."""
    problems: list[str] = []
    with target.engine.connect() as conn:
        for table in target.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column in table.columns:
                    where = f"{table.name}.{column.name}"
                    problems += _value_problems(where, column.type, row[column.name], row,
                                                free=where in target.free_text)
    return problems


def _value_problems(where: str, kind: object, value: object, row: object, *, free: bool) -> list[str]:
    if isinstance(value, str) and isinstance(kind, Text):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = value
        return [p for s in _json_strings(decoded) for p in _text_problems(s, where, code=False)]
    if isinstance(value, str) and isinstance(kind, String):
        if kind.length is not None and len(value) > kind.length:
            return [f"{where}: {len(value)} characters in a column of {kind.length}"]
        return _text_problems(value, where, code=not free)
    if isinstance(value, bytes) and isinstance(kind, LargeBinary):
        message_type = STORED_MESSAGES.get(where)
        if where == "outbox.payload":
            event_type = str(row["event_type"])  # type: ignore[index]
            message_type = GetMessageClass(events_pb2.DESCRIPTOR.message_types_by_name[event_type.rsplit(".")[-1]])
        return [] if message_type is None else message_problems(message_type.FromString(value), where)
    return []


def half_written(target: Target) -> list[str]:
    """Intake: a request recorded in review without its RequestSubmitted event, information without its
    event, lines that are not the request's, and the reverse."""
    if target.name != "intake":
        return []
    t = intake_tables
    problems = []
    with target.engine.connect() as conn:
        events = Counter(str(e) for e in conn.execute(select(t.outbox.c.event_type)).scalars())
        requests = conn.execute(select(t.requests.c.request_id, t.requests.c.status, t.requests.c.payload)).all()
        lines = Counter(str(r) for r in conn.execute(select(t.request_lines.c.request_id)).scalars())
        informations = conn.execute(select(t.additional_information.c.information_id)).all()
    reviewed = sum(1 for r in requests if r.status != "ineligible")
    if events["ur.events.v1.RequestSubmitted"] != reviewed:
        problems.append(f"{reviewed} requests to review, {events['ur.events.v1.RequestSubmitted']} events")
    if events["ur.events.v1.AdditionalInformationReceived"] != len(informations):
        problems.append(f"{len(informations)} informations, {events['ur.events.v1.AdditionalInformationReceived']}"
                        " events")
    for r in requests:
        sent = len(intake_pb2.SubmitRequestRequest.FromString(r.payload).service_lines)
        if lines[r.request_id] != sent:
            problems.append(f"request {r.request_id}: {sent} lines sent, {lines[r.request_id]} recorded")
    return problems


def serving(target: Target) -> bool:
    reply = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _seed(target: Target, part: int) -> int:
    return SEED + 1000 * list(BUILDERS).index(target.name) + part


# -- the tests -----------------------------------------------------------------------------------------


def test_random_messages_break_nothing_and_store_nothing_malformed(target: Target) -> None:
    outcomes = run(target, message_calls(target, _seed(target, 1), MESSAGES), not_broken)
    print(f"\nfuzz {target.name} messages: {outcomes.summary()}")
    assert outcomes.calls == MESSAGES
    assert outcomes.broken == []
    assert stored_problems(target) == []
    assert half_written(target) == []
    assert serving(target)
    # Some calls got through validation: the fuzzing reached the code behind it.
    assert sum(n for (_m, code), n in outcomes.codes.items() if code == "OK") > 0


def test_random_bytes_that_parse_break_nothing(target: Target) -> None:
    outcomes = run(target, junk_calls(target, _seed(target, 2), JUNK, parsable=True), not_broken)
    print(f"\nfuzz {target.name} parsable bytes: {outcomes.summary()}")
    assert outcomes.calls == JUNK
    assert outcomes.broken == []
    assert stored_problems(target) == []
    assert serving(target)


def test_random_bytes_that_do_not_parse_are_invalid_argument(target: Target) -> None:
    """The server's decoding step (services/common/grpc_server.py) answers a body that does not parse."""
    outcomes = run(target, junk_calls(target, _seed(target, 2), JUNK, parsable=False),
                   lambda _method, code: code is grpc.StatusCode.INVALID_ARGUMENT)
    print(f"\nfuzz {target.name} undecodable bytes: {outcomes.summary()}")
    assert outcomes.calls == JUNK
    assert serving(target)
    assert outcomes.broken == []
