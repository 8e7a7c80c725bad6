"""Validation of additional information (SubmitAdditionalInformation): every problem named by its
proto field path, fact rules shared with SubmitRequest, and the payload fingerprint."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.domain.model import (
    MAX_FACTS,
    MAX_NOTE,
    AdditionalInformation,
    ClinicalFact,
    validate,
    validate_information,
)
from services.intake.entrypoints.mapping import information_to_domain, to_domain
from tests.factories import fact, lumbar_mri

REQUEST_ID = str(uuid.uuid4())


def _info(**changes: object) -> AdditionalInformation:
    base = AdditionalInformation(
        request_id=REQUEST_ID, idempotency_key="info-1", note="PT notes attached",
        facts=(ClinicalFact("conservative_therapy_weeks", "number", 7.0, "weeks"),
               ClinicalFact("imaging_done", "bool", True, ""),
               ClinicalFact("therapy_start", "date", (2026, 11, 2), ""),
               ClinicalFact("therapist", "text", "Coastal PT", "")))
    return replace(base, **changes)  # type: ignore[arg-type]


def _fields(info: AdditionalInformation) -> list[str]:
    return [v.field for v in validate_information(info)]


def test_valid_information_has_no_violations() -> None:
    assert validate_information(_info()) == []
    assert validate_information(_info(note="")) == []
    assert validate_information(_info(note="x" * MAX_NOTE)) == []


@pytest.mark.parametrize("request_id", ["", "   ", "not-a-uuid", "12345", REQUEST_ID + "0"])
def test_request_id_must_be_a_uuid(request_id: str) -> None:
    assert _fields(_info(request_id=request_id)) == ["request_id"]


@pytest.mark.parametrize(("key", "problem"), [
    ("", "required"), ("has space", "printable ASCII"), ("k" * 101, "printable ASCII"), ("clé", "printable ASCII"),
])
def test_idempotency_key_follows_submit_request_rules(key: str, problem: str) -> None:
    [violation] = validate_information(_info(idempotency_key=key))
    assert violation.field == "idempotency_key"
    assert problem in violation.description
    # ...the very same rules as SubmitRequest's
    submit = to_domain(lumbar_mri(key=key or "placeholder"))
    assert [v.field for v in validate(replace(submit, idempotency_key=key))] == ["idempotency_key"]


def test_at_least_one_fact() -> None:
    [violation] = validate_information(_info(facts=()))
    assert violation.field == "clinical_facts"
    assert "at least one" in violation.description


def test_at_most_max_facts() -> None:
    facts = tuple(ClinicalFact(f"fact_{i}", "bool", True, "") for i in range(MAX_FACTS + 1))
    assert _fields(_info(facts=facts)) == ["clinical_facts"]
    assert _fields(_info(facts=facts[:MAX_FACTS])) == []


def test_each_fact_needs_a_snake_case_name_and_one_valid_value() -> None:
    facts = (
        ClinicalFact("ok_fact", "bool", False, ""),
        ClinicalFact("Bad Name", "bool", True, ""),
        ClinicalFact("1starts_with_digit", "number", 1.0, ""),
        ClinicalFact("x" * 65, "text", "too long a name", ""),
        ClinicalFact("no_value", None, None, ""),
        ClinicalFact("bad_date", "date", (2026, 2, 30), ""),
        ClinicalFact("nan_number", "number", float("nan"), ""),
        ClinicalFact("ok_fact", "text", "given twice", ""),
    )
    assert _fields(_info(facts=facts)) == [
        "clinical_facts[1].name", "clinical_facts[2].name", "clinical_facts[3].name", "clinical_facts[4].value",
        "clinical_facts[5].date_value", "clinical_facts[6].number_value", "clinical_facts[7].name"]


def test_note_at_most_2000_characters() -> None:
    [violation] = validate_information(_info(note="x" * (MAX_NOTE + 1)))
    assert violation.field == "note"
    assert "2000" in violation.description


def test_every_problem_is_reported_in_field_order() -> None:
    info = _info(request_id="nope", idempotency_key="", facts=(), note="x" * (MAX_NOTE + 1))
    assert _fields(info) == ["request_id", "idempotency_key", "clinical_facts", "note"]


def test_fact_rules_are_submit_requests_rules() -> None:
    facts = (ClinicalFact("Bad Name", "bool", True, ""), ClinicalFact("no_value", None, None, ""))
    submit = replace(to_domain(lumbar_mri()), facts=facts)
    submit_fields = [v.field for v in validate(submit) if v.field.startswith("clinical_facts")]
    assert submit_fields == _fields(_info(facts=facts)) == ["clinical_facts[0].name", "clinical_facts[1].value"]


def test_fingerprint_ignores_the_key_but_not_the_payload() -> None:
    assert _info(idempotency_key="a").fingerprint() == _info(idempotency_key="b").fingerprint()
    assert _info().fingerprint() != _info(note="another note").fingerprint()
    assert _info().fingerprint() != _info(request_id=str(uuid.uuid4())).fingerprint()
    assert _info().fingerprint() != _info(facts=_info().facts[:1]).fingerprint()
    changed = (replace(_info().facts[0], value=8.0), *_info().facts[1:])
    assert _info().fingerprint() != _info(facts=changed).fingerprint()


def test_the_proto_maps_to_the_domain_value_by_value() -> None:
    message = intake_pb2.SubmitAdditionalInformationRequest(
        request_id=f"  {REQUEST_ID} ", idempotency_key="info-1", note="PT notes attached",
        clinical_facts=[fact("conservative_therapy_weeks", 7, "weeks"), fact("imaging_done", True),
                        types_pb2.ClinicalFact(name="therapy_start",
                                               date_value=types_pb2.Date(year=2026, month=11, day=2)),
                        fact("therapist", "Coastal PT"), types_pb2.ClinicalFact(name="no_value")])
    info = information_to_domain(message)
    assert info == _info(facts=(*_info().facts, ClinicalFact("no_value", None, None, "")))
    assert _fields(info) == ["clinical_facts[4].value"]
