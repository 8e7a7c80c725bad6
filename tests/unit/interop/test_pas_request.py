"""PAS request Bundle -> SubmitRequestRequest: the guide's examples, the mapping, the PAS rules."""

from __future__ import annotations

from typing import Any

import pytest
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.domain.model import validate
from services.intake.entrypoints.mapping import to_domain
from services.intake.interop.pas.outcome import Problem, operation_outcome
from services.intake.interop.pas.request import FACT_SYSTEM, pas_request_to_command
from services.intake.interop.payers import PayerProfile
from tests.unit.interop.pas_fixtures import (
    NPI,
    PAS,
    X12,
    claim,
    complete_bundle,
    entry,
    example,
    mutated,
)

REQUESTED_SERVICE = PAS + "extension-requestedService"
CERTIFICATION = PAS + "extension-certificationType"
LEVEL_OF_SERVICE = PAS + "extension-levelOfServiceCode"
# The Maryland Capital Insurance Company of the guide's examples, as the door would configure it.
MARYLAND = {"1234567893": PayerProfile(types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, plan_id="MCI-MA", state="MD")}


def command(bundle: Any, **kwargs: Any) -> intake_pb2.SubmitRequestRequest:
    result = pas_request_to_command(bundle, "submitter-1", **kwargs)
    assert isinstance(result, intake_pb2.SubmitRequestRequest), result
    return result


def problems(bundle: Any, **kwargs: Any) -> list[tuple[str, str]]:
    result = pas_request_to_command(bundle, "submitter-1", **kwargs)
    assert isinstance(result, list), f"expected problems, got a command: {result}"
    assert all(isinstance(p, Problem) for p in result)
    return [(p.code, p.expression) for p in result]


def intake_accepts(cmd: intake_pb2.SubmitRequestRequest) -> None:
    violations = validate(to_domain(cmd))
    assert not violations, violations


# -- the guide's request examples ----------------------------------------------------------------

def test_medical_services_example_lacks_what_the_platform_needs_and_says_where() -> None:
    """Valid PAS, but no line of business, no member state, no diagnosis: criteria are chosen by
    diagnosis and the clock by line of business and state."""
    assert problems(example("Bundle-MedicalServicesAuthorizationBundleExample.json")) == [
        ("required", "Bundle.entry[3].resource.type"),
        ("required", "Bundle.entry[4].resource.address"),
        ("required", "Bundle.entry[0].resource.diagnosis"),
    ]


