from __future__ import annotations

import datetime as dt

import pytest

from services.intake.domain.codes import is_icd10cm, is_npi, is_procedure_code, normalize_icd10
from services.intake.domain.model import (
    ClinicalFact,
    Coverage,
    LineProgress,
    PriorAuthRequest,
    RequestStatus,
    ServiceLine,
    check_eligibility,
    derive_status,
    validate,
)
from services.intake.entrypoints.mapping import to_domain
from tests.factories import lumbar_mri


@pytest.mark.parametrize("code", ["72148", "0042T", "3008F", "0001U", "E0601", "G0399", "J3490"])
def test_procedure_code_shapes_accepted(code: str) -> None:
    assert is_procedure_code(code)


@pytest.mark.parametrize("code", ["7214", "721488", "0042X", "e0601", "E060", "EE601", "", "E06011"])
def test_procedure_code_shapes_rejected(code: str) -> None:
    assert not is_procedure_code(code)


@pytest.mark.parametrize("code", ["M54.50", "M5450", "S83.511A", "Z00.00", "E11.9", "M48.062", "M5416"])
def test_icd10_accepted(code: str) -> None:
    assert is_icd10cm(code)


@pytest.mark.parametrize("code", ["54.5", "M5", "U07.1X", "M54.123456", "MM4.5"])
def test_icd10_rejected(code: str) -> None:
    assert not is_icd10cm(code)


def test_icd10_normalization() -> None:
    assert normalize_icd10("m54.50") == "M5450"


def test_npi_luhn_with_80840_prefix() -> None:
    assert is_npi("1234567893")
    assert not is_npi("1234567890")
    assert not is_npi("123456789")
    assert not is_npi("12345678a3")


def _req(**changes: object) -> PriorAuthRequest:
    base = to_domain(lumbar_mri(key="k-1", start=dt.date(2027, 1, 11)))
    return PriorAuthRequest(**{**base.__dict__, **changes})


def test_valid_request_has_no_violations() -> None:
    assert validate(_req()) == []


def test_every_problem_is_reported_with_its_field() -> None:
    line = ServiceLine(line_number=2, procedure_code="7214", modifiers=("X",), units=0, start_date=(2027, 2, 30),
                       end_date=None, place_of_service=0)
    req = _req(member_id="", line_of_business=None, member_state="XX", requesting_npi="1234567890",
               diagnoses=(("54.5", True), ("M54.50", True)), lines=(line,), review_type=None, urgency=None,
               facts=(ClinicalFact("Bad Name", "bool", True, ""), ClinicalFact("x", None, None, "")))
    fields = {v.field for v in validate(req)}
    assert fields >= {
        "member_id", "coverage.line_of_business", "coverage.member_state", "requesting_provider.npi",
        "diagnoses[0].code", "diagnoses", "review_type", "urgency", "service_lines[0].line_number",
        "service_lines[0].procedure_code", "service_lines[0].modifiers[0]", "service_lines[0].units",
        "service_lines[0].start_date", "service_lines[0].place_of_service", "clinical_facts[0].name",
        "clinical_facts[1].value",
    }


def test_end_before_start_is_rejected() -> None:
    line = ServiceLine(1, "72148", (), 1, (2027, 1, 10), (2027, 1, 9), 22)
    assert [v.field for v in validate(_req(lines=(line,)))] == ["service_lines[0].end_date"]


def test_fingerprint_ignores_the_key_but_not_the_payload() -> None:
    assert _req(idempotency_key="a").fingerprint() == _req(idempotency_key="b").fingerprint()
    assert _req().fingerprint() != _req(member_id="OTHER").fingerprint()


def _cov(lob: str = "medicare_advantage", state: str = "CA", term: dt.date | None = None) -> Coverage:
    return Coverage("T-MA-0001", lob, "H1", state, dt.date(2026, 1, 1), term)


def test_eligibility_rules() -> None:
    req = _req()
    assert check_eligibility(req, [_cov()], True).eligible
    assert check_eligibility(req, [], False).reason == "member not found"
    assert "no medicare_advantage coverage" in check_eligibility(req, [_cov("commercial")], True).reason
    assert "not in state CA" in check_eligibility(req, [_cov(state="NV")], True).reason
    ended = check_eligibility(req, [_cov(term=dt.date(2026, 12, 31))], True)
    assert not ended.eligible
    assert "not active on 2027-01-11" in ended.reason


def _line(decided: bool = True, queued: bool = False, certified: bool = True, authorized: bool = True) -> LineProgress:
    return LineProgress(decided, queued, certified, authorized)


def test_status_derivation_is_order_independent() -> None:
    s = RequestStatus
    assert derive_status(s.IN_REVIEW, [_line(decided=False, authorized=False)]) is s.IN_REVIEW
    # the authorization event can arrive before the determination event
    assert derive_status(s.IN_REVIEW, [_line(decided=False, authorized=True)]) is s.IN_REVIEW
    assert derive_status(s.IN_REVIEW, [_line(authorized=False)]) is s.DECIDED
    assert derive_status(s.DECIDED, [_line()]) is s.COMPLETE
    assert derive_status(s.IN_REVIEW, [_line(), _line(queued=True, certified=False, authorized=False)]) is s.PENDED
    assert derive_status(s.IN_REVIEW, [_line(certified=False, authorized=False)]) is s.COMPLETE
    assert derive_status(s.INELIGIBLE, [_line()]) is s.INELIGIBLE
