"""``urctl request add-info``: how ``--fact`` values are read, and the call it makes against a real
in-process gRPC server hosting a fake intake (what a person reads, and the exit status)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli import urctl
from services.cli.reviewer import parse_fact

REQUEST_ID = "0d6f1c52-7a0e-4a39-9a57-5b0c3f1e2d11"
INFORMATION_ID = "5b7e9a0c-1d2e-4f3a-8b4c-6d5e7f8a9b0c"
DECIDED_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


# -- fact parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind", "value"), [
    ("imaging_done=true", "bool_value", True),
    ("imaging_done=false", "bool_value", False),
    ("imaging_done=TRUE", "bool_value", True),
    ("conservative_therapy_weeks=7", "number_value", 7.0),
    ("bmi=41.5", "number_value", 41.5),
    ("temperature_delta=-2.5", "number_value", -2.5),
    ("therapist=Coastal PT", "text_value", "Coastal PT"),
    ("note=saw PT twice: improving", "text_value", "saw PT twice: improving"),
    ("equation=a=b", "text_value", "a=b"),
    ("trailing_colon=7:", "text_value", "7:"),
])
def test_values_parse_by_shape(text: str, kind: str, value: object) -> None:
    fact = parse_fact(text)
    assert fact.name == text.partition("=")[0]
    assert fact.WhichOneof("value") == kind
    assert getattr(fact, kind) == value
    assert fact.unit == ""


def test_iso_dates_parse_as_dates() -> None:
    fact = parse_fact("therapy_start=2026-11-02")
    assert fact.WhichOneof("value") == "date_value"
    assert (fact.date_value.year, fact.date_value.month, fact.date_value.day) == (2026, 11, 2)


@pytest.mark.parametrize(("text", "value", "unit"), [
    ("conservative_therapy_weeks=7:weeks", 7.0, "weeks"),
    ("bmi=41.5:kg/m2", 41.5, "kg/m2"),
    ("symptom_duration_weeks=8 :weeks", 8.0, "weeks"),
])
def test_numbers_take_a_unit_after_a_colon(text: str, value: float, unit: str) -> None:
    fact = parse_fact(text)
    assert (fact.WhichOneof("value"), fact.number_value, fact.unit) == ("number_value", value, unit)


def test_names_are_trimmed() -> None:
    fact = parse_fact(" weeks = 5")
    assert (fact.name, fact.number_value) == ("weeks", 5.0)


@pytest.mark.parametrize("text", ["weeks", "=7", " =7"])
def test_a_fact_without_name_or_value_is_a_clear_error(text: str) -> None:
    with pytest.raises(urctl.CliError, match="expected name=value"):
        parse_fact(text)


def test_a_time_of_day_is_text_not_a_number_with_a_unit() -> None:
    fact = parse_fact("last_dose_time=10:30")
    assert (fact.WhichOneof("value"), fact.text_value) == ("text_value", "10:30")


# -- the command against a fake intake -----------------------------------------------------------------

class FakeIntake(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self) -> None:
        self.received: list[intake_pb2.SubmitAdditionalInformationRequest] = []

    def SubmitAdditionalInformation(self, request: intake_pb2.SubmitAdditionalInformationRequest,
                                    context: grpc.ServicerContext
                                    ) -> intake_pb2.SubmitAdditionalInformationResponse:
        self.received.append(request)
        if request.request_id == DECIDED_ID:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"request {DECIDED_ID} is complete; nothing is waiting for information")
        if request.request_id != REQUEST_ID:
            bad = error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(
                field="request_id", description="required: the id SubmitRequest returned")])
            detail = any_pb2.Any()
            detail.Pack(bad)
            context.abort_with_status(rpc_status.to_status(status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="request is invalid (1 problem(s))", details=[detail])))
        response = intake_pb2.SubmitAdditionalInformationResponse(information_id=INFORMATION_ID,
                                                                  replayed=request.idempotency_key == "again")
        response.received_at.FromMilliseconds(1_790_000_000_000)
        return response


@pytest.fixture
def intake() -> Iterator[tuple[FakeIntake, str]]:
    fake = FakeIntake()  # type: ignore[abstract]  # stub: abstract; runtime: UNIMPLEMENTED
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    server.stop(None).wait()


def test_add_info_sends_the_facts_and_prints_the_information_id(
        intake: tuple[FakeIntake, str], capsys: pytest.CaptureFixture[str]) -> None:
    fake, target = intake
    assert urctl.main(["request", "add-info", REQUEST_ID, "--intake", target,
                       "--fact", "conservative_therapy_weeks=7:weeks", "--fact", "imaging_done=true",
                       "--fact", "therapy_start=2026-11-02", "--note", "PT notes attached"]) == urctl.EXIT_OK
    [sent] = fake.received
    assert sent.request_id == REQUEST_ID
    assert sent.note == "PT notes attached"
    assert [f.WhichOneof("value") for f in sent.clinical_facts] == ["number_value", "bool_value", "date_value"]
    assert sent.clinical_facts[0].unit == "weeks"
    out = capsys.readouterr().out
    assert INFORMATION_ID in out
    assert REQUEST_ID in out
    assert "replayed" not in out


def test_each_call_gets_a_new_key_unless_one_is_given(intake: tuple[FakeIntake, str]) -> None:
    fake, target = intake
    for _ in range(2):
        assert urctl.main(["request", "add-info", REQUEST_ID, "--fact", "x=1", "--intake", target]) == 0
    keys = [r.idempotency_key for r in fake.received]
    assert keys[0] != keys[1]
    assert all(uuid.UUID(k.removeprefix("info-")) for k in keys)
    assert urctl.main(["request", "add-info", REQUEST_ID, "--fact", "x=1", "--key", "rfi-42",
                       "--intake", target]) == 0
    assert fake.received[-1].idempotency_key == "rfi-42"


def test_a_replay_says_so(intake: tuple[FakeIntake, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, target = intake
    assert urctl.main(["request", "add-info", REQUEST_ID, "--fact", "x=1", "--key", "again", "--intake", target]) == 0
    assert "(replayed)" in capsys.readouterr().out


def test_json_output_is_the_response(intake: tuple[FakeIntake, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, target = intake
    assert urctl.main(["request", "add-info", REQUEST_ID, "--fact", "x=1", "--json", "--intake", target]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["information_id"] == INFORMATION_ID
    assert answer["received_at"].startswith("2026-09-21")


def test_refusals_are_one_readable_message(intake: tuple[FakeIntake, str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, target = intake
    assert urctl.main(["request", "add-info", DECIDED_ID, "--fact", "x=1", "--intake", target]) == 1
    err = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in err
    assert "nothing is waiting for information" in err
    assert urctl.main(["request", "add-info", "nope", "--fact", "x=1", "--intake", target]) == 1
    err = capsys.readouterr().err
    assert "intake rejected the information (1 problem):" in err
    assert "  request_id: required" in err
    assert "Traceback" not in err


def test_without_facts_nothing_is_sent(intake: tuple[FakeIntake, str], capsys: pytest.CaptureFixture[str]) -> None:
    fake, target = intake
    assert urctl.main(["request", "add-info", REQUEST_ID, "--intake", target]) != urctl.EXIT_OK
    assert "at least one --fact" in capsys.readouterr().err
    assert fake.received == []


def test_without_facts_is_a_usage_error(intake: tuple[FakeIntake, str]) -> None:
    _, target = intake
    assert urctl.main(["request", "add-info", REQUEST_ID, "--intake", target]) == urctl.EXIT_USAGE