def test_medical_services_example_maps_once_the_payer_profile_and_a_diagnosis_supply_the_rest() -> None:
    bundle = example("Bundle-MedicalServicesAuthorizationBundleExample.json")
    claim(bundle)["diagnosis"] = [{"sequence": 1, "diagnosisCodeableConcept": {
        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J45.909"}]}}]
    cmd = command(bundle, payers=MARYLAND)
    assert cmd.member_id == "1122334455"  # Coverage.subscriberId: the patient is the subscriber
    assert cmd.coverage.line_of_business == types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE
    assert (cmd.coverage.member_state, cmd.coverage.plan_id) == ("MD", "MCI-MA")
    assert cmd.requesting_provider.npi == "8189991234"
    assert cmd.requesting_provider.name == "DR. JOE SMITH CORPORATION"
    assert cmd.servicing_provider == cmd.requesting_provider  # no care team: the requester serves
    [line] = cmd.service_lines
    assert (line.line_number, line.procedure_code, line.units) == (1, "99212", 1)
    assert (line.start_date.year, line.start_date.month, line.start_date.day) == (2005, 5, 10)
    assert line.place_of_service == types_pb2.PLACE_OF_SERVICE_OFFICE
    assert [(d.code, d.primary) for d in cmd.diagnoses] == [("J45.909", True)]
    assert cmd.urgency == types_pb2.URGENCY_STANDARD  # priority normal
    assert cmd.review_type == types_pb2.REVIEW_TYPE_PROSPECTIVE  # initial, on or after the Bundle's date
    intake_accepts(cmd)


def test_referral_example_names_a_service_category_not_a_procedure() -> None:
    """The referral asks for X12 service type 3 (consultation) with no CPT/HCPCS code and no date."""
    found = pas_request_to_command(example("Bundle-ReferralAuthorizationBundleExample.json"), "s", payers=MARYLAND)
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [
        ("not-supported", "Bundle.entry[0].resource.item[0].productOrService"),
        ("required", "Bundle.entry[0].resource.item[0].serviced"),
    ]
    assert "https://codesystem.x12.org/005010/1365|3" in found[0].message


def test_referral_example_maps_with_a_cpt_code_and_date_on_its_service_request() -> None:
    bundle = example("Bundle-ReferralAuthorizationBundleExample.json")
    service_request = entry(bundle, "ServiceRequest")
    service_request["code"]["coding"].append({"system": "http://www.ama-assn.org/go/cpt", "code": "99243"})
    service_request["occurrencePeriod"] = {"start": "2005-05-10", "end": "2005-06-10"}
    service_request["quantityQuantity"]["value"] = 2
    cmd = command(bundle, payers=MARYLAND)
    [line] = cmd.service_lines
    assert (line.procedure_code, line.units, line.end_date.month) == ("99243", 2, 6)
    assert cmd.urgency == types_pb2.URGENCY_EXPEDITED  # levelOfServiceCode U (urgent)
    assert cmd.servicing_provider.npi == "1234567893"  # the care team's PractitionerRole -> Practitioner
    assert cmd.servicing_provider.name == "SUSAN WATSON"
    assert [(d.code, d.primary) for d in cmd.diagnoses] == [("G89.4", True)]
    intake_accepts(cmd)


def test_homecare_example_has_no_diagnosis_and_no_service_dates() -> None:
    assert problems(example("Bundle-HomecareAuthorizationBundleExample.json"), payers=MARYLAND) == [
        ("required", "Bundle.entry[0].resource.diagnosis"),
        ("required", "Bundle.entry[0].resource.item[0].serviced"),
        ("required", "Bundle.entry[0].resource.item[1].serviced"),
    ]


def test_homecare_update_example_is_an_update_this_door_does_not_take_yet() -> None:
    found = problems(example("Bundle-HomecareAuthorizationUpdateBundleExample.json"), payers=MARYLAND)
    assert ("not-supported", "Bundle.entry[0].resource.related") in found
    assert ("not-supported", f"Bundle.entry[0].resource.item[1].extension('{CERTIFICATION}')") in found
    assert ("not-supported", "Bundle.entry[0].resource.item[1].modifierExtension[0]") in found


@pytest.mark.parametrize("name", ["Bundle-ReferralAuthorizationResponseBundleExample.json",
                                  "Bundle-ErrorResponseBundleExample.json",
                                  "Bundle-PASClaimInquiryResponseBundleExample.json"])
def test_a_response_bundle_is_not_a_request(name: str) -> None:
    assert problems(example(name)) == [("invariant", "Bundle.entry[0].resource")]


# -- a complete request -------------------------------------------------------------------------

def test_complete_bundle_maps_every_field_and_intake_accepts_it() -> None:
    cmd = command(complete_bundle("72148", "97110"))
    assert cmd.member_id == "M-1001"  # the MB identifier wins over subscriberId
    assert (cmd.coverage.line_of_business, cmd.coverage.member_state, cmd.coverage.plan_id) == (
        types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, "TX", "MA-GOLD")
    assert cmd.requesting_provider == types_pb2.Provider(npi="1245319599", name="SUSAN WATSON")
    assert [ln.procedure_code for ln in cmd.service_lines] == ["72148", "97110"]
    assert [ln.line_number for ln in cmd.service_lines] == [1, 2]
    assert all(ln.place_of_service == types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL for ln in cmd.service_lines)
    assert [(f.name, f.number_value, f.unit) for f in cmd.clinical_facts] == [("age_years", 65.0, "years")]
    assert cmd.wait_ms == 0
    intake_accepts(cmd)


def test_idempotency_key_is_stable_per_submitter_and_transaction() -> None:
    a = command(complete_bundle()).idempotency_key
    assert a == command(complete_bundle()).idempotency_key
    assert a.startswith("pas-")
    assert len(a) <= 100
    other = pas_request_to_command(complete_bundle(), "submitter-2")
    assert isinstance(other, intake_pb2.SubmitRequestRequest)
    assert other.idempotency_key != a
    renumbered = complete_bundle()
    renumbered["identifier"]["value"] = "B-2"
    assert command(renumbered).idempotency_key != a


def test_bytes_and_text_bodies_map_the_same() -> None:
    import json

    text = json.dumps(complete_bundle())
    assert command(text) == command(text.encode()) == command(complete_bundle())


@pytest.mark.parametrize(("system", "code", "lob"), [
    ("https://nahdo.org/sopt", "111", types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE),
    ("https://nahdo.org/sopt", "21", types_pb2.LINE_OF_BUSINESS_MEDICAID),
    ("urn:oid:2.16.840.1.113883.3.221.5", "512", types_pb2.LINE_OF_BUSINESS_COMMERCIAL),
    ("https://nahdo.org/sopt", "6", types_pb2.LINE_OF_BUSINESS_COMMERCIAL),
    ("https://nahdo.org/sopt", "951", types_pb2.LINE_OF_BUSINESS_WORKERS_COMP),
    (X12 + "1032", "16", types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE),
    (X12 + "1032", "MC", types_pb2.LINE_OF_BUSINESS_MEDICAID),
    (X12 + "1032", "WC", types_pb2.LINE_OF_BUSINESS_WORKERS_COMP),
])
def test_line_of_business_from_coverage_type(system: str, code: str, lob: int) -> None:
    bundle = complete_bundle()
    entry(bundle, "Coverage")["type"] = {"coding": [{"system": system, "code": code}]}
    assert command(bundle).coverage.line_of_business == lob


def test_traditional_medicare_is_not_a_line_of_business_the_platform_reviews() -> None:
    found = pas_request_to_command(complete_bundle(lob_code="121"), "s")
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [("not-supported", "Bundle.entry[4].resource.type")]
    assert "'121'" in found[0].message


def test_dependent_without_an_own_member_id_is_a_problem_not_the_subscribers_id() -> None:
    bundle = complete_bundle()
    coverage = entry(bundle, "Coverage")
    coverage["identifier"][0].pop("value")
    coverage["relationship"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                            "code": "child"}]}
    coverage["subscriber"] = {"reference": "Patient/p1"}
    found = pas_request_to_command(bundle, "s")
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [("required", "Bundle.entry[4].resource.identifier")]
    assert "child" in found[0].message


def test_subscriber_id_serves_when_the_patient_is_the_subscriber() -> None:
    bundle = complete_bundle()
    entry(bundle, "Coverage")["identifier"][0].pop("value")
    assert command(bundle).member_id == "S-1001"


def test_member_state_falls_back_to_the_payer_profile() -> None:
    bundle = complete_bundle()
    entry(bundle, "Patient").pop("address")
    profile = {"1234567893": PayerProfile(types_pb2.LINE_OF_BUSINESS_MEDICAID, state="CA")}
    cmd = command(bundle, payers=profile)
    assert cmd.coverage.member_state == "CA"
    assert cmd.coverage.line_of_business == types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE  # Coverage.type wins


def test_invalid_state_and_npi_are_named() -> None:
    bundle = complete_bundle(state="XX")
    entry(bundle, "Practitioner")["identifier"][0]["value"] = "1245319598"
    assert problems(bundle) == [
        ("value", "Bundle.entry[5].resource.address[0].state"),
        ("value", "Bundle.entry[3].resource.identifier"),
    ]


@pytest.mark.parametrize(("change", "urgency"), [
    ({}, types_pb2.URGENCY_STANDARD),
    ({"priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "stat"}]}},
     types_pb2.URGENCY_EXPEDITED),
    ({"extension": [{"url": LEVEL_OF_SERVICE, "valueCodeableConcept": {"coding": [
        {"system": X12 + "1338", "code": "03"}]}}]}, types_pb2.URGENCY_EXPEDITED),
    ({"extension": [{"url": LEVEL_OF_SERVICE, "valueCodeableConcept": {"coding": [
        {"system": X12 + "1338", "code": "E"}]}}]}, types_pb2.URGENCY_STANDARD),
])
def test_urgency(change: dict[str, Any], urgency: int) -> None:
    bundle = complete_bundle()
    claim(bundle).update(change)
    assert command(bundle).urgency == urgency


def _certify(bundle: dict[str, Any], index: int, code: str) -> None:
    item = claim(bundle)["item"][index]
    ext = next(e for e in item["extension"] if e["url"] == CERTIFICATION)
    ext["valueCodeableConcept"]["coding"][0]["code"] = code


@pytest.mark.parametrize(("code", "review_type"), [("I", types_pb2.REVIEW_TYPE_PROSPECTIVE),
                                                   ("R", types_pb2.REVIEW_TYPE_CONCURRENT),
                                                   ("4", types_pb2.REVIEW_TYPE_CONCURRENT)])
def test_review_type_from_certification_type(code: str, review_type: int) -> None:
    bundle = complete_bundle()
    _certify(bundle, 0, code)
    assert command(bundle).review_type == review_type


def test_initial_request_for_services_already_given_is_retrospective() -> None:
    bundle = complete_bundle()
    claim(bundle)["item"][0]["servicedDate"] = "2026-02-27"
    assert command(bundle).review_type == types_pb2.REVIEW_TYPE_RETROSPECTIVE


@pytest.mark.parametrize("code", ["S", "1", "2", "3"])
def test_revisions_appeals_and_cancellations_are_other_commands(code: str) -> None:
    bundle = complete_bundle()
    _certify(bundle, 0, code)
    assert problems(bundle) == [("not-supported", f"Bundle.entry[0].resource.item[0].extension('{CERTIFICATION}')")]


def test_items_of_one_request_share_a_review_type() -> None:
    bundle = complete_bundle("72148", "97110")
    _certify(bundle, 1, "R")
    found = pas_request_to_command(bundle, "s")
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [("invariant", "Bundle.entry[0].resource.item")]
    assert "prospective: items 0" in found[0].message
    assert "concurrent: items 1" in found[0].message


def test_required_item_extensions_and_category() -> None:
    bundle = complete_bundle()
    item = claim(bundle)["item"][0]
    item["extension"] = []
    item.pop("category")
    assert problems(bundle) == [
        ("required", f"Bundle.entry[0].resource.item[0].extension('{CERTIFICATION}')"),
        ("required", f"Bundle.entry[0].resource.item[0].extension('{PAS}extension-serviceItemRequestType')"),
        ("required", "Bundle.entry[0].resource.item[0].category"),
    ]


def test_requested_service_must_resolve_in_the_bundle() -> None:
    bundle = complete_bundle("72148", "97110")
    claim(bundle)["item"][1]["extension"].append({"url": REQUESTED_SERVICE,
                                                   "valueReference": {"reference": "ServiceRequest/nowhere"}})
    found = pas_request_to_command(bundle, "s")
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [
        ("not-found", f"Bundle.entry[0].resource.item[1].extension('{REQUESTED_SERVICE}')")]
    assert "ServiceRequest/nowhere" in found[0].message


def test_requested_service_must_be_a_request_resource() -> None:
    bundle = complete_bundle()
    claim(bundle)["item"][0]["extension"].append({"url": REQUESTED_SERVICE,
                                                   "valueReference": {"reference": "Patient/p1"}})
    assert problems(bundle) == [("value", f"Bundle.entry[0].resource.item[0].extension('{REQUESTED_SERVICE}')")]


def test_requested_device_request_supplies_the_hcpcs_code_and_date() -> None:
    bundle = complete_bundle()
    item = claim(bundle)["item"][0]
    item["productOrService"] = {"coding": [{"system": X12 + "1365", "code": "12"}]}
    item.pop("servicedDate")
    item.pop("quantity")
    item["extension"].append({"url": REQUESTED_SERVICE, "valueReference": {"reference": "urn:uuid:dev-1"}})
    bundle["entry"].append({"fullUrl": "urn:uuid:dev-1", "resource": {
        "resourceType": "DeviceRequest", "status": "active", "intent": "order",
        "codeCodeableConcept": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                            "code": "E0601"}]},
        "subject": {"reference": "Patient/p1"}, "occurrenceDateTime": "2026-03-05"}})
    [line] = command(bundle).service_lines
    assert (line.procedure_code, line.units, line.start_date.day) == ("E0601", 1, 5)


