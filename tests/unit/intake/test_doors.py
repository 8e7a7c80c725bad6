"""The doors' use cases (services/intake/service_layer/doors.py) on fakes: intake's own use cases behind
its API (tests/fakes/door.py), the doors' store in memory."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from ur.common.v1 import types_pb2 as t

from services.common.errors import Unauthenticated
from services.intake.interop.pas.response import EXT_ERROR_PATH, REQUEST_ID_SYSTEM, action_codes
from services.intake.interop.pas.update import EXT_CERTIFICATION, EXT_INFO_CANCELLED, PROFILE_CLAIM_UPDATE
from services.intake.interop.payers import PayerProfile
from services.intake.service_layer.door_ports import Submitter
from services.intake.service_layer.doors import Answer, PasDoor, X12Door, violation_rejections
from tests.fakes.door import NOW, FakeSubmissionStore, HandlersIntake, member
from tests.unit.interop.pas_fixtures import REQUEST_EXAMPLES, claim, complete_bundle, example
from tests.unit.interop.x12_fixtures import PAYERS, interchange, service, transaction

T = TypeVar("T")

CLINIC = Submitter("sample-clinic", "dev-only-token-sample-clinic")
OTHER = Submitter("sample-clearinghouse", "dev-only-token-sample-clearinghouse")
MARYLAND = {"1234567893": PayerProfile(t.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, plan_id="MCI-MA", state="MD")}
CERTIFIED = t.ACTION_CODE_CERTIFIED_IN_TOTAL
PENDED = t.ACTION_CODE_PENDED


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class Doors:
    def __init__(self, payers: dict[str, PayerProfile] | None = None) -> None:
        self.intake = HandlersIntake({CLINIC.id: CLINIC.credential, OTHER.id: OTHER.credential},
                                     [member("M-1001"), member("1122334455", state="MD")])
        self.store = FakeSubmissionStore()
        self.pas = PasDoor(self.intake, self.store, clock=lambda: NOW, payers=payers or MARYLAND, wait_ms=0)
        self.x12 = X12Door(self.intake, self.store, clock=lambda: NOW, payers=PAYERS, wait_ms=0)

    def submit(self, bundle: Any, who: Submitter = CLINIC) -> Answer:
        body = bundle if isinstance(bundle, bytes | str) else json.dumps(bundle)
        return run(self.pas.submit(body, who))

    def inquire(self, bundle: Any, who: Submitter = CLINIC) -> Answer:
        return run(self.pas.inquire(json.dumps(bundle), who))


@pytest.fixture
def doors() -> Doors:
    return Doors()


def claim_response(answer: Answer) -> dict[str, Any]:
    assert answer.outcome == "ok", answer.resource
    Bundle.model_validate(answer.resource)
    resource: dict[str, Any] = answer.resource["entry"][0]["resource"]
    assert resource["resourceType"] == "ClaimResponse"
    return resource


def request_id(answer: Answer) -> str:
    ids = [i["value"] for i in claim_response(answer)["identifier"] if i["system"] == REQUEST_ID_SYSTEM]
    assert len(ids) == 1
    return str(ids[0])


def errors(answer: Answer) -> list[tuple[str, str]]:
    """(X12 reject reason, FHIRPath) of each error of an error response."""
    out = []
    for error in claim_response(answer)["error"]:
        path = next((e["valueString"] for e in error["extension"] if e["url"] == EXT_ERROR_PATH), "")
        out.append((error["code"]["coding"][0]["code"], path))
    return out


# -- $submit -----------------------------------------------------------------------------------------

def test_a_request_is_submitted_as_the_submitter_recorded_and_answered_pended_while_under_review(
        doors: Doors) -> None:
    answer = doors.submit(complete_bundle("72148", "97110"))
    response = claim_response(answer)
    assert response["outcome"] == "complete"
    assert action_codes(answer.resource) == {1: "A4", 2: "A4"}
    assert doors.intake.calls == [("SubmitRequest", CLINIC.id)]
    rid = request_id(answer)
    stored = doors.store.requests[rid]
    assert stored.submitter == CLINIC.id
    assert stored.bundle == complete_bundle("72148", "97110")
    assert run(doors.store.find(CLINIC.id, "urn:trnorg:9012345678", "TRN-1")) == [rid]
    assert run(doors.store.find(OTHER.id, "urn:trnorg:9012345678", "TRN-1")) == []


def test_the_same_bundle_again_replays_and_answers_what_is_decided_now(doors: Doors) -> None:
    first = doors.submit(complete_bundle())
    rid = request_id(first)
    doors.intake.decide(rid, (1, CERTIFIED))
    again = doors.submit(complete_bundle())
    assert request_id(again) == rid
    assert action_codes(again.resource) == {1: "A1"}
    [item] = claim_response(again)["item"]
    number = [p for e in item["adjudication"][0]["extension"] for p in e["extension"] if p["url"] == "number"]
    assert number == [{"url": "number", "valueString": "UR26-TEST-0001"}]
    assert len(doors.intake.store.requests) == 1


def test_the_same_bundle_identifier_with_other_content_is_a_conflict(doors: Doors) -> None:
    doors.submit(complete_bundle("72148"))
    answer = doors.submit(complete_bundle("72149"))
    assert answer.outcome == "conflict"
    OperationOutcome.model_validate(answer.resource)
    assert answer.resource["issue"][0]["expression"] == ["Bundle.identifier"]


@pytest.mark.parametrize("body", [
    "not json", "[]", json.dumps({"resourceType": "Patient"}),
    json.dumps({**complete_bundle(), "type": 7}),
    json.dumps({**complete_bundle(), "entry": complete_bundle()["entry"][1:]}),
])
def test_an_invalid_body_is_an_operation_outcome_and_reaches_nobody(doors: Doors, body: str) -> None:
    answer = doors.submit(body)
    assert answer.outcome == "invalid"
    OperationOutcome.model_validate(answer.resource)
    assert all(issue["expression"][0].startswith("Bundle") for issue in answer.resource["issue"])
    assert doors.intake.calls == []
    assert doors.store.requests == {}


def test_an_unresolved_reference_is_invalid(doors: Doors) -> None:
    bundle = complete_bundle()
    claim(bundle)["patient"] = {"reference": "Patient/ghost"}
    answer = doors.submit(bundle)
    assert answer.outcome == "invalid"
    assert ["Bundle.entry[0].resource.patient"] in [i["expression"] for i in answer.resource["issue"]]


def test_valid_pas_the_platform_cannot_review_is_the_error_response_naming_each_element(doors: Doors) -> None:
    answer = doors.submit(example("Bundle-MedicalServicesAuthorizationBundleExample.json"))
    response = claim_response(answer)
    assert response["outcome"] == "error"
    assert errors(answer) == [("AF", "Bundle.entry[0].resource.diagnosis")]
    assert doors.intake.calls == []
    assert [e["resource"]["resourceType"] for e in answer.resource["entry"]][:1] == ["ClaimResponse"]


def test_a_refused_item_names_its_sequence(doors: Doors) -> None:
    bundle = complete_bundle("72148", "97110")
    claim(bundle)["item"][1]["productOrService"]["coding"][0]["system"] = "http://snomed.info/sct"
    answer = doors.submit(bundle)
    [error] = claim_response(answer)["error"]
    assert error["itemSequence"] == 2
    assert error["code"]["coding"][0]["code"] == "AG"


def test_an_unknown_member_is_the_error_response_with_75(doors: Doors) -> None:
    bundle = complete_bundle()
    bundle["entry"][4]["resource"]["identifier"][0]["value"] = "M-NOBODY"
    answer = doors.submit(bundle)
    assert errors(answer) == [("75", "")]
    assert claim_response(answer)["outcome"] == "error"


def test_intake_unavailable_is_42_resend_the_same(doors: Doors) -> None:
    doors.intake.down = True
    answer = doors.submit(complete_bundle())
    [error] = claim_response(answer)["error"]
    assert error["code"]["coding"][0]["code"] == "42"
    followup = [e for e in error["extension"] if e["url"].endswith("errorFollowupAction")]
    assert followup[0]["valueCodeableConcept"]["coding"][0]["code"] == "P"


def test_the_store_down_costs_only_the_record_not_the_answer(doors: Doors) -> None:
    doors.store.down = True
    answer = doors.submit(complete_bundle())
    assert action_codes(answer.resource) == {1: "A4"}


def test_a_submitter_intake_does_not_know_is_refused_by_intake(doors: Doors) -> None:
    with pytest.raises(Unauthenticated):
        doors.submit(complete_bundle(), Submitter(CLINIC.id, "revoked"))


def test_intake_validation_failures_become_rejections_with_the_closest_reason() -> None:
    from services.common.errors import FieldViolation

    found = violation_rejections([FieldViolation("service_lines[1].procedure_code", "bad"),
                                  FieldViolation("diagnoses[0].code", "bad"), FieldViolation("urgency", "bad")])
    assert [(r.loop, r.code, r.line) for r in found] == [("2000F", "AG", 2), ("2000E", "AF", 0), ("2000E", "33", 0)]


# -- the guide's examples ------------------------------------------------------------------------------

def completed(name: str) -> dict[str, Any]:
    """A request example with what the platform needs that the guide's leaves out: a diagnosis, service
    dates the member's coverage spans (the guide's are in 2005), and a CPT code where it names a service
    type only."""
    bundle = example(name)
    c = claim(bundle)
    c["diagnosis"] = [{"sequence": 1, "diagnosisCodeableConcept": {
        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.16"}]}}]
    for item in c["item"]:
        item.pop("servicedPeriod", None)
        item["servicedDate"] = "2026-03-02"
        codes = item["productOrService"]["coding"]
        if not any(x["system"] in ("http://www.ama-assn.org/go/cpt",
                                   "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets") for x in codes):
            codes.append({"system": "http://www.ama-assn.org/go/cpt", "code": "99243"})
    return bundle


@pytest.mark.parametrize("name", REQUEST_EXAMPLES[:3])
def test_each_request_example_as_published_is_answered_with_the_error_response(doors: Doors, name: str) -> None:
    answer = doors.submit(example(name))
    response = claim_response(answer)
    assert response["outcome"] == "error"
    assert all(code and path.startswith("Bundle.entry[") for code, path in errors(answer))


@pytest.mark.parametrize("name", REQUEST_EXAMPLES[:3])
def test_each_request_example_completed_is_reviewed_and_its_item_sequences_echoed(doors: Doors, name: str) -> None:
    bundle = completed(name)
    answer = doors.submit(bundle)
    response = claim_response(answer)
    assert response["outcome"] == "complete", response.get("error")
    assert [i["itemSequence"] for i in response["item"]] == [i["sequence"] for i in claim(bundle)["item"]]


# -- Claim updates ---------------------------------------------------------------------------------------

def update_of(bundle: dict[str, Any], *, cancel: tuple[int, ...] = (), trace: str = "TRN-1-UPD",
              transaction: str = "B-2") -> dict[str, Any]:
    """A PAS Claim update of ``bundle``'s Claim: the prior Claim carried along and related, the items in
    ``cancel`` (positions) cancelled."""
    updated = copy.deepcopy(bundle)
    updated["identifier"]["value"] = transaction
    c = claim(updated)
    prior = copy.deepcopy(claim(bundle))
    prior["id"] = "prior"
    c["meta"] = {"profile": [PROFILE_CLAIM_UPDATE]}
    c["identifier"] = [{"system": "urn:trnorg:9012345678", "value": trace}]
    c["related"] = [{"claim": {"reference": "Claim/prior"}, "relationship": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]
    for i in cancel:
        item = c["item"][i]
        item["modifierExtension"] = [{"url": EXT_INFO_CANCELLED, "valueBoolean": True}]
        for ext in item["extension"]:
            if ext["url"] == EXT_CERTIFICATION:
                ext["valueCodeableConcept"]["coding"][0]["code"] = "3"
    updated["entry"].append({"fullUrl": "http://example.org/fhir/Claim/prior", "resource": prior})
    return updated


def test_an_update_cancelling_every_item_cancels_the_request(doors: Doors) -> None:
    original = complete_bundle("72148", "97110")
    rid = request_id(doors.submit(original))
    answer = doors.submit(update_of(original, cancel=(0, 1)))
    assert request_id(answer) == rid
    assert action_codes(answer.resource) == {1: "C", 2: "C"}
    assert doors.intake.calls[-1] == ("CancelRequest", CLINIC.id)
    assert doors.store.requests[rid].bundle["identifier"]["value"] == "B-2"  # the latest Bundle about it
    assert run(doors.store.find(CLINIC.id, "urn:trnorg:9012345678", "TRN-1-UPD")) == [rid]


def test_an_update_without_cancellations_revises_the_request(doors: Doors) -> None:
    original = complete_bundle("72148")
    rid = request_id(doors.submit(original))
    update = update_of(original)
    claim(update)["item"][0]["quantity"] = {"value": 2}
    answer = doors.submit(update)
    assert action_codes(answer.resource) == {1: "A4"}
    assert doors.intake.calls[-1] == ("ReviseRequest", CLINIC.id)
    assert [ln.line.units for ln in run(doors.intake.get(rid, CLINIC)).lines] == [2]


def test_cancelling_some_items_is_refused_naming_them(doors: Doors) -> None:
    original = complete_bundle("72148", "97110")
    doors.submit(original)
    answer = doors.submit(update_of(original, cancel=(1,)))
    assert errors(answer) == [("33", "Bundle.entry[0].resource.item[1].modifierExtension[0]")]
    assert doors.intake.calls[-1][0] == "SubmitRequest"


def test_an_update_of_a_decided_request_is_refused_with_intakes_reason(doors: Doors) -> None:
    original = complete_bundle("72148")
    rid = request_id(doors.submit(original))
    doors.intake.decide(rid, (1, CERTIFIED))
    answer = doors.submit(update_of(original, cancel=(0,)))
    [(code, _path)] = errors(answer)
    assert code == "33"
    assert "cannot be cancelled" in claim_response(answer)["processNote"][0]["text"]


def test_an_update_naming_no_request_of_the_submitter_is_refused(doors: Doors) -> None:
    original = complete_bundle("72148")
    doors.submit(original)
    answer = doors.submit(update_of(original, cancel=(0,)), OTHER)  # the clinic's request, another submitter
    [(code, path)] = errors(answer)
    assert (code, path) == ("33", "Bundle.entry[0].resource.related[0].claim")
    assert ("CancelRequest", OTHER.id) not in doors.intake.calls


def test_the_guides_update_example_is_answered(doors: Doors) -> None:
    doors.submit(completed("Bundle-HomecareAuthorizationBundleExample.json"))
    answer = doors.submit(completed("Bundle-HomecareAuthorizationUpdateBundleExample.json"))
    assert claim_response(answer)["outcome"] == "error"  # it cancels one item and adds another
    assert ("33", "Bundle.entry[0].resource.item[1].modifierExtension[0]") in errors(answer)


# -- $inquire ---------------------------------------------------------------------------------------------

def inquiry(*, identifier: tuple[str, str] | None = ("urn:trnorg:9012345678", "TRN-1"),
            codes: tuple[str, ...] = ()) -> dict[str, Any]:
    bundle = complete_bundle(*(codes or ("72148",)))
    c = claim(bundle)
    c["meta"] = {"profile": ["http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-inquiry"]}
    c["identifier"] = [{"system": identifier[0], "value": identifier[1]}] if identifier else []
    if not codes:
        del c["item"]
    bundle["identifier"]["value"] = "INQ-1"
    return bundle


def inquiry_answers(answer: Answer) -> list[dict[str, Any]]:
    assert answer.outcome == "ok", answer.resource
    Parameters.model_validate(answer.resource)
    bundles = [p["resource"] for p in answer.resource.get("parameter", [])]
    for bundle in bundles:
        Bundle.model_validate(bundle)
        assert bundle["identifier"]["value"] == "INQ-1"
    return bundles


def test_inquire_by_claim_identifier_answers_the_current_response(doors: Doors) -> None:
    rid = request_id(doors.submit(complete_bundle("72148", "97110")))
    [pended] = inquiry_answers(doors.inquire(inquiry()))
    assert action_codes(pended) == {1: "A4", 2: "A4"}
    doors.intake.decide(rid, (1, CERTIFIED), (2, CERTIFIED))
    [decided] = inquiry_answers(doors.inquire(inquiry()))
    assert action_codes(decided) == {1: "A1", 2: "A1"}
    assert decided["entry"][0]["resource"]["meta"]["profile"][0].endswith("profile-claiminquiryresponse")


def test_inquire_by_member_and_requester_and_by_the_platforms_request_id(doors: Doors) -> None:
    rid = request_id(doors.submit(complete_bundle("72148")))
    assert len(inquiry_answers(doors.inquire(inquiry(identifier=None)))) == 1
    assert len(inquiry_answers(doors.inquire(inquiry(identifier=(REQUEST_ID_SYSTEM, rid))))) == 1
    assert inquiry_answers(doors.inquire(inquiry(identifier=None, codes=("99213",)))) == []


def test_an_inquiry_by_another_submitter_finds_nothing_by_claim_identifier(doors: Doors) -> None:
    doors.submit(complete_bundle("72148"))
    assert inquiry_answers(doors.inquire(inquiry(), OTHER)) == []


def test_an_inquiry_for_a_request_the_door_holds_no_bundle_of_answers_from_the_inquiry(doors: Doors) -> None:
    rid = request_id(doors.submit(complete_bundle("72148")))
    del doors.store.requests[rid]
    [answer] = inquiry_answers(doors.inquire(inquiry(identifier=(REQUEST_ID_SYSTEM, rid))))
    assert action_codes(answer) == {1: "A4"}


def test_an_invalid_inquiry_is_an_operation_outcome(doors: Doors) -> None:
    bad = inquiry()
    del claim(bad)["insurance"]
    answer = doors.inquire(bad)
    assert answer.outcome == "invalid"
    OperationOutcome.model_validate(answer.resource)


# -- X12 ------------------------------------------------------------------------------------------------

def test_an_interchange_of_two_requests_is_answered_with_two_278_responses(doors: Doors) -> None:
    text = interchange(transaction(control="0001", services=[service(1), service(2, "72149")]),
                       transaction(control="0002", bht="BHT*0007*13*REF-0002*20260301*1000~"))
    answer = run(doors.x12.receive(text, CLINIC))
    assert answer.kind == "278"
    assert answer.body.count("ST*278*") == 2
    assert answer.body.count("HCR*A4") == 3
    assert doors.intake.calls == [("SubmitRequest", CLINIC.id)] * 2


def test_a_rejected_request_is_answered_with_its_aaa_and_reaches_nobody(doors: Doors) -> None:
    answer = run(doors.x12.receive(interchange(transaction(payer="OTHER")), CLINIC))
    assert answer.kind == "278"
    assert "AAA*N**79*" in answer.body
    assert doors.intake.calls == []


def test_a_syntax_fault_is_answered_with_the_999_and_unreadable_text_with_a_ta1(doors: Doors) -> None:
    broken = run(doors.x12.receive(interchange(transaction(control="0001"), declared_sets=3), CLINIC))
    assert broken.kind == "999"
    assert "AK9*R" in broken.body
    garbage = run(doors.x12.receive("hello", CLINIC))
    assert garbage.kind == "TA1"
    assert "TA1*" in garbage.body


def test_intake_unavailable_answers_42(doors: Doors) -> None:
    doors.intake.down = True
    answer = run(doors.x12.receive(interchange(transaction()), CLINIC))
    assert "AAA*N**42*P" in answer.body


def test_another_submitter_finds_nothing_however_it_names_the_request(doors: Doors) -> None:
    rid = request_id(doors.submit(complete_bundle("72148")))
    for asked in (inquiry(), inquiry(identifier=(REQUEST_ID_SYSTEM, rid)), inquiry(identifier=None)):
        assert inquiry_answers(doors.inquire(asked, OTHER)) == []
    assert len(inquiry_answers(doors.inquire(inquiry(identifier=(REQUEST_ID_SYSTEM, rid))))) == 1


def test_another_submitter_cannot_cancel_by_the_platforms_request_id(doors: Doors) -> None:
    original = complete_bundle("72148")
    rid = request_id(doors.submit(original))
    update = update_of(original, cancel=(0,))
    claim(update)["related"][0]["claim"] = {"identifier": {"system": REQUEST_ID_SYSTEM, "value": rid}}
    answer = doors.submit(update, OTHER)
    assert claim_response(answer)["outcome"] == "error"
    assert ("CancelRequest", OTHER.id) in doors.intake.calls  # intake decides, and says "not found"
    assert action_codes(inquiry_answers(doors.inquire(inquiry()))[0]) == {1: "A4"}  # untouched


def test_a_pended_line_of_a_cancelled_request_answers_c(doors: Doors) -> None:
    original = complete_bundle("72148")
    rid = request_id(doors.submit(original))
    doors.intake.decide(rid, (1, PENDED), reasons=("referred to a nurse",))
    answer = doors.submit(update_of(original, cancel=(0,)))
    assert action_codes(answer.resource) == {1: "C"}
