"""A PAS Claim update (``PASClaimUpdate`` through ``Claim/$submit``): which request it changes, and
whether it cancels it or revises it.

The update's Claim names the request it changes in ``related.claim``: a reference to the prior
Claim, which the Bundle carries (PAS allows a second Claim entry for it), or an identifier. The
prior Claim's identifiers (its patient event trace numbers) are what the door recorded when the
request was submitted; an identifier with system ``REQUEST_ID_SYSTEM`` (the platform's request id,
which every response carries) names the request directly.

* **Cancel**: every item is cancelled (the ``infoCancelled`` modifier extension, or certification
  type 3): intake's ``CancelRequest``.
* **Revise**: no item is cancelled: the update, read like a request (its update markers set aside:
  ``related``, the update profile, ``infoChanged``, certification type S), becomes the revision of
  intake's ``ReviseRequest``. Intake keeps the member, the coverage and the lines.
* Cancelling some items and not others is valid PAS the platform cannot apply (intake cancels and
  revises whole requests): a refusal naming the item.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from services.intake.interop import codes
from services.intake.interop.pas.fhir import (
    NPI_SYSTEM,
    PAS,
    BundleIndex,
    Found,
    code_in,
    collection_rules,
    extensions,
    identifier_value,
    kind,
    parse_bundle,
    unresolved_references,
)
from services.intake.interop.pas.guard import DEFAULT_LIMITS, Limits, load
from services.intake.interop.pas.outcome import Problem
from services.intake.interop.pas.response import REQUEST_ID_SYSTEM

PROFILE_CLAIM = PAS + "profile-claim"
PROFILE_CLAIM_UPDATE = PAS + "profile-claim-update"
EXT_INFO_CANCELLED = PAS + "modifierextension-infoCancelled"
EXT_INFO_CHANGED = PAS + "extension-infoChanged"
EXT_CERTIFICATION = PAS + "extension-certificationType"


@dataclass(frozen=True)
class ClaimUpdate:
    """What a Claim update asks: which request (by the prior Claim's identifiers, or the platform's
    request id), cancel or revise, by which requesting provider; ``revision`` is the Bundle to read as
    the revised request (revise only)."""

    kind: Literal["cancel", "revise"]
    prior_identifiers: tuple[tuple[str, str], ...]
    request_id: str | None
    requesting_npi: str
    identifiers: tuple[tuple[str, str], ...]  # the update Claim's own
    revision: dict[str, Any] = field(default_factory=dict)


def is_update(bundle: Any) -> bool:
    """Whether a request Bundle's first entry is a Claim update (it relates to a prior Claim, or says it
    is one in ``meta.profile``). Reads plain JSON; anything unexpected is not an update."""
    if not isinstance(bundle, Mapping):
        return False
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    claim = first.get("resource") if isinstance(first, Mapping) else None
    if not isinstance(claim, Mapping) or claim.get("resourceType") != "Claim":
        return False
    meta = claim.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    named = isinstance(profiles, list) and any(isinstance(p, str) and "profile-claim-update" in p for p in profiles)
    return named or bool(claim.get("related"))


def claim_identifiers(bundle: Any) -> tuple[tuple[str, str], ...]:
    """(system, value) of the first entry's Claim identifiers (plain JSON; empty when there are none)."""
    try:
        claim = bundle["entry"][0]["resource"]
        found = [(str(i.get("system", "")), str(i["value"])) for i in claim.get("identifier") or []
                 if isinstance(i, Mapping) and isinstance(i.get("value"), str) and i["value"]]
    except (KeyError, IndexError, TypeError, AttributeError):
        return ()
    return tuple(found)


def _cancelled(item: Any) -> tuple[bool, str]:
    """Whether an item is cancelled, and the path of what says so."""
    for k, ext in enumerate(item.modifierExtension or []):
        if ext.url == EXT_INFO_CANCELLED and ext.valueBoolean:
            return True, f"modifierExtension[{k}]"
    for _k, ext in extensions(item, EXT_CERTIFICATION):
        if code_in(ext.valueCodeableConcept, codes.CERTIFICATION_TYPE_SYSTEM) == "3":
            return True, f"extension('{EXT_CERTIFICATION}')"
    return False, ""


def _npi(index: BundleIndex, claim: Found) -> str | None:
    provider = index.resolve(claim.resource.provider, claim)
    if provider is None:
        return None
    npi = identifier_value(getattr(provider.resource, "identifier", None), NPI_SYSTEM)
    if npi is None and kind(provider.resource) == "PractitionerRole":
        practitioner = index.resolve(provider.resource.practitioner, provider)
        if practitioner is not None:
            npi = identifier_value(getattr(practitioner.resource, "identifier", None), NPI_SYSTEM)
    return npi


