"""RequestView -> PAS response Bundle, the error response, and the inquiry query."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claimresponse import ClaimResponse
from ur.common.v1 import types_pb2 as t
from ur.intake.v1 import intake_pb2

from services.intake.interop.answers import Rejection
from services.intake.interop.pas.inquiry import InquiryQuery, parse_inquiry
from services.intake.interop.pas.request import pas_request_to_command
from services.intake.interop.pas.response import (
    EXT_REVIEW_ACTION,
    EXT_REVIEW_ACTION_CODE,
    EXT_REVIEWER,
    action_codes,
    pas_error_bundle,
    pas_response_bundle,
)
from services.intake.interop.payers import PayerProfile
from tests.unit.interop.pas_fixtures import PAS, claim, complete_bundle, entry, example, view_for

ACTION = "https://codesystem.x12.org/005010/306"
PHYSICIAN = t.DeciderRef(id="1245319599", role="physician", name="Dr. Ada Ortho",
                         credential="MD (orthopedic surgery), licensed in TX")
NURSE = t.DeciderRef(id="rn-17", role="nurse", name="Nora Nurse", credential="RN, licensed in TX")


def _cmd(bundle: dict[str, Any]) -> intake_pb2.SubmitRequestRequest:
    cmd = pas_request_to_command(bundle, "submitter-1")
    assert isinstance(cmd, intake_pb2.SubmitRequestRequest), cmd
    return cmd


def respond(bundle: dict[str, Any], *decisions: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = pas_response_bundle(bundle, view_for(_cmd(bundle), *decisions, **kwargs))
    Bundle.model_validate(response)  # every response parses as FHIR R4
    return response


def claim_response(response: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = response["entry"][0]["resource"]
    assert resource["resourceType"] == "ClaimResponse"
    return resource


def review_action(item: dict[str, Any]) -> dict[str, Any]:
    [adjudication] = item["adjudication"]
    assert adjudication["category"]["coding"] == [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                                   "code": "submitted"}]
    [ext] = [e for e in adjudication["extension"] if e["url"] == EXT_REVIEW_ACTION]
    parts: dict[str, Any] = {}
    for part in ext["extension"]:
        parts.setdefault(part["url"], []).append(part)
    [code] = parts[EXT_REVIEW_ACTION_CODE]
    [coding] = code["valueCodeableConcept"]["coding"]
    assert coding["system"] == ACTION
    return {"code": coding["code"], "number": [p["valueString"] for p in parts.get("number", [])],
            "reasons": [p["valueCodeableConcept"]["text"] for p in parts.get("reasonCode", [])]}


def extension(element: dict[str, Any], name: str) -> Any:
    found = [e for e in element.get("extension", []) if e["url"] == PAS + name]
    return found[0] if found else None


def test_certified_in_total_carries_number_period_quantity_and_issue_date() -> None:
    response = respond(complete_bundle(), {"action": t.ACTION_CODE_CERTIFIED_IN_TOTAL, "units": 1,
                                           "auth": "UR26-8K3F-Q9ZD", "reasons": ["meets criteria"]})
    cr = claim_response(response)
    assert cr["outcome"] == "complete"
    assert cr["request"]["reference"] == "http://example.org/fhir/Claim/c1"
    [item] = cr["item"]
    assert item["itemSequence"] == 1
    assert review_action(item) == {"code": "A1", "number": ["UR26-8K3F-Q9ZD"], "reasons": ["meets criteria"]}
    assert extension(item, "extension-itemPreAuthPeriod")["valuePeriod"] == {"start": "2026-03-02", "end": "2026-03-02"}
    assert extension(item, "extension-itemPreAuthIssueDate")["valueDate"] == "2026-03-01"
    detail = {p["url"]: p for p in extension(item, "extension-itemAuthorizedDetail")["extension"]}
    assert detail["quantity"]["valueQuantity"] == {"value": 1}
    assert detail["productOrServiceCode"]["valueCodeableConcept"]["coding"] == [
        {"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]
    assert extension(item, "extension-itemTraceNumber")["valueIdentifier"]["value"] == "T1"  # echoed
    assert cr["processNote"] == [{"number": 1, "type": "display", "text": "meets criteria"}]
    assert item["noteNumber"] == [1]
    reviewer = next(e for e in cr["extension"] if e["url"] == EXT_REVIEWER)
    assert reviewer["extension"] == [{"url": "wasHumanReviewedFlag", "valueBoolean": False}]


def test_response_references_resolve_inside_the_response_bundle() -> None:
    response = respond(complete_bundle(), {"action": t.ACTION_CODE_PENDED})
    cr = claim_response(response)
    urls = {e["fullUrl"] for e in response["entry"]}
    for name in ("patient", "insurer", "requestor"):
        assert cr[name]["reference"] in urls
    assert response["type"] == "collection"
    assert response["identifier"] == {"system": "http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER",
                                      "value": "B-1"}
    assert response["meta"]["profile"] == [PAS + "profile-pas-response-bundle"]
    assert {e["resource"]["resourceType"] for e in response["entry"]} == {
        "ClaimResponse", "Patient", "Organization", "PractitionerRole", "Practitioner"}


@pytest.mark.parametrize(("action", "code"), [
    (t.ACTION_CODE_CERTIFIED_IN_TOTAL, "A1"), (t.ACTION_CODE_CERTIFIED_PARTIAL, "A2"),
    (t.ACTION_CODE_NOT_CERTIFIED, "A3"), (t.ACTION_CODE_PENDED, "A4"), (t.ACTION_CODE_MODIFIED, "A6"),
    (t.ACTION_CODE_CANCELLED, "C"), (t.ACTION_CODE_CONTACT_PAYER, "CT"), (t.ACTION_CODE_NO_ACTION_REQUIRED, "NA"),
])
def test_every_action_code(action: int, code: str) -> None:
    response = respond(complete_bundle(), {"action": action, "reasons": [f"why {code}"]})
    [item] = claim_response(response)["item"]
    assert review_action(item)["code"] == code
    assert review_action(item)["reasons"] == [f"why {code}"]
    assert action_codes(response) == {1: code}


def test_a_line_without_determination_is_pended_and_the_answer_complete() -> None:
    bundle = complete_bundle("72148", "97110")
    response = respond(bundle, {}, {}, status=intake_pb2.REQUEST_STATUS_IN_REVIEW)
    cr = claim_response(response)
    assert cr["outcome"] == "complete"
    assert action_codes(response) == {1: "A4", 2: "A4"}
    for item in cr["item"]:
        assert review_action(item) == {"code": "A4", "number": [], "reasons": ["under review"]}
        assert extension(item, "extension-administrationReferenceNumber")["valueString"] == (
            "6f1c2a44-0b7e-4b8a-9d55-1c0f7e3a9b21")
        assert extension(item, "extension-itemPreAuthPeriod") is None


def test_modified_approval_returns_the_authorized_variant_in_add_item() -> None:
    bundle = complete_bundle("72148", "97110")
    claim(bundle)["item"][1]["servicedPeriod"] = {"start": "2026-03-02", "end": "2026-04-30"}
    claim(bundle)["item"][1].pop("servicedDate")
    claim(bundle)["item"][1]["quantity"] = {"value": 24}
    response = respond(bundle, {"action": t.ACTION_CODE_CERTIFIED_IN_TOTAL, "units": 1, "auth": "UR26-0000-0001"},
                       {"action": t.ACTION_CODE_MODIFIED, "units": 12, "end": t.Date(year=2026, month=3, day=31),
                        "auth": "UR26-0000-0002", "by": PHYSICIAN,
                        "reasons": ["modified by Dr. Ada Ortho: 12 visits", "criterion: pt-ot-visits@2026.1"]})
    cr = claim_response(response)
    assert action_codes(response) == {1: "A1", 2: "A6"}
    [added] = cr["addItem"]
    assert added["itemSequence"] == [2]
    assert added["quantity"] == {"value": 12}
    assert added["servicedPeriod"] == {"start": "2026-03-02", "end": "2026-03-31"}
    assert review_action(added) == {"code": "A6", "number": ["UR26-0000-0002"], "reasons": []}
    requested = extension(cr["item"][1], "extension-itemRequestedServiceDate")["valuePeriod"]
    assert requested == {"start": "2026-03-02", "end": "2026-04-30"}
    assert cr["item"][1]["noteNumber"] == [1, 2]  # line 1 gave no reasons
    reviewer = {p["url"]: p for p in next(e for e in cr["extension"] if e["url"] == EXT_REVIEWER)["extension"]}
    assert reviewer["wasHumanReviewedFlag"]["valueBoolean"] is True
    assert reviewer["reviewerNPI"]["valueIdentifier"] == {"system": "http://hl7.org/fhir/sid/us-npi",
                                                           "value": "1245319599"}
    assert reviewer["reviewerSpecialty"]["valueCodeableConcept"] == {"text": "orthopedic surgery"}
    ClaimResponse.model_validate(cr)


def test_partial_certification_states_the_certified_quantity() -> None:
    bundle = complete_bundle()
    claim(bundle)["item"][0]["quantity"] = {"value": 10}
    response = respond(bundle, {"action": t.ACTION_CODE_CERTIFIED_PARTIAL, "units": 6, "auth": "UR26-0000-0003",
                                "by": NURSE, "reasons": ["certified 6 of 10 requested visits"]})
    [item] = claim_response(response)["item"]
    detail = {p["url"]: p for p in extension(item, "extension-itemAuthorizedDetail")["extension"]}
    assert detail["quantity"]["valueQuantity"] == {"value": 6}
    reviewer = next(e for e in claim_response(response)["extension"] if e["url"] == EXT_REVIEWER)
    assert reviewer["extension"] == [{"url": "wasHumanReviewedFlag", "valueBoolean": True}]  # no NPI, no specialty


def test_denial_has_no_number_and_says_why() -> None:
    response = respond(complete_bundle(), {"action": t.ACTION_CODE_NOT_CERTIFIED, "by": PHYSICIAN,
                                           "reasons": ["denied by Dr. Ada Ortho: no red flags before six weeks"]})
    [item] = claim_response(response)["item"]
    assert review_action(item) == {"code": "A3", "number": [],
                                   "reasons": ["denied by Dr. Ada Ortho: no red flags before six weeks"]}
    assert extension(item, "extension-itemPreAuthPeriod") is None


def test_items_without_an_answer_make_the_outcome_partial() -> None:
    bundle = complete_bundle("72148", "97110")
    cmd = _cmd(bundle)
    view = view_for(cmd, {"action": t.ACTION_CODE_CERTIFIED_IN_TOTAL, "units": 1, "auth": "UR26-0000-0004"})
    assert len(view.lines) == 1  # a view that lost line 2 (never happens in intake: a defect made visible)
    response = pas_response_bundle(bundle, view)
    Bundle.model_validate(response)
    cr = claim_response(response)
    assert cr["outcome"] == "partial"
    assert [e["extension"][0]["valueString"] for e in cr["error"]] == ["Bundle.entry[0].resource.item[1]"]


@pytest.mark.parametrize(("reason", "code", "followup"), [
    ("member not found", "75", "C"),
    ("no commercial coverage on file for this member", "78", "N"),
    ("coverage not active on 2026-03-02 (line 1)", "78", "N"),
])
def test_an_ineligible_request_is_the_guides_error_response(reason: str, code: str, followup: str) -> None:
    bundle = complete_bundle()
    response = pas_response_bundle(bundle, view_for(_cmd(bundle), status=intake_pb2.REQUEST_STATUS_INELIGIBLE,
                                                    status_reason=reason))
    Bundle.model_validate(response)
    cr = claim_response(response)
    assert cr["outcome"] == "error"
    assert "item" not in cr
    [error] = cr["error"]
    assert error["code"]["coding"][0]["system"] == "https://codesystem.x12.org/005010/901"
    assert error["code"]["coding"][0]["code"] == code
    followups = [e for e in error["extension"] if e["url"] == PAS + "extension-errorFollowupAction"]
    assert followups[0]["valueCodeableConcept"]["coding"][0] == {"system": "https://codesystem.x12.org/005010/889",
                                                                  "code": followup}
    assert cr["processNote"][0]["text"] == reason
    assert response["entry"][-1]["resource"]["resourceType"] == "Claim"  # the Claim in error is echoed


def test_error_bundle_for_a_door_decision() -> None:
    bundle = complete_bundle()
    response = pas_error_bundle(bundle, [Rejection("2000A", "42", "P", "intake is unavailable; resend")],
                                now=dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC))
    Bundle.model_validate(response)
    cr = claim_response(response)
    assert (cr["outcome"], cr["error"][0]["code"]["coding"][0]["code"], response["timestamp"]) == (
        "error", "42", "2026-03-01T16:00:00+00:00")


def test_our_answer_to_the_guides_referral_has_the_guides_response_shape() -> None:
    """The guide's referral request cannot be reviewed here (no CPT code), but had it been stored,
    our answer would line up with Bundle-ReferralAuthorizationResponseBundleExample."""
    request = example("Bundle-ReferralAuthorizationBundleExample.json")
    theirs = claim_response(example("Bundle-ReferralAuthorizationResponseBundleExample.json"))
    view = intake_pb2.RequestView(request_id="r-1", status=intake_pb2.REQUEST_STATUS_COMPLETE)
    line = view.lines.add()
    line.line.line_number = 1
    line.line.procedure_code = "99243"
    line.line.units = 1
    line.determination.action_code = t.ACTION_CODE_CERTIFIED_IN_TOTAL
    line.determination.approved_units = 1
    line.authorization.authorization_number = "AUTH0001"
    ours_bundle = pas_response_bundle(request, view, now=dt.datetime(2005, 5, 2, 6, 2, tzinfo=dt.UTC))
    Bundle.model_validate(ours_bundle)
    ours = claim_response(ours_bundle)
    for name in ("status", "use", "outcome", "type"):
        assert ours[name] == theirs[name]
    assert ours["identifier"][0]["value"] == theirs["identifier"][0]["value"] == "111099"
    assert [i["itemSequence"] for i in ours["item"]] == [i["itemSequence"] for i in theirs["item"]]
    assert review_action(ours["item"][0])["code"] == review_action(theirs["item"][0])["code"] == "A1"
    assert review_action(ours["item"][0])["number"] == review_action(theirs["item"][0])["number"] == ["AUTH0001"]
    assert ours["requestor"]["reference"] == "http://example.org/fhir/Organization/UMOExample"
    assert ours["insurer"]["reference"] == "http://example.org/fhir/Organization/InsurerExample"


def test_a_stored_bundle_that_is_not_a_pas_request_is_a_defect() -> None:
    with pytest.raises(ValueError, match="not a PAS request Bundle"):
        pas_response_bundle(example("Bundle-RejectionResponseBundleExample.json"), intake_pb2.RequestView())


def test_same_view_same_bundle() -> None:
    bundle = complete_bundle()
    view = view_for(_cmd(bundle), {"action": t.ACTION_CODE_PENDED})
    assert pas_response_bundle(bundle, view) == pas_response_bundle(bundle, view)


# -- $inquire -----------------------------------------------------------------------------------

def test_the_guides_inquiry_example_is_a_query() -> None:
    query = parse_inquiry(example("Bundle-PASClaimInquiryBundleExample.json"))
    assert query == InquiryQuery(
        transaction=("http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER", "5269367"),
        requester_npi="8189991234", payer_identifiers=("1234567893",), member_id="1122334455",
        claim_identifier=("http://example.org/PATIENT_EVENT_TRACE_NUMBER", "111099"),
        procedure_codes=("G0154", "B4184"), service_from=None, service_to=None)


def test_inquiry_by_service_and_dates_without_a_claim_identifier() -> None:
    bundle = complete_bundle("72148", "97110")
    claim(bundle).pop("identifier")
    claim(bundle)["item"][1].pop("servicedDate")
    claim(bundle)["item"][1]["servicedPeriod"] = {"start": "2026-03-01", "end": "2026-03-20"}
    query = parse_inquiry(bundle)
    assert isinstance(query, InquiryQuery)
    assert query.claim_identifier is None
    assert (query.member_id, query.requester_npi, query.payer_identifiers) == ("M-1001", "1245319599", ("1234567893",))
    assert query.procedure_codes == ("72148", "97110")
    assert (query.service_from, query.service_to) == (dt.date(2026, 3, 1), dt.date(2026, 3, 20))


def test_inquiry_needs_requester_payer_and_member() -> None:
    bundle = complete_bundle()
    entry(bundle, "Practitioner")["identifier"] = []
    entry(bundle, "Organization")["identifier"] = []
    entry(bundle, "Coverage")["identifier"] = []
    entry(bundle, "Coverage")["relationship"]["coding"][0]["code"] = "spouse"
    found = parse_inquiry(bundle)
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [
        ("required", "Bundle.entry[2].resource.identifier"),
        ("required", "Bundle.entry[1].resource.identifier"),
        ("required", "Bundle.entry[4].resource.identifier"),
    ]


def test_payer_profile_is_not_needed_for_an_inquiry() -> None:
    assert PayerProfile(t.LINE_OF_BUSINESS_COMMERCIAL).plan_id == ""
    assert isinstance(parse_inquiry(complete_bundle(lob_code="121")), InquiryQuery)