def test_place_of_service_from_type_of_bill_and_unsupported_places() -> None:
    bundle = complete_bundle()
    claim(bundle)["item"][0]["locationCodeableConcept"] = {"coding": [
        {"system": "https://www.nubc.org/CodeSystem/TypeOfBill", "code": "0111"}]}
    assert command(bundle).service_lines[0].place_of_service == types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL
    claim(bundle)["item"][0]["locationCodeableConcept"] = {"coding": [
        {"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set",
         "code": "99"}]}
    assert problems(bundle) == [("not-supported", "Bundle.entry[0].resource.item[0].locationCodeableConcept")]


def test_units_and_periods() -> None:
    bundle = complete_bundle()
    item = claim(bundle)["item"][0]
    item.pop("servicedDate")
    item["servicedPeriod"] = {"start": "2026-03-02", "end": "2026-03-31"}
    item["quantity"] = {"value": 12}
    [line] = command(bundle).service_lines
    assert (line.units, line.end_date.day) == (12, 31)
    item["quantity"] = {"value": 2.5}
    assert problems(bundle) == [("value", "Bundle.entry[0].resource.item[0].quantity.value")]
    item["quantity"] = {"value": 1}
    item["servicedPeriod"] = {"start": "2026-03-02", "end": "2026-03-01"}
    assert problems(bundle) == [("value", "Bundle.entry[0].resource.item[0].servicedPeriod.end")]


