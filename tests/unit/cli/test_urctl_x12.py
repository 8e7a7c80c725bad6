"""``urctl x12 submit FILE`` against intake's real servicer and use cases (on fakes) served over gRPC in
this process behind its access control (urctl sends the sample clinic's token, UR_INTAKE_TOKEN):
hand-built interchanges covering each HL level, several services, every AAA rejection path the 278
door has, and the 999 and TA1 answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli import urctl
from services.common.access import AccessControl
from services.common.credentials import CredentialsSource
from services.common.grpc_server import Registration, RunningServer, create_server
from services.intake.entrypoints.access import POLICY
from services.intake.entrypoints.grpc_api import IntakeServicer
from tests.conftest import REPO
from tests.fakes.door import HandlersIntake, member
from tests.identity import CLINIC, CREDENTIALS, token
from tests.unit.interop.test_x12 import REJECTIONS
from tests.unit.interop.x12_fixtures import interchange, service, transaction

PAYERS = REPO / "deploy" / "sample" / "payers.yaml"


@pytest.fixture(autouse=True)
def _as_the_clinic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR_INTAKE_TOKEN", token(CLINIC))


@pytest.fixture(scope="module")
def intake() -> Iterator[tuple[HandlersIntake, RunningServer]]:
    fake = HandlersIntake({}, [member("M-1001")])
    server = create_server("127.0.0.1:0", [Registration(
        intake_pb2_grpc.add_IntakeServiceServicer_to_server, IntakeServicer(fake.handlers, fake.changer),
        intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name)], max_workers=2,
        interceptors=[AccessControl([POLICY], CredentialsSource(CREDENTIALS))])
    yield fake, server
    server.stop(None)


def submit(intake: tuple[HandlersIntake, RunningServer], tmp_path: Path, text: str,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "request.x12"
    path.write_text(text)
    status = urctl.main(["x12", "submit", str(path), "--intake", f"127.0.0.1:{intake[1].port}", "--wait-ms", "0",
                         "--payers", str(PAYERS), "--submitter", CLINIC])
    return status, capsys.readouterr().out


def segments(text: str, tag: str) -> list[list[str]]:
    return [s.strip().split("*") for s in text.split("~") if s.strip().startswith(tag + "*")]


def test_every_hl_level_and_several_services_are_answered(intake: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    text = interchange(transaction(services=[service(1), service(2, "72149"), service(3, "97110")],
                                   bht="BHT*0007*13*URCTL-1*20260301*1000~"))
    status, out = submit(intake, tmp_path, text, capsys)
    assert status == 0, out
    assert [hl[3] for hl in segments(out, "HL")] == ["20", "21", "22", "EV", "SS", "SS", "SS"]
    assert [h[1] for h in segments(out, "HCR")] == ["A4", "A4", "A4"]
    assert segments(out, "REF")[0][1] == "NT"  # the platform's request id, to quote in follow-ups
    assert out.startswith("ISA*")
    assert out.rstrip().endswith("~")


@pytest.mark.parametrize(("name", "kwargs", "expected"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_every_rejection_path_is_an_aaa_in_the_printed_278(intake: Any, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], name: str,
                                                           kwargs: dict[str, Any],
                                                           expected: tuple[str, str, int]) -> None:
    _loop, code, _line = expected
    status, out = submit(intake, tmp_path, interchange(transaction(**kwargs)), capsys)
    assert status == 0, out
    assert [a[3] for a in segments(out, "AAA")] == [code], name
    assert segments(out, "HCR") == []


def test_an_unknown_member_is_75_from_intakes_eligibility(intake: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    status, out = submit(intake, tmp_path, interchange(transaction(member="M-9999",
                                                                   bht="BHT*0007*13*URCTL-2*20260301*1000~")), capsys)
    assert status == 0
    assert [a[3] for a in segments(out, "AAA")] == ["75"]


def test_a_refused_interchange_prints_the_999_and_fails(intake: Any, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    status, out = submit(intake, tmp_path, interchange(transaction(), declared_sets=2), capsys)
    assert status == 1
    assert segments(out, "AK9")[0][1] == "R"


def test_an_unreadable_file_prints_a_ta1(intake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = submit(intake, tmp_path, "not an interchange", capsys)
    assert status == 1
    assert segments(out, "TA1")[0][4] == "R"


def test_intake_unreachable_is_42(tmp_path: Path, capsys: pytest.CaptureFixture[str], refused_target: str) -> None:
    path = tmp_path / "request.x12"
    path.write_text(interchange(transaction()))
    status = urctl.main(["x12", "submit", str(path), "--intake", refused_target, "--wait-ms", "0", "--timeout", "2",
                         "--payers", str(PAYERS)])
    out = capsys.readouterr().out
    assert status == 0
    assert [a[3:5] for a in segments(out, "AAA")] == [["42", "P"]]


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert urctl.main(["x12", "submit", str(tmp_path / "none.x12")]) == 2
    assert "cannot read" in capsys.readouterr().err
