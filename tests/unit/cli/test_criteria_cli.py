"""urctl criteria validate / test / explain / replay: what a medical director reads, and the exit status."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
import yaml
from google.protobuf import json_format
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli import urctl
from services.cli.criteria import examples as criteria_examples
from services.cli.criteria.library import explanation_of, request_lines
from services.common.proto_enums import to_number
from services.review.adapters import tables
from services.review.adapters.criteria_loader import load_library
from services.review.adapters.queries import read_only_engine
from services.review.domain.criteria import PythonMatcher, evaluate
from tests.factories import lumbar_mri

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "services" / "review" / "criteria"
LUMBAR = SHIPPED / "imaging-mri-lumbar-spine.yaml"
LUMBAR_ID = "imaging-mri-lumbar-spine"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # rich wraps at 80 columns when not on a terminal
    monkeypatch.delenv("UR_REVIEW_CRITERIA_DIR", raising=False)
    monkeypatch.delenv("UR_REVIEW_DATABASE_URL", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = urctl.main(["criteria", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- criteria files ----------------------------------------------------------------------------------

def lumbar_doc() -> dict[str, Any]:
    doc = yaml.safe_load(LUMBAR.read_text())
    assert isinstance(doc, dict)
    return doc


def condition_index(doc: dict[str, Any], condition_id: str) -> int:
    return next(i for i, c in enumerate(doc["conditions"]) if c["id"] == condition_id)


def write_doc(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_draft(directory: Path, *, weeks: float = 10, version: str | None = None, name: str = "draft.yaml") -> Path:
    """The lumbar spine MRI criteria with both six-week thresholds raised to ``weeks``, its
    examples adjusted so that it validates. A version of its own (each content compiles once)."""
    doc = lumbar_doc()
    doc["version"] = version or f"2026.9.{uuid.uuid4().int % 10**8}"
    for cid, fact in (("symptoms_six_weeks", "symptom_duration_weeks"),
                      ("conservative_therapy_six_weeks", "conservative_therapy_weeks")):
        cond = doc["conditions"][condition_index(doc, cid)]
        cond["when"] = {"fact": fact, "op": "ge", "value": weeks}
        cond["description"] = cond["description"].replace("6 weeks", f"{weeks:g} weeks")
    for example in doc["examples"]:
        facts = example["facts"]
        if example["expect"] == "meets_criteria" and "symptom_duration_weeks" in facts:
            facts["symptom_duration_weeks"] = weeks + 2
            facts["conservative_therapy_weeks"] = weeks + 1
    return write_doc(directory / name, doc)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


SYMPTOMS = condition_index(lumbar_doc(), "symptoms_six_weeks")
CAUDA = condition_index(lumbar_doc(), "cauda_equina_suspected")

BROKEN = [
    pytest.param(_set(f"conditions.{SYMPTOMS}.weight", 3), f"conditions[{SYMPTOMS}].weight", "unknown key",
                 id="unknown-key"),
    pytest.param(_set("facts.0.type", "integer"), "facts[0].type", "unknown fact type 'integer'", id="fact-type"),
    pytest.param(_set(f"conditions.{SYMPTOMS}.when.op", "approx"), f"conditions[{SYMPTOMS}].when.op",
                 "unknown operator 'approx'", id="unknown-op"),
    pytest.param(_set(f"conditions.{CAUDA}.when.op", "gt"), f"conditions[{CAUDA}].when.op",
                 "'gt' does not apply to bool fact 'suspected_cauda_equina'", id="op-for-type"),
    pytest.param(_set(f"conditions.{SYMPTOMS}.when.value", "six"), f"conditions[{SYMPTOMS}].when.value",
                 "'six' is not a number", id="value-type"),
    pytest.param(_set(f"conditions.{SYMPTOMS}.when.fact", "symptom_weeks"), f"conditions[{SYMPTOMS}].when.fact",
                 "'symptom_weeks' is not a declared fact", id="undeclared-fact"),
    pytest.param(_set("outcomes.approve_when.any_of.0", "saddle_anesthesia"), "outcomes.approve_when.any_of[0]",
                 "'saddle_anesthesia' is not a defined condition", id="unknown-condition"),
    pytest.param(_set("examples.0.expect", "refer_to_nurse"), "examples[0].expect",
                 "expects refer_to_nurse, the criteria give meets_criteria", id="example-does-not-hold"),
    pytest.param(_set("outcomes.deny_when", "symptoms_six_weeks"), "outcomes.deny_when", "software may not deny",
                 id="deny-outcome"),
    pytest.param(_set("examples.5.expect", "denied"), "examples[5].expect", "software may not deny",
                 id="deny-expected"),
]


# -- validate ----------------------------------------------------------------------------------------

def test_validate_accepts_the_shipped_library(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate")
    assert code == 0, out
    assert LUMBAR_ID in out
    assert "every criteria file is valid" in out
    code, out, _ = run(capsys, "validate", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["problems"] == []
    assert len(report["valid"]) >= 5
    lumbar = next(s for s in report["valid"] if s["id"] == LUMBAR_ID)
    assert lumbar["examples"] >= 5
    assert len(lumbar["sha256"]) == 64
    assert lumbar["category"] == "advanced_imaging"


@pytest.mark.parametrize(("edit", "field", "problem"), BROKEN)
def test_validate_names_file_field_and_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               edit: Callable[[dict[str, Any]], None], field: str,
                                               problem: str) -> None:
    doc = lumbar_doc()
    edit(doc)
    path = write_doc(tmp_path / "broken-lumbar.yaml", doc)
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("broken-lumbar.yaml: "))
    assert line.startswith(f"broken-lumbar.yaml: {field}: "), line
    assert problem in line
    assert "would not load" in out


def test_validate_a_directory_catches_the_same_id_and_version_twice(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-lumbar.yaml").write_text(LUMBAR.read_text())
    doc = lumbar_doc()
    doc["title"] = "lumbar spine MRI (edited, version not bumped)"
    write_doc(tmp_path / "b-lumbar.yaml", doc)
    code, out, _ = run(capsys, "validate", str(tmp_path))
    assert code == 1
    assert (f"b-lumbar.yaml: version: {LUMBAR_ID} version 2026.1 is also defined in a-lumbar.yaml; "
            "give changed criteria a new version") in out


def test_validate_across_paths_catches_a_copy_of_a_library_set(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    copy_path = tmp_path / "copy.yaml"
    copy_path.write_text(LUMBAR.read_text())
    code, out, _ = run(capsys, "validate", str(SHIPPED), str(copy_path))
    assert code == 1
    assert f"copy.yaml: version: {LUMBAR_ID} version 2026.1 is also defined in" in out


def test_validate_lists_valid_sets_and_every_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_draft(tmp_path, name="good.yaml")
    doc = lumbar_doc()
    doc["outcomes"]["deny_when"] = "symptoms_six_weeks"
    bad = write_doc(tmp_path / "deny.yaml", doc)
    missing = tmp_path / "nowhere.yaml"
    code, out, _ = run(capsys, "validate", str(good), str(bad), str(missing))
    assert code == 1
    assert LUMBAR_ID in out  # the valid draft is in the table
    assert "deny.yaml: outcomes.deny_when: software may not deny" in out
    assert "nowhere.yaml: no such file or directory" in out
    assert "2 problem(s) in 2 file(s)" in out


# -- test --------------------------------------------------------------------------------------------

def test_test_passes_every_example_of_the_shipped_library(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", "--json")
    report = json.loads(out)
    assert code == 0, out
    assert len(report["sets"]) >= 5
    assert report["failed"] == 0
    assert report["problems"] == []
    library = load_library(SHIPPED)
    for s in report["sets"]:
        criteria = library.get(s["id"], s["version"])
        assert criteria is not None
        assert s["passed"] == len(criteria.examples) > 0
    code, out, _ = run(capsys, "test")
    assert code == 0
    assert f"{report['examples']} of {report['examples']} example(s) passed" in out


def test_test_fails_on_a_file_whose_example_does_not_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The loader refuses a set whose own example fails, so `test` reports it as a file that does not load."""
    doc = lumbar_doc()
    doc["examples"][0]["expect"] = "refer_to_nurse"
    path = write_doc(tmp_path / "wrong-example.yaml", doc)
    code, out, _ = run(capsys, "test", str(path), str(write_draft(tmp_path)))
    assert code == 1
    assert "wrong-example.yaml: examples[0].expect: 'eight weeks of symptoms after seven weeks of therapy' " \
           "expects refer_to_nurse, the criteria give meets_criteria" in out
    assert "passed in 1 set(s); 1 file problem(s)" in out


