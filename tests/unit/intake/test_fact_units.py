"""Intake holds clinical facts to the criteria's fact catalog (services/common/clinical-facts.yaml,
generated from the review service's criteria library): a number in another unit than its fact's, a
unit on a fact that is no number, and a negative duration or count are refused with a field error;
nothing else about a fact changes."""

from __future__ import annotations

import datetime as dt

import pytest
from ur.intake.v1 import intake_pb2

from services.common.errors import FieldViolation, ValidationFailed
from services.common.fact_catalog import CatalogError, FactCatalog, load_catalog, parse_catalog
from services.common.topics import Topics
from services.intake.domain.fact_units import one_per_field, unit_violations
from services.intake.domain.model import ClinicalFact, Coverage, Member
from services.intake.entrypoints.mapping import information_to_domain, to_domain
from services.intake.service_layer.handlers import IntakeHandlers, Waiters
from tests.factories import fact, lumbar_mri
from tests.fakes.intake import IntakeStore

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
CATALOG = load_catalog()


def number(name: str, value: float, unit: str = "") -> ClinicalFact:
    return ClinicalFact(name, "number", value, unit)


@pytest.mark.parametrize(("facts", "expected"), [
    ([number("symptom_duration_weeks", 8, "weeks"), number("conservative_therapy_weeks", 7, "Wk"),
      number("visits_completed", 3), ClinicalFact("suspected_cauda_equina", "bool", True, "")], []),
    ([number("symptom_duration_weeks", 56, "days")],
     [("clinical_facts[0].unit", "'days' is not the unit of symptom_duration_weeks: send it in weeks")]),
    ([number("symptom_duration_weeks", -2, "weeks")],
     [("clinical_facts[0].number_value", "symptom_duration_weeks is a duration in weeks: it cannot be negative")]),
    ([number("visits_completed", 0), number("sessions_last_12_months", -1)],
     [("clinical_facts[1].number_value", "sessions_last_12_months is a count in sessions: it cannot be negative")]),
    ([number("weeks_of_symptoms", -1, "weeks")],  # a synonym the vocabulary copies: its fact's unit and sign
     [("clinical_facts[0].number_value", "weeks_of_symptoms is a duration in weeks: it cannot be negative")]),
    ([number("pt_weeks", -3, "wks")],  # not in the catalog, but the provider says it is a duration
     [("clinical_facts[0].number_value", "pt_weeks is a duration in weeks: it cannot be negative")]),
    ([number("temperature_change", -1.5, "degrees")], []),  # neither known nor a known unit: left to review
    ([ClinicalFact("suspected_cauda_equina", "bool", True, "weeks")],
     [("clinical_facts[0].unit", "suspected_cauda_equina is a bool fact and takes no unit")]),
])
def test_units_and_signs_are_held_to_the_catalog(facts: list[ClinicalFact], expected: list[tuple[str, str]]) -> None:
    assert [(v.field, v.description) for v in unit_violations(facts, CATALOG)] == expected


def test_a_catalog_naming_a_unit_it_does_not_define_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"facts\.x\.unit: 'furlongs' is not one of the catalog's units"):
        parse_catalog({"version": 1, "source": "test", "units": {"weeks": {"kind": "duration"}},
                       "facts": {"x": {"type": "number", "unit": "furlongs"}}}, "test.yaml")


@pytest.fixture
def handlers() -> tuple[IntakeStore, IntakeHandlers]:
    store = IntakeStore()
    store.members["T-MA-0001"] = Member("T-MA-0001", dt.date(1950, 2, 1), (
        Coverage("T-MA-0001", "medicare_advantage", "H0001-001", "CA", dt.date(2026, 1, 1), None),))
    catalog: FactCatalog = CATALOG
    return store, IntakeHandlers(store.unit_of_work, Topics("t"), Waiters(), clock=lambda: NOW, facts=catalog)


def test_a_request_with_a_negative_duration_is_refused_and_nothing_is_written(
        handlers: tuple[IntakeStore, IntakeHandlers]) -> None:
    store, intake = handlers
    message = lumbar_mri()
    message.clinical_facts[0].CopyFrom(fact("symptom_duration_weeks", -8, "weeks"))
    message.clinical_facts[1].CopyFrom(fact("conservative_therapy_weeks", 49, "days"))
    with pytest.raises(ValidationFailed) as caught:
        intake.submit(to_domain(message), message, submitter="clinic")
    assert [v.field for v in caught.value.violations] == ["clinical_facts[0].number_value", "clinical_facts[1].unit"]
    assert not store.outbox
    accepted = intake.submit(to_domain(lumbar_mri()), lumbar_mri(), submitter="clinic")
    assert accepted.record.request_id


def test_additional_information_is_held_to_the_catalog_too(handlers: tuple[IntakeStore, IntakeHandlers]) -> None:
    _, intake = handlers
    message = intake_pb2.SubmitAdditionalInformationRequest(
        request_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", idempotency_key="info-1",
        clinical_facts=[fact("conservative_therapy_weeks", -1, "weeks")])
    with pytest.raises(ValidationFailed) as caught:
        intake.add_information(information_to_domain(message), message, submitter="clinic")
    assert [v.field for v in caught.value.violations] == ["clinical_facts[0].number_value"]


def test_the_catalog_and_the_general_bounds_name_a_field_once() -> None:
    """model.validate bounds every number (a negative duration by its unit) and the catalog knows the fact:
    the catalog's description is the one kept; other fields' violations stay."""
    general = [FieldViolation("member_id", "required"),
               FieldViolation("clinical_facts[0].number_value", "a duration (weeks) cannot be negative")]
    catalog = [FieldViolation("clinical_facts[0].number_value",
                              "symptom_duration_weeks is a duration in weeks: it cannot be negative")]
    assert one_per_field(general, catalog) == [general[0], catalog[0]]
