"""What ``make run`` shows of the FHIR door: the sample clinic obtains a token with its client
credentials, submits a lumbar spine MRI that meets criteria as a Da Vinci PAS Bundle, and the PAS
response comes back certified (A1) with its authorization number; the same request's inquiry answers
the same. Plain HTTP with the standard library (the door speaks HTTP like any FHIR server)."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from rich.console import Console
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.cli.pas_bundles import pas_bundle
from services.intake.interop.pas.response import action_codes

CLIENT_ID, CLIENT_SECRET = "sample-clinic", "dev-only-token-sample-clinic"  # deploy/sample/credentials.dev.yaml


def _post(url: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - our door
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
        return json.loads(reply.read())


def sample_request(start: dt.date) -> intake_pb2.SubmitRequestRequest:
    """A lumbar spine MRI for a sample Medicare Advantage member that meets criteria."""
    def day(d: dt.date) -> types_pb2.Date:
        return types_pb2.Date(year=d.year, month=d.month, day=d.day)

    facts = [types_pb2.ClinicalFact(name="symptom_duration_weeks", number_value=8, unit="weeks"),
             types_pb2.ClinicalFact(name="conservative_therapy_weeks", number_value=7, unit="weeks"),
             *(types_pb2.ClinicalFact(name=n, bool_value=False) for n in (
                 "suspected_cauda_equina", "suspected_cancer", "suspected_infection", "suspected_fracture",
                 "progressive_neurologic_deficit"))]
    return intake_pb2.SubmitRequestRequest(
        member_id="MA100001",
        coverage=types_pb2.Coverage(line_of_business=types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,
                                    member_state="CA", plan_id="H4827-002"),
        requesting_provider=types_pb2.Provider(npi="1245319599", name="Valley Orthopedics"),
        servicing_provider=types_pb2.Provider(npi="1234567893", name="Coastal Imaging Center"),
        diagnoses=[types_pb2.Diagnosis(code="M54.16", primary=True)],
        service_lines=[types_pb2.ServiceLine(line_number=1, procedure_code="72148", units=1, start_date=day(start),
                                             end_date=day(start + dt.timedelta(days=14)),
                                             place_of_service=types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL)],
        review_type=types_pb2.REVIEW_TYPE_PROSPECTIVE, urgency=types_pb2.URGENCY_STANDARD, clinical_facts=facts)


def run(base_url: str, console: Console) -> str | None:
    """Submit the sample PAS Bundle through the door at ``base_url``; the action code it answered."""
    try:
        token = _post(f"{base_url}/auth/token", urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).encode(),
            {"content-type": "application/x-www-form-urlencoded"})["access_token"]
        now = dt.datetime.now(dt.UTC)
        run_id = uuid.uuid4().hex[:8]
        bundle = pas_bundle(sample_request(now.date() + dt.timedelta(days=200)), transaction=f"make-run-{run_id}",
                            trace=f"TRN-{run_id}", timestamp=now.isoformat(timespec="seconds"))
        began = time.monotonic()
        answer = _post(f"{base_url}/Claim/$submit", json.dumps(bundle).encode(),
                       {"content-type": "application/fhir+json", "authorization": f"Bearer {token}"})
        elapsed = time.monotonic() - began
    except (OSError, urllib.error.URLError, KeyError, ValueError) as exc:
        console.print(f"[red]the FHIR door did not answer the sample PAS Bundle: {exc}[/red]")
        return None
    action = action_codes(answer).get(1)
    numbers = [p["valueString"] for i in answer["entry"][0]["resource"].get("item", [])
               for e in i["adjudication"][0]["extension"] for p in e.get("extension", []) if p["url"] == "number"]
    console.print(f"FHIR door: the sample clinic's PAS Bundle (POST {base_url}/Claim/$submit) was answered "
                  f"[bold]{action}[/bold]{' with authorization ' + numbers[0] if numbers else ''} in {elapsed:.2f} s")
    return action
