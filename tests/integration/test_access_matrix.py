"""Every RPC of the three services, refused to every caller who may not make it (issue 10).

The services are served in process, as their bootstraps wire them (access control included), on
PostgreSQL. The methods come from the service descriptors, so a new RPC is in the matrix at once,
and it fails unless the service's access policy declares it. For every method:

- no credentials, a token nobody was given, a malformed header: UNAUTHENTICATED;
- every principal of the credentials file that lacks the method's scopes: PERMISSION_DENIED;
- a submitter asking for, adding to, cancelling, revising or appealing another submitter's request:
  NOT_FOUND, in the words an unknown id gets;

and after all of them nothing was stored (every table of the service counted before and after) and
no refusal carried a member id, a request id or a token. A principal that holds the scope gets
through (whatever the handler then answers), so the matrix cannot pass by refusing everyone.

Also here, over real gRPC: client certificates as identities (mutual TLS), a rotated credentials
file taking effect without a restart, and the intake rate limit with its retry hint.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
import yaml
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Engine, MetaData, func, select
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2

from services.authorization import bootstrap as authorization_bootstrap
from services.authorization.adapters import tables as authorization_tables
from services.authorization.entrypoints.access import POLICY as AUTHORIZATION_POLICY
from services.common.access import AccessPolicy
from services.common.grpc_server import RunningServer, create_server
from services.common.settings import AuthorizationSettings, IntakeSettings, ReviewSettings
from services.common.tls import TransportSecurity, open_channel
from services.intake import bootstrap as intake_bootstrap
from services.intake.adapters import tables as intake_tables
from services.intake.entrypoints.access import POLICY as INTAKE_POLICY
from services.intake.entrypoints.mapping import to_domain
from services.review import bootstrap as review_bootstrap
from services.review.adapters import tables as review_tables
from services.review.entrypoints.access import POLICY as REVIEW_POLICY
from tests.conftest import REPO
from tests.factories import VALID_NPI, fact, lumbar_mri, submitted_event
from tests.fakes.review import NoDuplicates
from tests.identity import CLEARINGHOUSE, CLINIC, CREDENTIALS, as_, token
from tests.tls_material import make_material

pytestmark = pytest.mark.integration

MEMBERS = REPO / "tests" / "data" / "members.yaml"
SAMPLE = REPO / "deploy" / "sample"
#: A principal with no scope at all, added to the sample's for the matrix.
NOBODY = "nobody-in-particular"
#: The workers' comp claim the matrix's request is under.
WC_CLAIM = "WC-AM-0001"
#: A claim line a claims system would check, and draw units for.
CLAIM = authorization_pb2.ClaimLine(member_id="T-MA-0001", servicing_npi=VALID_NPI, procedure_code="72148",
                                    date_of_service=types_pb2.Date(year=2027, month=1, day=15), units=1)


def credentials_file(directory: Path) -> Path:
    """The sample's principals, and one that may do nothing."""
    document = yaml.safe_load(CREDENTIALS.read_text())
    document["principals"].append({"id": NOBODY, "tokens": [{"dev_token": token(NOBODY)}]})
    path = directory / "credentials.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def principals() -> dict[str, frozenset[str]]:
    """Every principal of the matrix's file, with its scopes."""
    document = yaml.safe_load(CREDENTIALS.read_text())
    found = {p["id"]: frozenset(p.get("scopes") or ()) for p in document["principals"]}
    found[NOBODY] = frozenset()
    return found