class _BlindMatcher:
    """A rules engine that never fires: every example that needs a met condition fails."""

    def compile(self, criteria: Any) -> str:
        return str(criteria.key)

    def matched(self, criteria: Any, line: Any) -> frozenset[str]:
        return frozenset()


def test_test_reports_each_failing_example_with_expected_and_got(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(criteria_examples, "DurableRulesMatcher", _BlindMatcher)
    code, out, _ = run(capsys, "test", str(LUMBAR))
    assert code == 1
    assert f"{LUMBAR_ID}@2026.1: example 'eight weeks of symptoms after seven weeks of therapy' failed" in out
    assert "expected  meets_criteria" in out
    assert "durable-rules: refer_to_nurse" in out
    assert "FAIL" in out
    code, out, _ = run(capsys, "test", str(LUMBAR), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["failed"] > 0
    failure = report["sets"][0]["failures"][0]
    assert failure["example"]
    assert failure["expected"]
    assert "durable-rules" in failure["got"]
    assert failure["summary"]


# -- explain -----------------------------------------------------------------------------------------

def _request_file(tmp_path: Path, request: Any, name: str = "request.json") -> Path:
    path = tmp_path / name
    path.write_text(json_format.MessageToJson(request, preserving_proto_field_name=True))
    return path


def test_explain_a_request_file_shows_criteria_and_conditions(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _request_file(tmp_path, lumbar_mri(meets=False))
    code, out, _ = run(capsys, "explain", str(path))
    assert code == 0, out
    assert f"{LUMBAR_ID} version 2026.1" in out
    assert "referred to a nurse" in out
    assert "symptoms_six_weeks: symptoms for at least 6 weeks" in out
    assert "unmet" in out
    assert "symptom_duration_weeks=2 weeks" in out
    code, out, _ = run(capsys, "explain", str(_request_file(tmp_path, lumbar_mri(meets=True), "ok.json")), "--json")
    answer = json.loads(out)
    explanation = answer["lines"][0]["explanation"]
    assert code == 0
    assert answer["lines"][0]["outcome"] == "LINE_OUTCOME_MEETS_CRITERIA"
    assert explanation["criteria_id"] == LUMBAR_ID
    assert len(explanation["criteria_hash"]) == 64
    statuses = {c["condition_id"]: c["status"] for c in explanation["conditions"]}
    assert statuses["symptoms_six_weeks"] == "CONDITION_STATUS_MET"
    assert statuses["cauda_equina_suspected"] == "CONDITION_STATUS_UNMET"


def test_explain_names_missing_facts_and_uncovered_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = lumbar_mri(missing_facts=True)
    request.service_lines.add(line_number=2, procedure_code="99999", units=1)
    code, out, _ = run(capsys, "explain", str(_request_file(tmp_path, request)))
    assert code == 0
    assert "pended for missing information" in out
    assert "conservative_therapy_weeks" in out
    assert "missing" in out
    assert "Line 2: 99999" in out
    assert "no criteria set covers 99999" in out


def test_explain_a_file_that_is_not_a_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nonsense.yaml"
    path.write_text("members: [1, 2]\n")
    code, _, err = run(capsys, "explain", str(path))
    assert code == 2
    assert "nonsense.yaml: not a valid SubmitRequestRequest" in err
    code, _, err = run(capsys, "explain", str(tmp_path / "absent.json"))
    assert code == 2
    assert "absent.json: no such file" in err


class _Review(review_pb2_grpc.ReviewServiceServicer):
    def __init__(self, determination: Any) -> None:
        self.determination = determination

    def GetDetermination(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.request_id != self.determination.request_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no determination for request {request.request_id!r}")
        return review_pb2.GetDeterminationResponse(determination=self.determination)


@pytest.fixture
def review_server() -> Iterator[tuple[str, Any]]:
    determination = stored_determination(submitted(lumbar_mri(meets=False), dt.datetime(2026, 3, 2, tzinfo=dt.UTC)))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    review_pb2_grpc.add_ReviewServiceServicer_to_server(_Review(determination), server)  # type: ignore[abstract]  # stub: abstract; runtime: UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", determination
    server.stop(None)


def test_explain_a_request_id_asks_the_review_service(review_server: tuple[str, Any],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    target, determination = review_server
    code, out, _ = run(capsys, "explain", determination.request_id, "--review", target)
    assert code == 0, out
    assert determination.request_id in out
    assert f"{LUMBAR_ID} version 2026.1" in out
    assert "referred to a nurse" in out
    assert "symptoms_six_weeks" in out
    assert "unmet" in out
    code, out, _ = run(capsys, "explain", determination.request_id, "--review", target, "--json")
    assert json.loads(out)["request_id"] == determination.request_id
    unknown = str(uuid.uuid4())
    code, _, err = run(capsys, "explain", unknown, "--review", target)
    assert code == 1
    assert "not found" in err
    assert unknown in err


# -- replay ------------------------------------------------------------------------------------------

def submitted(request: Any, received_at: dt.datetime, request_id: str | None = None) -> Any:
    """The RequestSubmitted intake would publish for a SubmitRequestRequest."""
    message = events_pb2.RequestSubmitted(
        request_id=request_id or str(uuid.uuid4()), member_id=request.member_id, coverage=request.coverage,
        requesting_provider=request.requesting_provider, servicing_provider=request.servicing_provider,
        diagnoses=request.diagnoses, service_lines=request.service_lines, review_type=request.review_type,
        urgency=request.urgency, clinical_facts=request.clinical_facts)
    message.received_at.FromDatetime(received_at)
    return message


def stored_determination(message: Any) -> Any:
    """What the review service stored: the shipped criteria applied to each line."""
    library = load_library(SHIPPED)
    determination = types_pb2.Determination(request_id=message.request_id, determination_id=str(uuid.uuid4()),
                                            decided_by=types_pb2.DeciderRef(id="system:rules-engine",
                                                                            role="software"))
    for line, facts in request_lines(message):
        out = determination.lines.add(line_number=line.line_number, procedure_code=line.procedure_code)
        criteria = library.select(facts)
        if criteria is None:
            out.outcome = types_pb2.LINE_OUTCOME_REFER_TO_NURSE
            out.explanation.summary = "no criteria set covers it"
            continue
        evaluation = evaluate(criteria, facts, PythonMatcher())
        out.outcome = to_number(types_pb2.LineOutcome, evaluation.outcome.value)
        out.explanation.CopyFrom(explanation_of(evaluation))
    return determination


MEETS_ID = "11111111-1111-4111-8111-111111111111"


def case_rows() -> list[dict[str, Any]]:
    """Five stored cases: in the window an 8-week lumbar MRI (approved, and would not be with a
    10-week threshold), a 2-week one (referred), one without facts (pended), a knee MRI (another
    set); and an 8-week lumbar MRI received before the window."""
    received = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    knee = lumbar_mri(procedure_code="73721")
    knee.diagnoses[0].code = "S83.511A"
    requests = [(lumbar_mri(meets=True), received, MEETS_ID), (lumbar_mri(meets=False), received, None),
                (lumbar_mri(missing_facts=True), received, None), (knee, received, None),
                (lumbar_mri(meets=True), dt.datetime(2026, 1, 5, tzinfo=dt.UTC), None)]
    rows = []
    for i, (request, at, request_id) in enumerate(requests):
        message = submitted(request, at + dt.timedelta(minutes=i), request_id)
        determination = stored_determination(message)
        rows.append({
            "request_id": message.request_id, "determination_id": determination.determination_id,
            "member_id": message.member_id, "line_of_business": "medicare_advantage", "member_state": "CA",
            "urgency": "standard", "review_type": "prospective", "requesting_npi": "1234567893",
            "received_at": at + dt.timedelta(minutes=i), "due_at": at + dt.timedelta(days=7), "regime": "cms-0057-f",
            "request": message.SerializeToString(), "determination": determination.SerializeToString(),
            "created_at": at})
    return rows


def seed_review_database(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        tables.metadata.create_all(engine)
        rows = case_rows()
        with engine.begin() as conn:
            conn.execute(sa.insert(tables.cases), rows)
        return len(rows)
    finally:
        engine.dispose()


def check_replay_report(report: dict[str, Any]) -> None:
    """What the replay of :func:`write_draft` over :func:`case_rows` from 2026-03-01 must say."""
    assert report["requests"] == 4
    assert report["lines"] == 4
    assert report["lines_covered"] == 3
    outcomes = report["outcomes"]
    assert outcomes["meets_criteria"] == {"before": 1, "after": 0, "delta": -1}
    assert outcomes["refer_to_nurse"] == {"before": 1, "after": 2, "delta": 1}
    assert outcomes["pend_missing_information"] == {"before": 1, "after": 1, "delta": 0}
    assert report["changed_lines"] == 1
    assert report["transitions"] == [{"before": "meets_criteria", "after": "refer_to_nurse", "lines": 1}]
    (changed,) = report["sample"]
    assert changed["request_id"] == MEETS_ID
    assert changed["procedure_code"] == "72148"
    assert changed["after_words"].startswith("would now be referred to a nurse")
    flips = {f["condition_id"]: f for f in changed["flips"]}
    assert set(flips) == {"symptoms_six_weeks", "conservative_therapy_six_weeks"}
    symptoms = flips["symptoms_six_weeks"]
    assert (symptoms["before"], symptoms["after"]) == ("met", "unmet")
    assert symptoms["description"] == "symptoms for at least 10 weeks"
    assert symptoms["observed"] == ["symptom_duration_weeks=8 weeks"]
    assert symptoms["before_description"] == "symptoms for at least 6 weeks"


@pytest.fixture
def review_db(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "review.db"
    path.parent.mkdir()
    seed_review_database(f"sqlite:///{path}")
    return path


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


def test_replay_reports_counts_and_flipped_conditions_without_touching_the_database(
        review_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = write_draft(tmp_path)
    before = _snapshot(review_db)
    url = f"sqlite:///{review_db}"
    code, out, err = run(capsys, "replay", str(draft), "--since", "2026-03-01", "--database-url", url, "--json")
    assert code == 0, err
    report = json.loads(out)
    check_replay_report(report)
    assert report["draft"]["replaces_version"] == "2026.1"
    code, out, err = run(capsys, "replay", str(draft), "--since", "2026-03-01", "--database-url", url)
    assert code == 0, err
    assert "requests examined                 4" in out
    assert "was approved → would now be referred to a nurse" in out
    assert f"Request {MEETS_ID} line 1, 72148" in out
    assert "would now be referred to a nurse because this is not met: symptoms for at least 10 weeks" in out
    assert "symptoms for at least 10 weeks (was: symptoms for at least 6 weeks)" in out
    assert "symptom_duration_weeks=8 weeks" in out
    assert "was approved under imaging-mri-lumbar-spine 2026.1" in out
    assert "approved (meets criteria)" in out
    assert "-1" in out
    assert "+1" in out
    assert _snapshot(review_db) == before  # same bytes, same mtime, no -wal or -shm left behind


def test_replay_until_and_the_default_database_under_ur_var_dir(review_db: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("UR_VAR_DIR", str(review_db.parent))
    draft = write_draft(tmp_path)
    code, out, err = run(capsys, "replay", str(draft), "--since", "2026-01-01", "--until", "2026-01-31", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["requests"] == 1
    assert report["changed_lines"] == 1
    assert report["database"].endswith("review.db")


def test_the_read_only_engine_cannot_write(review_db: Path) -> None:
    engine, _ = read_only_engine(f"sqlite:///{review_db}")
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.execute(sa.delete(tables.cases))
    finally:
        engine.dispose()


def test_replay_errors_are_plain(review_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = write_draft(tmp_path)
    url = f"sqlite:///{review_db}"
    code, _, err = run(capsys, "replay", str(draft), "--since", "2026-03-01",
                       "--database-url", f"sqlite:///{tmp_path / 'absent.db'}")
    assert code == 1
    assert "no review database at" in err
    assert "make run" in err
    code, _, err = run(capsys, "replay", str(draft), "--since", "2030-01-01", "--database-url", url)
    assert code == 1
    assert "no requests were received on or after 2030-01-01" in err
    assert "holds 5 request(s) received from 2026-01-05 to 2026-03-02" in err
    code, _, err = run(capsys, "replay", str(draft), "--since", "2026-03-05", "--until", "2026-03-01",
                       "--database-url", url)
    assert code == 2
    assert "--until 2026-03-01 is before --since 2026-03-05" in err
    code, _, err = run(capsys, "replay", str(draft), "--since", "March", "--database-url", url)
    assert code == 2
    assert "--since takes a date as YYYY-MM-DD" in err


def test_replay_refuses_a_draft_that_does_not_validate(review_db: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{review_db}"
    doc = yaml.safe_load(write_draft(tmp_path).read_text())
    denying = copy.deepcopy(doc)
    denying["outcomes"]["deny_when"] = "symptoms_six_weeks"
    code, out, err = run(capsys, "replay", str(write_doc(tmp_path / "deny.yaml", denying)), "--since", "2026-03-01",
                         "--database-url", url)
    assert code == 2
    assert out == ""
    assert "the draft does not validate: deny.yaml: outcomes.deny_when: software may not deny" in err
    same_version = copy.deepcopy(doc)
    same_version["version"] = "2026.1"
    code, _, err = run(capsys, "replay", str(write_doc(tmp_path / "same.yaml", same_version)), "--since",
                       "2026-03-01", "--database-url", url)
    assert code == 2
    assert f"same.yaml: version: {LUMBAR_ID} version 2026.1 is already in the criteria library" in err


def test_replay_of_an_unchanged_set_changes_nothing(review_db: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "replay", str(LUMBAR), "--since", "2026-01-01", "--database-url",
                         f"sqlite:///{review_db}")
    assert code == 0, err
    assert "lines whose outcome would change  0" in out
    assert "No line would get a different outcome under the draft." in out


def test_replay_says_what_a_person_has_decided_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A two-week lumbar MRI software referred and a nurse then approved: a draft that asks for two
    weeks of symptoms and one of therapy would approve it, and the sample says what the nurse did."""
    rows = case_rows()
    referred = rows[1]
    determination = types_pb2.Determination.FromString(referred["determination"])
    line = determination.lines[0]
    assert line.outcome == types_pb2.LINE_OUTCOME_REFER_TO_NURSE
    line.action_code = types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    line.decided_by.CopyFrom(types_pb2.DeciderRef(id="rn-okafor", role="nurse", name="A. Okafor"))
    referred["determination"] = determination.SerializeToString()
    url = f"sqlite:///{tmp_path / 'review.db'}"
    engine = sa.create_engine(url)
    tables.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(tables.cases), rows)
    engine.dispose()

    doc = lumbar_doc()
    doc["version"] = f"2026.9.{uuid.uuid4().int % 10**8}"
    for cid, fact, weeks in (("symptoms_six_weeks", "symptom_duration_weeks", 2),
                             ("conservative_therapy_six_weeks", "conservative_therapy_weeks", 1)):
        doc["conditions"][condition_index(doc, cid)]["when"] = {"fact": fact, "op": "ge", "value": weeks}
    for example in doc["examples"]:  # the two that the lower thresholds now approve
        if example["name"] in ("two weeks of pain without red flags",
                               "long-standing pain with little conservative therapy"):
            example["expect"] = "meets_criteria"
    draft = write_doc(tmp_path / "two-weeks.yaml", doc)
    code, out, err = run(capsys, "replay", str(draft), "--since", "2026-03-01", "--database-url", url, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["transitions"] == [{"before": "refer_to_nurse", "after": "meets_criteria", "lines": 1}]
    (changed,) = report["sample"]
    assert changed["request_id"] == referred["request_id"]
    assert changed["later_decision"] == "a nurse decided: approved"
    code, out, err = run(capsys, "replay", str(draft), "--since", "2026-03-01", "--database-url", url)
    assert code == 0, err
    assert "since then      a nurse decided: approved" in out
