"""The doors' ports in memory (services/intake/service_layer/door_ports.py), and intake behind its API
as the real use cases on fakes (:class:`HandlersIntake`): validation, eligibility, replays, cancels
and revisions are intake's own, so what the door answers in the tests is what it would answer live."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import NotFound, Unauthenticated, Unavailable
from services.common.events import IncomingEvent
from services.common.topics import Topics
from services.intake.domain.model import Coverage, Member
from services.intake.entrypoints.mapping import to_domain, to_view
from services.intake.service_layer.door_ports import (
    ClientDirectory,
    IntakeApi,
    StoredRequest,
    SubmissionStore,
    Submitter,
)
from services.intake.service_layer.handlers import IntakeHandlers, RequestChanger, Waiters
from tests.fakes.intake import IntakeStore

NOW = dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC)
TOPICS = Topics("t")


class FakeSubmissionStore(SubmissionStore):
    def __init__(self) -> None:
        self.requests: dict[str, StoredRequest] = {}
        self.identifiers: list[tuple[str, str, str, str]] = []  # submitter, system, value, request id
        self.counter = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("the doors' database is unavailable; retry later")

    async def record(self, request_id: str, submitter: str, bundle: Mapping[str, Any],
                     identifiers: Sequence[tuple[str, str]], at: dt.datetime) -> None:
        self._check()
        known = self.requests.get(request_id)
        self.requests[request_id] = StoredRequest(request_id, known.submitter if known else submitter, dict(bundle), at)
        for system, value in identifiers:
            row = (submitter, system, value, request_id)
            if row not in self.identifiers:
                self.identifiers.append(row)

    async def get(self, request_id: str) -> StoredRequest | None:
        self._check()
        return self.requests.get(request_id)

    async def find(self, submitter: str, system: str, value: str) -> list[str]:
        self._check()
        return [r for s, sy, v, r in self.identifiers if (s, sy, v) == (submitter, system, value)]

    async def next_control_number(self) -> int:
        self._check()
        self.counter = self.counter % 999_999_999 + 1
        return self.counter


class FakeClients(ClientDirectory):
    """client id -> its secrets."""

    def __init__(self, secrets: Mapping[str, Sequence[str]]) -> None:
        self.secrets = {k: tuple(v) for k, v in secrets.items()}

    def authenticate(self, client_id: str, secret: str) -> bool:
        return secret in self.secrets.get(client_id, ())


def member(member_id: str, lob: str = "medicare_advantage", state: str = "TX") -> Member:
    return Member(member_id, dt.date(1960, 5, 20),
                  (Coverage(member_id, lob, "MA-GOLD", state, dt.date(2026, 1, 1), None),))


class HandlersIntake(IntakeApi):
    """Intake's use cases (IntakeHandlers, RequestChanger) on the in-memory store, behind the API a
    door calls, each call as the submitter (a submitter sees only its own requests, as in intake).
    ``credentials``: submitter id -> the credential intake accepts for it (anything else is
    Unauthenticated, as intake's interceptor answers). ``down``: every call Unavailable."""

    def __init__(self, credentials: Mapping[str, str], members: Sequence[Member] = (), *,
                 clock: Any = lambda: NOW) -> None:
        self.store = IntakeStore()
        for m in members:
            self.store.members[m.member_id] = m
        self.credentials = dict(credentials)
        self.handlers = IntakeHandlers(self.store.unit_of_work, TOPICS, Waiters(), clock=clock)
        self.changer = RequestChanger(self.store.unit_of_work, TOPICS, clock=clock)
        self.down = False
        self.calls: list[tuple[str, str]] = []  # (method, submitter id)

    def _admit(self, method: str, submitter: Submitter) -> None:
        if self.down:
            raise Unavailable("intake cannot be reached")
        if self.credentials.get(submitter.id) != submitter.credential:
            raise Unauthenticated("unknown or revoked token")
        self.calls.append((method, submitter.id))

    async def submit(self, command: intake_pb2.SubmitRequestRequest, submitter: Submitter,
                     ) -> intake_pb2.SubmitRequestResponse:
        self._admit("SubmitRequest", submitter)
        result = await asyncio.to_thread(lambda: self.handlers.submit(to_domain(command), command, 0,
                                                                      submitter=submitter.id))
        return intake_pb2.SubmitRequestResponse(request=to_view(result.record), replayed=result.replayed)

    async def get(self, request_id: str, submitter: Submitter) -> intake_pb2.RequestView:
        self._admit("GetRequest", submitter)
        record, information, appeals = self.handlers.get_story(request_id, submitter=submitter.id)
        return to_view(record, information, appeals)

    async def member_requests(self, member_id: str, submitter: Submitter) -> list[intake_pb2.RequestView]:
        self._admit("ListMemberRequests", submitter)
        return [to_view(r) for r in self.handlers.of_member(member_id, 0, submitter=submitter.id)]

    async def cancel(self, request_id: str, requesting_npi: str, reason: str,
                     submitter: Submitter) -> intake_pb2.RequestView:
        self._admit("CancelRequest", submitter)
        record = self.changer.cancel(request_id, requesting_npi, reason, submitter=submitter.id)
        return to_view(record)

    async def revise(self, request_id: str, requesting_npi: str, revision: intake_pb2.SubmitRequestRequest,
                     submitter: Submitter) -> intake_pb2.RequestView:
        self._admit("ReviseRequest", submitter)
        record, _replayed = self.changer.revise(request_id, requesting_npi, to_domain(revision), revision,
                                                submitter=submitter.id)
        return to_view(record)

    # -- what review and authorization would do --------------------------------------------------
    def decide(self, request_id: str, *lines: tuple[int, int], decided_by: types_pb2.DeciderRef | None = None,
               authorize: bool = True, reasons: Sequence[str] = ("meets criteria",)) -> None:
        """Apply a determination of ``lines`` (line number, ActionCode) and, for certified lines with
        ``authorize``, their authorizations, as intake's consumer would."""
        record = self.store.requests.get(request_id)
        if record is None:
            raise NotFound(request_id)
        determination_id = str(uuid.uuid4())
        det = types_pb2.Determination(request_id=request_id, determination_id=determination_id,
                                      decided_by=decided_by or types_pb2.DeciderRef(id="system:rules-engine",
                                                                                    role="software"))
        det.decided_at.FromDatetime(NOW + dt.timedelta(minutes=5))
        certified = []
        for number, action in lines:
            queued = action == types_pb2.ACTION_CODE_PENDED
            line = det.lines.add(line_number=number, action_code=action, queued_for_review=queued,
                                 outcome=types_pb2.LINE_OUTCOME_REFER_TO_NURSE if queued else
                                 types_pb2.LINE_OUTCOME_MEETS_CRITERIA, reasons=list(reasons))
            line.decided_by.CopyFrom(det.decided_by)
            line.decided_at.CopyFrom(det.decided_at)
            if action in (types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL,
                          types_pb2.ACTION_CODE_MODIFIED):
                line.approved_units = 1
                line.approved_start.CopyFrom(types_pb2.Date(year=2026, month=3, day=2))
                line.approved_end.CopyFrom(types_pb2.Date(year=2026, month=3, day=2))
                certified.append(number)
        events: list[IncomingEvent] = [_incoming(events_pb2.DeterminationMade(determination=det,
                                                                               member_id=record.member_id))]
        if authorize and certified:
            issued = events_pb2.AuthorizationsIssued(request_id=request_id, determination_id=determination_id)
            for n in certified:
                auth = issued.authorizations.add(authorization_number=f"UR26-TEST-{n:04d}", request_id=request_id,
                                                 line_number=n, units=1, determination_id=determination_id)
                auth.valid_from.CopyFrom(types_pb2.Date(year=2026, month=3, day=2))
                auth.valid_to.CopyFrom(types_pb2.Date(year=2026, month=3, day=2))
                auth.issued_at.FromDatetime(NOW + dt.timedelta(minutes=6))
            events.append(_incoming(issued))
        self.handlers.handle_batch(events)


def _incoming(message: Any) -> IncomingEvent:
    return IncomingEvent(event_id=str(uuid.uuid4()), event_type=message.DESCRIPTOR.full_name, schema_version="1",
                         key="k", message=message, topic="t", partition=0, offset=0)
