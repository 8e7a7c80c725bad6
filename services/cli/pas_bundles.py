"""A PAS request Bundle saying what a ``SubmitRequestRequest`` says: how the bench and the end-to-end
tests send the same request through the FHIR door as through gRPC.

The Bundle is what an EHR would send: the Claim first (use preauthorization, one item per line with
its X12 service type, certification type and request type, CPT/HCPCS code, place of service, dates,
units), the Patient (birth date, home state), the Coverage (member id of type MB, the line of
business as a Source of Payment Typology code, the plan), the insurer, the requesting
PractitionerRole and Practitioner, the servicing Practitioner as the care team, and the clinical
facts as ``supportingInfo`` coded with the platform's fact system."""

from __future__ import annotations

from typing import Any

from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.interop.codes import POS_SYSTEM, X12
from services.intake.interop.pas.fhir import NPI_SYSTEM, PAS
from services.intake.interop.pas.request import CPT_SYSTEM, FACT_SYSTEM, HCPCS_SYSTEM, ICD10CM_SYSTEM

#: A Source of Payment Typology code of each line of business (services/intake/interop/codes.py).
SOPT = {types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE: "111", types_pb2.LINE_OF_BUSINESS_MEDICAID: "2",
        types_pb2.LINE_OF_BUSINESS_COMMERCIAL: "5", types_pb2.LINE_OF_BUSINESS_WORKERS_COMP: "95"}
INSURER_NPI = "1234567893"
BASE = "http://ehr.example.org/fhir"
TRACE_SYSTEM = "urn:trnorg:9012345678"
TRANSACTION_SYSTEM = "urn:ur-platform:bench:transaction"


def _date(value: types_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _item(line: types_pb2.ServiceLine, expedited: bool) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [
        {"url": PAS + "extension-serviceItemRequestType",
         "valueCodeableConcept": {"coding": [{"system": X12 + "1525", "code": "HS"}]}},
        {"url": PAS + "extension-certificationType",
         "valueCodeableConcept": {"coding": [{"system": X12 + "1322", "code": "I"}]}},
    ]
    if expedited:
        extensions.append({"url": PAS + "extension-levelOfServiceCode",
                           "valueCodeableConcept": {"coding": [{"system": X12 + "1338", "code": "U"}]}})
    item: dict[str, Any] = {
        "extension": extensions,
        "sequence": line.line_number,
        "careTeamSequence": [1],
        "category": {"coding": [{"system": X12 + "1365", "code": "73", "display": "Diagnostic Medical"}]},
        "productOrService": {"coding": [{"system": CPT_SYSTEM if line.procedure_code[:1].isdigit() else
                                         HCPCS_SYSTEM, "code": line.procedure_code}]},
        "locationCodeableConcept": {"coding": [{"system": POS_SYSTEM, "code": f"{int(line.place_of_service):02d}"}]},
        "quantity": {"value": line.units or 1},
    }
    if line.modifiers:
        item["modifier"] = [{"coding": [{"system": CPT_SYSTEM, "code": m}]} for m in line.modifiers]
    if line.HasField("end_date") and line.end_date != line.start_date:
        item["servicedPeriod"] = {"start": _date(line.start_date), "end": _date(line.end_date)}
    else:
        item["servicedDate"] = _date(line.start_date)
    return item


def _fact(sequence: int, fact: types_pb2.ClinicalFact) -> dict[str, Any]:
    info: dict[str, Any] = {
        "sequence": sequence,
        "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claiminformationcategory",
                                 "code": "info"}]},
        "code": {"coding": [{"system": FACT_SYSTEM, "code": fact.name}]},
    }
    kind = fact.WhichOneof("value")
    if kind == "bool_value":
        info["valueBoolean"] = fact.bool_value
    elif kind == "number_value":
        info["valueQuantity"] = {"value": fact.number_value, **({"unit": fact.unit} if fact.unit else {})}
    else:
        info["valueString"] = fact.text_value if kind == "text_value" else _date(fact.date_value)
    return info


def pas_bundle(request: intake_pb2.SubmitRequestRequest, *, transaction: str, trace: str, timestamp: str,
               birth_date: str = "1960-01-01") -> dict[str, Any]:
    """The PAS request Bundle of ``request``: ``transaction`` is the Bundle identifier (the door's
    idempotency key comes from it), ``trace`` the Claim's patient event trace number, ``timestamp``
    the Bundle's (ISO 8601 with an offset)."""
    cover = request.coverage
    claim: dict[str, Any] = {
        "resourceType": "Claim", "id": "claim",
        "meta": {"profile": [PAS + "profile-claim"]},
        "identifier": [{"system": TRACE_SYSTEM, "value": trace}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization",
        "patient": {"reference": "Patient/patient"},
        "created": timestamp,
        "insurer": {"reference": "Organization/insurer"},
        "provider": {"reference": "PractitionerRole/requester"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority",
                                 "code": "stat" if request.urgency == types_pb2.URGENCY_EXPEDITED else "normal"}]},
        "careTeam": [{"sequence": 1, "provider": {"reference": "Practitioner/servicing"}}],
        "diagnosis": [{"sequence": n, "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM_SYSTEM,
                                                                                "code": d.code}]}}
                      for n, d in enumerate(sorted(request.diagnoses, key=lambda d: not d.primary), start=1)],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/coverage"}}],
        "item": [_item(line, request.urgency == types_pb2.URGENCY_EXPEDITED) for line in request.service_lines],
    }
    facts = [_fact(n, f) for n, f in enumerate(request.clinical_facts, start=1) if f.name != "age_years"]
    if facts:
        claim["supportingInfo"] = facts
    resources: list[dict[str, Any]] = [
        claim,
        {"resourceType": "Patient", "id": "patient", "birthDate": birth_date,
         "name": [{"family": "MEMBER", "given": [request.member_id]}],
         "address": [{"use": "home", "state": cover.member_state}]},
        {"resourceType": "Coverage", "id": "coverage", "status": "active",
         "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                               "code": "MB"}]}, "value": request.member_id}],
         "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": SOPT[cover.line_of_business]}]},
         "beneficiary": {"reference": "Patient/patient"}, "payor": [{"reference": "Organization/insurer"}],
         **({"class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                              "code": "plan"}]}, "value": cover.plan_id}]} if cover.plan_id else {})},
        {"resourceType": "Organization", "id": "insurer", "name": "SAMPLE HEALTH PLAN",
         "identifier": [{"system": NPI_SYSTEM, "value": INSURER_NPI}]},
        {"resourceType": "PractitionerRole", "id": "requester",
         "practitioner": {"reference": "Practitioner/requesting"}},
        {"resourceType": "Practitioner", "id": "requesting",
         "identifier": [{"system": NPI_SYSTEM, "value": request.requesting_provider.npi}],
         "name": [{"text": request.requesting_provider.name or "REQUESTING PROVIDER"}]},
        {"resourceType": "Practitioner", "id": "servicing",
         "identifier": [{"system": NPI_SYSTEM, "value": (request.servicing_provider.npi or
                                                         request.requesting_provider.npi)}],
         "name": [{"text": request.servicing_provider.name or "SERVICING PROVIDER"}]},
    ]
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PAS + "profile-pas-request-bundle"]},
        "identifier": {"system": TRANSACTION_SYSTEM, "value": transaction},
        "type": "collection",
        "timestamp": timestamp,
        "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }
