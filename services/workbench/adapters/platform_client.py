"""The services over gRPC (grpc.aio), one channel each, as the workbench's Platform port.

The signed-in reviewer's token travels as ``authorization: Bearer <token>`` metadata on every
review call; review authenticates it and decides. Intake and authorization are read with the
workbench's own service token (UR_GRPC_TOKEN_FILE: a principal with ``requests:read-all`` and
``authorizations:read``), and only for what review has just shown the reviewer (see
services/workbench/service_layer/pages.py). A failed call comes back as the platform's service
error with the server's message (the reverse of services/common/grpc_errors.py), so pages can show
reviewers exactly why something was refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common.credentials import TokenSource, bearer
from services.common.errors import FieldViolation, ServiceError, Unavailable, ValidationFailed
from services.common.grpc_errors import STATUS_OF
from services.common.grpc_telemetry import aio_client_interceptors
from services.common.tls import TransportSecurity, channel_options
from services.workbench.service_layer.ports import Platform

T = TypeVar("T")

# The reverse of the servicers' table (services/common/grpc_errors.py): one mapping, both ways.
ERROR_OF: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode[code_pb2.Code.Name(code)]: kind for kind, code in STATUS_OF.items()}


def service_error(exc: grpc.aio.AioRpcError) -> ServiceError:
    """The platform's error for a failed call: field violations kept for INVALID_ARGUMENT, the
    service's message kept for the rest; UNAVAILABLE for what the workbench cannot reach or
    understand."""
    code, message = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations = [FieldViolation(v.field, v.description) for v in _bad_request(exc)]
        return ValidationFailed(violations or [FieldViolation("", message)])
    kind = ERROR_OF.get(code)
    if kind is not None:
        return kind(message)
    return Unavailable(f"the service did not answer ({code.name}): {message}")


def _bad_request(exc: grpc.aio.AioRpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    status = rpc_status.from_call(exc)  # an AioRpcError carries the same trailers
    found: list[error_details_pb2.BadRequest.FieldViolation] = []
    for detail in status.details if status is not None else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.extend(bad.field_violations)
    return found


class GrpcPlatform(Platform):
    """Channels to intake, review and authorization, opened on first use (a grpc.aio channel
    belongs to the event loop it was made on: the server's); :meth:`close` closes them."""

    def __init__(self, intake: str, review: str, authorization: str, *, timeout_s: float = 10.0,
                 security: TransportSecurity | None = None, token: TokenSource | None = None) -> None:
        """``security``: TLS (None: plaintext); ``token``: the workbench's own, for intake and authorization."""
        self._targets = (intake, review, authorization)
        self._channels: list[grpc.aio.Channel] = []
        self._timeout = timeout_s
        self._security = security
        self._token = token

    def _open(self) -> None:
        if not self._channels:
            options = channel_options()
            interceptors = aio_client_interceptors()
            if self._security is None:
                self._channels = [grpc.aio.insecure_channel(t, options=options, interceptors=interceptors)
                                  for t in self._targets]
            else:
                credentials = self._security.channel_credentials()
                self._channels = [grpc.aio.secure_channel(t, credentials, options=options, interceptors=interceptors)
                                  for t in self._targets]

    def _own(self) -> tuple[tuple[str, str], ...]:
        """The workbench's own credentials (none: its client certificate alone identifies it)."""
        return bearer(self._token) if self._token is not None else ()

    @property
    def _intake(self) -> intake_pb2_grpc.IntakeServiceAsyncStub:
        self._open()
        return intake_pb2_grpc.IntakeServiceStub(self._channels[0])

    @property
    def _review(self) -> review_pb2_grpc.ReviewServiceAsyncStub:
        self._open()
        return review_pb2_grpc.ReviewServiceStub(self._channels[1])

    @property
    def _authorization(self) -> authorization_pb2_grpc.AuthorizationServiceAsyncStub:
        self._open()
        return authorization_pb2_grpc.AuthorizationServiceStub(self._channels[2])

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        for channel in channels:
            await channel.close()

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            raise service_error(exc) from exc

    def _as(self, token: str) -> tuple[tuple[str, str | bytes], ...]:
        return (("authorization", f"Bearer {token}"),)

    # -- review ----------------------------------------------------------------------------------
    async def whoami(self, token: str) -> review_pb2.Reviewer:
        return await self._call(lambda: self._review.WhoAmI(review_pb2.WhoAmIRequest(), metadata=self._as(token),
                                                            timeout=self._timeout))

    async def my_tasks(self, token: str, limit: int) -> review_pb2.ListMyTasksResponse:
        return await self._call(lambda: self._review.ListMyTasks(
            review_pb2.ListMyTasksRequest(limit=limit, summary=True), metadata=self._as(token), timeout=self._timeout))

    async def claim_next(self, token: str) -> review_pb2.TaskView:
        reply: review_pb2.ClaimNextTaskResponse = await self._call(lambda: self._review.ClaimNextTask(
            review_pb2.ClaimNextTaskRequest(), metadata=self._as(token), timeout=self._timeout))
        return reply.task

    async def get_task(self, token: str, task_id: str) -> review_pb2.TaskView:
        return await self._call(lambda: self._review.GetTask(review_pb2.GetTaskRequest(task_id=task_id),
                                                             metadata=self._as(token), timeout=self._timeout))

    async def decide(self, token: str, request: review_pb2.DecideTaskRequest) -> review_pb2.DecideTaskResponse:
        return await self._call(lambda: self._review.DecideTask(request, metadata=self._as(token),
                                                                timeout=self._timeout))

    async def release(self, token: str, task_id: str, note: str) -> review_pb2.TaskView:
        return await self._call(lambda: self._review.ReleaseTask(
            review_pb2.ReleaseTaskRequest(task_id=task_id, note=note), metadata=self._as(token),
            timeout=self._timeout))

    async def reassign(self, token: str, task_id: str, reviewer_id: str, note: str) -> review_pb2.TaskView:
        return await self._call(lambda: self._review.ReassignTask(
            review_pb2.ReassignTaskRequest(task_id=task_id, reviewer_id=reviewer_id, note=note),
            metadata=self._as(token), timeout=self._timeout))

    async def peer_to_peer(self, token: str, request: review_pb2.RecordPeerToPeerRequest) -> review_pb2.TaskView:
        return await self._call(lambda: self._review.RecordPeerToPeer(request, metadata=self._as(token),
                                                                      timeout=self._timeout))

    async def extend_deadline(self, token: str, request: review_pb2.ExtendDeadlineRequest) -> review_pb2.TaskView:
        return await self._call(lambda: self._review.ExtendDeadline(request, metadata=self._as(token),
                                                                    timeout=self._timeout))

    async def queue_overview(self, token: str, limit: int) -> review_pb2.GetQueueOverviewResponse:
        return await self._call(lambda: self._review.GetQueueOverview(
            review_pb2.GetQueueOverviewRequest(limit=limit), metadata=self._as(token), timeout=self._timeout))

    async def reviewers(self, token: str) -> Sequence[review_pb2.Reviewer]:
        reply = await self._call(lambda: self._review.ListReviewers(
            review_pb2.ListReviewersRequest(), metadata=self._as(token), timeout=self._timeout))
        return list(reply.reviewers)

    async def member_tasks(self, token: str, member_id: str) -> Sequence[review_pb2.ReviewTask]:
        reply = await self._call(lambda: self._review.ListMemberTasks(
            review_pb2.ListMemberTasksRequest(member_id=member_id), metadata=self._as(token), timeout=self._timeout))
        return list(reply.tasks)

    async def case_notes(self, token: str, member_id: str) -> Sequence[review_pb2.CaseNote]:
        reply = await self._call(lambda: self._review.ListCaseNotes(
            review_pb2.ListCaseNotesRequest(member_id=member_id), metadata=self._as(token), timeout=self._timeout))
        return list(reply.notes)

    async def add_case_note(self, token: str, member_id: str, text: str, amends: str) -> review_pb2.CaseNote:
        return await self._call(lambda: self._review.AddCaseNote(
            review_pb2.AddCaseNoteRequest(member_id=member_id, text=text, amends=amends), metadata=self._as(token),
            timeout=self._timeout))

    # -- intake and authorization ------------------------------------------------------------------
    async def request(self, request_id: str) -> intake_pb2.RequestView:
        reply: intake_pb2.GetRequestResponse = await self._call(lambda: self._intake.GetRequest(
            intake_pb2.GetRequestRequest(request_id=request_id), metadata=self._own(), timeout=self._timeout))
        return reply.request

    async def member_requests(self, member_id: str) -> Sequence[intake_pb2.RequestView]:
        reply = await self._call(lambda: self._intake.ListMemberRequests(
            intake_pb2.ListMemberRequestsRequest(member_id=member_id), metadata=self._own(), timeout=self._timeout))
        return list(reply.requests)

    async def claim_requests(self, claim_number: str) -> Sequence[intake_pb2.RequestView]:
        reply = await self._call(lambda: self._intake.ListClaimRequests(
            intake_pb2.ListClaimRequestsRequest(claim_number=claim_number), metadata=self._own(),
            timeout=self._timeout))
        return list(reply.requests)

    async def member_authorizations(self, member_id: str) -> Sequence[types_pb2.Authorization]:
        reply = await self._call(lambda: self._authorization.ListMemberAuthorizations(
            authorization_pb2.ListMemberAuthorizationsRequest(member_id=member_id), metadata=self._own(),
            timeout=self._timeout))
        return list(reply.authorizations)
