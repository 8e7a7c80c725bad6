"""Protobuf ⇄ intake domain. Servicers only translate; rules live in the domain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.common.proto_enums import to_name, to_number
from services.intake.domain.model import AdditionalInformation, ClinicalFact, PriorAuthRequest, ServiceLine
from services.intake.domain.records import AppealRecord, InformationRecord, RequestRecord
from services.intake.service_layer.handlers import AppealFiling

LOB = types_pb2.LineOfBusiness
REVIEW_TYPE = types_pb2.ReviewType
URGENCY = types_pb2.Urgency
STATUS = intake_pb2.RequestStatus
CERTIFICATION = types_pb2.CertificationType
APPELLANT = intake_pb2.Appellant


def _ymd(message: types_pb2.Date, present: bool) -> tuple[int, int, int] | None:
    if not present or (message.year == 0 and message.month == 0 and message.day == 0):
        return None
    return (message.year, message.month, message.day)


def _fact(fact: types_pb2.ClinicalFact) -> ClinicalFact:
    kind = fact.WhichOneof("value")
    if kind == "bool_value":
        return ClinicalFact(fact.name, "bool", fact.bool_value, fact.unit)
    if kind == "number_value":
        return ClinicalFact(fact.name, "number", fact.number_value, fact.unit)
    if kind == "text_value":
        return ClinicalFact(fact.name, "text", fact.text_value, fact.unit)
    if kind == "date_value":
        d = fact.date_value
        return ClinicalFact(fact.name, "date", (d.year, d.month, d.day), fact.unit)
    return ClinicalFact(fact.name, None, None, fact.unit)


def to_domain(msg: intake_pb2.SubmitRequestRequest) -> PriorAuthRequest:
    return PriorAuthRequest(
        idempotency_key=msg.idempotency_key,
        member_id=msg.member_id,
        line_of_business=to_name(LOB, msg.coverage.line_of_business),
        member_state=msg.coverage.member_state,
        plan_id=msg.coverage.plan_id,
        requesting_npi=msg.requesting_provider.npi,
        requesting_name=msg.requesting_provider.name,
        servicing_npi=msg.servicing_provider.npi,
        servicing_name=msg.servicing_provider.name,
        diagnoses=tuple((d.code, d.primary) for d in msg.diagnoses),
        lines=tuple(
            ServiceLine(line_number=line.line_number, procedure_code=line.procedure_code,
                        modifiers=tuple(line.modifiers), units=line.units,
                        start_date=_ymd(line.start_date, line.HasField("start_date")),
                        end_date=_ymd(line.end_date, line.HasField("end_date")),
                        place_of_service=int(line.place_of_service))
            for line in msg.service_lines),
        review_type=to_name(REVIEW_TYPE, msg.review_type),
        urgency=to_name(URGENCY, msg.urgency),
        facts=tuple(_fact(f) for f in msg.clinical_facts),
        certification_type=to_name(CERTIFICATION, msg.certification_type) or "initial",
        related_authorization_number=msg.related_authorization_number,
        injury_date=_ymd(msg.workers_comp.date_of_injury, msg.workers_comp.HasField("date_of_injury")),
        claim_number=msg.workers_comp.claim_number,
    )


def appeal_to_domain(msg: intake_pb2.FileAppealRequest) -> AppealFiling:
    return AppealFiling(idempotency_key=msg.idempotency_key, request_id=msg.request_id.strip(),
                        line_number=msg.line_number, urgency=to_name(URGENCY, msg.urgency),
                        appellant=to_name(APPELLANT, msg.appellant), appellant_name=msg.appellant_name,
                        reason=msg.reason)


def appeal_view(a: AppealRecord) -> intake_pb2.AppealView:
    view = intake_pb2.AppealView(appeal_id=a.appeal_id, request_id=a.request_id, line_number=a.line_number,
                                 urgency=to_number(URGENCY, a.urgency), appellant=to_number(APPELLANT, a.appellant),
                                 appellant_name=a.appellant_name, reason=a.reason, status=a.status,
                                 outcome=a.outcome, forwarded=bool(a.forwarded_to), forwarded_to=a.forwarded_to)
    view.filed_at.CopyFrom(_ts(a.filed_at))
    if a.decided_at is not None:
        view.decided_at.CopyFrom(_ts(a.decided_at))
    return view


def to_view(record: RequestRecord, information: Sequence[InformationRecord] = (),
            appeals: Sequence[AppealRecord] = ()) -> intake_pb2.RequestView:
    """The request's story; ``information``: the additional information received for it, oldest
    first; ``appeals``: the appeals filed on its lines."""
    submitted = intake_pb2.SubmitRequestRequest.FromString(record.payload)
    view = intake_pb2.RequestView(
        request_id=record.request_id,
        idempotency_key=record.idempotency_key,
        member_id=record.member_id,
        status=to_number(STATUS, record.status.value),
        status_reason=record.status_reason,
        urgency=submitted.urgency,
        review_type=submitted.review_type,
        line_of_business=submitted.coverage.line_of_business,
        determination_id=record.determination_id or "",
        coverage=submitted.coverage, requesting_provider=submitted.requesting_provider,
        servicing_provider=submitted.servicing_provider, diagnoses=submitted.diagnoses,
        clinical_facts=submitted.clinical_facts, certification_type=submitted.certification_type,
        related_authorization_number=submitted.related_authorization_number,
        member_contact=submitted.member_contact, workers_comp=submitted.workers_comp,
        appeals=[appeal_view(a) for a in appeals],
    )
    for info in information:
        sent = intake_pb2.SubmitAdditionalInformationRequest.FromString(info.payload)
        received = view.additional_information.add(information_id=info.information_id,
                                                   clinical_facts=sent.clinical_facts, note=sent.note)
        received.received_at.CopyFrom(_ts(info.received_at))
    view.received_at.CopyFrom(_ts(record.received_at))
    if record.decided_at is not None:
        view.decided_at.CopyFrom(_ts(record.decided_at))
    if record.determination_header:
        header = types_pb2.Determination.FromString(record.determination_header)
        view.decided_by.CopyFrom(header.decided_by)
        view.clock.CopyFrom(header.clock)
    by_number = {ln.line_number: ln for ln in record.lines}
    for line in submitted.service_lines:
        item = view.lines.add()
        item.line.CopyFrom(line)
        stored = by_number.get(line.line_number)
        if stored is None:
            continue
        if stored.determination:
            item.determination.MergeFromString(stored.determination)
        if stored.authorization:
            item.authorization.MergeFromString(stored.authorization)
    # Each line names its decider; the request's is theirs only when they share one (the event that
    # last changed the request may have been about one line only).
    deciders = {item.determination.decided_by.id: item.determination.decided_by for item in view.lines
                if item.determination.decided_by.id}
    if len(deciders) == 1:
        view.decided_by.CopyFrom(next(iter(deciders.values())))
    elif deciders:
        view.decided_by.CopyFrom(types_pb2.DeciderRef(id="several", role="several",
                                                      name="each line names its decider"))
    return view


def _ts(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def information_to_domain(msg: intake_pb2.SubmitAdditionalInformationRequest) -> AdditionalInformation:
    return AdditionalInformation(request_id=msg.request_id.strip(), idempotency_key=msg.idempotency_key,
                                 facts=tuple(_fact(f) for f in msg.clinical_facts), note=msg.note)
