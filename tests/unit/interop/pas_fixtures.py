"""PAS Bundles for the tests: the guide's examples, and a complete request the platform can review."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "davinci-pas-2.2.1"
PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
X12 = "https://codesystem.x12.org/005010/"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
NPI = "http://hl7.org/fhir/sid/us-npi"
REQUEST_EXAMPLES = ("Bundle-MedicalServicesAuthorizationBundleExample.json",
                    "Bundle-ReferralAuthorizationBundleExample.json",
                    "Bundle-HomecareAuthorizationBundleExample.json",
                    "Bundle-HomecareAuthorizationUpdateBundleExample.json")
RESPONSE_EXAMPLES = ("Bundle-ReferralAuthorizationResponseBundleExample.json",
                     "Bundle-ReferralPendingAuthorizationResponseBundleExample.json",
                     "Bundle-RejectionResponseBundleExample.json",
                     "Bundle-ErrorResponseBundleExample.json")


def example(name: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return bundle


def _item(sequence: int, code: str, *, certification: str = "I", start: str = "2026-03-02",
          end: str | None = None, units: int | None = 1, pos: str = "22") -> dict[str, Any]:
    item: dict[str, Any] = {
        "extension": [
            {"url": PAS + "extension-serviceItemRequestType",
             "valueCodeableConcept": {"coding": [{"system": X12 + "1525", "code": "HS"}]}},
            {"url": PAS + "extension-certificationType",
             "valueCodeableConcept": {"coding": [{"system": X12 + "1322", "code": certification}]}},
            {"url": PAS + "extension-itemTraceNumber",
             "valueIdentifier": {"system": "http://example.org/ITEM_TRACE_NUMBER", "value": f"T{sequence}"}},
        ],
        "sequence": sequence,
        "category": {"coding": [{"system": X12 + "1365", "code": "73", "display": "Diagnostic Medical"}]},
        "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code}]},
        "locationCodeableConcept": {"coding": [{"system": POS, "code": pos}]},
    }
    if end is None:
        item["servicedDate"] = start
    else:
        item["servicedPeriod"] = {"start": start, "end": end}
    if units is not None:
        item["quantity"] = {"value": units}
    return item


def complete_bundle(*codes: str, lob_code: str = "111", state: str = "TX") -> dict[str, Any]:
    """A PAS request Bundle with everything the platform needs: Medicare Advantage (SOPT 111),
    a Texas member, an MRI of the lumbar spine (72148) unless other codes are given."""
    items = [_item(i + 1, code) for i, code in enumerate(codes or ("72148",))]
    claim = {
        "resourceType": "Claim", "id": "c1",
        "meta": {"profile": [PAS + "profile-claim"]},
        "identifier": [{"system": "urn:trnorg:9012345678", "value": "TRN-1"}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization",
        "patient": {"reference": "Patient/p1"},
        "created": "2026-03-01T10:00:00-06:00",
        "insurer": {"reference": "Organization/ins"},
        "provider": {"reference": "PractitionerRole/role1"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.16"}]}}],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov1"}}],
        "item": items,
    }
    entries = [
        {"fullUrl": "http://example.org/fhir/Claim/c1", "resource": claim},
        {"fullUrl": "http://example.org/fhir/Organization/ins", "resource": {
            "resourceType": "Organization", "id": "ins", "identifier": [{"system": NPI, "value": "1234567893"}],
            "name": "LONE STAR HEALTH PLAN"}},
        {"fullUrl": "http://example.org/fhir/PractitionerRole/role1", "resource": {
            "resourceType": "PractitionerRole", "id": "role1", "practitioner": {"reference": "Practitioner/doc1"}}},
        {"fullUrl": "http://example.org/fhir/Practitioner/doc1", "resource": {
            "resourceType": "Practitioner", "id": "doc1", "identifier": [{"system": NPI, "value": "1245319599"}],
            "name": [{"family": "WATSON", "given": ["SUSAN"]}]}},
        {"fullUrl": "http://example.org/fhir/Coverage/cov1", "resource": {
            "resourceType": "Coverage", "id": "cov1", "status": "active",
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "MB"}]}, "value": "M-1001"}],
            "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": lob_code}]},
            "subscriberId": "S-1001", "beneficiary": {"reference": "Patient/p1"},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                         "code": "self"}]},
            "payor": [{"reference": "Organization/ins"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                             "code": "plan"}]}, "value": "MA-GOLD"}]}},
        {"fullUrl": "http://example.org/fhir/Patient/p1", "resource": {
            "resourceType": "Patient", "id": "p1", "identifier": [{"system": "http://example.org/MIN", "value": "1"}],
            "name": [{"family": "SMITH", "given": ["JOE"]}], "gender": "male", "birthDate": "1960-05-20",
            "address": [{"use": "home", "city": "AUSTIN", "state": state, "postalCode": "78701"}]}},
    ]
    return {"resourceType": "Bundle", "meta": {"profile": [PAS + "profile-pas-request-bundle"]},
            "identifier": {"system": "http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER", "value": "B-1"},
            "type": "collection", "timestamp": "2026-03-01T10:00:00-06:00", "entry": entries}


def claim(bundle: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    return resource


def entry(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)


def mutated(bundle: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(bundle)


def _ts(text: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(text)
    return ts


def view_for(command: intake_pb2.SubmitRequestRequest, *decisions: dict[str, Any],
             status: intake_pb2.RequestStatus.ValueType = intake_pb2.REQUEST_STATUS_COMPLETE,
             status_reason: str = "") -> intake_pb2.RequestView:
    """A RequestView as intake would return it: one line per command line, with the given
    determination fields (action, units, dates, reasons, decider, authorization number)."""
    view = intake_pb2.RequestView(request_id="6f1c2a44-0b7e-4b8a-9d55-1c0f7e3a9b21",
                                  idempotency_key=command.idempotency_key, member_id=command.member_id,
                                  status=status, status_reason=status_reason, urgency=command.urgency,
                                  review_type=command.review_type,
                                  line_of_business=command.coverage.line_of_business)
    view.received_at.CopyFrom(_ts("2026-03-01T16:00:05Z"))
    for line, decision in zip(command.service_lines, decisions, strict=False):
        item = view.lines.add()
        item.line.CopyFrom(line)
        if not decision:
            continue
        det = item.determination
        det.line_number = line.line_number
        det.procedure_code = line.procedure_code
        det.action_code = decision["action"]
        det.reasons.extend(decision.get("reasons", ()))
        if "units" in decision:
            det.approved_units = decision["units"]
            det.approved_start.CopyFrom(line.start_date)
            det.approved_end.CopyFrom(decision.get("end", line.end_date if line.HasField("end_date")
                                                   else line.start_date))
        det.decided_by.CopyFrom(decision.get("by", types_pb2.DeciderRef(id="system:rules-engine", role="software")))
        det.decided_at.CopyFrom(_ts(decision.get("at", "2026-03-01T16:00:06Z")))
        det.queued_for_review = decision["action"] == types_pb2.ACTION_CODE_PENDED
        if "auth" in decision:
            auth = item.authorization
            auth.authorization_number = decision["auth"]
            auth.line_number = line.line_number
            auth.units = decision.get("units", line.units)
            auth.valid_from.CopyFrom(det.approved_start)
            auth.valid_to.CopyFrom(det.approved_end)
            auth.issued_at.CopyFrom(_ts("2026-03-01T16:00:07Z"))
    return view