def _prior(index: BundleIndex, claim: Found, out: list[Problem]) -> tuple[tuple[str, str], ...]:
    """The identifiers of the Claim the update relates to."""
    p = claim.path
    related = claim.resource.related or []
    if not related or related[0].claim is None:
        out.append(Problem(f"{p}.related", "required", "a Claim update names the prior Claim in related.claim"))
        return ()
    if len(related) > 1:
        out.append(Problem(f"{p}.related", "value", "a Claim update relates to one prior Claim"))
        return ()
    ref = related[0].claim
    if ref.identifier is not None and ref.identifier.value:
        return ((str(ref.identifier.system or ""), str(ref.identifier.value)),)
    found = index.resolve(ref, claim) if ref.reference else None
    if found is None or kind(found.resource) != "Claim" or found.resource is claim.resource:
        out.append(Problem(f"{p}.related[0].claim", "not-found",
                           "the prior Claim: a reference to the Claim entry of the Bundle, or its identifier"))
        return ()
    prior = tuple((str(i.system or ""), str(i.value)) for i in found.resource.identifier or [] if i.value)
    if not prior:
        out.append(Problem(f"{found.path}.identifier", "required", "the prior Claim's identifier (the trace number "
                                                                   "it was submitted with)"))
    return prior


def _revision(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The update read as a request: without its update markers."""
    revised = copy.deepcopy(dict(bundle))
    claim = revised["entry"][0]["resource"]
    claim.pop("related", None)
    meta = claim.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("profile"), list):
        meta["profile"] = [PROFILE_CLAIM if p == PROFILE_CLAIM_UPDATE else p for p in meta["profile"]]
    for element in [*(claim.get("item") or []), *(claim.get("supportingInfo") or [])]:
        if not isinstance(element, dict):
            continue
        element["extension"] = [e for e in element.get("extension") or [] if not (
            isinstance(e, dict) and e.get("url") == EXT_INFO_CHANGED)]
        for ext in element["extension"]:
            if isinstance(ext, dict) and ext.get("url") == EXT_CERTIFICATION:
                for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                    if isinstance(coding, dict) and coding.get("code") == "S":
                        coding["code"] = "I"  # revised: the request keeps its review type
        if not element["extension"]:
            del element["extension"]
    return revised


def read_update(body: str | bytes | Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS
                ) -> ClaimUpdate | list[Problem]:
    """What a Claim update Bundle asks, or its problems (never raises for the Bundle)."""
    value, problems = load(body, limits)
    if problems:
        return problems
    bundle, problems = parse_bundle(value, limits)
    if bundle is None:
        return problems
    out = collection_rules(bundle, "request")
    entries = bundle.entry or []
    if not entries or entries[0].resource is None or kind(entries[0].resource) != "Claim":
        return out
    claim = Found(entries[0].resource, "Bundle.entry[0].resource", entries[0].fullUrl or "")
    index = BundleIndex.of(bundle)
    prior = _prior(index, claim, out)
    npi = _npi(index, claim)
    if npi is None:
        out.append(Problem(f"{claim.path}.provider", "required", "the requesting provider, with its NPI: only the "
                                                                 "provider who submitted a request may change it"))
    related = claim.resource.related or []
    out.extend(unresolved_references(bundle, {id(r.claim) for r in related[:1] if r.claim is not None}))
    items = claim.resource.item or []
    flags = [_cancelled(item) for item in items]
    cancelled = [i for i, (yes, _path) in enumerate(flags) if yes]
    if cancelled and len(cancelled) < len(items):
        for i in cancelled:
            out.append(Problem(f"{claim.path}.item[{i}].{flags[i][1]}", "not-supported",
                               "cancelling some items of a request: the platform cancels or revises whole requests "
                               "(cancel it and submit a new request for the items still wanted)"))
    if out:
        return out
    request_id = next((value for system, value in prior if system == REQUEST_ID_SYSTEM), None)
    identifiers = tuple((str(i.system or ""), str(i.value)) for i in claim.resource.identifier or [] if i.value)
    if cancelled:
        return ClaimUpdate("cancel", prior, request_id, npi or "", identifiers)
    return ClaimUpdate("revise", prior, request_id, npi or "", identifiers, _revision(value))