def test_procedure_codes_must_be_cpt_or_hcpcs_shaped() -> None:
    bundle = complete_bundle("7214")
    assert problems(bundle) == [("value", "Bundle.entry[0].resource.item[0].productOrService")]


def test_diagnoses_principal_first_and_icd10_only() -> None:
    bundle = complete_bundle()
    claim(bundle)["diagnosis"] = [
        {"sequence": 2, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                                 "code": "M54.50"}]},
         "type": [{"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes",
                               "code": "principal"}]}]},
        {"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                                 "code": "M54.16"}]}},
    ]
    assert [(d.code, d.primary) for d in command(bundle).diagnoses] == [("M54.16", False), ("M54.50", True)]
    claim(bundle)["diagnosis"][1]["diagnosisCodeableConcept"]["coding"][0] = {
        "system": "http://terminology.hl7.org/CodeSystem/icd9cm", "code": "724.2"}
    assert problems(bundle) == [("not-supported", "Bundle.entry[0].resource.diagnosis[1].diagnosisCodeableConcept")]


def test_servicing_provider_from_the_items_care_team_member() -> None:
    bundle = complete_bundle("72148", "97110")
    bundle["entry"].append({"fullUrl": "http://example.org/fhir/Organization/imaging", "resource": {
        "resourceType": "Organization", "id": "imaging", "identifier": [{"system": NPI, "value": "1234567893"}],
        "name": "AUSTIN IMAGING"}})
    claim(bundle)["careTeam"] = [{"sequence": 1, "provider": {"reference": "Organization/imaging"}}]
    for item in claim(bundle)["item"]:
        item["careTeamSequence"] = [1]
    assert command(bundle).servicing_provider == types_pb2.Provider(npi="1234567893", name="AUSTIN IMAGING")
    claim(bundle)["careTeam"].append({"sequence": 2, "provider": {"reference": "PractitionerRole/role1"}})
    claim(bundle)["item"][1]["careTeamSequence"] = [2]
    assert problems(bundle) == [("not-supported", "Bundle.entry[0].resource.item")]


