"""Intake's stored view of a request -> the PAS response Bundle (and the PAS error response).

``pas_response_bundle`` answers the request Bundle the view came from: one ClaimResponse, first,
whose items echo the Claim's ``item.sequence`` (line n of the view is Claim item n, as
``pas_request_to_command`` numbered them), each with ``adjudication.extension[reviewAction]``:
``code`` (X12 HCR01, system ``https://codesystem.x12.org/005010/306``), ``number`` (the authorization
number of a certified line), ``reasonCode`` (the determination's reasons as text: the X12 886 reason
code list is not available to the platform) mirrored as ``processNote``s the item points to by
``noteNumber``; the requested dates, the authorized period, issue date and quantity as PAS item
extensions; a modified approval (A6) also as an ``addItem`` holding what was authorized. The
``ClaimResponseReviewer`` extension says whether a person decided, and who when the record allows.
A line not decided yet is pended (A4); outcome is ``complete`` then too (the guide's pended answer).

An ineligible request (unknown member, coverage that does not fit) is the guide's error response:
``outcome = error`` with X12 reject reason codes (``pas_error_bundle``), as is any other rejection the
door decides on (e.g. 42, unable to respond now).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from ur.intake.v1 import intake_pb2

from services.intake.interop import codes
from services.intake.interop.answers import (
    LineAnswer,
    Rejection,
    deciding_reviewer,
    line_answers,
    rejection_of,
)
from services.intake.interop.pas.fhir import NPI_SYSTEM, PAS, BundleIndex, Found, extensions, parse_bundle
from services.intake.interop.pas.guard import load
from services.intake.interop.pas.request import CPT_SYSTEM, HCPCS_SYSTEM, PROCEDURE_SYSTEMS

REQUEST_ID_SYSTEM = "urn:ur-platform:fhir:request-id"
EXT_REVIEW_ACTION = PAS + "extension-reviewAction"
EXT_REVIEW_ACTION_CODE = PAS + "extension-reviewActionCode"
EXT_REVIEWER = PAS + "extension-claimResponseReviewer"
EXT_TRACE_NUMBER = PAS + "extension-itemTraceNumber"
EXT_ADMIN_REFERENCE = PAS + "extension-administrationReferenceNumber"
EXT_REQUESTED_DATE = PAS + "extension-itemRequestedServiceDate"
EXT_ISSUE_DATE = PAS + "extension-itemPreAuthIssueDate"
EXT_PREAUTH_PERIOD = PAS + "extension-itemPreAuthPeriod"
EXT_AUTHORIZED_DETAIL = PAS + "extension-itemAuthorizedDetail"
EXT_ERROR_PATH = PAS + "extension-errorPath"
EXT_ERROR_ELEMENT = PAS + "extension-errorElement"
EXT_ERROR_FOLLOWUP = PAS + "extension-errorFollowupAction"
PROFILE_RESPONSE_BUNDLE = PAS + "profile-pas-response-bundle"
PROFILE_CLAIM_RESPONSE = PAS + "profile-claimresponse"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
NOTE_TYPE = "display"
_NAMESPACE = uuid.UUID("9d7c1f4e-4a55-4d0b-9a39-2f1bfb0f8a31")


class _Request:
    """The parts of the request Bundle a response refers to or echoes."""

    def __init__(self, request_bundle: str | bytes | Mapping[str, Any], parsed: Bundle | None = None) -> None:
        problems: list[Any] = []
        bundle = parsed
        if bundle is None:
            bundle, problems = parse_bundle(request_bundle)
        raw = request_bundle if isinstance(request_bundle, Mapping) else load(request_bundle)[0]
        if bundle is None or not bundle.entry or bundle.entry[0].resource is None \
                or bundle.entry[0].resource.get_resource_type() != "Claim":
            detail = "; ".join(f"{p.expression}: {p.message}" for p in problems[:3])
            raise ValueError(f"not a PAS request Bundle: {detail or 'the first entry is not a Claim'}")
        self.bundle: Bundle = bundle
        self.raw_entries: list[Any] = list(raw.get("entry", [])) if isinstance(raw, Mapping) else []
        self.index = BundleIndex.of(bundle)
        first = bundle.entry[0]
        self.claim = Found(first.resource, "Bundle.entry[0].resource", first.fullUrl or "")
        c = self.claim.resource
        self.patient = self.index.resolve(c.patient, self.claim)
        self.insurer = self.index.resolve(c.insurer, self.claim)
        self.requestor = self.index.resolve(c.provider, self.claim)

    def reference(self, found: Found | None, fallback: Any) -> dict[str, Any]:
        if found is not None and found.full_url:
            return {"reference": found.full_url}
        return {"reference": fallback.reference} if fallback is not None and fallback.reference else {}

    def echoed_entries(self) -> list[dict[str, Any]]:
        """The patient, insurer and requester entries, as sent, so the response's references resolve."""
        wanted: list[Found] = [f for f in (self.patient, self.insurer, self.requestor) if f is not None]
        if self.requestor is not None and self.requestor.resource.get_resource_type() == "PractitionerRole":
            practitioner = self.index.resolve(self.requestor.resource.practitioner, self.requestor)
            if practitioner is not None:
                wanted.append(practitioner)
        out, seen = [], set()
        for found in wanted:
            if found.path in seen or not found.path.startswith("Bundle.entry["):
                continue
            seen.add(found.path)
            i = int(found.path.split("[", 1)[1].split("]", 1)[0])
            if i < len(self.raw_entries):
                out.append(self.raw_entries[i])
        return out

    def bundle_identifier(self) -> dict[str, Any]:
        identifier = self.bundle.identifier
        out: dict[str, Any] = {}
        if identifier is not None and identifier.system:
            out["system"] = identifier.system
        if identifier is not None and identifier.value:
            out["value"] = identifier.value
        return out