@dataclass
class Served:
    name: str
    service: ServiceDescriptor
    policy: AccessPolicy
    server: RunningServer
    channel: grpc.Channel
    engine: Engine
    metadata: MetaData
    #: method → a request that would do something if it got through
    requests: dict[str, Message]
    #: what a refusal must never show
    secrets: list[str]
    runtime: Any

    def call(self, method: str, request: Message, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError | None:
        response = GetMessageClass(self.service.methods_by_name[method].output_type)
        stub: grpc.UnaryUnaryMultiCallable[Message, Message] = self.channel.unary_unary(
            f"/{self.service.full_name}/{method}",
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response.FromString)
        try:
            stub(request, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc
        return None

    def request(self, method: str) -> Message:
        return self.requests.get(method) or GetMessageClass(self.service.methods_by_name[method].input_type)()

    def counts(self) -> dict[str, int]:
        """Rows per table, but for the audit log's: a search that finds nothing is still recorded
        there (who looked for what), which is the log's purpose, not something the call stored."""
        with self.engine.connect() as conn:
            return {name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                    for name, table in self.metadata.tables.items() if not name.startswith("audit_")}


def _serve(name: str, app: Any, service: ServiceDescriptor, policy: AccessPolicy, metadata: MetaData,
           requests: dict[str, Message], secrets: list[str]) -> Served:
    server = create_server("127.0.0.1:0", app.runtime.registrations, interceptors=app.runtime.interceptors)
    channel = open_channel(f"127.0.0.1:{server.port}")
    return Served(name, service, policy, server, channel, app.runtime.engine, metadata, requests, secrets, app.runtime)


def _intake(url: str, credentials: Path) -> Served:
    app = intake_bootstrap.build(IntakeSettings(database_url=url, topic_prefix="am", members_seed=MEMBERS,
                                                credentials_file=credentials))
    message = lumbar_mri(meets=False)
    message.workers_comp.claim_number = WC_CLAIM
    request_id = app.handlers.submit(to_domain(message), message, submitter=CLINIC).record.request_id
    requests: dict[str, Message] = {
        "SubmitRequest": lumbar_mri(),
        "GetRequest": intake_pb2.GetRequestRequest(request_id=request_id),
        "ListMemberRequests": intake_pb2.ListMemberRequestsRequest(member_id=message.member_id),
        "ListClaimRequests": intake_pb2.ListClaimRequestsRequest(claim_number=WC_CLAIM),
        "SubmitAdditionalInformation": intake_pb2.SubmitAdditionalInformationRequest(
            request_id=request_id, idempotency_key=f"am-{uuid.uuid4()}",
            clinical_facts=[fact("conservative_therapy_weeks", 7.0, "weeks")]),
        "CancelRequest": intake_pb2.CancelRequestRequest(request_id=request_id, requesting_npi=VALID_NPI),
        "ReviseRequest": intake_pb2.ReviseRequestRequest(request_id=request_id, requesting_npi=VALID_NPI,
                                                         revision=lumbar_mri(meets=True, key=f"am-{uuid.uuid4()}")),
        "FileAppeal": intake_pb2.FileAppealRequest(
            idempotency_key=f"am-{uuid.uuid4()}", request_id=request_id, line_number=1,
            urgency=types_pb2.URGENCY_STANDARD, appellant=intake_pb2.APPELLANT_MEMBER),
    }
    return _serve("intake", app, intake_pb2.DESCRIPTOR.services_by_name["IntakeService"], INTAKE_POLICY,
                  intake_tables.metadata, requests, [request_id, message.member_id])


def _review(url: str, credentials: Path) -> Served:
    app = review_bootstrap.build(ReviewSettings(database_url=url, topic_prefix="am", credentials_file=credentials,
                                                reviewers_seed=SAMPLE / "reviewers.yaml", criteria_reload_s=0.0),
                                 duplicates=NoDuplicates())
    message = lumbar_mri(meets=False)
    request_id = str(uuid.uuid4())
    app.handlers.handle_batch([submitted_event(message, request_id, dt.datetime.now(dt.UTC))])
    with app.runtime.engine.connect() as conn:
        task_id = str(conn.execute(select(review_tables.review_tasks.c.task_id)).scalars().first())
    decide = review_pb2.DecideTaskRequest
    requests: dict[str, Message] = {
        "GetDetermination": review_pb2.GetDeterminationRequest(request_id=request_id),
        "ListReviewQueue": review_pb2.ListReviewQueueRequest(page_size=10),
        "ClaimNextTask": review_pb2.ClaimNextTaskRequest(),
        "GetTask": review_pb2.GetTaskRequest(task_id=task_id),
        "DecideTask": decide(task_id=task_id, approve=decide.Approve(note="meets criteria")),
        "ReleaseTask": review_pb2.ReleaseTaskRequest(task_id=task_id),
        "ReassignTask": review_pb2.ReassignTaskRequest(task_id=task_id, reviewer_id="rn-okafor"),
        "ListMemberTasks": review_pb2.ListMemberTasksRequest(member_id=message.member_id),
        "AddCaseNote": review_pb2.AddCaseNoteRequest(member_id=message.member_id, text="Called the member."),
        "ListCaseNotes": review_pb2.ListCaseNotesRequest(member_id=message.member_id),
        "PutReviewer": review_pb2.PutReviewerRequest(reviewer=review_pb2.Reviewer(
            reviewer_id="rn-new", name="New Nurse", role=review_pb2.REVIEWER_ROLE_NURSE, capacity=5, active=True)),
        "SetTaskUrgency": review_pb2.SetTaskUrgencyRequest(task_id=task_id, urgency=types_pb2.URGENCY_EXPEDITED,
                                                           reason="the member's symptoms worsened"),
        "ListNotices": review_pb2.ListNoticesRequest(request_id=request_id),
        "GetNotice": review_pb2.GetNoticeRequest(notice_id=str(uuid.uuid4())),
        "GetAppeal": review_pb2.GetAppealRequest(appeal_id=str(uuid.uuid4())),
    }
    return _serve("review", app, review_pb2.DESCRIPTOR.services_by_name["ReviewService"], REVIEW_POLICY,
                  review_tables.metadata, requests, [request_id, task_id, message.member_id])


def _authorization(url: str, credentials: Path) -> Served:
    app = authorization_bootstrap.build(AuthorizationSettings(database_url=url, topic_prefix="am",
                                                              credentials_file=credentials))
    requests: dict[str, Message] = {
        "GetAuthorization": authorization_pb2.GetAuthorizationRequest(authorization_number="UR27-AAAA-BBBB"),
        "ListMemberAuthorizations": authorization_pb2.ListMemberAuthorizationsRequest(member_id="T-MA-0001"),
        "FindOverlappingAuthorizations": authorization_pb2.FindOverlappingAuthorizationsRequest(),
        "CheckClaim": authorization_pb2.CheckClaimRequest(claim=CLAIM),
        "ConsumeUnits": authorization_pb2.ConsumeUnitsRequest(claim_line_id=f"am-{uuid.uuid4()}", claim=CLAIM),
        "GetAuthorizationMetrics": authorization_pb2.GetAuthorizationMetricsRequest(),
    }
    return _serve("authorization", app, authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"],
                  AUTHORIZATION_POLICY, authorization_tables.metadata, requests, ["T-MA-0001"])


BUILDERS: dict[str, Callable[[str, Path], Served]] = {"intake": _intake, "review": _review,
                                                      "authorization": _authorization}


@pytest.fixture(scope="module", params=list(BUILDERS))
def served(request: pytest.FixtureRequest, make_database: Callable[[str], str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    built = BUILDERS[request.param](make_database(f"am_{request.param}"),
                                    credentials_file(tmp_path_factory.mktemp("credentials")))
    yield built
    built.channel.close()
    built.server.stop(0)
    built.engine.dispose()


ANONYMOUS: dict[str, tuple[tuple[str, str], ...]] = {
    "no credentials": (),
    "a token nobody was given": (("authorization", "Bearer dev-only-token-forged-by-someone"),),
    "a malformed header": (("authorization", "Basic cm4tYWx2YXJlejpwYXNzd29yZA=="),),
    "an empty bearer": (("authorization", "Bearer "),),
}


def _leaks(served: Served, error: grpc.RpcError) -> list[str]:
    text = f"{error.details()} {error.trailing_metadata()}"
    return [s for s in [*served.secrets, "dev-only-token"] if s in text]


def test_every_rpc_refuses_every_caller_who_may_not_make_it(served: Served) -> None:
    methods = [m.name for m in served.service.methods]
    undeclared = [m for m in methods if m not in served.policy.rules]
    assert not undeclared, f"{served.name}: RPCs without an access rule: {undeclared}"
    before = served.counts()
    wrong: list[str] = []
    checked = 0
    for method in methods:
        rule = served.policy.rules[method]
        request = served.request(method)
        for what, metadata in ANONYMOUS.items():
            error = served.call(method, request, metadata)
            checked += 1
            if error is None or error.code() is not grpc.StatusCode.UNAUTHENTICATED:
                wrong.append(f"{method} with {what}: {error.code().name if error else 'OK'}")
            elif _leaks(served, error):
                wrong.append(f"{method} with {what} shows {_leaks(served, error)}")
        for principal, scopes in principals().items():
            if scopes & rule.scopes:
                continue
            error = served.call(method, request, as_(principal))
            checked += 1
            if error is None or error.code() is not grpc.StatusCode.PERMISSION_DENIED:
                got = error.code().name if error else "OK"
                wrong.append(f"{method} as {principal} (scopes {sorted(scopes)}): {got}")
            elif _leaks(served, error):
                wrong.append(f"{method} as {principal} shows {_leaks(served, error)}")
    assert not wrong, "\n".join(wrong)
    assert served.counts() == before, "a refused call stored something"
    assert checked >= len(methods) * (len(ANONYMOUS) + 1)


def test_a_caller_with_the_scope_gets_through(served: Served) -> None:
    """The other side of the matrix: refusals come from the rules, not from refusing everyone."""
    everyone = principals()
    for method in (m.name for m in served.service.methods):
        rule = served.policy.rules[method]
        allowed = sorted(p for p, scopes in everyone.items() if scopes & rule.scopes)
        assert allowed, f"{method}: no principal of the sample file may call it"
        error = served.call(method, served.request(method), as_(allowed[0]))
        code = grpc.StatusCode.OK if error is None else error.code()
        details = (error.details() if error else "") or ""
        # Review may still refuse the reviewer's role (the directory's rule), never the scope.
        by_role = (served.name == "review" and code is grpc.StatusCode.PERMISSION_DENIED
                   and "may not call" not in details)
        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or by_role, \
            f"{method} as {allowed[0]}: {code.name} {details}"


# -- another submitter's request -------------------------------------------------------------------


@pytest.fixture(scope="module")
def intake(make_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    built = _intake(make_database("am_intake_owner"), credentials_file(tmp_path_factory.mktemp("credentials")))
    yield built
    built.channel.close()
    built.server.stop(0)
    built.engine.dispose()


def _change(stub: intake_pb2_grpc.IntakeServiceStub, what: str, request_id: str,
            metadata: tuple[tuple[str, str], ...]) -> object:
    """Cancel, revise or appeal ``request_id`` as its requesting provider would."""
    if what == "cancel":
        return stub.CancelRequest(intake_pb2.CancelRequestRequest(
            request_id=request_id, requesting_npi=VALID_NPI, reason="theirs"), metadata=metadata, timeout=30)
    if what == "revise":
        return stub.ReviseRequest(intake_pb2.ReviseRequestRequest(
            request_id=request_id, requesting_npi=VALID_NPI, revision=lumbar_mri(meets=True, key="theirs-rev")),
            metadata=metadata, timeout=30)
    return stub.FileAppeal(intake_pb2.FileAppealRequest(
        idempotency_key="theirs-appeal", request_id=request_id, line_number=1, urgency=types_pb2.URGENCY_STANDARD,
        appellant=intake_pb2.APPELLANT_MEMBER), metadata=metadata, timeout=30)


def test_a_submitter_sees_nothing_of_another_submitters_requests(intake: Served) -> None:
    stub = intake_pb2_grpc.IntakeServiceStub(intake.channel)
    submitted = lumbar_mri(meets=False)
    submitted.workers_comp.claim_number = f"WC-{uuid.uuid4().hex[:12]}"
    mine = stub.SubmitRequest(submitted, metadata=as_(CLINIC), timeout=30).request
    before = intake.counts()
    unknown = str(uuid.uuid4())
    for request_id in (mine.request_id, unknown):
        with pytest.raises(grpc.RpcError) as got:
            stub.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), metadata=as_(CLEARINGHOUSE),
                            timeout=30)
        assert got.value.code() is grpc.StatusCode.NOT_FOUND
        assert got.value.details() == f"no request {request_id!r}"  # the same words, whoever's it is
        with pytest.raises(grpc.RpcError) as added:
            stub.SubmitAdditionalInformation(intake_pb2.SubmitAdditionalInformationRequest(
                request_id=request_id, idempotency_key=f"theirs-{request_id}",
                clinical_facts=[fact("conservative_therapy_weeks", 12.0, "weeks")]),
                metadata=as_(CLEARINGHOUSE), timeout=30)
        assert added.value.code() is grpc.StatusCode.NOT_FOUND
        assert added.value.details() == f"no request {request_id!r}"
        # Naming the right requesting provider does not make it theirs.
        for what in ("cancel", "revise", "appeal"):
            with pytest.raises(grpc.RpcError) as changed:
                _change(stub, what, request_id, as_(CLEARINGHOUSE))
            assert (what, changed.value.code()) == (what, grpc.StatusCode.NOT_FOUND)
            assert changed.value.details() == f"no request {request_id!r}"
    listed = stub.ListMemberRequests(intake_pb2.ListMemberRequestsRequest(member_id=mine.member_id),
                                     metadata=as_(CLEARINGHOUSE), timeout=30)
    assert mine.request_id not in [r.request_id for r in listed.requests]
    claim = intake_pb2.ListClaimRequestsRequest(claim_number=submitted.workers_comp.claim_number)
    assert list(stub.ListClaimRequests(claim, metadata=as_(CLEARINGHOUSE), timeout=30).requests) == []
    assert intake.counts() == before, "another submitter's call stored something"
    # The owner, and the workbench (requests:read-all), see it.
    assert stub.GetRequest(intake_pb2.GetRequestRequest(request_id=mine.request_id), metadata=as_(CLINIC),
                           timeout=30).request.request_id == mine.request_id
    assert stub.GetRequest(intake_pb2.GetRequestRequest(request_id=mine.request_id), metadata=as_("svc-workbench"),
                           timeout=30).request.member_id == mine.member_id
    own = stub.ListMemberRequests(intake_pb2.ListMemberRequestsRequest(member_id=mine.member_id),
                                  metadata=as_(CLINIC), timeout=30)
    assert mine.request_id in [r.request_id for r in own.requests]
    for reader in (CLINIC, "svc-workbench"):
        under_claim = stub.ListClaimRequests(claim, metadata=as_(reader), timeout=30)
        assert [r.request_id for r in under_claim.requests] == [mine.request_id]
    # The workbench reads every submitter's requests and changes none.
    with pytest.raises(grpc.RpcError) as workbench:
        stub.CancelRequest(intake_pb2.CancelRequestRequest(request_id=mine.request_id, requesting_npi=VALID_NPI),
                           metadata=as_("svc-workbench"), timeout=30)
    assert workbench.value.code() is grpc.StatusCode.PERMISSION_DENIED
    # The submitter itself may withdraw it.
    cancelled = stub.CancelRequest(intake_pb2.CancelRequestRequest(
        request_id=mine.request_id, requesting_npi=VALID_NPI, reason="no longer needed"), metadata=as_(CLINIC),
        timeout=30).request
    assert cancelled.status == intake_pb2.REQUEST_STATUS_CANCELLED


# -- the rate limit --------------------------------------------------------------------------------


def test_a_caller_over_the_intake_rate_limit_is_told_when_to_retry(make_database: Callable[[str], str],
                                                                   tmp_path: Path) -> None:
    app = intake_bootstrap.build(IntakeSettings(database_url=make_database("am_rate"), topic_prefix="am",
                                                members_seed=MEMBERS, credentials_file=credentials_file(tmp_path),
                                                rate_per_s=0.5, rate_burst=2))
    server = create_server("127.0.0.1:0", app.runtime.registrations, interceptors=app.runtime.interceptors)
    try:
        with open_channel(f"127.0.0.1:{server.port}") as channel:
            stub = intake_pb2_grpc.IntakeServiceStub(channel)
            get = intake_pb2.GetRequestRequest(request_id=str(uuid.uuid4()))
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as passed:
                    stub.GetRequest(get, metadata=as_(CLINIC), timeout=30)
                assert passed.value.code() is grpc.StatusCode.NOT_FOUND  # through to the handler
            with pytest.raises(grpc.RpcError) as limited:
                stub.GetRequest(get, metadata=as_(CLINIC), timeout=30)
            assert limited.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "rate limit: sample-clinic may make 0.5 calls a second" in (limited.value.details() or "")
            status = rpc_status.from_call(cast(grpc.Call, limited.value))
            assert status is not None
            [detail] = status.details
            hint = error_details_pb2.RetryInfo()
            assert detail.Unpack(hint)
            assert 0 < hint.retry_delay.seconds + hint.retry_delay.nanos / 1e9 <= 2.0
            # Another caller has its own budget.
            with pytest.raises(grpc.RpcError) as other:
                stub.GetRequest(get, metadata=as_(CLEARINGHOUSE), timeout=30)
            assert other.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        server.stop(0)
        app.runtime.engine.dispose()


# -- certificates and rotation ---------------------------------------------------------------------


def test_client_certificates_are_identities_and_a_token_still_counts(make_database: Callable[[str], str],
                                                                     tmp_path: Path) -> None:
    material = make_material(tmp_path / "tls")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text(
        "development: true\nsalt: dev-only-salt-of-the-certificate-test\nprincipals:\n"
        "  - {id: svc-claims, scopes: [authorizations:check], certificates: [{common_name: ur-client}]}\n"
        "  - {id: ops-console, scopes: [authorizations:read], tokens: [{dev_token: dev-only-token-ops-console}]}\n")
    app = authorization_bootstrap.build(AuthorizationSettings(database_url=make_database("am_tls"), topic_prefix="am",
                                                              credentials_file=credentials))
    server = create_server("127.0.0.1:0", app.runtime.registrations, interceptors=app.runtime.interceptors,
                           security=material.services(require_client_cert=True))
    target = f"localhost:{server.port}"
    claims = TransportSecurity(ca_file=material.ca, cert_file=material.client.cert, key_file=material.client.key)
    get = authorization_pb2.GetAuthorizationRequest(authorization_number="UR27-AAAA-BBBB")
    listing = authorization_pb2.ListMemberAuthorizationsRequest(member_id="T-MA-0001")

    def code_of(security: TransportSecurity, call: str, metadata: tuple[tuple[str, str], ...] = ()) -> str:
        with open_channel(target, security) as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            try:
                if call == "get":
                    stub.GetAuthorization(get, metadata=metadata, timeout=30)
                else:
                    stub.ListMemberAuthorizations(listing, metadata=metadata, timeout=30)
            except grpc.RpcError as exc:
                return str(exc.code().name)
        return "OK"

    try:
        assert code_of(claims, "get") == "NOT_FOUND"  # the certificate named svc-claims: through to the handler
        assert code_of(claims, "list") == "PERMISSION_DENIED"  # authorizations:check only
        unknown = material.services()  # a certificate the CA signed, that names no principal
        assert code_of(unknown, "get") == "UNAUTHENTICATED"
        assert code_of(unknown, "list", as_("ops-console")) == "OK"  # a token names the caller
        assert code_of(claims, "get", as_("no-such-principal")) == "UNAUTHENTICATED"  # no falling back
    finally:
        server.stop(0)
        app.runtime.engine.dispose()


def test_a_rotated_credentials_file_takes_effect_without_a_restart(make_database: Callable[[str], str],
                                                                   tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yaml"

    def write(*tokens: str) -> None:
        entries = ", ".join(f"{{dev_token: {t}}}" for t in tokens)
        before = credentials.stat().st_mtime_ns if credentials.exists() else 0
        credentials.write_text("development: true\nsalt: dev-only-salt-of-the-rotation-test\nprincipals:\n"
                               f"  - {{id: ops-console, scopes: [authorizations:read], tokens: [{entries}]}}\n")
        os.utime(credentials, ns=(before + 10**9, before + 10**9))

    write("dev-only-token-the-old-one")
    app = authorization_bootstrap.build(AuthorizationSettings(database_url=make_database("am_rotate"),
                                                              topic_prefix="am", credentials_file=credentials))
    [reload] = [work for name, _, work in app.runtime.periodic if name == "credentials-reload"]
    server = create_server("127.0.0.1:0", app.runtime.registrations, interceptors=app.runtime.interceptors)
    listing = authorization_pb2.ListMemberAuthorizationsRequest(member_id="T-MA-0001")

    def answer(secret: str) -> str:
        try:
            stub.ListMemberAuthorizations(listing, metadata=(("authorization", f"Bearer {secret}"),), timeout=30)
        except grpc.RpcError as exc:
            return str(exc.code().name)
        return "OK"

    try:
        with open_channel(f"127.0.0.1:{server.port}") as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            assert answer("dev-only-token-the-old-one") == "OK"
            assert answer("dev-only-token-the-new-one") == "UNAUTHENTICATED"
            write("dev-only-token-the-old-one", "dev-only-token-the-new-one")  # rotation: both for a while
            reload()
            assert (answer("dev-only-token-the-old-one"), answer("dev-only-token-the-new-one")) == ("OK", "OK")
            write("dev-only-token-the-new-one")  # the old one revoked
            reload()
            assert (answer("dev-only-token-the-old-one"), answer("dev-only-token-the-new-one")) == (
                "UNAUTHENTICATED", "OK")
    finally:
        server.stop(0)
        app.runtime.engine.dispose()
