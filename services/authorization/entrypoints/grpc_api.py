"""AuthorizationService over gRPC."""

from __future__ import annotations

import datetime as dt

import grpc
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2

from services.authorization.domain import numbers
from services.authorization.domain.claims import ClaimDecision, ClaimLine, Match
from services.authorization.service_layer.handlers import AuthorizationHandlers, to_proto
from services.common.errors import FieldViolation, ValidationFailed
from services.common.grpc_errors import translate_errors

#: Dates a call may name: arithmetic on a date near year 9999 overflows (found by fuzzing the metrics).
MIN_YEAR, MAX_YEAR = 1900, 2199


def _date(d: types_pb2.Date, field: str, present: bool) -> dt.date | None:
    if not present:
        return None
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise ValidationFailed([FieldViolation(field, f"is not a calendar date between {MIN_YEAR} and {MAX_YEAR}")])
    try:
        return dt.date(d.year, d.month, d.day)
    except ValueError:
        raise ValidationFailed([FieldViolation(field, "is not a calendar date")]) from None


_MATCH = {Match.COVERED: authorization_pb2.CLAIM_MATCH_COVERED, Match.EXPIRED: authorization_pb2.CLAIM_MATCH_EXPIRED,
          Match.OTHER_PROVIDER: authorization_pb2.CLAIM_MATCH_OTHER_PROVIDER,
          Match.OTHER_CODE: authorization_pb2.CLAIM_MATCH_OTHER_CODE,
          Match.EXHAUSTED: authorization_pb2.CLAIM_MATCH_EXHAUSTED,
          Match.NEVER_AUTHORIZED: authorization_pb2.CLAIM_MATCH_NEVER_AUTHORIZED,
          Match.DENIED: authorization_pb2.CLAIM_MATCH_DENIED, Match.CANCELLED: authorization_pb2.CLAIM_MATCH_CANCELLED,
          Match.PENDED: authorization_pb2.CLAIM_MATCH_PENDED}


def claim_from_proto(claim: authorization_pb2.ClaimLine) -> ClaimLine:
    day = _date(claim.date_of_service, "claim.date_of_service", claim.HasField("date_of_service"))
    if day is None:
        raise ValidationFailed([FieldViolation("claim.date_of_service", "required")])
    return ClaimLine(member_id=claim.member_id.strip(), servicing_npi=claim.servicing_npi.strip(),
                     procedure_code=claim.procedure_code.strip().upper(), date_of_service=day, units=claim.units,
                     authorization_number=numbers.normalize(claim.authorization_number)
                     if claim.authorization_number.strip() else "")


def decision_to_proto(decision: ClaimDecision, today: dt.date) -> authorization_pb2.CheckClaimResponse:
    response = authorization_pb2.CheckClaimResponse(match=_MATCH[decision.match],
                                                    units_remaining=decision.units_remaining,
                                                    explanation=decision.explanation)
    if decision.authorization is not None:
        response.authorization.CopyFrom(to_proto(decision.authorization, today))
    return response


class AuthorizationServicer(authorization_pb2_grpc.AuthorizationServiceServicer):
    def __init__(self, handlers: AuthorizationHandlers) -> None:
        self._handlers = handlers

    @translate_errors
    def GetAuthorization(self, request: authorization_pb2.GetAuthorizationRequest,  # noqa: N802
                         context: grpc.ServicerContext) -> authorization_pb2.GetAuthorizationResponse:
        return authorization_pb2.GetAuthorizationResponse(
            authorization=self._handlers.get(request.authorization_number))

    @translate_errors
    def ListMemberAuthorizations(self, request: authorization_pb2.ListMemberAuthorizationsRequest,  # noqa: N802
                                 context: grpc.ServicerContext
                                 ) -> authorization_pb2.ListMemberAuthorizationsResponse:
        found = self._handlers.for_member(
            request.member_id, request.procedure_code,
            _date(request.overlaps_from, "overlaps_from", request.HasField("overlaps_from")),
            _date(request.overlaps_to, "overlaps_to", request.HasField("overlaps_to")),
            request.active_only, request.limit)
        return authorization_pb2.ListMemberAuthorizationsResponse(authorizations=found)

    @translate_errors
    def FindOverlappingAuthorizations(self, request: authorization_pb2.FindOverlappingAuthorizationsRequest,  # noqa: N802
                                      context: grpc.ServicerContext
                                      ) -> authorization_pb2.FindOverlappingAuthorizationsResponse:
        queries = []
        for i, q in enumerate(request.queries):
            start = _date(q.overlaps_from, f"queries[{i}].overlaps_from", q.HasField("overlaps_from"))
            end = _date(q.overlaps_to, f"queries[{i}].overlaps_to", q.HasField("overlaps_to"))
            if start is None or end is None:
                missing = "overlaps_from" if start is None else "overlaps_to"
                raise ValidationFailed([FieldViolation(f"queries[{i}].{missing}", "required")])
            queries.append((q.member_id, start, end))
        answers = self._handlers.overlapping(queries)
        return authorization_pb2.FindOverlappingAuthorizationsResponse(
            answers=[authorization_pb2.OverlapAnswer(authorizations=found) for found in answers])

    @translate_errors
    def CheckClaim(self, request: authorization_pb2.CheckClaimRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> authorization_pb2.CheckClaimResponse:
        return decision_to_proto(self._handlers.check_claim(claim_from_proto(request.claim)), self._handlers.today())

    @translate_errors
    def ConsumeUnits(self, request: authorization_pb2.ConsumeUnitsRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> authorization_pb2.ConsumeUnitsResponse:
        result = self._handlers.consume(request.claim_line_id.strip(), claim_from_proto(request.claim))
        auth = to_proto(result.authorization, self._handlers.today())
        return authorization_pb2.ConsumeUnitsResponse(authorization=auth, units_consumed=result.units_consumed,
                                                      units_remaining=auth.units_remaining, replayed=result.replayed)

    @translate_errors
    def GetAuthorizationMetrics(self, request: authorization_pb2.GetAuthorizationMetricsRequest,  # noqa: N802
                                context: grpc.ServicerContext) -> authorization_pb2.GetAuthorizationMetricsResponse:
        m = self._handlers.metrics(_date(getattr(request, "from"), "from", request.HasField("from")),
                                   _date(request.to, "to", request.HasField("to")))
        return authorization_pb2.GetAuthorizationMetricsResponse(
            decided=m.decided, approved=m.approved, partially_approved=m.partially_approved, modified=m.modified,
            denied=m.denied, approved_after_appeal=m.approved_after_appeal, cancelled=m.cancelled)
