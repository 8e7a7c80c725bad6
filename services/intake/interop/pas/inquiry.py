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
    unresolved_references,
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
    out = list(collection_rules(bundle, "inquiry"))
    entries = bundle.entry or []
    if not entries or entries[0].resource is None or kind(entries[0].resource) != "Claim":
        return out
    reader = _InquiryReader(BundleIndex.of(bundle),
                            Found(entries[0].resource, "Bundle.entry[0].resource", entries[0].fullUrl or ""), out)
    claim_identifier = reader.claim_identifier()
    requester_npi, payer_ids, member_id = reader.requester_npi(), reader.payer_ids(), reader.member_id()
    codes, starts, ends = reader.services()
    out.extend(unresolved_references(bundle, reader.unresolved))
    if out:
        return out
    if bundle.identifier is None:  # the Bundle rules checked it; kept explicit for python -O
        return [Problem("Bundle.identifier", "required", "the Bundle needs an identifier")]
    return InquiryQuery(
        transaction=(str(bundle.identifier.system or ""), str(bundle.identifier.value)),
        requester_npi=requester_npi, payer_identifiers=payer_ids, member_id=member_id,
        claim_identifier=claim_identifier, procedure_codes=tuple(codes),
        service_from=min(starts) if starts else None, service_to=max(ends) if ends else None)


class _InquiryReader:
    """Reads the inquiry Claim's parts, adding a :class:`Problem` to ``out`` for each defect."""

    def __init__(self, index: BundleIndex, claim: Found, out: list[Problem]) -> None:
        self.index, self.claim, self.out = index, claim, out
        self.unresolved: set[int] = set()  # id() of the references a problem already names
        self.c, self.p = claim.resource, claim.path
        if self.c.use != "preauthorization":
            self.bad(f"{self.p}.use", "value", f"an inquiry asks about a preauthorization, not {self.c.use!r}")

    def bad(self, expression: str, code: str, message: str) -> None:
        self.out.append(Problem(expression, code, message))

    def resolve(self, ref: Any, path: str, allowed: tuple[str, ...], what: str) -> Found | None:
        found = self.index.resolve(ref, self.claim) if ref is not None else None
        if ref is None or not ref.reference:
            self.bad(path, "required", f"{what} is required")
        elif found is None:
            self.unresolved.add(id(ref))
            self.bad(path, "not-found", f"{what}: {ref.reference[:200]!r} does not resolve to an entry of the Bundle")
        elif kind(found.resource) not in allowed:
            self.bad(path, "value", f"{what} must be a {' or '.join(allowed)}")
            found = None
        return found

    def claim_identifier(self) -> tuple[str, str] | None:
        c, p = self.c, self.p
        if len(c.identifier or []) > 1:
            self.bad(f"{p}.identifier", "value", "an inquiry names at most one request identifier")
        elif c.identifier:
            ident = c.identifier[0]
            if not ident.value:
                self.bad(f"{p}.identifier[0].value", "required", "the identifier has no value")
            else:
                return (str(ident.system or ""), str(ident.value))
        return None

    def requester_npi(self) -> str:
        requester = self.resolve(self.c.provider, f"{self.p}.provider", ("Organization", "PractitionerRole"),
                                 "the requester")
        if requester is None:
            return ""
        npi = _npi(requester.resource)
        if npi is None and kind(requester.resource) == "PractitionerRole":
            practitioner = self.index.resolve(requester.resource.practitioner, requester)
            npi = _npi(practitioner.resource) if practitioner is not None else None
        if npi is None or not is_npi(npi):
            self.bad(f"{requester.path}.identifier", "required" if npi is None else "value",
                     "the requester's NPI (10 digits with a Luhn check digit)")
            return ""
        return npi

    def payer_ids(self) -> tuple[str, ...]:
        insurer = self.resolve(self.c.insurer, f"{self.p}.insurer", ("Organization",), "the payer")
        if insurer is None:
            return ()
        payer_ids = tuple(str(i.value) for i in insurer.resource.identifier or [] if i.value)
        if not payer_ids:
            self.bad(f"{insurer.path}.identifier", "required", "the payer's identifier")
        return payer_ids

    def member_id(self) -> str:
        insurances = self.c.insurance or []
        coverage = self.resolve(insurances[0].coverage if insurances else None, f"{self.p}.insurance[0].coverage",
                                ("Coverage",), "the coverage")
        if coverage is None:
            return ""
        member = member_id_of(coverage)
        if member.value is None:
            self.bad(member.path, "required", "the patient's member id (identifier of type MB)")
            return ""
        return member.value

    def services(self) -> tuple[list[str], list[dt.date], list[dt.date]]:
        """The procedure codes asked about, and the start and end dates of the items."""
        codes: list[str] = []
        starts: list[dt.date] = []
        ends: list[dt.date] = []
        for i, item in enumerate(self.c.item or []):
            code = code_in(item.productOrService, *PROCEDURE_SYSTEMS)
            if code is not None:
                if not is_procedure_code(code):
                    self.bad(f"{self.p}.item[{i}].productOrService", "value",
                             f"{code[:20]!r} is not a CPT or HCPCS code")
                else:
                    codes.append(code)
            start, end = _item_period(item)
            if start is not None:
                starts.append(start)
            if end is not None:
                ends.append(end)
        return codes, starts, ends


def _item_period(item: Any) -> tuple[dt.date | None, dt.date | None]:
    if item.servicedDate:
        return as_date(item.servicedDate), as_date(item.servicedDate)
    if item.servicedPeriod:
        return as_date(item.servicedPeriod.start), as_date(item.servicedPeriod.end)
    return None, None


def _npi(resource: Any) -> str | None:
    for ident in getattr(resource, "identifier", None) or []:
        if ident.system == NPI_SYSTEM and ident.value:
            return str(ident.value)
    return None
