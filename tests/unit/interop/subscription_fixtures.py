"""Subscriptions for the tests: requests, events and subscriptions on the fakes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common.events import IncomingEvent
from services.intake.domain.records import RequestRecord
from services.intake.interop.pas.request import pas_request_to_command
from services.intake.interop.pas.response import pas_response_bundle
from services.intake.interop.subscriptions.domain.events import RequestFacts
from services.intake.interop.subscriptions.domain.model import Channel, SubscriptionRequest
from services.intake.interop.subscriptions.service_layer.handlers import (
    Deliverer,
    NotificationRecorder,
    SubscriptionService,
)
from tests.fakes.subscriptions import Clock, FakeEndpoint, SubscriptionsStore
from tests.unit.interop.pas_fixtures import complete_bundle, view_for

ORG_A = "org-a"
ORG_B = "org-b"
NPI_A = "1245319599"
A1 = types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
A3 = types_pb2.ACTION_CODE_NOT_CERTIFIED
A4 = types_pb2.ACTION_CODE_PENDED
CERTIFIED = (A1, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL, types_pb2.ACTION_CODE_MODIFIED)


def intake_record(submitter: str, **fields: Any) -> RequestRecord:
    """Intake's record of a request ``submitter`` (the authenticated principal) submitted."""
    return RequestRecord(submitter=submitter, **fields)


def asked(endpoint: str = "https://subscriber.example/notify", *, heartbeat_s: int | None = None,
          org_identifier: str | None = None, headers: tuple[str, ...] = ("Authorization: Bearer s3cret",)
          ) -> SubscriptionRequest:
    return SubscriptionRequest(channel=Channel(endpoint=endpoint, headers=headers, heartbeat_period_s=heartbeat_s),
                               reason="results of pended requests", org_identifier=org_identifier)


def pas_bundle(request_id: str) -> dict[str, Any]:
    """A request's PAS response Bundle, an approval (the fakes' Results hand it out as is); its
    identifier's value is the request id, so that tests tell the requests apart."""
    request = complete_bundle()
    command = pas_request_to_command(request, ORG_A)
    assert isinstance(command, intake_pb2.SubmitRequestRequest)
    bundle = pas_response_bundle(request, view_for(command, {"action": A1, "units": 1, "auth": "UR27-AAAA-0001"}))
    bundle["identifier"]["value"] = request_id
    return bundle


class World:
    """The fakes wired together: a store, a clock, an endpoint, the three use cases."""

    def __init__(self, wait_s: float = 0.2) -> None:
        self.store = SubscriptionsStore()
        self.clock = Clock()
        self.endpoint = FakeEndpoint(self.clock)
        self.pauses: list[float] = []
        self.service = SubscriptionService(self.store.unit_of_work, clock=self.clock)
        self.recorder = NotificationRecorder(self.store.unit_of_work, clock=self.clock, pause=self.pauses.append,
                                             wait_s=wait_s, poll_s=0.05)
        self.deliverer = Deliverer(self.store.unit_of_work, self.endpoint, clock=self.clock, hold_s=120)

    def request(self, submitter: str = ORG_A, *, lines: int = 1, npi: str = NPI_A, pas: bool = True,
                authorized: dict[int, str] | None = None) -> str:
        request_id = str(uuid.uuid4())
        self.store.requests[request_id] = RequestFacts(
            request_id=request_id, submitter=submitter, requesting_npi=npi,
            line_numbers=frozenset(range(1, lines + 1)), authorized=authorized or {}, pas=pas)
        if pas:
            self.store.bundles[request_id] = pas_bundle(request_id)
        return request_id

    def authorize(self, request_id: str, determination_id: str, *lines: int) -> None:
        facts = self.store.requests[request_id]
        self.store.requests[request_id] = RequestFacts(
            request_id=request_id, submitter=facts.submitter, requesting_npi=facts.requesting_npi,
            line_numbers=facts.line_numbers, authorized={**facts.authorized, **dict.fromkeys(lines,
                                                                                             determination_id)},
            pas=facts.pas)

    def deliver(self, passes: int = 5) -> int:
        """Run delivery passes at the current time until one sends nothing (at most ``passes``)."""
        sent = 0
        for _ in range(passes):
            n = self.deliverer.run_once()
            sent += n
            if n == 0:
                break
        return sent

    def decide(self, request_id: str, *actions: types_pb2.ActionCode.ValueType) -> IncomingEvent:
        """A determination of the request, recorded: its certified lines already carry their
        authorizations in intake's records (the AuthorizationsIssued came first)."""
        event = determination(request_id, *actions)
        certified = [n for n, a in enumerate(actions, 1) if a in CERTIFIED]
        if certified:
            self.authorize(request_id, determination_id_of(event), *certified)
        self.consume(event)
        return event

    def consume(self, *events: IncomingEvent, applied: bool = True) -> None:
        """Hand a batch to the recorder; ``applied``: intake has applied the events first."""
        if applied:
            self.store.applied.update(e.event_id for e in events)
        self.recorder.handle_batch(list(events))


def determination(request_id: str, *actions: types_pb2.ActionCode.ValueType, determination_id: str | None = None,
                  event_id: str | None = None, lines: Iterable[int] | None = None) -> IncomingEvent:
    det = types_pb2.Determination(request_id=request_id, determination_id=determination_id or str(uuid.uuid4()))
    for number, action in zip(lines or range(1, len(actions) + 1), actions, strict=True):
        det.lines.add(line_number=number, procedure_code="72148", action_code=action,
                      queued_for_review=action == A4)
    message = events_pb2.DeterminationMade(determination=det)
    return IncomingEvent(event_id=event_id or str(uuid.uuid4()), event_type="ur.events.v1.DeterminationMade",
                         schema_version="1", key=request_id, message=message, topic="t.review.determination-made.v1",
                         partition=0, offset=0)


def authorizations(request_id: str, determination_id: str, event_id: str | None = None) -> IncomingEvent:
    message = events_pb2.AuthorizationsIssued(request_id=request_id, determination_id=determination_id)
    return IncomingEvent(event_id=event_id or str(uuid.uuid4()), event_type="ur.events.v1.AuthorizationsIssued",
                         schema_version="1", key=request_id, message=message,
                         topic="t.authorization.authorizations-issued.v1", partition=0, offset=0)


def determination_id_of(event: IncomingEvent) -> str:
    message = event.message
    assert isinstance(message, events_pb2.DeterminationMade)
    return str(message.determination.determination_id)
