"""Builders of realistic requests for the tests."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.events import IncomingEvent

VALID_NPI = "1234567893"
OTHER_NPI = "1245319599"
_counter = itertools.count(1)


def fact(name: str, value: bool | float | str, unit: str = "") -> types_pb2.ClinicalFact:
    if isinstance(value, bool):
        return types_pb2.ClinicalFact(name=name, bool_value=value, unit=unit)
    if isinstance(value, int | float):
        return types_pb2.ClinicalFact(name=name, number_value=float(value), unit=unit)
    return types_pb2.ClinicalFact(name=name, text_value=value, unit=unit)


def lumbar_mri(*, meets: bool = True, member_id: str = "T-MA-0001", key: str | None = None,
               lob: types_pb2.LineOfBusiness.ValueType = types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,
               state: str = "CA",
               procedure_code: str = "72148", start: dt.date | None = None,
               missing_facts: bool = False,
               urgency: types_pb2.Urgency.ValueType = types_pb2.URGENCY_STANDARD) -> intake_pb2.SubmitRequestRequest:
    """A lumbar spine MRI for low back pain: meets criteria after 8 weeks of symptoms and
    conservative therapy; does not (refer to nurse) after 2 weeks without red flags.

    Each call gets its own 14-day window (unless ``start`` is given) so that requests for
    the same member don't overlap: overlapping ones are flagged as possible duplicates."""
    begin = start or dt.date(2027, 1, 11) + dt.timedelta(days=15 * (next(_counter) % 2000))
    end = begin + dt.timedelta(days=14)
    facts = [] if missing_facts else [
        fact("symptom_duration_weeks", 8 if meets else 2, "weeks"),
        fact("conservative_therapy_weeks", 7 if meets else 1, "weeks"),
        fact("suspected_cauda_equina", False), fact("suspected_cancer", False),
        fact("suspected_infection", False), fact("suspected_fracture", False),
        fact("progressive_neurologic_deficit", False),
    ]
    return intake_pb2.SubmitRequestRequest(
        idempotency_key=key or f"test-{uuid.uuid4()}",
        member_id=member_id,
        coverage=types_pb2.Coverage(line_of_business=lob, member_state=state, plan_id="H0001-001"),
        requesting_provider=types_pb2.Provider(npi=VALID_NPI, name="Valley Orthopedics"),
        servicing_provider=types_pb2.Provider(npi=OTHER_NPI, name="Coastal Imaging Center"),
        diagnoses=[types_pb2.Diagnosis(code="M54.16", primary=True)],
        service_lines=[types_pb2.ServiceLine(
            line_number=1, procedure_code=procedure_code, units=1,
            start_date=types_pb2.Date(year=begin.year, month=begin.month, day=begin.day),
            end_date=types_pb2.Date(year=end.year, month=end.month, day=end.day),
            place_of_service=types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL)],
        review_type=types_pb2.REVIEW_TYPE_PROSPECTIVE,
        urgency=urgency,
        clinical_facts=facts,
    )


def submitted_event(request: intake_pb2.SubmitRequestRequest, request_id: str,
                    received_at: dt.datetime) -> IncomingEvent:
    """The RequestSubmitted event intake would publish for ``request``, as review's consumer gets it."""
    event = events_pb2.RequestSubmitted(
        request_id=request_id, member_id=request.member_id, coverage=request.coverage,
        requesting_provider=request.requesting_provider, servicing_provider=request.servicing_provider,
        diagnoses=request.diagnoses, service_lines=request.service_lines, review_type=request.review_type,
        urgency=request.urgency, clinical_facts=request.clinical_facts)
    event.received_at.FromDatetime(received_at)
    return IncomingEvent(event_id=str(uuid.uuid4()), event_type="RequestSubmitted", schema_version="1",
                         key=request_id, message=event, topic="t", partition=0, offset=0)
