"""The sample-workload driver against a real in-process gRPC server with a fake intake whose
requests settle after a poll or two."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from rich.console import Console
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli import workload
from tests.factories import lumbar_mri

RECEIVED_MS = 1_790_000_000_000


def _line(number: int, *, outcome: int, queued: bool, authorized: bool) -> intake_pb2.LineView:
    item = intake_pb2.LineView(line=types_pb2.ServiceLine(line_number=number, procedure_code="72148", units=1))
    item.determination.CopyFrom(types_pb2.LineDetermination(
        line_number=number, outcome=outcome, queued_for_review=queued,  # type: ignore[arg-type]
        action_code=types_pb2.ACTION_CODE_PENDED if queued else types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL))
    if authorized:
        item.authorization.authorization_number = f"UR26-{number:04d}-TEST"
        item.authorization.status = types_pb2.AUTHORIZATION_STATUS_APPROVED
    return item


MEETS = dict(outcome=types_pb2.LINE_OUTCOME_MEETS_CRITERIA, queued=False, authorized=True)
URGENT = dict(outcome=types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT, queued=False, authorized=True)
NURSE = dict(outcome=types_pb2.LINE_OUTCOME_REFER_TO_NURSE, queued=True, authorized=False)
INFO = dict(outcome=types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION, queued=True, authorized=False)

#: member id -> (final status, lines, decision latency in ms); other members are answered specially.
PLANS = {
    "OK-1": (intake_pb2.REQUEST_STATUS_COMPLETE, [MEETS], 100),
    "OK-2": (intake_pb2.REQUEST_STATUS_COMPLETE, [URGENT], 200),
    "NURSE": (intake_pb2.REQUEST_STATUS_PENDED, [NURSE], 300),
    "INFO": (intake_pb2.REQUEST_STATUS_PENDED, [INFO], 400),
    "MIXED": (intake_pb2.REQUEST_STATUS_PENDED, [MEETS, NURSE], 500),
}


class FakeIntake(intake_pb2_grpc.IntakeServiceServicer):
    """Answers IN_REVIEW, then settles each request on its second GetRequest. Members: ``BAD`` is
    invalid, ``GONE`` ineligible, ``STUCK`` never settles, the rest follow :data:`PLANS`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[str, intake_pb2.RequestView] = {}
        self.member_of: dict[str, str] = {}
        self.polls: dict[str, int] = {}
        self.wait_ms: list[int] = []

    def SubmitRequest(self, request: intake_pb2.SubmitRequestRequest,
                      context: grpc.ServicerContext) -> intake_pb2.SubmitRequestResponse:
        with self.lock:
            self.wait_ms.append(request.wait_ms)
            if request.member_id == "BAD":
                bad = error_details_pb2.BadRequest(field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field="service_lines[0].units",
                                                                description="must be at least 1")])
                detail = any_pb2.Any()
                detail.Pack(bad)
                context.abort_with_status(rpc_status.to_status(status_pb2.Status(
                    code=code_pb2.INVALID_ARGUMENT, message="invalid", details=[detail])))
            if request.idempotency_key in self.by_key:
                return intake_pb2.SubmitRequestResponse(request=self.by_key[request.idempotency_key], replayed=True)
            view = intake_pb2.RequestView(request_id=str(uuid.uuid4()), idempotency_key=request.idempotency_key,
                                          member_id=request.member_id, status=intake_pb2.REQUEST_STATUS_IN_REVIEW)
            view.received_at.FromMilliseconds(RECEIVED_MS)
            if request.member_id == "GONE":
                view.status = intake_pb2.REQUEST_STATUS_INELIGIBLE
                view.status_reason = "member not found"
            self.by_key[request.idempotency_key] = view
            self.member_of[view.request_id] = request.member_id
            return intake_pb2.SubmitRequestResponse(request=view)

    def GetRequest(self, request: intake_pb2.GetRequestRequest,
                   context: grpc.ServicerContext) -> intake_pb2.GetRequestResponse:
        with self.lock:
            member = self.member_of.get(request.request_id)
            if member is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "no such request")
            self.polls[request.request_id] = polls = self.polls.get(request.request_id, 0) + 1
            view = next(v for v in self.by_key.values() if v.request_id == request.request_id)
        if member not in PLANS or polls < 2:
            return intake_pb2.GetRequestResponse(request=view)
        status, lines, latency = PLANS[member]
        settled = intake_pb2.RequestView()
        settled.CopyFrom(view)
        settled.status = status
        settled.decided_at.FromMilliseconds(RECEIVED_MS + latency)
        settled.lines.extend(_line(n, **spec) for n, spec in enumerate(lines, start=1))  # type: ignore[arg-type]
        return intake_pb2.GetRequestResponse(request=settled)


@pytest.fixture
def intake() -> Iterator[tuple[str, FakeIntake]]:
    fake = FakeIntake()  # type: ignore[abstract]  # stub: abstract; runtime: UNIMPLEMENTED
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", fake
    server.stop(None).wait()


