"""One translation between a request's protobuf and the criteria domain, used by the review consumer,
the reviewer workflow and the criteria tools (``urctl criteria explain|replay``), so that all of them
evaluate a line exactly as the service does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from ur.common.v1 import types_pb2

from services.common.proto_enums import to_name, to_number
from services.review.domain.criteria import FactValue, LineEvaluation, LineFacts, render_value, with_line_facts

LOB = types_pb2.LineOfBusiness
URGENCY = types_pb2.Urgency
REVIEW_TYPE = types_pb2.ReviewType
CONDITION = types_pb2.ConditionStatus


class RequestMessage(Protocol):
    """What review reads of a request: a RequestSubmitted event, or (the criteria tools) a
    SubmitRequestRequest."""

    @property
    def coverage(self) -> types_pb2.Coverage: ...
    @property
    def diagnoses(self) -> Sequence[types_pb2.Diagnosis]: ...
    @property
    def urgency(self) -> types_pb2.Urgency.ValueType: ...
    @property
    def review_type(self) -> types_pb2.ReviewType.ValueType: ...
    @property
    def clinical_facts(self) -> Sequence[types_pb2.ClinicalFact]: ...
    @property
    def service_lines(self) -> Sequence[types_pb2.ServiceLine]: ...


def proto_date(d: types_pb2.Date) -> dt.date | None:
    """None when unset; raises ValueError for an impossible date."""
    if d.year == 0:
        return None
    return dt.date(d.year, d.month, d.day)


def to_proto_date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def request_facts(clinical_facts: Sequence[types_pb2.ClinicalFact], *,
                  drop_impossible_dates: bool = False) -> dict[str, FactValue]:
    """The typed clinical facts of a request by name. An impossible date raises ValueError, or is
    left out with ``drop_impossible_dates``."""
    facts: dict[str, FactValue] = {}
    for fact in clinical_facts:
        kind = fact.WhichOneof("value")
        if kind == "bool_value":
            facts[fact.name] = fact.bool_value
        elif kind == "number_value":
            facts[fact.name] = fact.number_value
        elif kind == "text_value":
            facts[fact.name] = fact.text_value
        elif kind == "date_value":
            try:
                value = proto_date(fact.date_value)
            except ValueError:
                if drop_impossible_dates:
                    continue
                raise
            if value is not None:
                facts[fact.name] = value
    return facts


def line_facts(message: RequestMessage, line: types_pb2.ServiceLine, lob: str,
               facts: dict[str, FactValue]) -> LineFacts:
    """What the criteria see of one line of a RequestSubmitted (or SubmitRequestRequest)."""
    return LineFacts(procedure_code=line.procedure_code,
                     diagnoses=tuple(d.code.upper().replace(".", "") for d in message.diagnoses),
                     line_of_business=lob, member_state=message.coverage.member_state,
                     urgency=to_name(URGENCY, message.urgency) or "standard",
                     review_type=to_name(REVIEW_TYPE, message.review_type) or "prospective",
                     units=line.units, place_of_service=int(line.place_of_service),
                     facts=with_line_facts(facts, line.units))


def request_lines(message: RequestMessage, *,
                  drop_impossible_dates: bool = False) -> list[tuple[types_pb2.ServiceLine, LineFacts]]:
    """(service line, LineFacts) of every line; empty when the request names no line of business."""
    lob = to_name(LOB, message.coverage.line_of_business)
    if lob is None:
        return []
    facts = request_facts(message.clinical_facts, drop_impossible_dates=drop_impossible_dates)
    return [(line, line_facts(message, line, lob, facts)) for line in message.service_lines]


def explanation_proto(evaluation: LineEvaluation) -> types_pb2.Explanation:
    """A criteria evaluation as the ``ur.common.v1.Explanation`` determinations carry."""
    explanation = types_pb2.Explanation(
        criteria_id=evaluation.criteria_id, criteria_version=evaluation.criteria_version,
        criteria_hash=evaluation.criteria_hash, summary=evaluation.summary,
        missing_facts=list(evaluation.missing_facts))
    for c in evaluation.conditions:
        explanation.conditions.add(condition_id=c.condition_id, description=c.description,
                                   status=to_number(CONDITION, c.status.value),
                                   observed=list(c.observed))
    for d in evaluation.derived:
        explanation.derived.add(name=d.fact, value=render_value(d.value), derived_from=d.because, mapping=d.mapping,
                                description=d.describe())
    explanation.contradictions.extend(c.describe() for c in evaluation.contradictions)
    if evaluation.urgency is not None:
        explanation.urgency = evaluation.urgency.reason()
    explanation.criteria_title = evaluation.title
    explanation.criteria_sources.extend(" ".join(s.split()) for s in evaluation.sources)
    if evaluation.nearest is not None:
        n = evaluation.nearest
        nearest = explanation.nearest
        for kind, results in (("met", n.met), ("unmet", n.unmet), ("missing", n.missing)):
            for c in results:
                getattr(nearest, kind).add(condition_id=c.condition_id, description=c.description,
                                           status=to_number(CONDITION, c.status.value), observed=list(c.observed))
        nearest.not_applicable.extend(n.not_applicable)
        nearest.summary = n.summary
    return explanation
