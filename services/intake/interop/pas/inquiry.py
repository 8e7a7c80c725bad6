"""A PAS inquiry Bundle (``Claim/$inquire``) -> a small query object.

The inquiry is query by example following the X12 278 inquiry rules: who asks (the requester's
NPI), of whom (the payer's identifiers), about which member (member id), and optionally which
request (the Claim identifier, the patient event trace number) and which services and dates.
PAS's inquiry Claim profile makes the identifier 1..1; the door takes it as an optional key (more
than one is a problem), since requester, payer and member already narrow the search.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.intake.domain.codes import is_npi, is_procedure_code
from services.intake.interop.pas.fhir import (
    NPI_SYSTEM,
    BundleIndex,
    Found,
    as_date,
    code_in,
    collection_rules,
    kind,
    member_id_of,
    parse_bundle,
)
from services.intake.interop.pas.guard import DEFAULT_LIMITS, Limits
from services.intake.interop.pas.outcome import Problem
from services.intake.interop.pas.request import PROCEDURE_SYSTEMS


@dataclass(frozen=True)
class InquiryQuery:
    transaction: tuple[str, str]  # the inquiry Bundle's identifier (system, value)
    requester_npi: str
    payer_identifiers: tuple[str, ...]
    member_id: str
    claim_identifier: tuple[str, str] | None  # (system, value) of the request asked about
    procedure_codes: tuple[str, ...]
    service_from: dt.date | None
    service_to: dt.date | None


def parse_inquiry(bundle_json: str | bytes | Mapping[str, Any], *,
                  limits: Limits = DEFAULT_LIMITS) -> InquiryQuery | list[Problem]:
    """The query a PAS inquiry Bundle asks, or its problems (never raises for the Bundle)."""
    bundle, problems = parse_bundle(bundle_json, limits)
    if bundle is None:
        return problems
    out: list[Problem] = []

    def bad(expression: str, code: str, message: str) -> None:
        out.append(Problem(expression, code, message))

    out.extend(collection_rules(bundle, "inquiry"))
    entries = bundle.entry or []
    if not entries or entries[0].resource is None or kind(entries[0].resource) != "Claim":
        return out
    index = BundleIndex.of(bundle)
    claim = Found(entries[0].resource, "Bundle.entry[0].resource", entries[0].fullUrl or "")
    c, p = claim.resource, claim.path
    if c.use != "preauthorization":
        bad(f"{p}.use", "value", f"an inquiry asks about a preauthorization, not {c.use!r}")

    claim_identifier = None
    if len(c.identifier or []) > 1:
        bad(f"{p}.identifier", "value", "an inquiry names at most one request identifier")
    elif c.identifier:
        ident = c.identifier[0]
        if not ident.value:
            bad(f"{p}.identifier[0].value", "required", "the identifier has no value")
        else:
            claim_identifier = (str(ident.system or ""), str(ident.value))

    def resolve(ref: Any, path: str, allowed: tuple[str, ...], what: str) -> Found | None:
        found = index.resolve(ref, claim) if ref is not None else None
        if ref is None or not ref.reference:
            bad(path, "required", f"{what} is required")
        elif found is None:
            bad(path, "not-found", f"{what}: {ref.reference[:200]!r} does not resolve to an entry of the Bundle")
        elif kind(found.resource) not in allowed:
            bad(path, "value", f"{what} must be a {' or '.join(allowed)}")
            found = None
        return found

    requester_npi = ""
    requester = resolve(c.provider, f"{p}.provider", ("Organization", "PractitionerRole"), "the requester")
    if requester is not None:
        npi = _npi(requester.resource)
        if npi is None and kind(requester.resource) == "PractitionerRole":
            practitioner = index.resolve(requester.resource.practitioner, requester)
            npi = _npi(practitioner.resource) if practitioner is not None else None
        if npi is None or not is_npi(npi):
            bad(f"{requester.path}.identifier", "required" if npi is None else "value",
                "the requester's NPI (10 digits with a Luhn check digit)")
        else:
            requester_npi = npi
    payer_ids: tuple[str, ...] = ()
    insurer = resolve(c.insurer, f"{p}.insurer", ("Organization",), "the payer")
    if insurer is not None:
        payer_ids = tuple(str(i.value) for i in insurer.resource.identifier or [] if i.value)
        if not payer_ids:
            bad(f"{insurer.path}.identifier", "required", "the payer's identifier")

    member_id = ""
    insurances = c.insurance or []
    coverage = resolve(insurances[0].coverage if insurances else None, f"{p}.insurance[0].coverage", ("Coverage",),
                       "the coverage")
    if coverage is not None:
        member = member_id_of(coverage)
        if member.value is None:
            bad(member.path, "required", "the patient's member id (identifier of type MB)")
        else:
            member_id = member.value

    codes: list[str] = []
    starts: list[dt.date] = []
    ends: list[dt.date] = []
    for i, item in enumerate(c.item or []):
        code = code_in(item.productOrService, *PROCEDURE_SYSTEMS)
        if code is not None:
            if not is_procedure_code(code):
                bad(f"{p}.item[{i}].productOrService", "value", f"{code[:20]!r} is not a CPT or HCPCS code")
            else:
                codes.append(code)
        start = as_date(item.servicedDate) if item.servicedDate else (
            as_date(item.servicedPeriod.start) if item.servicedPeriod else None)
        end = as_date(item.servicedDate) if item.servicedDate else (
            as_date(item.servicedPeriod.end) if item.servicedPeriod else None)
        if start is not None:
            starts.append(start)
        if end is not None:
            ends.append(end)
    if out:
        return out
    if bundle.identifier is None:  # the Bundle rules checked it; kept explicit for python -O
        return [Problem("Bundle.identifier", "required", "the Bundle needs an identifier")]
    return InquiryQuery(
        transaction=(str(bundle.identifier.system or ""), str(bundle.identifier.value)),
        requester_npi=requester_npi, payer_identifiers=payer_ids, member_id=member_id,
        claim_identifier=claim_identifier, procedure_codes=tuple(codes),
        service_from=min(starts) if starts else None, service_to=max(ends) if ends else None)


def _npi(resource: Any) -> str | None:
    for ident in getattr(resource, "identifier", None) or []:
        if ident.system == NPI_SYSTEM and ident.value:
            return str(ident.value)
    return None
