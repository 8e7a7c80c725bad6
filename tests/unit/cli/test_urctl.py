"""urctl against a real in-process gRPC server hosting fake intake, review and authorization
servicers: what a person reads, and the exit status, for answers and for each kind of error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import any_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli import urctl
from tests.factories import lumbar_mri

REQUEST_ID = "0d6f1c52-7a0e-4a39-9a57-5b0c3f1e2d11"
AUTH_NUMBER = "UR26-8K3F-Q9ZD"
VIOLATIONS = [
    ("requesting_provider.npi", "'1234567890' is not a valid NPI (10 digits with a Luhn check digit)"),
    ("service_lines[0].units", "must be at least 1"),
    ("diagnoses[0].code", "'54.5' is not an ICD-10-CM code (e.g. M54.50)"),
]


def _date(y: int, m: int, d: int) -> types_pb2.Date:
    return types_pb2.Date(year=y, month=m, day=d)


def _authorization() -> types_pb2.Authorization:
    auth = types_pb2.Authorization(
        authorization_number=AUTH_NUMBER, request_id=REQUEST_ID, line_number=1, member_id="MA100001",
        procedure_code="72148", units=1, valid_from=_date(2027, 1, 11), valid_to=_date(2027, 1, 25),
        status=types_pb2.AUTHORIZATION_STATUS_APPROVED, determination_id="det-1")
    auth.issued_at.FromMilliseconds(1_790_000_000_500)
    return auth


def _view(request: intake_pb2.SubmitRequestRequest | None = None) -> intake_pb2.RequestView:
    request = request or lumbar_mri(member_id="MA100001")
    view = intake_pb2.RequestView(
        request_id=REQUEST_ID, idempotency_key=request.idempotency_key, member_id=request.member_id,
        status=intake_pb2.REQUEST_STATUS_COMPLETE, urgency=request.urgency, review_type=request.review_type,
        line_of_business=request.coverage.line_of_business, determination_id="det-1",
        decided_by=types_pb2.DeciderRef(id="system:rules-engine", role="software"),
        clock=types_pb2.ClockRef(regime="cms-0057-f", rule="standard pre-service: 7 calendar days"))
    view.received_at.FromMilliseconds(1_790_000_000_000)
    view.decided_at.FromMilliseconds(1_790_000_000_180)
    line = view.lines.add()
    line.line.CopyFrom(request.service_lines[0])
    line.determination.CopyFrom(types_pb2.LineDetermination(
        line_number=1, procedure_code="72148", outcome=types_pb2.LINE_OUTCOME_MEETS_CRITERIA,
        action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, approved_units=1,
        approved_start=_date(2027, 1, 11), approved_end=_date(2027, 1, 25),
        reasons=["meets imaging-mri-lumbar-spine"],
        explanation=types_pb2.Explanation(
            criteria_id="imaging-mri-lumbar-spine", criteria_version="2026.1", criteria_hash="0123456789abcdef",
            conditions=[
                types_pb2.ConditionResult(condition_id="red-flags", description="any red flag",
                                          status=types_pb2.CONDITION_STATUS_UNMET,
                                          observed=["suspected_cancer=false"]),
                types_pb2.ConditionResult(condition_id="conservative-care",
                                          description="6 weeks of symptoms and of conservative therapy",
                                          status=types_pb2.CONDITION_STATUS_MET,
                                          observed=["symptom_duration_weeks=8 weeks"]),
                types_pb2.ConditionResult(condition_id="imaging-history", description="prior imaging known",
                                          status=types_pb2.CONDITION_STATUS_MISSING),
            ])))
    line.authorization.CopyFrom(_authorization())
    return view


class FakeIntake(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self) -> None:
        self.received: list[intake_pb2.SubmitRequestRequest] = []

    def SubmitRequest(self, request: intake_pb2.SubmitRequestRequest,
                      context: grpc.ServicerContext) -> intake_pb2.SubmitRequestResponse:
        self.received.append(request)
        if request.member_id == "INVALID":
            bad = error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in VIOLATIONS])
            detail = any_pb2.Any()
            detail.Pack(bad)
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="request is invalid (3 problem(s))",
                                       details=[detail])
            context.abort_with_status(rpc_status.to_status(status))
        if request.member_id == "CONFLICT":
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "idempotency key 'k' was already used")
        return intake_pb2.SubmitRequestResponse(request=_view(request), replayed=request.member_id == "REPLAY")

    def GetRequest(self, request: intake_pb2.GetRequestRequest,
                   context: grpc.ServicerContext) -> intake_pb2.GetRequestResponse:
        if request.request_id != REQUEST_ID:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no request {request.request_id!r}")
        return intake_pb2.GetRequestResponse(request=_view())


class FakeAuthorization(authorization_pb2_grpc.AuthorizationServiceServicer):
    def GetAuthorization(self, request: authorization_pb2.GetAuthorizationRequest,
                         context: grpc.ServicerContext) -> authorization_pb2.GetAuthorizationResponse:
        if request.authorization_number.upper() != AUTH_NUMBER:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no authorization {request.authorization_number!r}")
        return authorization_pb2.GetAuthorizationResponse(authorization=_authorization())

    def ListMemberAuthorizations(self, request: authorization_pb2.ListMemberAuthorizationsRequest,
                                 context: grpc.ServicerContext
                                 ) -> authorization_pb2.ListMemberAuthorizationsResponse:
        auths = [_authorization()] if request.member_id == "MA100001" else []
        if request.procedure_code:
            auths = [a for a in auths if a.procedure_code == request.procedure_code]
        return authorization_pb2.ListMemberAuthorizationsResponse(authorizations=auths)

    def FindOverlappingAuthorizations(self, request: authorization_pb2.FindOverlappingAuthorizationsRequest,
                                      context: grpc.ServicerContext
                                      ) -> authorization_pb2.FindOverlappingAuthorizationsResponse:
        return authorization_pb2.FindOverlappingAuthorizationsResponse(answers=[
            authorization_pb2.OverlapAnswer(authorizations=[_authorization()] if q.member_id == "MA100001" else [])
            for q in request.queries])

    def CheckClaim(self, request: authorization_pb2.CheckClaimRequest,
                   context: grpc.ServicerContext) -> authorization_pb2.CheckClaimResponse:
        if request.claim.member_id != "MA100001":
            return authorization_pb2.CheckClaimResponse(match=authorization_pb2.CLAIM_MATCH_NEVER_AUTHORIZED,
                                                        explanation="member has no authorization")
        return authorization_pb2.CheckClaimResponse(match=authorization_pb2.CLAIM_MATCH_COVERED,
                                                    authorization=_authorization(), units_remaining=1,
                                                    explanation=f"covered by {AUTH_NUMBER}: 1 of 1 units remain")

    def ConsumeUnits(self, request: authorization_pb2.ConsumeUnitsRequest,
                     context: grpc.ServicerContext) -> authorization_pb2.ConsumeUnitsResponse:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "units exhausted: 0 of 1 units left")
        raise AssertionError("abort raises")

    def GetAuthorizationMetrics(self, request: authorization_pb2.GetAuthorizationMetricsRequest,
                                context: grpc.ServicerContext) -> authorization_pb2.GetAuthorizationMetricsResponse:
        return authorization_pb2.GetAuthorizationMetricsResponse(decided=4, approved=3, denied=1,
                                                                 approved_after_appeal=1)


class FakeReview(review_pb2_grpc.ReviewServiceServicer):
    """A queue of five tasks, served two per page at most."""

    def __init__(self) -> None:
        self.page_sizes: list[int] = []

    def ListReviewQueue(self, request: review_pb2.ListReviewQueueRequest,
                        context: grpc.ServicerContext) -> review_pb2.ListReviewQueueResponse:
        self.page_sizes.append(request.page_size)
        tasks = [review_pb2.ReviewTask(task_id=f"t{i}", request_id=f"req-{i}", line_number=1, procedure_code="27447",
                                       member_state="CA", line_of_business=types_pb2.LINE_OF_BUSINESS_MEDICAID,
                                       urgency=types_pb2.URGENCY_EXPEDITED if i == 0 else types_pb2.URGENCY_STANDARD,
                                       outcome=types_pb2.LINE_OUTCOME_REFER_TO_NURSE, status="open",
                                       reasons=["no criteria set covers 27447 for medicaid"]) for i in range(5)]
        start = int(request.page_token or 0)
        end = min(start + min(request.page_size, 2), len(tasks))
        return review_pb2.ListReviewQueueResponse(tasks=tasks[start:end], total=len(tasks),
                                                  next_page_token=str(end) if end < len(tasks) else "")


class Server:
    def __init__(self) -> None:
        self.intake = FakeIntake()  # type: ignore[abstract]  # stub: abstract; runtime: UNIMPLEMENTED
        self.review = FakeReview()  # type: ignore[abstract]  # stub: abstract; runtime: UNIMPLEMENTED
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(self.intake, self.server)
        review_pb2_grpc.add_ReviewServiceServicer_to_server(self.review, self.server)
        authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(FakeAuthorization(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"

    def flags(self) -> list[str]:
        return ["--intake", self.target, "--review", self.target, "--authorization", self.target]


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.server.start()
    yield s
    s.server.stop(None).wait()


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(json_format.MessageToDict(lumbar_mri(member_id="MA100001"),
                                                         preserving_proto_field_name=True)))
    return path


def _write_request(tmp_path: Path, member_id: str) -> Path:
    path = tmp_path / f"{member_id}.json"
    path.write_text(json.dumps(json_format.MessageToDict(lumbar_mri(member_id=member_id),
                                                         preserving_proto_field_name=True)))
    return path


# -- submit --------------------------------------------------------------------------------------------

def test_submit_prints_lines_decisions_and_authorization(server: Server, request_file: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["submit", str(request_file), "--intake", server.target]) == 0
    out = capsys.readouterr().out
    for expected in (REQUEST_ID, "COMPLETE", "72148", "meets criteria", "A1 certified in total",
                     "imaging-mri-lumbar-spine version 2026.1", "red-flags", "unmet", "conservative-care", "met",
                     "imaging-history", "missing", AUTH_NUMBER, "2027-01-11 → 2027-01-25", "cms-0057-f",
                     "180 ms after receipt"):
        assert expected in out, expected


def test_submit_json_output_is_protobuf_json(server: Server, request_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["--intake", server.target, "submit", str(request_file), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["request"]["request_id"] == REQUEST_ID
    assert answer["request"]["lines"][0]["authorization"]["authorization_number"] == AUTH_NUMBER


def test_submit_wait_ms_flag_overrides_the_file(server: Server, request_file: Path) -> None:
    assert urctl.main(["submit", str(request_file), "--wait-ms", "1500", "--intake", server.target]) == 0
    assert server.intake.received[-1].wait_ms == 1500


def test_submit_says_when_the_answer_is_a_replay(server: Server, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["submit", str(_write_request(tmp_path, "REPLAY")), "--intake", server.target]) == 0
    assert "replayed" in capsys.readouterr().out


def test_invalid_argument_prints_every_field_violation(server: Server, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_request(tmp_path, "INVALID")
    assert urctl.main(["submit", str(path), "--intake", server.target]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"intake rejected {path} (3 problems):" in captured.err
    for field, description in VIOLATIONS:
        assert f"  {field}: {description}\n" in captured.err
    assert "Traceback" not in captured.err


def test_already_exists_is_reported(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["submit", str(_write_request(tmp_path, "CONFLICT")), "--intake", server.target]) == 1
    assert "was already used" in capsys.readouterr().err


def test_unreachable_intake_names_the_address(request_file: Path, refused_target: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    target = refused_target
    assert urctl.main(["submit", str(request_file), "--intake", target]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach intake at {target} — is the platform running? (make run)" in err
    assert "Traceback" not in err


def test_target_comes_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("UR_INTAKE_TARGET", server.target)
    assert urctl.main(["request", "show", REQUEST_ID]) == 0
    assert REQUEST_ID in capsys.readouterr().out


# -- request files -------------------------------------------------------------------------------------

def test_yaml_request_file_reads_like_json(tmp_path: Path, request_file: Path) -> None:
    data = json.loads(request_file.read_text())
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(data))
    assert urctl.load_request_file(path) == urctl.load_request_file(request_file)


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("missing.json", None, "no such file"),
    ("broken.json", '{"member_id": "MA100001",\n  "units": }', "invalid JSON at line 2"),
    ("broken.yaml", "member_id: [unclosed\n", "invalid YAML at line"),
    ("list.yaml", "- member_id: MA100001\n", "holds a list; expected one SubmitRequestRequest"),
    ("empty.yaml", "", "is empty"),
    ("unknown.json", '{"member": "MA100001"}', 'no field named "member"'),
    ("typed.yaml", "requesting_provider:\n  npi: 1234567893\n", "quote values that are strings of digits"),
])
def test_bad_request_file_is_named_with_its_problem(tmp_path: Path, refused_target: str,
                                                    capsys: pytest.CaptureFixture[str], name: str,
                                                    content: str | None, problem: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(urctl.RequestFileError) as caught:
        urctl.load_request_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)
    # The same through the command line: exit status 2, no traceback, nothing sent.
    assert urctl.main(["submit", str(path), "--intake", refused_target]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert problem in err
    assert "Traceback" not in err


def test_directory_is_not_a_request_file(tmp_path: Path) -> None:
    with pytest.raises(urctl.RequestFileError, match="is a directory"):
        urctl.load_request_file(tmp_path)


# -- lookups -------------------------------------------------------------------------------------------

def test_request_show_not_found(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main([*server.flags(), "request", "show", "nope"]) == 1
    err = capsys.readouterr().err
    assert "not found: no request 'nope'" in err
    assert "Traceback" not in err


def test_claim_check_consume_and_metrics(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    claim = ["--member", "MA100001", "--npi", "1234567893", "--code", "72148", "--date", "2027-01-20"]
    assert urctl.main(["claim", "check", *claim, *server.flags()]) == 0
    assert f"covered: covered by {AUTH_NUMBER}" in capsys.readouterr().out
    assert urctl.main(["claim", "consume", "CLM-1/1", *claim, *server.flags()]) == 1
    assert "units exhausted: 0 of 1 units left" in capsys.readouterr().err
    assert urctl.main(["claim", "check", *claim[:-1], "20.1.2027", *server.flags()]) == 2
    assert "is not a date" in capsys.readouterr().err
    assert urctl.main(["authorization", "metrics", *server.flags()]) == 0
    assert "4 decided: 3 approved" in capsys.readouterr().out


def test_authorization_show(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["authorization", "show", AUTH_NUMBER.lower(), *server.flags()]) == 0
    out = capsys.readouterr().out
    assert AUTH_NUMBER in out
    assert "APPROVED" in out
    assert "2027-01-11 → 2027-01-25" in out
    assert "72148 x 1" in out


def test_authorization_show_not_found(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["authorization", "show", "UR26-0000-0000", *server.flags()]) == 1
    assert "not found: no authorization 'UR26-0000-0000'" in capsys.readouterr().err


def test_authorization_list(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["authorization", "list", "--member", "MA100001", "--code", "72148", *server.flags()]) == 0
    out = capsys.readouterr().out
    assert AUTH_NUMBER in out
    assert "2027-01-11" in out
    assert urctl.main(["authorization", "list", "--member", "MA100001", "--code", "27447", *server.flags(),
                       "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {}


def test_queue_list_follows_pages_up_to_the_limit(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["queue", "list", "--limit", "3", "--json", *server.flags()]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [t["task_id"] for t in answer["tasks"]] == ["t0", "t1", "t2"]
    assert answer["total"] == 5
    assert server.review.page_sizes == [3, 1]


def test_queue_list_table(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["queue", "list", *server.flags()]) == 0
    out = capsys.readouterr().out
    assert "showing 5 of 5" in out
    assert "27447" in out
    assert "EXPEDITED" in out
    assert all(f"req-{i} line 1" in out for i in range(5))
    assert "  refer to nurse" in out
    assert "  • no criteria set covers 27447 for medicaid" in out


def test_queue_list_unreachable_review(refused_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = refused_target
    assert urctl.main(["queue", "list", "--review", target]) == 1
    assert f"cannot reach review at {target}" in capsys.readouterr().err


# -- usage ---------------------------------------------------------------------------------------------

def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main([]) == 2
    assert urctl.main(["authorization", "list"]) == 2  # --member is required
    assert "--member" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["--help"]) == 0
    assert "urctl submit" in capsys.readouterr().out


def test_settings_markdown_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from services.common import settings

    assert urctl.main(["settings", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert all(f"`{s.name}`" in out for s in settings.SETTINGS)
