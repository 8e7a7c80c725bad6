"""urctl and the vocabulary (issue 13): `criteria validate` names a vocabulary's problems, `criteria
test` runs its worked examples (the issue's case among them), `criteria explain` shows what was
derived from what and why a line is urgent, `criteria catalog --check` keeps intake's catalog in step,
and `review urgency` sends SetTaskUrgency with the reviewer's reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import json_format
from ur.common.v1 import types_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli import urctl
from tests.factories import OTHER_NPI, VALID_NPI, fact

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "services" / "review" / "criteria"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("UR_REVIEW_CRITERIA_DIR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = urctl.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_lists_the_vocabularies_beside_the_criteria(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "criteria", "validate", "--json")
    report = json.loads(out)
    assert code == urctl.EXIT_OK
    assert report["problems"] == []
    assert {v["id"] for v in report["vocabularies"]} == {"spine", "abdomen-pelvis", "sleep", "oncology-genetics"}


def test_validate_names_an_unknown_fact_in_a_vocabulary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(SHIPPED / "imaging-mri-lumbar-spine.yaml", tmp_path)
    (tmp_path / "vocabulary").mkdir()
    doc = yaml.safe_load((SHIPPED / "vocabulary" / "spine.yaml").read_text())
    doc["mappings"] = [m for m in doc["mappings"] if m["id"] == "cauda-equina-syndrome-coded"]
    doc["mappings"][0]["then"]["fact"] = "suspected_cauda_equina_syndrome"
    doc["examples"] = [e for e in doc["examples"] if e["mapping"] == "cauda-equina-syndrome-coded"]
    (tmp_path / "vocabulary" / "spine.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, _ = run(capsys, "criteria", "validate", str(tmp_path))
    assert code == urctl.EXIT_SERVICE_ERROR
    assert ("spine.yaml: mappings[0].then.fact: unknown fact 'suspected_cauda_equina_syndrome': no criteria set "
            "declares it") in out


def test_test_runs_the_vocabulary_s_worked_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "criteria", "test", "--json")
    report = json.loads(out)
    assert code == urctl.EXIT_OK
    assert report["failed"] == 0
    spine = next(v for v in report["vocabularies"] if v["id"] == "spine")
    assert spine["failed"] == 0
    assert spine["passed"] >= 10


def test_explain_shows_derived_facts_and_why_the_line_is_urgent(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    request = {
        "idempotency_key": "k", "member_id": "T-MA-0001",
        "coverage": {"line_of_business": "LINE_OF_BUSINESS_MEDICARE_ADVANTAGE", "member_state": "CA"},
        "requesting_provider": {"npi": VALID_NPI}, "servicing_provider": {"npi": OTHER_NPI},
        "diagnoses": [{"code": "M54.50", "primary": True}, {"code": "G83.4"}],
        "service_lines": [{"line_number": 1, "procedure_code": "72148", "units": 1,
                           "start_date": {"year": 2027, "month": 3, "day": 1},
                           "place_of_service": "PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL"}],
        "review_type": "REVIEW_TYPE_PROSPECTIVE", "urgency": "URGENCY_STANDARD",
        "clinical_facts": [json_format.MessageToDict(fact("urinary_retention", True),
                                                     preserving_proto_field_name=True)],
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    code, out, _ = run(capsys, "criteria", "explain", str(path))
    assert code == urctl.EXIT_OK
    assert ("suspected_cauda_equina = true: derived from diagnosis G83.4, fact urinary_retention "
            "(spine@2026.1 cauda-equina-syndrome-coded; spine@2026.1 urinary-retention)") in out
    assert "urgent         meets the urgent lumbar spine MRI criteria: suspected cauda equina syndrome" in out
    code, out, _ = run(capsys, "criteria", "explain", str(path), "--json")
    [line] = json.loads(out)["lines"]
    assert line["explanation"]["derived"][0]["description"] == (
        "suspected cauda equina: derived from diagnosis G83.4, fact urinary_retention")


def test_catalog_check_says_whether_intake_s_catalog_matches(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "criteria", "catalog", "--check")[0] == urctl.EXIT_OK
    stale = tmp_path / "catalog.yaml"
    stale.write_text("version: 1\n")
    code, out, _ = run(capsys, "criteria", "catalog", "--check", "--output", str(stale))
    assert code == urctl.EXIT_SERVICE_ERROR
    assert "does not match the criteria library" in out
    assert run(capsys, "criteria", "catalog", "--write", "--output", str(stale))[0] == urctl.EXIT_OK
    assert stale.read_text() == (REPO / "services" / "common" / "clinical-facts.yaml").read_text()


class _Review(review_pb2_grpc.ReviewServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[review_pb2.SetTaskUrgencyRequest, str]] = []

    def SetTaskUrgency(self, request: review_pb2.SetTaskUrgencyRequest,
                       context: grpc.ServicerContext) -> review_pb2.TaskView:
        self.calls.append((request, str(dict(context.invocation_metadata())["authorization"])))
        view = review_pb2.TaskView()
        view.task.task_id, view.task.urgency = request.task_id, request.urgency
        view.task.urgency_reason = f"set by rn-1: {request.reason}"
        view.history.add(actor="rn-1", action="urgency_changed", detail=f"standard → expedited: {request.reason}")
        return view


@pytest.fixture
def review_server() -> Iterator[tuple[str, _Review]]:
    servicer = _Review()  # type: ignore[abstract]  # stub: abstract; runtime: UNIMPLEMENTED
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    review_pb2_grpc.add_ReviewServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_review_urgency_sends_the_reason(review_server: tuple[str, _Review], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    target, servicer = review_server
    monkeypatch.setenv("UR_REVIEWER_TOKEN", "dev-only-token-rn-1")
    code, out, _ = run(capsys, "review", "urgency", "t-1", "expedited", "--reason", "new weakness",
                       "--review", target)
    assert code == urctl.EXIT_OK
    [(sent, token)] = servicer.calls
    assert (sent.task_id, sent.urgency, sent.reason) == ("t-1", types_pb2.URGENCY_EXPEDITED, "new weakness")
    assert token == "Bearer dev-only-token-rn-1"
    assert "expedited: set by rn-1: new weakness" in out
    code, out, _ = run(capsys, "review", "urgency", "t-1", "standard", "--reason", "stable", "--review", target,
                       "--json")
    parsed: dict[str, Any] = json.loads(out)
    assert code == urctl.EXIT_OK
    assert parsed["task"]["urgency_reason"] == "set by rn-1: stable"
