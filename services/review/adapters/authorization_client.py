"""Review's synchronous question to authorization: does this member already hold
an authorization for the same code over overlapping dates?"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2

from services.common.consumer import TransientError


@dataclass(frozen=True)
class LineQuery:
    line_number: int
    procedure_code: str
    start: dt.date
    end: dt.date


class DuplicateChecker(Protocol):
    def overlapping(self, member_id: str, lines: Sequence[LineQuery]) -> dict[int, list[str]]:
        """line number → numbers of active authorizations that overlap it."""


def _pb_date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


class GrpcDuplicateChecker:
    """Asks the authorization service; unavailability is transient (the event is retried)."""

    def __init__(self, target: str, timeout_s: float = 5.0) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._channel: grpc.Channel | None = None
        self._stub: authorization_pb2_grpc.AuthorizationServiceStub | None = None

    def _client(self) -> authorization_pb2_grpc.AuthorizationServiceStub:
        if self._stub is None:
            self._channel = grpc.insecure_channel(self._target)
            self._stub = authorization_pb2_grpc.AuthorizationServiceStub(self._channel)
        return self._stub

    def overlapping(self, member_id: str, lines: Sequence[LineQuery]) -> dict[int, list[str]]:
        if not lines:
            return {}
        start = min(q.start for q in lines)
        end = max(q.end for q in lines)
        try:
            response = self._client().ListMemberAuthorizations(
                authorization_pb2.ListMemberAuthorizationsRequest(
                    member_id=member_id, overlaps_from=_pb_date(start), overlaps_to=_pb_date(end),
                    active_only=True, limit=1000),
                timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise TransientError(f"authorization service at {self._target}: {exc.code().name}") from exc
        found: dict[int, list[str]] = {}
        for q in lines:
            for auth in response.authorizations:
                valid_from = dt.date(auth.valid_from.year, auth.valid_from.month, auth.valid_from.day)
                valid_to = dt.date(auth.valid_to.year, auth.valid_to.month, auth.valid_to.day)
                if auth.procedure_code == q.procedure_code and valid_from <= q.end and q.start <= valid_to:
                    found.setdefault(q.line_number, []).append(auth.authorization_number)
        return found

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