def _instant(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat(timespec="seconds")


def _moment(view: intake_pb2.RequestView, now: dt.datetime | None) -> dt.datetime:
    """The response's timestamp: given by the caller, else the latest moment the view records."""
    if now is not None:
        return now
    if view.HasField("decided_at"):
        return view.decided_at.ToDatetime(tzinfo=dt.UTC)
    if view.HasField("received_at"):
        return view.received_at.ToDatetime(tzinfo=dt.UTC)
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _period(start: dt.date | None, end: dt.date | None) -> dict[str, str]:
    out = {}
    if start is not None:
        out["start"] = start.isoformat()
    last = end or start
    if last is not None:
        out["end"] = last.isoformat()
    return out


def _procedure_coding(code: str, claim_item: Any) -> dict[str, str]:
    for coding in claim_item.productOrService.coding or []:
        if coding.system in PROCEDURE_SYSTEMS and coding.code == code:
            return {"system": coding.system, "code": code}
    return {"system": CPT_SYSTEM if code[:1].isdigit() else HCPCS_SYSTEM, "code": code}


def _review_action(answer: LineAnswer, reasons: Sequence[str], action: str | None = None) -> dict[str, Any]:
    code = action or answer.action
    display = answer.action_display if action is None else dict(codes.ACTION_CODES.values()).get(code, code)
    parts: list[dict[str, Any]] = [{"url": EXT_REVIEW_ACTION_CODE, "valueCodeableConcept": {
        "coding": [{"system": codes.ACTION_SYSTEM, "code": code, "display": display}]}}]
    if answer.authorization_number:
        parts.append({"url": "number", "valueString": answer.authorization_number})
    parts.extend({"url": "reasonCode", "valueCodeableConcept": {"text": reason}} for reason in reasons)
    return {"url": EXT_REVIEW_ACTION, "extension": parts}


def _adjudication(review_action: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"extension": [review_action], "category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]}}]


def _reviewer_extension(view: intake_pb2.RequestView) -> dict[str, Any]:
    reviewer = deciding_reviewer(view)
    parts: list[dict[str, Any]] = [{"url": "wasHumanReviewedFlag", "valueBoolean": reviewer is not None}]
    if reviewer is not None and reviewer.npi:
        parts.append({"url": "reviewerNPI", "valueIdentifier": {"system": NPI_SYSTEM, "value": reviewer.npi}})
    if reviewer is not None and reviewer.specialty:
        parts.append({"url": "reviewerSpecialty", "valueCodeableConcept": {"text": reviewer.specialty}})
    return {"url": EXT_REVIEWER, "extension": parts}


def _claim_response_shell(request: _Request, request_id: str, moment: dt.datetime, outcome: str) -> dict[str, Any]:
    c = request.claim.resource
    identifiers = [{"system": i.system, "value": i.value} for i in c.identifier or [] if i.system and i.value]
    if request_id:
        identifiers.append({"system": REQUEST_ID_SYSTEM, "value": request_id})
    shell: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": _resource_id(request, request_id),
        "meta": {"profile": [PROFILE_CLAIM_RESPONSE]},
        "identifier": identifiers,
        "status": "active",
        "type": c.type.model_dump(mode="json", by_alias=True, exclude_none=True),
        "use": "preauthorization",
        "patient": request.reference(request.patient, c.patient),
        "created": _instant(moment),
        "insurer": request.reference(request.insurer, c.insurer),
        "requestor": request.reference(request.requestor, c.provider),
        "request": {**({"reference": request.claim.full_url} if request.claim.full_url else {}),
                    **({"identifier": identifiers[0]} if identifiers else {})},
        "outcome": outcome,
    }
    return {k: v for k, v in shell.items() if v not in ({}, [])}


def _resource_id(request: _Request, request_id: str) -> str:
    if request_id and len(request_id) <= 64 and all(ch.isalnum() or ch in "-." for ch in request_id):
        return request_id
    ident = request.bundle_identifier()
    return str(uuid.uuid5(_NAMESPACE, f"{request_id}|{ident.get('system', '')}|{ident.get('value', '')}"))


def _bundle(request: _Request, claim_response: dict[str, Any], moment: dt.datetime,
            extra: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, 'ClaimResponse/' + claim_response['id'])}",
                "resource": claim_response}]
    entries.extend(request.echoed_entries())
    entries.extend(extra)
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PROFILE_RESPONSE_BUNDLE]},
        "identifier": request.bundle_identifier(),
        "type": "collection",
        "timestamp": _instant(moment),
        "entry": entries,
    }