def _request(member_id: str, key: str | None = None) -> intake_pb2.SubmitRequestRequest:
    return lumbar_mri(member_id=member_id, key=key)


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_counts_every_kind_of_answer_and_outcome(intake: tuple[str, FakeIntake]) -> None:
    target, _fake = intake
    requests = [_request(m) for m in ("OK-1", "OK-2", "NURSE", "INFO", "MIXED", "BAD", "BAD", "GONE")]
    requests.append(_request("OK-1", key=requests[0].idempotency_key))  # a replay
    summary = workload.run_workload(target, requests, concurrency=4, settle_timeout_s=10, console=_quiet())
    assert summary.submitted == 9
    assert summary.invalid == 2
    assert summary.ineligible == 1
    assert summary.replayed == 1
    assert summary.recorded == 6  # five reviewed + the ineligible one
    assert summary.auto_approved_lines == 3  # OK-1, OK-2 and MIXED's first line
    assert summary.auto_approved_requests == 2
    assert summary.queued_lines == 3  # NURSE, INFO, MIXED's second line
    assert summary.queued_requests == 3
    assert summary.pended_missing_info_lines == 1
    assert summary.authorizations_issued == 3
    assert summary.decision_latency_ms_p50 == pytest.approx(300)
    assert summary.decision_latency_ms_p95 == pytest.approx(480)
    assert summary.decided == 5
    assert summary.unsettled == 0
    assert summary.failed == 0


def test_gives_up_after_the_settle_timeout(intake: tuple[str, FakeIntake]) -> None:
    target, _fake = intake
    # OK-1 settles on its second poll, 0.25 s in: the timeout leaves a slow machine ample room for that.
    summary = workload.run_workload(target, [_request("STUCK"), _request("OK-1")], settle_timeout_s=2,
                                    console=_quiet())
    assert summary.unsettled == 1
    assert summary.auto_approved_requests == 1
    assert summary.decision_latency_ms_p50 == pytest.approx(100)


def test_wait_ms_is_applied_to_copies(intake: tuple[str, FakeIntake]) -> None:
    target, fake = intake
    requests = [_request("OK-1"), _request("NURSE")]
    workload.run_workload(target, requests, wait_ms=250, console=_quiet())
    assert fake.wait_ms == [250, 250]
    assert [r.wait_ms for r in requests] == [0, 0]


def test_unreachable_intake_is_counted_not_raised(refused_target: str) -> None:
    summary = workload.run_workload(refused_target, [_request("OK-1"), _request("OK-2")], settle_timeout_s=1,
                                    console=_quiet())
    assert summary.failed == 2
    assert summary.failures == {"UNAVAILABLE": 2}
    assert summary.recorded == 0
    assert summary.unsettled == 0


def test_render_summary_shows_the_numbers(intake: tuple[str, FakeIntake]) -> None:
    target, _fake = intake
    summary = workload.run_workload(target, [_request("OK-1"), _request("INFO"), _request("BAD")],
                                    console=_quiet())
    out = io.StringIO()
    workload.render_summary(summary, Console(file=out, width=120))
    text = out.getvalue()
    for expected in ("requests submitted", "rejected as invalid", "lines auto-approved", "lines queued for review",
                     "pended for missing information", "authorizations issued", "decision latency p50",
                     "decision latency p95", "unsettled"):
        assert expected in text, expected


def test_load_workload_reads_the_bundled_sample() -> None:
    requests = workload.load_workload()
    assert len(requests) >= 240
    assert all(isinstance(r, intake_pb2.SubmitRequestRequest) and r.idempotency_key for r in requests)


def test_load_workload_names_the_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps([{"member_id": "MA100001"}, {"membr_id": "x"}]))
    with pytest.raises(workload.WorkloadFileError, match=r"^w\.json: \[1\]: not a SubmitRequestRequest: .*membr_id"):
        workload.load_workload(path)
    path.write_text("{}")
    with pytest.raises(workload.WorkloadFileError, match=r"^w\.json: expected a JSON list .*, got a mapping$"):
        workload.load_workload(path)
    path.write_text('[{"member_id": "a", "member_id": "b"}]')
    with pytest.raises(workload.WorkloadFileError, match=r"^w\.json: not a JSON document: duplicate key 'member_id'"):
        workload.load_workload(path)
    with pytest.raises(workload.WorkloadFileError, match=r"^missing\.json: cannot read: No such file"):
        workload.load_workload(tmp_path / "missing.json")


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 50, 0.0), ([7.0], 95, 7.0), ([100.0, 200.0, 300.0, 400.0], 50, 250.0),
    ([100.0, 200.0, 300.0, 400.0], 95, 385.0), ([3.0, 1.0, 2.0], 0, 1.0), ([3.0, 1.0, 2.0], 100, 3.0),
])
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert workload.percentile(values, q) == pytest.approx(expected)
