"""Reading a RequestSubmitted as review's consumer does: a malformed one can never be applied, so
it is poison (dead-lettered), not an error to retry."""

from __future__ import annotations

import datetime as dt

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.errors import PoisonMessage
from services.review.domain.criteria import FactValue
from services.review.domain.deadlines import ClockRequest
from services.review.service_layer.lines import proto_date, request_facts


def date_of(d: types_pb2.Date) -> dt.date | None:
    """None when unset."""
    try:
        return proto_date(d)
    except ValueError as exc:
        raise PoisonMessage(f"invalid date {d.year}-{d.month}-{d.day}") from exc


def facts_of(message: events_pb2.RequestSubmitted) -> dict[str, FactValue]:
    """The request's typed clinical facts by name."""
    try:
        return request_facts(message.clinical_facts)
    except ValueError as exc:
        raise PoisonMessage(f"request {message.request_id} has a clinical fact with an invalid date") from exc


def service_line(message: events_pb2.RequestSubmitted, line_number: int) -> types_pb2.ServiceLine:
    for line in message.service_lines:
        if line.line_number == line_number:
            return line
    raise PoisonMessage(f"request {message.request_id} has no line {line_number}")


def clock_request(message: events_pb2.RequestSubmitted, line_of_business: str, urgency: str, review_type: str,
                  expedited_because: str = "") -> ClockRequest:
    """What the regulatory clock of the request needs to know, with the urgency it is to run on."""
    inpatient = any(line.place_of_service == types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL
                    for line in message.service_lines)
    return ClockRequest(line_of_business, message.coverage.member_state, urgency, review_type,
                        message.received_at.ToDatetime(tzinfo=dt.UTC), "inpatient" if inpatient else "",
                        expedited_because)
