"""A Da Vinci PAS request Bundle (``Claim/$submit``) -> ``ur.intake.v1.SubmitRequestRequest``.

``pas_request_to_command`` checks the PAS 2.2.1 rules the platform depends on and reads what
intake's command needs; anything wrong comes back as a list of problems, each naming its element
with a FHIRPath expression, and nothing raises for a hostile body. The mapping:

* member id: the Coverage's member identifier (type ``MB``), else ``subscriberId`` when the patient is
  the subscriber. A dependent without an own member id cannot be told apart from the subscriber
  on this platform, so it is a problem rather than a guess.
* line of business: ``Coverage.type`` (Source of Payment Typology or X12 claim filing indicator),
  else the payer profile the door configured for the insurer's identifier; plan id from
  ``Coverage.class`` (plan, else group); member state from the patient's (else the subscriber's)
  address, else the payer profile's state.
* requesting provider: ``Claim.provider`` (Organization, or PractitionerRole -> Practitioner) NPI;
  servicing provider: the care team member the items name (one per request), else the claim-level
  care team member, else the requester.
* lines: one per ``Claim.item`` in order (line n is item n; the response echoes ``item.sequence``):
  CPT/HCPCS from ``productOrService`` or from the ``requestedService`` resource's code, modifiers,
  units from ``item.quantity`` (else the requested service's quantity, else 1), dates from
  ``item.serviced[x]`` (else the requested service's occurrence, the admission dates, the patient
  event date), place of service from ``item.locationCodeableConcept`` (CMS place of service code,
  or NUBC type of bill).
* urgency: expedited when ``Claim.priority`` is ``stat`` or the level of service (claim or item
  ``levelOfServiceCode``) is urgent or emergency; review type from the items' ``certificationType``
  (initial -> prospective, or retrospective when every line started before the Bundle's timestamp;
  renewal and extension -> concurrent; revisions, cancellations and appeals are other commands).
* clinical facts: ``supportingInfo`` whose ``code`` is a platform fact name (system ``FACT_SYSTEM``),
  Observations and QuestionnaireResponse answers referenced as additional information and coded the
  same way (Observation LOINC 39156-5 is ``body_mass_index``), and ``age_years`` from the patient's
  birth date on the Bundle's date.
* idempotency key: from the submitter and the Bundle identifier (the submitter's transaction number),
  so a resent Bundle replays the first answer.
* every reference of every resource of the Bundle resolves inside it (a PAS Bundle carries what its
  Claim reaches): one that does not is a ``not-found`` problem naming it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.reference import Reference
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.domain.codes import is_icd10cm, is_npi, is_procedure_code, is_state
from services.intake.domain.model import MAX_LINES
from services.intake.interop import codes
from services.intake.interop.pas.fhir import (
    NPI_SYSTEM,
    PAS,
    PAS_TEMP_CODES,
    BundleIndex,
    Found,
    as_date,
    code_in,
    codings,
    collection_rules,
    ext_path,
    extensions,
    identifier_value,
    iter_items,
    kind,
    member_id_of,
    parse_bundle,
    unresolved_references,
)
from services.intake.interop.pas.guard import DEFAULT_LIMITS, Limits
from services.intake.interop.pas.outcome import Problem
from services.intake.interop.payers import PayerProfile

logger = logging.getLogger(__name__)

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
HCPCS_SYSTEM = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
PROCEDURE_SYSTEMS = (CPT_SYSTEM, HCPCS_SYSTEM)
ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
DIAGNOSIS_TYPE_SYSTEMS = (PAS_TEMP_CODES, "http://terminology.hl7.org/CodeSystem/ex-diagnosistype")
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
LOINC = "http://loinc.org"
# The platform's clinical fact names (the criteria library's ``facts``) as a code system: a
# supportingInfo, Observation or QuestionnaireResponse item coded with it carries that fact.
FACT_SYSTEM = "urn:ur-platform:fhir:clinical-fact"
LOINC_FACTS = {"39156-5": ("body_mass_index", "kg/m2")}

EXT_CERTIFICATION = PAS + "extension-certificationType"
EXT_REQUEST_TYPE = PAS + "extension-serviceItemRequestType"
EXT_REQUESTED_SERVICE = PAS + "extension-requestedService"
EXT_LEVEL_OF_SERVICE = PAS + "extension-levelOfServiceCode"
EXT_CODE_END = PAS + "extension-productOrServiceCodeEnd"
EXT_INFO_CANCELLED = PAS + "modifierextension-infoCancelled"
EXT_CARE_TEAM_SCOPE = PAS + "extension-careTeamClaimScope"
REQUESTED_SERVICE_TYPES = ("ServiceRequest", "DeviceRequest", "MedicationRequest", "NutritionOrder")

MAX_SPAN_DAYS = 366  # intake's limit for one line
# ASCII, matched whole: $ would accept a trailing newline.
_MEMBER = re.compile(r"[A-Za-z0-9-]{1,40}")
_FACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MODIFIER = re.compile(r"[A-Z0-9]{2}")


def idempotency_key(submitter_id: str, system: str, value: str) -> str:
    """Stable per submitter and transaction number: 'pas-' + 48 hex digits."""
    digest = hashlib.sha256("\x1f".join((submitter_id, system, value)).encode()).hexdigest()
    return f"pas-{digest[:48]}"


def pas_request_to_command(bundle_json: str | bytes | Mapping[str, Any], submitter_id: str, *,
                           payers: Mapping[str, PayerProfile] | None = None,
                           limits: Limits = DEFAULT_LIMITS) -> intake_pb2.SubmitRequestRequest | list[Problem]:
    """The command for a PAS request Bundle, or every problem found (never raises for the Bundle).

    ``submitter_id`` is the authenticated submitting system; ``payers`` maps insurer identifier
    values to what the Bundle may not say (line of business, plan, state). ``wait_ms`` is left 0
    for the door to set."""
    if not submitter_id:
        raise ValueError("submitter_id is required")
    bundle, problems = parse_bundle(bundle_json, limits)
    if bundle is None:
        return problems
    return bundle_to_command(bundle, submitter_id, payers=payers)


def bundle_to_command(bundle: Bundle, submitter_id: str, *, payers: Mapping[str, PayerProfile] | None = None
                      ) -> intake_pb2.SubmitRequestRequest | list[Problem]:
    """:func:`pas_request_to_command` for a Bundle already parsed (``parse_bundle``), so that a door that
    also answers from it parses it once."""
    if not submitter_id:
        raise ValueError("submitter_id is required")
    try:
        translation = _Translation(bundle, payers or {})
        translation.run()
    except Exception:  # a defect here must not become a 500 for the submitter
        logger.exception("PAS translation failed")
        return [Problem("Bundle", "exception", "the Bundle could not be processed (internal error)")]
    if translation.problems:
        return translation.problems
    if bundle.identifier is None:  # the Bundle rules checked it; kept explicit for python -O
        return [Problem("Bundle.identifier", "required", "the Bundle needs an identifier")]
    command = translation.command
    command.idempotency_key = idempotency_key(submitter_id, bundle.identifier.system or "",
                                              bundle.identifier.value or "")
    return command


def _occurrence(requested: Any) -> tuple[dt.date | None, dt.date | None]:
    """When the requested service (ServiceRequest, DeviceRequest, ...) is to occur, if it says."""
    when = getattr(requested, "occurrenceDateTime", None)
    period = getattr(requested, "occurrencePeriod", None)
    if when is not None:
        return as_date(when), as_date(when)
    if period is not None:
        return as_date(period.start), as_date(period.end)
    return None, None


def _set_date(target: types_pb2.Date, day: dt.date) -> None:
    target.year, target.month, target.day = day.year, day.month, day.day


def _name(resource: Any) -> str:
    if kind(resource) == "Organization":
        return str(resource.name or "")
    for name in getattr(resource, "name", None) or []:
        if name.text:
            return str(name.text)
        return " ".join([*(name.given or []), name.family or ""]).strip()
    return ""


class _Translation:
    def __init__(self, bundle: Bundle, payers: Mapping[str, PayerProfile]) -> None:
        self.bundle = bundle
        self.index = BundleIndex.of(bundle)
        self.payers = payers
        self.problems: list[Problem] = []
        self.command = intake_pb2.SubmitRequestRequest()
        self.insurer: Found | None = None
        self.patient: Found | None = None
        self.subscriber: Found | None = None
        self.profile: PayerProfile | None = None
        self.event: tuple[dt.date | None, dt.date | None] | None = None
        self.admission: tuple[dt.date | None, dt.date | None] | None = None
        self.facts: dict[str, tuple[str, types_pb2.ClinicalFact]] = {}
        self.unresolved: set[int] = set()  # id() of the references a problem already names

    def bad(self, expression: str, code: str, message: str) -> None:
        self.problems.append(Problem(expression, code, message))

    def target(self, ref: Reference | None, source: Found, path: str, allowed: tuple[str, ...], what: str,
               required: bool = True) -> Found | None:
        if ref is None or not ref.reference:
            if required:
                self.bad(path, "required", f"{what} is required, as a reference to an entry of the Bundle")
            return None
        found = self.index.resolve(ref, source)
        if found is None:
            self.unresolved.add(id(ref))
            self.bad(path, "not-found", f"{what}: {ref.reference[:200]!r} does not resolve to an entry of the Bundle")
            return None
        if kind(found.resource) not in allowed:
            self.bad(path, "value", f"{what} must be a {' or '.join(allowed)}, not a {kind(found.resource)}")
            return None
        return found

    # -- the steps ------------------------------------------------------------------------------

    def run(self) -> None:
        claim = self.bundle_rules()
        if claim is None:
            return
        self.claim_rules(claim)
        self.coverage(claim)
        self.providers(claim)
        self.diagnoses(claim)
        self.supporting_info(claim)
        self.items(claim)
        self.urgency(claim)
        self.age()
        self.command.clinical_facts.extend(fact for _key, (_path, fact) in sorted(self.facts.items()))
        self.problems.extend(unresolved_references(self.bundle, self.unresolved))

    def bundle_rules(self) -> Found | None:
        self.problems.extend(collection_rules(self.bundle, "request"))
        entries = self.bundle.entry or []
        if not entries or entries[0].resource is None or kind(entries[0].resource) != "Claim":
            return None
        return Found(entries[0].resource, "Bundle.entry[0].resource", entries[0].fullUrl or "")

    def claim_rules(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        profiles = [str(x) for x in (c.meta.profile or [])] if c.meta else []
        if c.related or any("profile-claim-update" in x for x in profiles):
            self.bad(f"{p}.related" if c.related else f"{p}.meta.profile", "not-supported",
                     "a Claim update (PAS Claim Update) changes an existing request; this door accepts new requests")
        if c.use != "preauthorization":
            self.bad(f"{p}.use", "value", f"a PAS Claim has use 'preauthorization', not {c.use!r}")
        if c.status != "active":
            self.bad(f"{p}.status", "value", f"a PAS Claim has status 'active', not {c.status!r}")
        self.claim_identifiers(c, p)
        self.insurer = self.target(c.insurer, claim, f"{p}.insurer", ("Organization",), "the insurer")
        if self.insurer is not None:
            for ident in self.insurer.resource.identifier or []:
                if ident.value and ident.value in self.payers:
                    self.profile = self.payers[ident.value]
                    break
        self.patient = self.target(c.patient, claim, f"{p}.patient", ("Patient",), "the patient")
        if not c.item:
            self.bad(f"{p}.item", "required", "a PAS Claim has at least one item")
        elif len(c.item) > MAX_LINES:
            self.bad(f"{p}.item", "too-costly", f"at most {MAX_LINES} items per request ({len(c.item)} sent)")

    def coverage(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        insurances = c.insurance or []
        if not insurances:
            self.bad(f"{p}.insurance", "required", "the member's coverage (Claim.insurance.coverage) is required")
            return
        k = next((k for k, ins in enumerate(insurances) if ins.focal), 0)
        cov = self.target(insurances[k].coverage, claim, f"{p}.insurance[{k}].coverage", ("Coverage",), "the coverage")
        if cov is None:
            self.member_state()
            return
        r, cp = cov.resource, cov.path
        if r.status != "active":
            self.bad(f"{cp}.status", "value", f"a PAS Coverage has status 'active', not {r.status!r}")
        self.subscriber = self.index.resolve(r.subscriber, cov)
        beneficiary = self.index.resolve(r.beneficiary, cov)
        if beneficiary is not None and self.patient is not None and beneficiary.resource is not self.patient.resource:
            self.bad(f"{cp}.beneficiary", "invariant", "the coverage's beneficiary is not the Claim's patient")
        self.member_id(cov)
        self.line_of_business(r, cp)
        for j, cls in enumerate(r.class_fhir or []):
            if code_in(cls.type, COVERAGE_CLASS) in ("plan", "group") and cls.value:
                self.command.coverage.plan_id = str(cls.value)[:100]
                if code_in(cls.type, COVERAGE_CLASS) == "plan":
                    break
            elif j > 50:
                break
        if not self.command.coverage.plan_id and self.profile is not None:
            self.command.coverage.plan_id = self.profile.plan_id
        self.member_state()

    def member_id(self, coverage: Found) -> None:
        member = member_id_of(coverage)
        if member.value is None:
            extra = "" if member.relationship is None else (
                f"; the patient is not the subscriber (relationship {member.relationship!r}) and needs an own "
                "member id")
            self.bad(member.path, "required", "the member id: a Coverage.identifier of type MB, or subscriberId "
                                              "when the patient is the subscriber" + extra)
        elif not _MEMBER.fullmatch(member.value):
            self.bad(member.path, "value", "a member id is 1-40 letters, digits or '-'")
        else:
            self.command.member_id = member.value

    def line_of_business(self, r: Any, cp: str) -> None:
        lob, given = types_pb2.LINE_OF_BUSINESS_UNSPECIFIED, []
        for coding in codings(r.type):
            code = str(coding.code or "")
            given.append(code)
            if coding.system in codes.SOPT_SYSTEMS:
                lob = lob or codes.line_of_business_from_payer_type(code)
            elif coding.system == codes.CLAIM_FILING_SYSTEM:
                lob = lob or codes.CLAIM_FILING_LINE_OF_BUSINESS.get(code, types_pb2.LINE_OF_BUSINESS_UNSPECIFIED)
        if not lob and self.profile is not None:
            lob = self.profile.line_of_business
        if not lob:
            said = f"; {', '.join(repr(g) for g in given[:5])} is not one the platform reviews" if given else ""
            self.bad(f"{cp}.type", "not-supported" if given else "required",
                     "the line of business: Coverage.type with a Source of Payment Typology code (system "
                     "https://nahdo.org/sopt: 11x Medicare managed care, 2x Medicaid, 5x/6x private, 95x workers' "
                     "compensation) or an X12 claim filing indicator" + said)
        self.command.coverage.line_of_business = lob

    def member_state(self) -> None:
        for who in (self.patient, self.subscriber):
            if who is None:
                continue
            addresses = list(enumerate(who.resource.address or []))
            addresses.sort(key=lambda t: 0 if t[1].use == "home" else 1)
            for k, address in addresses:
                if address.state:
                    state = str(address.state).strip().upper()
                    if not is_state(state):
                        self.bad(f"{who.path}.address[{k}].state", "value",
                                 f"{address.state[:40]!r} is not a two-letter USPS state code")
                    self.command.coverage.member_state = state
                    return
        if self.profile is not None and self.profile.state:
            self.command.coverage.member_state = self.profile.state
            return
        where = self.patient.path if self.patient is not None else "Bundle.entry[0].resource.patient"
        self.bad(f"{where}.address", "required", "the member's state (Patient.address.state, a two-letter USPS "
                                                 "code) decides which regulatory clock applies")

    def provider(self, found: Found, path: str, role: str) -> types_pb2.Provider | None:
        r = found.resource
        npi, npi_path = identifier_value(getattr(r, "identifier", None), NPI_SYSTEM), f"{found.path}.identifier"
        name = _name(r)
        if kind(r) == "PractitionerRole":
            practitioner = self.target(r.practitioner, found, f"{found.path}.practitioner", ("Practitioner",),
                                       "the PractitionerRole's practitioner", required=npi is None)
            if practitioner is not None:
                name = _name(practitioner.resource)
                if npi is None:
                    npi = identifier_value(practitioner.resource.identifier, NPI_SYSTEM)
                    npi_path = f"{practitioner.path}.identifier"
        if npi is None:
            self.bad(npi_path, "required", f"the {role}'s NPI (an identifier with system {NPI_SYSTEM})")
            return None
        if not is_npi(npi):
            self.bad(npi_path, "value", f"{npi[:20]!r} is not a valid NPI (10 digits with a Luhn check digit)")
            return None
        return types_pb2.Provider(npi=npi, name=name[:200])

    def providers(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        requester_at = self.target(c.provider, claim, f"{p}.provider", ("Organization", "PractitionerRole"),
                                   "the requesting provider")
        requester = self.provider(requester_at, f"{p}.provider", "requesting provider") if requester_at else None
        if requester is not None:
            self.command.requesting_provider.CopyFrom(requester)
        team = {m.sequence: (k, m) for k, m in enumerate(c.careTeam or [])}
        named = {s for item in c.item or [] for s in item.careTeamSequence or []}
        if len(named) > 1:
            self.bad(f"{p}.item", "not-supported", "one servicing provider per request: the items name care team "
                                                   f"members {sorted(named)}; send one request per provider")
            return
        chosen = None
        if named and next(iter(named)) in team:
            chosen = team[next(iter(named))]
        if chosen is None:
            scoped = [(k, m) for k, m in enumerate(c.careTeam or [])
                      if any(e.valueBoolean for _i, e in extensions(m, EXT_CARE_TEAM_SCOPE))]
            chosen = scoped[0] if scoped else (next(iter(team.values())) if team else None)
        if chosen is None:
            if requester is not None:
                self.command.servicing_provider.CopyFrom(requester)
            return
        k, member = chosen
        at = self.target(member.provider, claim, f"{p}.careTeam[{k}].provider",
                         ("Organization", "PractitionerRole", "Practitioner"), "the care team member")
        servicing = self.provider(at, f"{p}.careTeam[{k}].provider", "servicing provider") if at else None
        if servicing is not None:
            self.command.servicing_provider.CopyFrom(servicing)

    def diagnoses(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        if not c.diagnosis:
            self.bad(f"{p}.diagnosis", "required", "at least one ICD-10-CM diagnosis: criteria are chosen by diagnosis")
            return
        ordered = sorted(enumerate(c.diagnosis), key=lambda t: t[1].sequence or 0)
        principal_at = None
        for k, d in ordered:
            dp = f"{p}.diagnosis[{k}]"
            if d.diagnosisCodeableConcept is None:
                self.bad(f"{dp}.diagnosis", "value", "a PAS diagnosis is a CodeableConcept (diagnosisCodeableConcept)")
                continue
            code = code_in(d.diagnosisCodeableConcept, ICD10CM_SYSTEM)
            if code is None:
                self.bad(f"{dp}.diagnosisCodeableConcept", "not-supported",
                         f"the platform reviews ICD-10-CM diagnoses (system {ICD10CM_SYSTEM})")
                continue
            if not is_icd10cm(code):
                self.bad(f"{dp}.diagnosisCodeableConcept", "value", f"{code[:20]!r} is not an ICD-10-CM code")
                continue
            principal = any(coding.code == "principal" and coding.system in DIAGNOSIS_TYPE_SYSTEMS
                            for t in d.type or [] for coding in t.coding or [])
            if principal and principal_at is not None:
                self.bad(f"{dp}.type", "invariant", f"only one principal diagnosis (diagnosis[{principal_at}] is one)")
            if principal and principal_at is None:
                principal_at = k
            self.command.diagnoses.append(types_pb2.Diagnosis(code=code.upper(), primary=principal))
        if principal_at is None and self.command.diagnoses:
            self.command.diagnoses[0].primary = True  # the first by sequence, as X12's first HI code is

    def claim_identifiers(self, c: Any, p: str) -> None:
        if not c.identifier:
            self.bad(f"{p}.identifier", "required", "a PAS Claim has at least one identifier (the patient event "
                                                     "trace number)")
        for k, ident in enumerate(c.identifier or []):
            if not ident.system:
                self.bad(f"{p}.identifier[{k}].system", "required", "a PAS identifier has a system")
            if not ident.value:
                self.bad(f"{p}.identifier[{k}].value", "required", "a PAS identifier has a value")

    def supporting_info(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        for j, info in enumerate(c.supportingInfo or []):
            ip = f"{p}.supportingInfo[{j}]"
            category = code_in(info.category, PAS_TEMP_CODES)
            if category in ("patientEvent", "admissionDates"):
                period = (as_date(info.timingDate), as_date(info.timingDate)) if info.timingDate else (
                    (as_date(info.timingPeriod.start), as_date(info.timingPeriod.end)) if info.timingPeriod else None)
                if category == "patientEvent":
                    self.event = period
                else:
                    self.admission = period
            elif category == "additionalInformation" and info.valueReference is not None:
                self.additional_information(claim, info.valueReference, f"{ip}.valueReference")
            name = code_in(info.code, FACT_SYSTEM)
            if name is not None:
                self.info_fact(name, info, ip)

    def additional_information(self, claim: Found, reference: Any, where: str) -> None:
        """Facts from a referenced Observation or QuestionnaireResponse (other kinds are accepted and read by
        people)."""
        found = self.target(reference, claim, where,
                            ("DocumentReference", "QuestionnaireResponse", "Observation", "AllergyIntolerance",
                             "Condition", "DiagnosticReport", "Immunization", "MedicationRequest", "Procedure",
                             "ServiceRequest", "NutritionOrder", "DeviceRequest", "Bundle"),
                            "the additional information")
        if found is not None and kind(found.resource) == "Observation":
            self.observation(found)
        elif found is not None and kind(found.resource) == "QuestionnaireResponse":
            for path, item in iter_items(found.resource.item, found.path):
                if item.definition and str(item.definition).startswith(FACT_SYSTEM + "#") and item.answer:
                    self.answer_fact(str(item.definition).split("#", 1)[1], f"{path}.answer[0]", item.answer[0])

    def info_fact(self, name: str, info: Any, ip: str) -> None:
        """A supportingInfo entry coded with a platform fact name: its boolean, quantity or string value."""
        if info.valueBoolean is not None:
            self.fact(name, f"{ip}.valueBoolean", bool_value=bool(info.valueBoolean))
        elif info.valueQuantity is not None and info.valueQuantity.value is not None:
            q = info.valueQuantity
            self.fact(name, f"{ip}.valueQuantity", number_value=float(q.value), unit=str(q.unit or q.code or ""))
        elif info.valueString is not None:
            self.fact(name, f"{ip}.valueString", text_value=str(info.valueString)[:1000])
        else:
            self.bad(f"{ip}.value", "required", f"the fact {name!r} has no boolean, quantity or string value")

    def observation(self, found: Found) -> None:
        r = found.resource
        if r.status in ("entered-in-error", "cancelled"):
            return
        name = code_in(r.code, FACT_SYSTEM)
        unit = ""
        loinc = code_in(r.code, LOINC)
        if name is None and loinc in LOINC_FACTS:
            name, unit = LOINC_FACTS[loinc]
        if name is None:
            return
        op = found.path
        if r.valueBoolean is not None:
            self.fact(name, f"{op}.valueBoolean", bool_value=bool(r.valueBoolean))
        elif r.valueQuantity is not None and r.valueQuantity.value is not None:
            q = r.valueQuantity
            self.fact(name, f"{op}.valueQuantity", number_value=float(q.value), unit=str(q.unit or q.code or unit))
        elif r.valueInteger is not None:
            self.fact(name, f"{op}.valueInteger", number_value=float(r.valueInteger), unit=unit)
        elif r.valueString is not None:
            self.fact(name, f"{op}.valueString", text_value=str(r.valueString)[:1000])
        elif r.valueDateTime is not None and as_date(r.valueDateTime) is not None:
            self.fact(name, f"{op}.valueDateTime", date_value=as_date(r.valueDateTime))
        elif r.valueCodeableConcept is not None:
            self.fact(name, f"{op}.valueCodeableConcept", text_value=_concept_text(r.valueCodeableConcept))
        else:
            self.bad(f"{op}.value", "required", f"the observation of {name!r} has no value the platform reads")

    def answer_fact(self, name: str, path: str, answer: Any) -> None:
        if answer.valueBoolean is not None:
            self.fact(name, f"{path}.valueBoolean", bool_value=bool(answer.valueBoolean))
        elif answer.valueDecimal is not None:
            self.fact(name, f"{path}.valueDecimal", number_value=float(answer.valueDecimal))
        elif answer.valueInteger is not None:
            self.fact(name, f"{path}.valueInteger", number_value=float(answer.valueInteger))
        elif answer.valueQuantity is not None and answer.valueQuantity.value is not None:
            q = answer.valueQuantity
            self.fact(name, f"{path}.valueQuantity", number_value=float(q.value), unit=str(q.unit or q.code or ""))
        elif answer.valueString is not None:
            self.fact(name, f"{path}.valueString", text_value=str(answer.valueString)[:1000])
        elif answer.valueDate is not None and as_date(answer.valueDate) is not None:
            self.fact(name, f"{path}.valueDate", date_value=as_date(answer.valueDate))
        elif answer.valueCoding is not None:
            coding = answer.valueCoding
            self.fact(name, f"{path}.valueCoding", text_value=str(coding.code or coding.display))
        else:
            self.bad(path, "value", f"the answer for {name!r} is of a type the platform does not read")

    def fact(self, name: str, path: str, *, bool_value: bool | None = None, number_value: float | None = None,
             text_value: str | None = None, date_value: dt.date | None = None, unit: str = "") -> None:
        if not _FACT_NAME.fullmatch(name):
            self.bad(path, "value", f"{name[:70]!r} is not a fact name (snake_case, a letter first, at most 64)")
            return
        fact = types_pb2.ClinicalFact(name=name, unit=unit[:40])
        if bool_value is not None:
            fact.bool_value = bool_value
        elif number_value is not None:
            if not math.isfinite(number_value):
                self.bad(path, "value", f"the value of {name!r} is not a finite number")
                return
            fact.number_value = number_value
        elif text_value is not None:
            fact.text_value = text_value
        elif date_value is not None:
            _set_date(fact.date_value, date_value)
        if name in self.facts:
            earlier_path, earlier = self.facts[name]
            if earlier != fact:
                self.bad(path, "invariant", f"the fact {name!r} is also given at {earlier_path} with another value")
            return
        self.facts[name] = (path, fact)

    def items(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        review_types: dict[types_pb2.ReviewType.ValueType, list[int]] = {}
        for i, item in enumerate(c.item or []):
            ip = f"{p}.item[{i}]"
            line = types_pb2.ServiceLine(line_number=i + 1)
            review_type = self.item_review_type(item, ip)
            if review_type is not None:
                review_types.setdefault(review_type, []).append(i)
            self.item_kind(item, ip)
            requested = self.requested_service(claim, item, ip)
            self.procedure(item, ip, requested, line)
            self.units(item, ip, requested, line)
            self.dates(item, ip, requested, line)
            self.place(item, ip, line)
            self.command.service_lines.append(line)
        if len(review_types) > 1:
            described = "; ".join(f"{types_pb2.ReviewType.Name(t).removeprefix('REVIEW_TYPE_').lower()}: items "
                                  f"{', '.join(str(i) for i in items)}" for t, items in sorted(review_types.items()))
            self.bad(f"{p}.item", "invariant", f"the items of one request share one review type ({described})")
        elif review_types:
            review_type = next(iter(review_types))
            if review_type == types_pb2.REVIEW_TYPE_PROSPECTIVE and self.bundle.timestamp is not None:
                submitted = as_date(self.bundle.timestamp)
                starts = [dt.date(s.start_date.year, s.start_date.month, s.start_date.day)
                          for s in self.command.service_lines if s.HasField("start_date")]
                if submitted and starts and len(starts) == len(self.command.service_lines) and all(
                        s < submitted for s in starts):
                    review_type = types_pb2.REVIEW_TYPE_RETROSPECTIVE
            self.command.review_type = review_type

    def item_review_type(self, item: Any, ip: str) -> types_pb2.ReviewType.ValueType | None:
        """The review type the item's certification type (UM02) asks for, if it names one this door takes."""
        certification = self.one_extension(item, ip, EXT_CERTIFICATION, codes.CERTIFICATION_TYPE_SYSTEM,
                                           "certificationType")
        if certification is None:
            return None
        if certification not in codes.CERTIFICATION_TYPES:
            self.bad(ext_path(ip, EXT_CERTIFICATION), "value",
                     f"{certification[:10]!r} is not an X12 certification type (UM02)")
            return None
        if certification not in codes.REVIEW_TYPE_OF_CERTIFICATION:
            self.bad(ext_path(ip, EXT_CERTIFICATION), "not-supported",
                     f"certification type {certification!r} ({codes.CERTIFICATION_TYPES[certification]}) "
                     "concerns an existing request; this door accepts initial, renewal and extension requests")
            return None
        return codes.REVIEW_TYPE_OF_CERTIFICATION[certification]

    def item_kind(self, item: Any, ip: str) -> None:
        """The item's request type and category; refuses cancellations and code ranges."""
        self.one_extension(item, ip, EXT_REQUEST_TYPE, codes.REQUEST_CATEGORY_SYSTEM, "serviceItemRequestType")
        if item.category is None:
            self.bad(f"{ip}.category", "required", "a PAS item has a category (X12 service type code)")
        elif code_in(item.category, codes.SERVICE_TYPE_SYSTEM) is None:
            self.bad(f"{ip}.category", "value",
                     f"the category is an X12 service type code ({codes.SERVICE_TYPE_SYSTEM})")
        for k, ext in enumerate(item.modifierExtension or []):
            if ext.url == EXT_INFO_CANCELLED and ext.valueBoolean:
                self.bad(f"{ip}.modifierExtension[{k}]", "not-supported",
                         "cancelling an item changes an existing request; this door accepts new requests")
        if extensions(item, EXT_CODE_END):
            self.bad(ext_path(ip, EXT_CODE_END), "not-supported",
                     "a range of procedure codes: the platform reviews one code per item")

    def one_extension(self, item: Any, ip: str, url: str, system: str, name: str) -> str | None:
        found = extensions(item, url)
        if not found:
            self.bad(ext_path(ip, url), "required", f"a PAS item has the {name} extension")
            return None
        if len(found) > 1:
            self.bad(ext_path(ip, url), "structure", f"a PAS item has one {name} extension, not {len(found)}")
        code = code_in(found[0][1].valueCodeableConcept, system)
        if code is None:
            self.bad(ext_path(ip, url), "value", f"{name} is a CodeableConcept with a code from {system}")
        return code

    def requested_service(self, claim: Found, item: Any, ip: str) -> Found | None:
        found = extensions(item, EXT_REQUESTED_SERVICE)
        if not found:
            return None  # PAS 2.2.1: 0..1
        _k, ext = found[0]
        path = ext_path(ip, EXT_REQUESTED_SERVICE)
        if ext.valueReference is None:
            self.bad(path, "value", "requestedService is a reference")
            return None
        return self.target(ext.valueReference, claim, path, REQUESTED_SERVICE_TYPES, "the requested service")

    def procedure(self, item: Any, ip: str, requested: Found | None, line: types_pb2.ServiceLine) -> None:
        code = code_in(item.productOrService, *PROCEDURE_SYSTEMS)
        where = f"{ip}.productOrService"
        if code is None and requested is not None:
            r = requested.resource
            for attr in ("code", "codeCodeableConcept", "medicationCodeableConcept"):
                concept = getattr(r, attr, None)
                if isinstance(concept, CodeableConcept) and code_in(concept, *PROCEDURE_SYSTEMS):
                    code, where = code_in(concept, *PROCEDURE_SYSTEMS), f"{requested.path}.{attr}"
                    break
        if code is None:
            given = [f"{c.system}|{c.code}" for c in codings(item.productOrService)][:3]
            self.bad(where, "not-supported", "the platform reviews CPT or HCPCS procedure codes (system "
                                             f"{CPT_SYSTEM} or {HCPCS_SYSTEM}) in productOrService or the requested "
                                             f"service's code; got {', '.join(given) or 'none'}")
            return
        if not is_procedure_code(code):
            self.bad(where, "value",
                     f"{code[:20]!r} is neither CPT (5 characters) nor HCPCS Level II (letter + 4 digits)")
            return
        line.procedure_code = code
        for k, modifier in enumerate(item.modifier or []):
            value = code_in(modifier, *PROCEDURE_SYSTEMS) or (modifier.coding[0].code if modifier.coding else None)
            if value is None or not _MODIFIER.fullmatch(str(value)):
                self.bad(f"{ip}.modifier[{k}]", "value", "a modifier is a two-character CPT/HCPCS modifier")
            else:
                line.modifiers.append(str(value))

    def units(self, item: Any, ip: str, requested: Found | None, line: types_pb2.ServiceLine) -> None:
        quantity, where = item.quantity, f"{ip}.quantity.value"
        if quantity is None and requested is not None:
            r = requested.resource
            quantity = getattr(r, "quantityQuantity", None)
            where = f"{requested.path}.quantityQuantity.value"
            dispense = getattr(r, "dispenseRequest", None)
            if quantity is None and dispense is not None:
                quantity, where = dispense.quantity, f"{requested.path}.dispenseRequest.quantity.value"
        if quantity is None or quantity.value is None:
            line.units = 1  # one service, as X12's SV1/SV2 quantity defaults
            return
        value = quantity.value
        if not 1 <= value <= 9999 or value != int(value):  # range first: int() of an infinity raises
            self.bad(where, "value", f"units are a whole number from 1 to 9999, not {value}")
            return
        line.units = int(value)

    def dates(self, item: Any, ip: str, requested: Found | None, line: types_pb2.ServiceLine) -> None:
        start: dt.date | None = None
        end: dt.date | None = None
        if item.servicedDate is not None:
            start = end = as_date(item.servicedDate)
            if start is None:
                self.bad(f"{ip}.servicedDate", "value", "PAS FullDateRule: a full date (YYYY-MM-DD)")
                return
        elif item.servicedPeriod is not None:
            start, end = as_date(item.servicedPeriod.start), as_date(item.servicedPeriod.end)
            if start is None:
                self.bad(f"{ip}.servicedPeriod.start", "value" if item.servicedPeriod.start else "required",
                         "PAS FullDateRule: the period starts on a full date (YYYY-MM-DD)")
                return
        if start is None and requested is not None:
            start, end = _occurrence(requested.resource)
        for fallback in (self.admission, self.event):
            if start is None and fallback is not None:
                start, end = fallback
        if start is None:
            self.bad(f"{ip}.serviced", "required", "the service date: item.servicedDate or servicedPeriod (or the "
                                                   "requested service's occurrence) decides eligibility and clocks")
            return
        _set_date(line.start_date, start)
        if end is not None and end != start:
            if end < start:
                self.bad(f"{ip}.servicedPeriod.end", "value", "the period ends before it starts")
                return
            if (end - start).days > MAX_SPAN_DAYS:
                self.bad(f"{ip}.servicedPeriod.end", "value", f"a line spans at most {MAX_SPAN_DAYS} days")
                return
            _set_date(line.end_date, end)

    def place(self, item: Any, ip: str, line: types_pb2.ServiceLine) -> None:
        concept = item.locationCodeableConcept
        if concept is None:
            other = "locationReference" if item.locationReference else "locationAddress" if item.locationAddress else ""
            self.bad(f"{ip}.location{other[8:] if other else ''}", "value" if other else "required",
                     "a PAS item's location is a CodeableConcept: a CMS place of service code or a NUBC type of bill")
            return
        pos = code_in(concept, codes.POS_SYSTEM)
        bill = code_in(concept, codes.TYPE_OF_BILL_SYSTEM)
        place = types_pb2.PLACE_OF_SERVICE_UNSPECIFIED
        if pos is not None and pos.isascii() and pos.isdigit() and int(pos) in codes.PLACES_OF_SERVICE:
            place = types_pb2.PlaceOfService.ValueType(int(pos))
        elif bill is not None:
            place = codes.place_from_type_of_bill(bill)
        if not place:
            supported = ", ".join(f"{n:02d}" for n in sorted(codes.PLACES_OF_SERVICE))
            self.bad(f"{ip}.locationCodeableConcept", "not-supported",
                     f"place of service {pos or bill or 'none'!r}: the platform reviews places of service {supported} "
                     f"(system {codes.POS_SYSTEM}) and the matching NUBC bill types")
            return
        line.place_of_service = place

    def urgency(self, claim: Found) -> None:
        c, p = claim.resource, claim.path
        expedited = code_in(c.priority, PROCESS_PRIORITY) == "stat"
        for where, element in [(p, c), *((f"{p}.item[{i}]", it) for i, it in enumerate(c.item or []))]:
            for _k, ext in extensions(element, EXT_LEVEL_OF_SERVICE):
                level = code_in(ext.valueCodeableConcept, codes.LEVEL_OF_SERVICE_SYSTEM)
                if level is None or level not in codes.LEVELS_OF_SERVICE:
                    self.bad(ext_path(where, EXT_LEVEL_OF_SERVICE), "value",
                             f"the level of service is an X12 UM06 code ({', '.join(codes.LEVELS_OF_SERVICE)})")
                elif level in codes.EXPEDITED_LEVELS:
                    expedited = True
        self.command.urgency = types_pb2.URGENCY_EXPEDITED if expedited else types_pb2.URGENCY_STANDARD

    def age(self) -> None:
        if self.patient is None or "age_years" in self.facts or self.bundle.timestamp is None:
            return
        born, on = as_date(self.patient.resource.birthDate), as_date(self.bundle.timestamp)
        if born is None or on is None or born > on:
            return
        self.fact("age_years", f"{self.patient.path}.birthDate", number_value=float(codes.age_on(born, on)),
                  unit="years")


def _concept_text(concept: CodeableConcept) -> str:
    if concept.text:
        return str(concept.text)[:1000]
    for coding in concept.coding or []:
        if coding.code:
            return str(coding.code)
    return ""
