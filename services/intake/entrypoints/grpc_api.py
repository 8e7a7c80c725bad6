"""IntakeService over gRPC: translate, call the handlers, translate back. Who is calling comes from
the access interceptor (entrypoints/access.py): a submitter's requests are its own.

SubmitRequest is ``async``: a caller that waits for its determination (``wait_ms``) awaits on the
server's event loop and holds no worker thread (services/common/grpc_server.py); its database work
goes to the server's thread pool through ``offload``. The other methods are plain and run there."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common.access import current_caller
from services.common.clock import ensure_utc
from services.common.errors import FailedPrecondition
from services.common.grpc_errors import translate_errors
from services.common.grpc_server import offload
from services.intake.entrypoints.access import readable_submitter
from services.intake.entrypoints.mapping import appeal_to_domain, appeal_view, information_to_domain, to_domain, to_view
from services.intake.service_layer.handlers import IntakeHandlers, RequestChanger


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self, handlers: IntakeHandlers, changes: RequestChanger | None = None) -> None:
        self._handlers = handlers
        self._changes = changes

    def _changer(self) -> RequestChanger:
        if self._changes is None:
            raise FailedPrecondition("this server takes no cancellations, revisions or appeals")
        return self._changes

    def _view(self, request_id: str, submitter: str | None) -> intake_pb2.RequestView:
        record, information, appeals = self._handlers.get_story(request_id, submitter=submitter)
        return to_view(record, information, appeals)

    @translate_errors
    def CancelRequest(self, request: intake_pb2.CancelRequestRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> intake_pb2.CancelRequestResponse:
        submitter = current_caller().principal
        record = self._changer().cancel(request.request_id, request.requesting_npi, request.reason,
                                        submitter=submitter)
        return intake_pb2.CancelRequestResponse(request=self._view(record.request_id, submitter))

    @translate_errors
    def ReviseRequest(self, request: intake_pb2.ReviseRequestRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> intake_pb2.ReviseRequestResponse:
        submitter = current_caller().principal
        record, replayed = self._changer().revise(request.request_id, request.requesting_npi,
                                                  to_domain(request.revision), request.revision, submitter=submitter)
        return intake_pb2.ReviseRequestResponse(request=self._view(record.request_id, submitter), replayed=replayed)

    @translate_errors
    def FileAppeal(self, request: intake_pb2.FileAppealRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> intake_pb2.FileAppealResponse:
        appeal, replayed = self._changer().file_appeal(appeal_to_domain(request), request,
                                                       submitter=current_caller().principal)
        return intake_pb2.FileAppealResponse(appeal=appeal_view(appeal), replayed=replayed)

    @translate_errors
    async def SubmitRequest(self, request: intake_pb2.SubmitRequestRequest,  # noqa: N802 - gRPC method name
                            context: grpc.aio.ServicerContext[Any, Any]) -> intake_pb2.SubmitRequestResponse:
        result = await self._handlers.submit_async(to_domain(request), request, request.wait_ms, offload,
                                                   submitter=current_caller().principal)
        return intake_pb2.SubmitRequestResponse(request=to_view(result.record), replayed=result.replayed)

    @translate_errors
    def GetRequest(self, request: intake_pb2.GetRequestRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> intake_pb2.GetRequestResponse:
        return intake_pb2.GetRequestResponse(request=self._view(request.request_id,
                                                                readable_submitter(current_caller())))

    @translate_errors
    def ListMemberRequests(self, request: intake_pb2.ListMemberRequestsRequest,  # noqa: N802
                           context: grpc.ServicerContext) -> intake_pb2.ListMemberRequestsResponse:
        records = self._handlers.of_member(request.member_id, request.limit,
                                           submitter=readable_submitter(current_caller()))
        return intake_pb2.ListMemberRequestsResponse(requests=[to_view(r) for r in records])

    @translate_errors
    def ListClaimRequests(self, request: intake_pb2.ListClaimRequestsRequest,  # noqa: N802
                          context: grpc.ServicerContext) -> intake_pb2.ListClaimRequestsResponse:
        records = self._handlers.of_claim(request.claim_number, request.limit,
                                          submitter=readable_submitter(current_caller()))
        return intake_pb2.ListClaimRequestsResponse(requests=[to_view(r) for r in records])

    @translate_errors
    def SubmitAdditionalInformation(self, request: intake_pb2.SubmitAdditionalInformationRequest,  # noqa: N802
                                    context: grpc.ServicerContext) -> intake_pb2.SubmitAdditionalInformationResponse:
        result = self._handlers.add_information(information_to_domain(request), request,
                                                submitter=current_caller().principal)
        response = intake_pb2.SubmitAdditionalInformationResponse(information_id=result.information_id,
                                                                  replayed=result.replayed)
        response.received_at.FromDatetime(ensure_utc(result.received_at))
        return response
