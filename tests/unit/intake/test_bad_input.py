"""Input that used to get through intake's validation (found by fuzzing SubmitRequest): Unicode
digits, trailing newlines, control characters, unbounded numbers and repeated fields."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from services.intake.domain.codes import is_icd10cm, is_npi, is_procedure_code, luhn_check_digit
from services.intake.domain.model import (
    MAX_DIAGNOSES,
    MAX_NOTE,
    AdditionalInformation,
    ClinicalFact,
    PriorAuthRequest,
    ServiceLine,
    number_problem,
    text_problem,
    validate,
    validate_information,
)
from services.intake.entrypoints.mapping import to_domain
from tests.factories import VALID_NPI, lumbar_mri

# Each of these is a digit to str.isdigit() (and most of them to \d), and none is ASCII.
UNICODE_DIGITS = ["²", "①", "٣", "३", "\uff13", "\U0001d7ce"]  # the last two: full-width 3, bold 0


def _req(**changes: object) -> PriorAuthRequest:
    base = to_domain(lumbar_mri(key="k-1", start=dt.date(2027, 1, 11)))
    return PriorAuthRequest(**{**base.__dict__, **changes})


def _fields(req: PriorAuthRequest) -> list[str]:
    return [v.field for v in validate(req)]


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_codes_are_ascii_digits_only(digit: str) -> None:
    assert not is_npi(VALID_NPI[:4] + digit + VALID_NPI[5:])
    assert not is_npi(digit * 10)
    assert not is_procedure_code(f"27{digit}47")
    assert not is_procedure_code(f"E06{digit}1")
    assert not is_icd10cm(f"M5{digit}.50")


@pytest.mark.parametrize("code", ["E0601\n", "72148\n", "M54.50\n", " 72148", "72148 "])
def test_codes_are_matched_whole(code: str) -> None:
    assert not is_procedure_code(code)
    assert not is_icd10cm(code)


def test_icd10_is_checked_before_uppercasing() -> None:
    # 'ﬀ'.upper() == 'FF' and 'ß'.upper() == 'SS': valid after upper(), not ASCII as sent.
    assert not is_icd10cm("M5ﬀ")
    assert not is_icd10cm("Sß1")
    assert is_icd10cm("m54.50")


def test_luhn_refuses_what_is_not_ascii_digits() -> None:
    with pytest.raises(ValueError, match="ASCII digits"):
        luhn_check_digit("80840²23456789")
    assert not is_npi("1234567893\n")


@pytest.mark.parametrize(("change", "field"), [
    ({"requesting_npi": "159१333012"}, "requesting_provider.npi"),
    ({"servicing_npi": "²" * 10}, "servicing_provider.npi"),
    ({"member_id": "T-MA-0001\n"}, "member_id"),
    ({"idempotency_key": "key\n"}, "idempotency_key"),
    ({"plan_id": "H0001\x00"}, "coverage.plan_id"),
    ({"plan_id": "H" * 41}, "coverage.plan_id"),
    ({"requesting_name": "Valley\x1b[31m Ortho"}, "requesting_provider.name"),
    ({"servicing_name": "x" * 201}, "servicing_provider.name"),
    ({"diagnoses": (("E0601\n", True),)}, "diagnoses[0].code"),
])
def test_malformed_values_are_field_errors(change: dict[str, object], field: str) -> None:
    assert _fields(_req(**change)) == [field]


def test_unicode_digits_in_a_line_are_refused() -> None:
    line = ServiceLine(1, "27\U0001d7ce47", ("2①",), 1, (2027, 1, 11), None, 22)
    assert _fields(_req(lines=(line,))) == ["service_lines[0].procedure_code", "service_lines[0].modifiers[0]"]


def test_names_with_accents_and_spaces_are_fine() -> None:
    assert _fields(_req(requesting_name="Clínica São José\u00a0Norte", servicing_name="")) == []


@pytest.mark.parametrize(("year", "ok"), [(1899, False), (1900, True), (2199, True), (2200, False), (9999, False)])
def test_dates_are_bounded(year: int, ok: bool) -> None:
    line = ServiceLine(1, "72148", (), 1, (year, 1, 1), None, 22)
    assert _fields(_req(lines=(line,))) == ([] if ok else ["service_lines[0].start_date"])
    fact = ClinicalFact("therapy_start", "date", (year, 1, 1), "")
    assert _fields(_req(facts=(fact,))) == ([] if ok else ["clinical_facts[0].date_value"])


@pytest.mark.parametrize(("injured", "ok"), [((2026, 3, 2), True), ((2026, 2200, 0), False), ((2026, 2, 30), False),
                                             ((1899, 1, 1), False), ((9999, 12, 31), False)])
def test_a_workers_comp_date_of_injury_is_a_calendar_date(injured: tuple[int, int, int], ok: bool) -> None:
    """Found by fuzzing: an impossible date of injury was stored and published with the request."""
    message = lumbar_mri(key="k-1", start=dt.date(2027, 1, 11))
    message.workers_comp.date_of_injury.year, message.workers_comp.date_of_injury.month = injured[:2]
    message.workers_comp.date_of_injury.day = injured[2]
    assert _fields(to_domain(message)) == ([] if ok else ["workers_comp.date_of_injury"])
    # The check leaves the fingerprint alone: requests recorded before it replay as they did.
    plain = lumbar_mri(key="k-1", start=dt.date(2027, 1, 11))
    assert to_domain(message).fingerprint() == to_domain(plain).fingerprint()


def test_place_of_service_is_a_cms_code() -> None:
    line = ServiceLine(1, "72148", (), 1, (2027, 1, 11), None, 12345)
    assert _fields(_req(lines=(line,))) == ["service_lines[0].place_of_service"]


@pytest.mark.parametrize(("name", "unit", "value", "problem"), [
    ("symptom_duration_weeks", "weeks", -1.0, "cannot be negative"),
    ("symptom_duration_weeks", "", -0.5, "cannot be negative"),  # the name says weeks
    ("therapy_length", "days", -3.0, "cannot be negative"),
    ("age_years", "years", 151.0, "at most 150 years"),
    ("planned_hours_per_week", "hours/week", 169.0, "at most 168"),
    ("visits_completed", "", -1.0, "count cannot be negative"),
    ("visits_completed", "visits", 10001.0, "at most 10000"),
    ("bmi", "kg/m2", math.inf, "finite"),
    ("bmi", "kg/m2", -math.inf, "finite"),
    ("bmi", "kg/m2", math.nan, "finite"),
    ("viral_load", "copies/mL", 2e9, "at most 1e+09"),
])
def test_numbers_are_bounded(name: str, unit: str, value: float, problem: str) -> None:
    found = number_problem(name, unit, value)
    assert found is not None
    assert problem in found
    fact = ClinicalFact(name, "number", value, unit)
    assert _fields(_req(facts=(fact,))) == ["clinical_facts[0].number_value"]


@pytest.mark.parametrize(("name", "unit", "value"), [
    ("symptom_duration_weeks", "weeks", 0.0), ("age_years", "years", 150.0), ("dexa_t_score", "", -2.5),
    ("base_excess", "mEq/L", -6.0), ("visits_completed", "visits", 24.0), ("epworth_score", "", 14.0),
])
def test_plausible_numbers_pass(name: str, unit: str, value: float) -> None:
    assert number_problem(name, unit, value) is None


def test_fact_text_and_unit_are_bounded() -> None:
    facts = (ClinicalFact("history", "text", "line one\nline two\ttabbed", ""),
             ClinicalFact("notes", "text", "x" * 1001, ""),
             ClinicalFact("other", "text", "bell\x07", ""),
             ClinicalFact("weight", "number", 80.0, "k\ng"),
             ClinicalFact("height", "number", 180.0, "c" * 33))
    assert _fields(_req(facts=facts)) == ["clinical_facts[1].text_value", "clinical_facts[2].text_value",
                                          "clinical_facts[3].unit", "clinical_facts[4].unit"]


def test_text_problem_names_the_character() -> None:
    assert text_problem("ok\u202eevil", 100) == "contains the control character U+202E"
    assert text_problem("a\nb", 100) is not None
    assert text_problem("a\nb", 100, multiline=True) is None


def test_ten_thousand_bad_diagnoses_are_a_handful_of_violations() -> None:
    diagnoses = tuple((f"bad{i}", False) for i in range(10_000))
    violations = validate(_req(diagnoses=diagnoses))
    assert violations[0].field == "diagnoses"
    assert "10000 sent" in violations[0].description
    assert len(violations) == 1 + MAX_DIAGNOSES


def test_huge_values_are_shown_cut_short() -> None:
    [violation] = validate(_req(member_id="x" * 1_000_000))
    assert len(violation.description) < 200
    assert "1000000 characters" in violation.description


def _info(**changes: object) -> AdditionalInformation:
    base = AdditionalInformation("3f2b8f9e-1c4d-4e5f-8a6b-7c8d9e0f1a2b", "info-1",
                                 (ClinicalFact("conservative_therapy_weeks", "number", 7.0, "weeks"),), "")
    return AdditionalInformation(**{**base.__dict__, **changes})


@pytest.mark.parametrize(("change", "field"), [
    ({"request_id": "3F2B8F9E-1C4D-4E5F-8A6B-7C8D9E0F1A2B"}, "request_id"),
    ({"request_id": "3f2b8f9e1c4d4e5f8a6b7c8d9e0f1a2b"}, "request_id"),
    ({"request_id": "urn:uuid:3f2b8f9e-1c4d-4e5f-8a6b-7c8d9e0f1a2b"}, "request_id"),
    ({"request_id": "\uff13f2b8f9e-1c4d-4e5f-8a6b-7c8d9e0f1a2b"}, "request_id"),
    ({"idempotency_key": "info-1\n"}, "idempotency_key"),
    ({"note": "\x00"}, "note"),
    ({"note": "x" * (MAX_NOTE + 1)}, "note"),
    ({"facts": (ClinicalFact("conservative_therapy_weeks", "number", -7.0, "weeks"),)},
     "clinical_facts[0].number_value"),
    ({"facts": (ClinicalFact("conservative_therapy_weeks", "number", math.inf, "weeks"),)},
     "clinical_facts[0].number_value"),
])
def test_additional_information_is_held_to_the_same_bounds(change: dict[str, object], field: str) -> None:
    assert [v.field for v in validate_information(_info(**change))] == [field]
    assert validate_information(_info(note="Notes:\n\tPT attached")) == []
