"""The door's CapabilityStatement (``GET [base]/metadata``): FHIR R4 JSON, the PAS operations on
Claim, the profiles it reads, and how a client authenticates (OAuth2 client credentials at
``[base]/auth/token``, advertised with the SMART ``oauth-uris`` extension)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.intake.interop.pas.fhir import PAS

PAS_IG = "http://hl7.org/fhir/us/davinci-pas/ImplementationGuide/hl7.fhir.us.davinci-pas"
PAS_VERSION = "2.2.1"
OPERATION = "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def capability_statement(base_url: str, *, software_version: str, date: str,
                         extra_resources: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What the door at ``base_url`` supports; ``extra_resources`` are further ``rest.resource``
    entries (the Subscription resource, when the subscriptions part is mounted)."""
    base = base_url.rstrip("/")
    claim = {
        "type": "Claim",
        "supportedProfile": [f"{PAS}profile-claim|{PAS_VERSION}", f"{PAS}profile-claim-update|{PAS_VERSION}",
                             f"{PAS}profile-claim-inquiry|{PAS_VERSION}"],
        "operation": [
            {"name": "submit", "definition": f"{OPERATION}Claim-submit|{PAS_VERSION}",
             "documentation": "A PAS request Bundle (or a Claim update cancelling or revising a pending request) in, "
                              "the PAS response Bundle out within 15 seconds; anything not decided by then is "
                              "answered pended (A4)."},
            {"name": "inquire", "definition": f"{OPERATION}Claim-inquiry|{PAS_VERSION}",
             "documentation": "A PAS inquiry Bundle in (requester, payer, member id, optionally the Claim "
                              "identifier and services); a Parameters with the current response of each of the "
                              "submitter's matching requests out."},
        ],
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "UR platform",
        "kind": "instance",
        "instantiates": [f"http://hl7.org/fhir/us/davinci-pas/CapabilityStatement/IntermediaryCapabilities|"
                         f"{PAS_VERSION}"],
        "software": {"name": "UR platform FHIR door", "version": software_version},
        "implementation": {"description": "Da Vinci Prior Authorization Support (PAS) 2.2.1 front door of the "
                                          "utilization review platform", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "implementationGuide": [f"{PAS_IG}|{PAS_VERSION}"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": f"{base}/auth/token"}]}],
                "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "OAuth",
                                         "display": "OAuth2 client credentials"}]}],
                "description": "Each submitting organization authenticates with OAuth2 client credentials (its "
                               "client id and secret, HTTP Basic or form fields) at POST [base]/auth/token and "
                               "sends the short-lived bearer token it gets; it sees only its own requests.",
            },
            "resource": [claim, *(dict(r) for r in extra_resources)],
        }],
    }