def pas_response_bundle(request_bundle: str | bytes | Mapping[str, Any], request_view: intake_pb2.RequestView, *,
                        now: dt.datetime | None = None, parsed: Bundle | None = None) -> dict[str, Any]:
    """The PAS response Bundle (JSON-ready dict) for a request Bundle and intake's view of it.

    ``now`` stamps the Bundle and ``ClaimResponse.created``; by default the view's decision (else
    receipt) time, so the same view gives the same Bundle. Raises ValueError when ``request_bundle``
    is not the PAS request Bundle the view was made from (the door stored it; a mismatch is a defect).
    ``parsed``: the Bundle as ``parse_bundle`` already read it (saves reading it again)."""
    request = _Request(request_bundle, parsed)
    moment = _moment(request_view, now)
    rejection = rejection_of(request_view)
    if rejection is not None:
        return pas_error_bundle(request_bundle, [rejection], request_id=request_view.request_id, now=moment,
                                parsed=request.bundle)
    claim_items = list(request.claim.resource.item or [])
    answers = line_answers(request_view)
    notes: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for position, claim_item in enumerate(claim_items):
        answer = answers[position] if position < len(answers) else None
        if answer is None:
            errors.append(_error(Rejection("2000F", "15", "C", "no answer for this item",
                                           path=f"Bundle.entry[0].resource.item[{position}]")))
            continue
        numbers = []
        for reason in answer.reasons:
            notes.append({"number": len(notes) + 1, "type": NOTE_TYPE, "text": reason})
            numbers.append(len(notes))
        items.append(_item(claim_item, answer, request_view.request_id, numbers))
        if answer.action == "A6":
            added.append(_added_item(claim_item, answer))
    outcome = "partial" if errors and items else "error" if errors else "complete"
    response = _claim_response_shell(request, request_view.request_id, moment, outcome)
    response["extension"] = [_reviewer_extension(request_view)]
    if items:
        response["item"] = items
    if added:
        response["addItem"] = added
    if notes:
        response["processNote"] = notes
    if errors:
        response["error"] = errors
    return _bundle(request, _ordered(response), moment)


def _ordered(claim_response: dict[str, Any]) -> dict[str, Any]:
    order = ["resourceType", "id", "meta", "extension", "identifier", "status", "type", "use", "patient", "created",
             "insurer", "requestor", "request", "outcome", "item", "addItem", "processNote", "error"]
    return {k: claim_response[k] for k in order if k in claim_response}


def _item(claim_item: Any, answer: LineAnswer, request_id: str, note_numbers: list[int]) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [e.model_dump(mode="json", by_alias=True, exclude_none=True)
                                 for _k, e in extensions(claim_item, EXT_TRACE_NUMBER)]
    if request_id:
        ext.append({"url": EXT_ADMIN_REFERENCE, "valueString": request_id})
    if answer.requested_start is not None:
        ext.append({"url": EXT_REQUESTED_DATE, "valuePeriod": _period(answer.requested_start, answer.requested_end)})
    if answer.certified and answer.issued_on is not None:
        ext.append({"url": EXT_ISSUE_DATE, "valueDate": answer.issued_on.isoformat()})
    if answer.certified and answer.authorized_start is not None:
        ext.append({"url": EXT_PREAUTH_PERIOD, "valuePeriod": _period(answer.authorized_start, answer.authorized_end)})
    if answer.action in ("A1", "A2") and answer.authorized_units is not None:
        ext.append({"url": EXT_AUTHORIZED_DETAIL, "extension": [
            {"url": "productOrServiceCode",
             "valueCodeableConcept": {"coding": [_procedure_coding(answer.procedure_code, claim_item)]}},
            {"url": "quantity", "valueQuantity": {"value": answer.authorized_units}},
        ]})
    item: dict[str, Any] = {"extension": ext, "itemSequence": claim_item.sequence}
    if note_numbers:
        item["noteNumber"] = note_numbers
    item["adjudication"] = _adjudication(_review_action(answer, answer.reasons))
    return item