def test_clinical_facts_from_supporting_info_observations_and_questionnaire_answers() -> None:
    bundle = complete_bundle()
    claim(bundle)["supportingInfo"] = [
        {"sequence": 1, "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claiminformationcategory",
                                                 "code": "info"}]},
         "code": {"coding": [{"system": FACT_SYSTEM, "code": "conservative_therapy_weeks"}]},
         "valueQuantity": {"value": 8, "unit": "weeks"}},
        {"sequence": 2, "category": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes",
                                                 "code": "additionalInformation"}]},
         "valueReference": {"reference": "Observation/bmi"}},
        {"sequence": 3, "category": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes",
                                                 "code": "additionalInformation"}]},
         "valueReference": {"reference": "QuestionnaireResponse/dtr"}},
    ]
    bundle["entry"] += [
        {"fullUrl": "http://example.org/fhir/Observation/bmi", "resource": {
            "resourceType": "Observation", "id": "bmi", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}]},
            "valueQuantity": {"value": 36.2, "unit": "kg/m2"}}},
        {"fullUrl": "http://example.org/fhir/QuestionnaireResponse/dtr", "resource": {
            "resourceType": "QuestionnaireResponse", "id": "dtr", "status": "completed",
            "item": [{"linkId": "1", "item": [
                {"linkId": "1.1", "definition": FACT_SYSTEM + "#progressive_neurologic_deficit",
                 "answer": [{"valueBoolean": True}]},
                {"linkId": "1.2", "definition": "http://example.org/other#x", "answer": [{"valueString": "ignored"}]},
            ]}]}},
    ]
    facts = {f.name: f for f in command(bundle).clinical_facts}
    assert facts["conservative_therapy_weeks"].number_value == 8
    assert facts["conservative_therapy_weeks"].unit == "weeks"
    assert facts["body_mass_index"].number_value == pytest.approx(36.2)
    assert facts["progressive_neurologic_deficit"].bool_value is True
    assert facts["age_years"].number_value == 65
    assert set(facts) == {"conservative_therapy_weeks", "body_mass_index", "progressive_neurologic_deficit",
                          "age_years"}


