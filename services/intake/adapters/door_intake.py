"""Intake's gRPC API over TCP (grpc.aio), as the doors' IntakeApi port: every call carries the
submitter's own credential (``authorization: Bearer <its token>``), so intake authenticates the
submitting organization itself. A failed call comes back as the platform's error
(services/common/grpc_errors.py ``error_of``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import grpc.aio
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common.grpc_errors import error_of
from services.common.grpc_telemetry import aio_client_interceptors
from services.common.tls import TransportSecurity, channel_options
from services.intake.service_layer.door_ports import IntakeApi, Submitter

T = TypeVar("T")


class GrpcIntake(IntakeApi):
    """One channel to intake, opened on first use (a grpc.aio channel belongs to the event loop it was
    made on: the door's); :meth:`close` closes it. ``timeout_s`` bounds each call, plus the wait a
    submission asks for."""

    def __init__(self, target: str, *, timeout_s: float = 10.0, security: TransportSecurity | None = None,
                 max_message_bytes: int = 8 * 1024 * 1024) -> None:
        self._target = target
        self._timeout = timeout_s
        self._security = security
        self._max_message_bytes = max_message_bytes
        self._channel: grpc.aio.Channel | None = None

    @property
    def _stub(self) -> intake_pb2_grpc.IntakeServiceAsyncStub:
        if self._channel is None:
            options = channel_options(self._max_message_bytes)
            interceptors = aio_client_interceptors()
            if self._security is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=options, interceptors=interceptors)
            else:
                self._channel = grpc.aio.secure_channel(self._target, self._security.channel_credentials(),
                                                        options=options, interceptors=interceptors)
        return intake_pb2_grpc.IntakeServiceStub(self._channel)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    @staticmethod
    def _as(submitter: Submitter) -> tuple[tuple[str, str], ...]:
        """The submitter's credential as call metadata (none without one: a client certificate then
        identifies the caller)."""
        return (("authorization", f"Bearer {submitter.credential}"),) if submitter.credential else ()

    @staticmethod
    async def _call(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc

    async def submit(self, command: intake_pb2.SubmitRequestRequest, submitter: Submitter,
                     ) -> intake_pb2.SubmitRequestResponse:
        timeout = self._timeout + max(0, command.wait_ms) / 1000
        return await self._call(lambda: self._stub.SubmitRequest(command, metadata=self._as(submitter),
                                                                 timeout=timeout))

    async def get(self, request_id: str, submitter: Submitter) -> intake_pb2.RequestView:
        reply: intake_pb2.GetRequestResponse = await self._call(lambda: self._stub.GetRequest(
            intake_pb2.GetRequestRequest(request_id=request_id), metadata=self._as(submitter), timeout=self._timeout))
        return reply.request

    async def member_requests(self, member_id: str, submitter: Submitter) -> list[intake_pb2.RequestView]:
        reply: intake_pb2.ListMemberRequestsResponse = await self._call(lambda: self._stub.ListMemberRequests(
            intake_pb2.ListMemberRequestsRequest(member_id=member_id, limit=200), metadata=self._as(submitter),
            timeout=self._timeout))
        return list(reply.requests)

    async def cancel(self, request_id: str, requesting_npi: str, reason: str,
                     submitter: Submitter) -> intake_pb2.RequestView:
        reply: intake_pb2.CancelRequestResponse = await self._call(lambda: self._stub.CancelRequest(
            intake_pb2.CancelRequestRequest(request_id=request_id, requesting_npi=requesting_npi, reason=reason),
            metadata=self._as(submitter), timeout=self._timeout))
        return reply.request

    async def revise(self, request_id: str, requesting_npi: str, revision: intake_pb2.SubmitRequestRequest,
                     submitter: Submitter) -> intake_pb2.RequestView:
        reply: intake_pb2.ReviseRequestResponse = await self._call(lambda: self._stub.ReviseRequest(
            intake_pb2.ReviseRequestRequest(request_id=request_id, requesting_npi=requesting_npi, revision=revision),
            metadata=self._as(submitter), timeout=self._timeout))
        return reply.request