def _added_item(claim_item: Any, answer: LineAnswer) -> dict[str, Any]:
    """A6: what was authorized instead of what was requested."""
    ext: list[dict[str, Any]] = []
    if answer.issued_on is not None:
        ext.append({"url": EXT_ISSUE_DATE, "valueDate": answer.issued_on.isoformat()})
    if answer.authorized_start is not None:
        ext.append({"url": EXT_PREAUTH_PERIOD, "valuePeriod": _period(answer.authorized_start, answer.authorized_end)})
    added: dict[str, Any] = {"itemSequence": [claim_item.sequence],
                             "productOrService": {"coding": [_procedure_coding(answer.procedure_code, claim_item)]}}
    if ext:
        added = {"extension": ext, **added}
    if answer.authorized_start is not None:
        added["servicedPeriod"] = _period(answer.authorized_start, answer.authorized_end)
    if answer.authorized_units is not None:
        added["quantity"] = {"value": answer.authorized_units}
    added["adjudication"] = _adjudication(_review_action(answer, (), action="A6"))
    return added


def _error(rejection: Rejection, item_sequence: int | None = None) -> dict[str, Any]:
    """One ClaimResponse.error; ``item_sequence``: the Claim item it concerns, if one."""
    ext: list[dict[str, Any]] = []
    if rejection.element:
        ext.append({"url": EXT_ERROR_ELEMENT, "extension": [{"url": "error", "valueString": rejection.element}]})
    if rejection.path:
        ext.append({"url": EXT_ERROR_PATH, "valueString": rejection.path})
    ext.append({"url": EXT_ERROR_FOLLOWUP, "valueCodeableConcept": {
        "coding": [{"system": codes.FOLLOWUP_SYSTEM, "code": rejection.followup}]}})
    located: dict[str, Any] = {"itemSequence": item_sequence} if item_sequence else {}
    return {"extension": ext, **located, "code": {"coding": [{
        "system": codes.REJECT_REASON_SYSTEM, "code": rejection.code,
        "display": codes.REJECT_REASONS.get(rejection.code, rejection.code)}], "text": rejection.message}}


def pas_error_bundle(request_bundle: str | bytes | Mapping[str, Any], rejections: Sequence[Rejection], *,
                     request_id: str = "", now: dt.datetime, parsed: Bundle | None = None) -> dict[str, Any]:
    """The guide's error response for a valid request the platform cannot process: a ClaimResponse with
    ``outcome = error`` and one ``error`` per rejection (X12 reject reason, follow-up action, the
    element in error), the messages as process notes, and the Claim itself echoed."""
    request = _Request(request_bundle, parsed)
    response = _claim_response_shell(request, request_id, now, "error")
    notes = [{"number": k + 1, "type": NOTE_TYPE, "text": r.message} for k, r in enumerate(rejections) if r.message]
    if notes:
        response["processNote"] = notes
    sequences = [item.sequence for item in request.claim.resource.item or []]
    response["error"] = [_error(r, sequences[r.line - 1] if 0 < r.line <= len(sequences) else None)
                         for r in rejections]
    claim_entry = request.raw_entries[:1]
    return _bundle(request, _ordered(response), now, extra=claim_entry)


def action_codes(response_bundle: Mapping[str, Any]) -> dict[int, str]:
    """itemSequence -> HCR01 code of a response Bundle built here (what a submitter reads)."""
    out: dict[int, str] = {}
    claim_response = response_bundle["entry"][0]["resource"]
    for item in claim_response.get("item", []):
        for adjudication in item.get("adjudication", []):
            for ext in adjudication.get("extension", []):
                if ext.get("url") != EXT_REVIEW_ACTION:
                    continue
                for part in ext.get("extension", []):
                    if part.get("url") == EXT_REVIEW_ACTION_CODE:
                        out[item["itemSequence"]] = part["valueCodeableConcept"]["coding"][0]["code"]
    return out


