"""Answers to ``Claim/$inquire``: one PAS inquiry response Bundle per request found, in a Parameters.

Each answer is the request's current response (what ``pas_response_bundle`` makes of the request
Bundle the door recorded and intake's view now), re-labelled with the inquiry profiles and the
inquiry's transaction identifier. A request the door holds no Bundle for (submitted through another
door, say) is answered from the inquiry's own resources: its patient, payer and requester, and one
item per line of the request (``itemSequence`` = line number).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ur.intake.v1 import intake_pb2

from services.intake.interop.pas.fhir import PAS
from services.intake.interop.pas.request import CPT_SYSTEM, HCPCS_SYSTEM
from services.intake.interop.pas.response import pas_response_bundle

PROFILE_INQUIRY_RESPONSE_BUNDLE = PAS + "profile-pas-inquiry-response-bundle"
PROFILE_INQUIRY_RESPONSE = PAS + "profile-claiminquiryresponse"


def _date(value: Any) -> str | None:
    try:
        return dt.date(value.year, value.month, value.day).isoformat()
    except ValueError:
        return None


def _from_inquiry(inquiry: Mapping[str, Any], view: intake_pb2.RequestView) -> dict[str, Any]:
    """A request Bundle standing in for one the door does not hold: the inquiry's, with the request's lines
    as the Claim's items."""
    bundle = copy.deepcopy(dict(inquiry))
    claim = bundle["entry"][0]["resource"]
    items = []
    for item in view.lines:
        line = item.line
        coding = {"system": CPT_SYSTEM if line.procedure_code[:1].isdigit() else HCPCS_SYSTEM,
                  "code": line.procedure_code}
        entry: dict[str, Any] = {"sequence": line.line_number, "productOrService": {"coding": [coding]}}
        start = _date(line.start_date) if line.HasField("start_date") else None
        if start is not None:
            entry["servicedDate"] = start
        items.append(entry)
    claim["item"] = items
    return bundle


def pas_inquiry_bundle(inquiry: Mapping[str, Any], view: intake_pb2.RequestView,
                       request_bundle: Mapping[str, Any] | None, *, now: dt.datetime) -> dict[str, Any]:
    """The inquiry response Bundle for one request: ``request_bundle`` is the PAS request (or the latest
    update) the door recorded for it, None when it holds none."""
    source = request_bundle if request_bundle is not None else _from_inquiry(inquiry, view)
    answer = pas_response_bundle(source, view, now=now)
    answer["meta"] = {"profile": [PROFILE_INQUIRY_RESPONSE_BUNDLE]}
    identifier = inquiry.get("identifier")
    if isinstance(identifier, Mapping):
        answer["identifier"] = {k: identifier[k] for k in ("system", "value") if isinstance(identifier.get(k), str)}
    answer["entry"][0]["resource"]["meta"] = {"profile": [PROFILE_INQUIRY_RESPONSE]}
    return answer


def inquiry_parameters(bundles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``$inquire`` answer: a Parameters with one ``return`` per inquiry response Bundle (the
    OperationDefinition's output, 0..*)."""
    return {"resourceType": "Parameters", "parameter": [{"name": "return", "resource": dict(b)} for b in bundles]}