def test_a_fact_given_twice_with_different_values_is_a_problem() -> None:
    bundle = complete_bundle()
    info = {"sequence": 1, "category": {"coding": [{"system": "http://x", "code": "info"}]},
            "code": {"coding": [{"system": FACT_SYSTEM, "code": "age_years"}]}, "valueQuantity": {"value": 40}}
    claim(bundle)["supportingInfo"] = [info, {**info, "sequence": 2, "valueQuantity": {"value": 41}}]
    assert problems(bundle) == [("invariant", "Bundle.entry[0].resource.supportingInfo[1].valueQuantity")]


C0 = "Bundle.entry[0].resource"


@pytest.mark.parametrize(("change", "expected"), [
    (lambda b: b.update(type="batch"), ("value", "Bundle.type")),
    (lambda b: b.pop("identifier"), ("required", "Bundle.identifier")),
    (lambda b: b.pop("timestamp"), ("required", "Bundle.timestamp")),
    (lambda b: b["entry"][1].pop("fullUrl"), ("required", "Bundle.entry[1].fullUrl")),
    (lambda b: b["entry"][2].update(request={"method": "POST", "url": "Claim"}),
     ("structure", "Bundle.entry[2].request")),
    (lambda b: claim(b).update(use="claim"), ("value", f"{C0}.use")),
    (lambda b: claim(b).update(status="draft"), ("value", f"{C0}.status")),
    (lambda b: claim(b).update(insurer={"reference": "Organization/missing"}), ("not-found", f"{C0}.insurer")),
    (lambda b: claim(b).update(patient={"reference": "Organization/ins"}), ("value", f"{C0}.patient")),
    (lambda b: claim(b)["identifier"][0].pop("system"), ("required", f"{C0}.identifier[0].system")),
    (lambda b: claim(b)["item"][0].pop("locationCodeableConcept"), ("required", f"{C0}.item[0].location")),
    (lambda b: b["entry"].reverse(), ("invariant", "Bundle.entry[0].resource")),
])
def test_pas_bundle_rules(change: Any, expected: tuple[str, str]) -> None:
    bundle = mutated(complete_bundle())
    change(bundle)
    assert expected in problems(bundle)


def test_more_items_than_a_request_may_have() -> None:
    bundle = complete_bundle(*(["72148"] * 51))
    assert ("too-costly", "Bundle.entry[0].resource.item") in problems(bundle)


def test_operation_outcome_names_each_element() -> None:
    found = pas_request_to_command(example("Bundle-MedicalServicesAuthorizationBundleExample.json"), "s")
    assert isinstance(found, list)
    outcome = operation_outcome(found)
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    OperationOutcome.model_validate(outcome)
    assert [i["expression"] for i in outcome["issue"]] == [[p.expression] for p in found]
    assert {i["severity"] for i in outcome["issue"]} == {"error"}
    assert operation_outcome([Problem("Bundle", "value", "x")] * 150)["issue"][-1]["diagnostics"] == (
        "50 further problems not listed")
