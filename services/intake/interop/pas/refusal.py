"""Which problems with a PAS request make it invalid, and which make it a valid request the platform
cannot review: the two answers of ``Claim/$submit``.

* **Invalid** (HTTP 400, an OperationOutcome): the body is not FHIR R4 JSON, breaks a rule of the PAS
  profiles (a collection with an identifier and a timestamp, the Claim first with use
  ``preauthorization``, items with their category, location and required extensions, references
  that resolve inside the Bundle), or is over the input limits.
* **Refused** (HTTP 200, the guide's error response: a ClaimResponse with ``outcome = error`` and X12
  reject reasons): valid PAS that lacks or carries what the platform needs to review it, e.g. no
  ICD-10-CM diagnosis (PAS allows none), no service date, a code system other than CPT/HCPCS, a
  member state or line of business the door cannot tell, a place of service it does not review.
  Each becomes a :class:`~services.intake.interop.answers.Rejection` with the AAA code the 278
  would carry for the same fault (AF diagnosis, AG procedure, 57 dates, 43 provider, 72 member id,
  15 missing data, 33 input errors) and the FHIRPath of the element.

One invalid problem makes the whole answer a 400 (listing every problem), so a submitter fixes the
Bundle before anything is reviewed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from services.intake.interop.answers import Rejection
from services.intake.interop.pas.outcome import Problem

#: Problem codes that always mean an invalid body.
INVALID_CODES = frozenset({"structure", "too-long", "too-costly", "not-found", "exception"})
#: Problem codes a platform refusal can have.
REFUSAL_CODES = frozenset({"required", "value", "invariant", "not-supported"})

_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]\.resource")
_ITEM = re.compile(r"^Bundle\.entry\[0\]\.resource\.item\[(\d+)\]")
_PROVIDER_KINDS = frozenset({"Practitioner", "PractitionerRole", "Organization"})

# (pattern on the expression after the resource, AAA reject reason, X12 loop, X12 element); the
# first that matches wins. Patterns see the part after ``Bundle.entry[i].resource``.
_CLAIM_RULES: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    (re.compile(r"^\.diagnosis(\[\d+\])?(\.(diagnosis|diagnosisCodeableConcept|type))?$"), "AF", "2000E", "2000E-HI"),
    (re.compile(r"^\.item\[\d+\]\.(productOrService|modifier\[\d+\])$"), "AG", "2000F", "2000F-SV101"),
    (re.compile(r"^\.item\[\d+\]\.extension\('[^']*productOrServiceCodeEnd'\)$"), "AG", "2000F", "2000F-SV101"),
    (re.compile(r"^\.item\[\d+\]\.serviced(Date|Period(\.(start|end))?)?$"), "57", "2000F", "2000F-DTP03"),
    (re.compile(r"^\.item\[\d+\]\.quantity\.value$"), "33", "2000F", "2000F-SV104"),
    (re.compile(r"^\.item\[\d+\]\.locationCodeableConcept$"), "33", "2000F", "2000F-UM04"),
    (re.compile(r"^\.item\[\d+\]\.extension\('[^']*certificationType'\)$"), "33", "2000F", "2000F-UM02"),
    (re.compile(r"^\.item\[\d+\]\.modifierExtension\[\d+\]$"), "33", "2000F", "2000F-UM02"),
    (re.compile(r"^\.item$"), "33", "2000E", "2000E-UM"),
    (re.compile(r"^\.supportingInfo\[\d+\]"), "33", "2000E", "2000E-MSG"),
    (re.compile(r"^\.related$|^\.meta\.profile$"), "33", "2000E", "2000E-UM02"),
)
# The same for the other resources of the Bundle, by resource type.
_RESOURCE_RULES: Mapping[str, tuple[tuple[re.Pattern[str], str, str, str], ...]] = {
    "Coverage": (
        (re.compile(r"^\.(identifier(\[\d+\]\.value)?|subscriberId)$"), "72", "2010C", "2010C-NM109"),
        (re.compile(r"^\.type$"), "15", "2010C", "2010C-NM109"),
    ),
    "Patient": (
        (re.compile(r"^\.address(\[\d+\]\.state)?$"), "15", "2010C", "2010C-N402"),
        (re.compile(r"^\.birthDate$"), "58", "2010C", "2010C-DMG02"),
    ),
    "ServiceRequest": ((re.compile(r"^\.(code|quantityQuantity\.value)$"), "AG", "2000F", "2000F-SV101"),),
    "DeviceRequest": ((re.compile(r"^\.(codeCodeableConcept|quantityQuantity\.value)$"), "AG", "2000F",
                       "2000F-SV101"),),
    "MedicationRequest": ((re.compile(r"^\.(medicationCodeableConcept|dispenseRequest\.quantity\.value)$"), "AG",
                           "2000F", "2000F-SV101"),),
    "Observation": ((re.compile(r"^\.value"), "33", "2000E", "2000E-MSG"),),
    "QuestionnaireResponse": ((re.compile(r"^\.item"), "33", "2000E", "2000E-MSG"),),
}


def _resource_type(bundle: Any, index: int) -> str:
    if not isinstance(bundle, Mapping):
        return ""
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not 0 <= index < len(entries) or not isinstance(entries[index], Mapping):
        return ""
    resource = entries[index].get("resource")
    kind = resource.get("resourceType") if isinstance(resource, Mapping) else None
    return kind if isinstance(kind, str) else ""


def refusal_of(problem: Problem, bundle: Mapping[str, Any]) -> Rejection | None:
    """The platform refusal a problem is, or None when it makes the Bundle invalid."""
    if problem.code not in REFUSAL_CODES or "PAS FullDateRule" in problem.message:
        return None
    entry = _ENTRY.match(problem.expression)
    if entry is None:
        return None
    index, rest = int(entry.group(1)), problem.expression[entry.end():]
    kind = _resource_type(bundle, index)
    rules: Sequence[tuple[re.Pattern[str], str, str, str]] = ()
    if index == 0 and kind == "Claim":
        rules = _CLAIM_RULES
    elif kind in _RESOURCE_RULES:
        rules = _RESOURCE_RULES[kind]
    elif kind in _PROVIDER_KINDS and re.fullmatch(r"\.identifier", rest):
        return _rejection(problem, "43", "2010B", "2010B-NM109")
    for pattern, code, loop, element in rules:
        if pattern.search(rest):
            return _rejection(problem, code, loop, element)
    if problem.code == "not-supported":
        return _rejection(problem, "33", "2000E", "")
    return None


def _rejection(problem: Problem, code: str, loop: str, element: str) -> Rejection:
    item = _ITEM.match(problem.expression)
    line = int(item.group(1)) + 1 if item is not None else 0
    return Rejection(loop if line or loop != "2000F" else "2000E", code, "C", problem.message,
                     path=problem.expression, element=element, line=line)


def split(problems: Sequence[Problem], bundle: Mapping[str, Any]) -> tuple[list[Problem], list[Rejection]]:
    """(the problems that make the Bundle invalid, the refusals): with any invalid problem the first
    list holds every problem and the second is empty; otherwise the first is empty."""
    refusals = [refusal_of(p, bundle) for p in problems]
    if not problems or any(r is None for r in refusals):
        return list(problems), []
    return [], [r for r in refusals if r is not None]
