"""Reading a PAS Bundle with the FHIR model library: validation into problems, reference resolution
inside the Bundle, and small typed accessors the request and inquiry translations share.

The models are ``fhir.resources``' R4B package: R4B (4.3) is R4 (4.0.1) plus resources PAS does not
use; every element PAS 2.2.1 profiles on Claim, Coverage, Patient, Organization, Practitioner,
PractitionerRole, ServiceRequest, DeviceRequest, MedicationRequest, NutritionOrder, Observation,
QuestionnaireResponse, ClaimResponse and Bundle has the same name, type and cardinality in both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ValidationError

from services.intake.interop.pas.guard import DEFAULT_LIMITS, Limits, load
from services.intake.interop.pas.outcome import Problem, fhirpath

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
PAS_TEMP_CODES = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
X12_RELATIONSHIP = "https://codesystem.x12.org/005010/1069"
MAX_VALIDATION_PROBLEMS = 100


def parse_bundle(body: str | bytes | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS, *, checked: bool = False
                 ) -> tuple[Bundle | None, list[Problem]]:
    """Bounded decoding, then the model library's validation (datatypes, R4 cardinalities, unknown
    elements), each failure as a problem naming its element. ``checked``: ``body`` is JSON the input
    guard (``guard.load``) has already passed, not to be walked again."""
    if checked and isinstance(body, Mapping):
        value: Any = body
    else:
        value, problems = load(body, limits)
        if problems:
            return None, problems
    if not isinstance(value, Mapping) or value.get("resourceType") != "Bundle":
        got = value.get("resourceType") if isinstance(value, Mapping) else type(value).__name__
        return None, [Problem("Bundle", "structure", f"expected a Bundle resource, got {str(got)[:80]!r}")]
    try:
        return Bundle.model_validate(value), []
    except ValidationError as exc:
        out = []
        for error in exc.errors()[:MAX_VALIDATION_PROBLEMS]:
            loc = [p for p in error["loc"] if p not in ("root",)]
            message = str(error["msg"]).replace("Value error, ", "")
            if error["type"] in ("json_invalid", "model_type", "dict_type"):
                message = f"expected a JSON object, got {type(error.get('input')).__name__}"
            out.append(Problem(fhirpath(loc), "structure", message[:300]))
        return None, out or [Problem("Bundle", "structure", "not a valid FHIR R4 Bundle")]


@dataclass
class Found:
    """A resource found in the Bundle, with the path of its entry."""

    resource: Any
    path: str
    full_url: str


@dataclass
class BundleIndex:
    """Resolves references the way a collection Bundle does: absolute URLs and ``urn:uuid:`` against
    ``fullUrl``; a relative ``Type/id`` against the referencing entry's base URL, and by type and id
    when that does not match (many Bundles use ``urn:uuid`` fullUrls with relative references)."""

    bundle: Bundle
    by_url: dict[str, Found] = field(default_factory=dict)
    by_type_id: dict[str, list[Found]] = field(default_factory=dict)

    @classmethod
    def of(cls, bundle: Bundle) -> BundleIndex:
        index = cls(bundle)
        for i, entry in enumerate(bundle.entry or []):
            resource = entry.resource
            if resource is None:
                continue
            found = Found(resource, f"Bundle.entry[{i}].resource", entry.fullUrl or "")
            if entry.fullUrl:
                index.by_url.setdefault(entry.fullUrl, found)
            rid = getattr(resource, "id", None)
            if rid:
                index.by_type_id.setdefault(f"{resource.get_resource_type()}/{rid}", []).append(found)
        return index

    def resolve(self, ref: Reference | None, source: Found) -> Found | None:
        if ref is None or not ref.reference:
            return None
        target = ref.reference
        if target.startswith("#"):
            for j, contained in enumerate(getattr(source.resource, "contained", None) or []):
                if getattr(contained, "id", None) == target[1:]:
                    return Found(contained, f"{source.path}.contained[{j}]", source.full_url)
            return None
        if target in self.by_url:
            return self.by_url[target]
        parts = target.split("/")
        if "://" not in target and not target.startswith("urn:") and len(parts) in (2, 4):
            type_id = "/".join(parts[:2])
            base = source.full_url.rsplit("/", 2)[0] if source.full_url.count("/") >= 3 else ""
            if base and f"{base}/{target}" in self.by_url:
                return self.by_url[f"{base}/{target}"]
            candidates = self.by_type_id.get(type_id, [])
            if len(candidates) == 1:
                return candidates[0]
        return None


def references(node: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Reference]]:
    """Every Reference under a parsed element, with its FHIRPath (JSON names), depth first."""
    if depth > 60:  # the input guard bounds nesting far below this
        return
    if isinstance(node, Reference):
        yield path, node
    if isinstance(node, list):
        for i, value in enumerate(node):
            yield from references(value, f"{path}[{i}]", depth + 1)
    elif isinstance(node, BaseModel):
        fields = type(node).model_fields
        given = node.model_fields_set  # what the Bundle gave: most of an element's fields are absent
        for name in [n for n in fields if n in given]:  # in the model's order, not the set's
            value = getattr(node, name, None)
            if value is None or isinstance(value, (str, int, float, bool)):
                continue
            alias = fields[name].alias if name in fields and fields[name].alias else name
            yield from references(value, f"{path}.{alias}", depth + 1)


def unresolved_references(bundle: Bundle, reported: Collection[int] = ()) -> list[Problem]:
    """References of the Bundle's resources that name nothing in it: a PAS Bundle carries every
    resource its Claim's references reach (``#id`` names a contained resource). ``reported``: the
    ``id()`` of Reference objects a caller has already named a problem for."""
    index = BundleIndex.of(bundle)
    out = []
    for i, entry in enumerate(bundle.entry or []):
        if entry.resource is None:
            continue
        source = Found(entry.resource, f"Bundle.entry[{i}].resource", entry.fullUrl or "")
        for path, ref in references(entry.resource, source.path):
            if ref.reference and id(ref) not in reported and index.resolve(ref, source) is None:
                out.append(Problem(f"{path}.reference", "not-found",
                                   f"{ref.reference[:200]!r} does not resolve to an entry of the Bundle"))
    return out


def kind(resource: Any) -> str:
    return str(resource.get_resource_type()) if isinstance(resource, Resource) else type(resource).__name__


def extensions(element: Any, url: str) -> list[tuple[int, Extension]]:
    return [(i, e) for i, e in enumerate(getattr(element, "extension", None) or []) if e.url == url]


def ext_path(path: str, url: str) -> str:
    return f"{path}.extension('{url}')"


def codings(concept: CodeableConcept | None) -> list[Coding]:
    return list(concept.coding or []) if concept is not None else []


def code_in(concept: CodeableConcept | None, *systems: str) -> str | None:
    for coding in codings(concept):
        if coding.system in systems and coding.code:
            return str(coding.code)
    return None


def identifier_value(identifiers: Sequence[Identifier] | None, system: str) -> str | None:
    for identifier in identifiers or []:
        if identifier.system == system and identifier.value:
            return str(identifier.value)
    return None


def as_date(value: object) -> dt.date | None:
    """A full date from a FHIR date/dateTime value (partial dates such as '2026-05' are None)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def iter_items(items: Sequence[Any] | None, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """QuestionnaireResponse items, nested ones and those under answers too, with their FHIRPaths."""
    if depth > 10:
        return
    for i, item in enumerate(items or []):
        here = f"{path}.item[{i}]"
        yield here, item
        yield from iter_items(getattr(item, "item", None), here, depth + 1)
        for k, answer in enumerate(getattr(item, "answer", None) or []):
            yield from iter_items(getattr(answer, "item", None), f"{here}.answer[{k}]", depth + 1)


def collection_rules(bundle: Bundle, what: str) -> list[Problem]:
    """The PAS rules every request Bundle shares: a collection with the submitter's identifier and a
    timestamp, each entry with a fullUrl and a resource and no request/search/response."""
    out: list[Problem] = []
    if bundle.type != "collection":
        out.append(Problem("Bundle.type", "value", f"a PAS {what} Bundle is a 'collection', not {bundle.type!r}"))
    if bundle.identifier is None or not bundle.identifier.value:
        out.append(Problem("Bundle.identifier", "required", "the submitter's transaction identifier "
                                                            "(Bundle.identifier.value) is required"))
    if bundle.timestamp is None:
        out.append(Problem("Bundle.timestamp", "required", "Bundle.timestamp is required"))
    entries = bundle.entry or []
    if not entries:
        out.append(Problem("Bundle.entry", "required", f"a PAS {what} Bundle has the Claim and what it references"))
    for i, entry in enumerate(entries):
        if not entry.fullUrl:
            out.append(Problem(f"Bundle.entry[{i}].fullUrl", "required", "every entry of a PAS Bundle has a fullUrl"))
        if entry.resource is None:
            out.append(Problem(f"Bundle.entry[{i}].resource", "required", "every entry of a PAS Bundle has a resource"))
        for name in ("request", "search", "response"):
            if getattr(entry, name) is not None:
                out.append(Problem(f"Bundle.entry[{i}].{name}", "structure",
                                   f"a PAS {what} Bundle has no entry.{name}"))
    if entries and (entries[0].resource is None or kind(entries[0].resource) != "Claim"):
        first = kind(entries[0].resource) if entries[0].resource is not None else "nothing"
        out.append(Problem("Bundle.entry[0].resource", "invariant",
                           f"the first entry of a PAS {what} Bundle is the Claim, not {first}"))
    return out


@dataclass(frozen=True)
class MemberId:
    value: str | None  # None: the coverage does not give the patient's own member id
    path: str  # where it was found, or where it belongs
    relationship: str | None  # the patient's relationship to the subscriber when not 'self'


def member_id_of(coverage: Found) -> MemberId:
    """The patient's member id: the Coverage identifier of type MB, else ``subscriberId`` when the
    patient is the subscriber (relationship self, X12 18, or none given)."""
    r, cp = coverage.resource, coverage.path
    for k, ident in enumerate(r.identifier or []):
        if code_in(ident.type, V2_0203) == "MB" and ident.value:
            return MemberId(str(ident.value), f"{cp}.identifier[{k}].value", None)
    relationship = code_in(r.relationship, RELATIONSHIP)
    x12_relationship = code_in(r.relationship, X12_RELATIONSHIP)
    is_self = relationship == "self" or x12_relationship == "18" or (relationship is None and
                                                                      x12_relationship is None)
    if r.subscriberId and is_self:
        return MemberId(str(r.subscriberId), f"{cp}.subscriberId", None)
    return MemberId(None, f"{cp}.identifier", None if is_self else (relationship or x12_relationship))
