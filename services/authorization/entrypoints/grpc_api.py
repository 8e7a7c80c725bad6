"""AuthorizationService over gRPC."""

from __future__ import annotations

import datetime as dt

import grpc
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2

from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common.errors import FieldViolation, ValidationFailed
from services.common.grpc_errors import translate_errors


def _date(d: types_pb2.Date, field: str, present: bool) -> dt.date | None:
    if not present:
        return None
    try:
        return dt.date(d.year, d.month, d.day)
    except ValueError:
        raise ValidationFailed([FieldViolation(field, "is not a calendar date")]) from None


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
