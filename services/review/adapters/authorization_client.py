"""Review's synchronous question to authorization: does this member already hold
an authorization for the same code over overlapping dates?"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import grpc
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2

from services.common.credentials import TokenSource
from services.common.errors import TransientError
from services.common.tls import TransportSecurity, open_channel
from services.review.service_layer.ports import DuplicateChecker, LineQuery

logger = logging.getLogger(__name__)


class _Unimplemented(Exception):
    """The authorization service does not serve FindOverlappingAuthorizations."""


def _pb_date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


class GrpcDuplicateChecker(DuplicateChecker):
    """Asks the authorization service; unavailability is transient (the event is retried)."""

    def __init__(self, target: str, timeout_s: float = 5.0, security: TransportSecurity | None = None,
                 token: TokenSource | None = None) -> None:
        """``security``: TLS (with this service's client certificate, when it has one); None: plaintext.
        ``token``: review's bearer token (UR_GRPC_TOKEN_FILE); None: its client certificate identifies it."""
        self._target = target
        self._timeout_s = timeout_s
        self._security = security
        self._token = token
        self._channel: grpc.Channel | None = None
        self._stub: authorization_pb2_grpc.AuthorizationServiceStub | None = None
        self._batch = True  # False once the service answered FindOverlappingAuthorizations UNIMPLEMENTED

    def _client(self) -> authorization_pb2_grpc.AuthorizationServiceStub:
        if self._stub is None:
            self._channel = open_channel(self._target, self._security, token=self._token)
            self._stub = authorization_pb2_grpc.AuthorizationServiceStub(self._channel)
        return self._stub

    def overlapping(self, requests: Sequence[tuple[str, Sequence[LineQuery]]]) -> list[dict[int, list[str]]]:
        """One FindOverlappingAuthorizations call for the whole batch (one read and one audit
        transaction in authorization); an authorization service that predates it (UNIMPLEMENTED, as
        during a rolling upgrade) is asked one ListMemberAuthorizations per request instead."""
        asked = [(member_id, lines) for member_id, lines in requests if lines]
        if not asked:
            return [{} for _ in requests]
        if self._batch:
            try:
                answers = self._batched(asked)
            except _Unimplemented:
                self._batch = False
                logger.warning("authorization at %s has no FindOverlappingAuthorizations: asking per request",
                               self._target)
            else:
                found = iter(answers)
                return [_overlaps(lines, next(found)) if lines else {} for _member, lines in requests]
        return self._per_request(requests)

    def _batched(self, asked: Sequence[tuple[str, Sequence[LineQuery]]]
                 ) -> list[Sequence[types_pb2.Authorization]]:
        request = authorization_pb2.FindOverlappingAuthorizationsRequest(queries=[
            authorization_pb2.OverlapQuery(member_id=member_id, overlaps_from=_pb_date(min(q.start for q in lines)),
                                           overlaps_to=_pb_date(max(q.end for q in lines)))
            for member_id, lines in asked])
        try:
            response = self._client().FindOverlappingAuthorizations(request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                raise _Unimplemented from exc
            raise TransientError(f"authorization service at {self._target}: {exc.code().name}: "
                                 f"{exc.details()}") from exc
        return [answer.authorizations for answer in response.answers]

    def _per_request(self, requests: Sequence[tuple[str, Sequence[LineQuery]]]) -> list[dict[int, list[str]]]:
        """One call per request, all in flight at once (a batch waits for the slowest, not the sum)."""
        client = self._client()
        calls = []
        for member_id, lines in requests:
            calls.append(client.ListMemberAuthorizations.future(
                authorization_pb2.ListMemberAuthorizationsRequest(
                    member_id=member_id, overlaps_from=_pb_date(min(q.start for q in lines)),
                    overlaps_to=_pb_date(max(q.end for q in lines)), active_only=True, limit=1000),
                timeout=self._timeout_s) if lines else None)
        results: list[dict[int, list[str]]] = []
        for (_member, lines), call in zip(requests, calls, strict=True):
            if call is None:
                results.append({})
                continue
            try:
                response = call.result()
            except grpc.RpcError as exc:
                for other in calls:
                    if other is not None:
                        other.cancel()
                raise TransientError(f"authorization service at {self._target}: {exc.code().name}: "
                                     f"{exc.details()}") from exc
            results.append(_overlaps(lines, response.authorizations))
        return results

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


def _overlaps(lines: Sequence[LineQuery], authorizations: Sequence[types_pb2.Authorization]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for q in lines:
        for auth in authorizations:
            valid_from = dt.date(auth.valid_from.year, auth.valid_from.month, auth.valid_from.day)
            valid_to = dt.date(auth.valid_to.year, auth.valid_to.month, auth.valid_to.day)
            if auth.procedure_code == q.procedure_code and valid_from <= q.end and q.start <= valid_to:
                found.setdefault(q.line_number, []).append(auth.authorization_number)
    return found
