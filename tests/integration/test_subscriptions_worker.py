"""The subscription worker on PostgreSQL and the real Kafka broker, with a subscriber's HTTP endpoint
on a local port: an approval consumed from Kafka (twice, as at-least-once delivery may), applied by
intake's own handler, reaches the endpoint once, with its authorization number, after the endpoint
was down while it was decided; a pend notifies nobody."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence

import pytest
from kafka import KafkaProducer
from sqlalchemy import Connection
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.intake.v1 import intake_pb2

from services.common import migrations
from services.common.clock import utcnow
from services.common.db import make_engine
from services.common.events import IncomingEvent
from services.common.settings import IntakeSettings
from services.common.topics import Topics
from services.intake.adapters import tables
from services.intake.adapters.repository import SqlIntakeUnitOfWork
from services.intake.domain.model import RequestStatus
from services.intake.domain.records import LineRecord
from services.intake.interop.pas.request import pas_request_to_command
from services.intake.interop.subscriptions import bootstrap
from services.intake.interop.subscriptions.adapters.results import PasSubmission
from services.intake.interop.subscriptions.domain.model import Channel, Status, SubscriptionRequest
from services.intake.service_layer.handlers import IntakeHandlers, Waiters
from tests.polling import wait_until
from tests.subscriber import Subscriber
from tests.unit.interop.pas_fixtures import complete_bundle
from tests.unit.interop.subscription_fixtures import intake_record

pytestmark = pytest.mark.integration

ORG = "org-lone-star-imaging"


class Intake:
    """Intake's side: its database (migrated), a request submitted as a PAS Bundle, and its own
    handler applying the events (what intake's consumer does)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.engine = make_engine(url)
        migrations.upgrade("intake", self.engine)
        self.handlers = IntakeHandlers(self.uow, Topics(prefix), Waiters(), clock=utcnow)
        self.bundles: dict[str, PasSubmission] = {}

    def uow(self) -> SqlIntakeUnitOfWork:
        return SqlIntakeUnitOfWork(self.engine, tables.outbox, tables.processed_events)

    def submissions(self, _conn: Connection, request_ids: Sequence[str]) -> dict[str, PasSubmission]:
        return {r: self.bundles[r] for r in request_ids if r in self.bundles}

    def submit(self) -> str:
        request_id = str(uuid.uuid4())
        bundle = complete_bundle()
        command = pas_request_to_command(bundle, ORG)
        assert isinstance(command, intake_pb2.SubmitRequestRequest), command
        with self.uow() as uow:
            uow.requests.add(intake_record(
                ORG,
                request_id=request_id, idempotency_key=command.idempotency_key + request_id[:8],
                fingerprint="f" * 64, member_id=command.member_id, line_of_business="medicare_advantage",
                member_state="TX", urgency="standard", review_type="prospective", status=RequestStatus.IN_REVIEW,
                status_reason="", received_at=utcnow(), payload=command.SerializeToString(),
                lines=(LineRecord(1, "72148"),)))
            uow.commit()
        self.bundles[request_id] = PasSubmission(ORG, json.dumps(bundle).encode())
        return request_id

    def apply(self, event_id: str, message: events_pb2.DeterminationMade | events_pb2.AuthorizationsIssued) -> None:
        self.handlers.handle_batch([IncomingEvent(event_id=event_id, event_type=message.DESCRIPTOR.full_name,
                                                  schema_version="1", key="", message=message, topic="",
                                                  partition=0, offset=0)])


def _date(day: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=day.year, month=day.month, day=day.day)


def determination(request_id: str, action: types_pb2.ActionCode.ValueType) -> events_pb2.DeterminationMade:
    det = types_pb2.Determination(request_id=request_id, determination_id=str(uuid.uuid4()))
    det.decided_by.CopyFrom(types_pb2.DeciderRef(id="rn-alvarez", role="nurse", name="Rita Alvarez",
                                                 credential="RN, licensed in TX"))
    det.decided_at.FromDatetime(utcnow())
    line = det.lines.add(line_number=1, procedure_code="72148", action_code=action,
                         queued_for_review=action == types_pb2.ACTION_CODE_PENDED)
    if action == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL:
        line.approved_units = 1
        line.approved_start.CopyFrom(_date(dt.date(2026, 3, 2)))
        line.approved_end.CopyFrom(_date(dt.date(2026, 5, 31)))
    line.decided_by.CopyFrom(det.decided_by)
    line.decided_at.CopyFrom(det.decided_at)
    return events_pb2.DeterminationMade(determination=det)


def authorizations(made: events_pb2.DeterminationMade, number: str) -> events_pb2.AuthorizationsIssued:
    det = made.determination
    auth = types_pb2.Authorization(authorization_number=number, request_id=det.request_id, line_number=1,
                                   procedure_code="72148", units=1, status=types_pb2.AUTHORIZATION_STATUS_APPROVED,
                                   determination_id=det.determination_id)
    auth.valid_from.CopyFrom(_date(dt.date(2026, 3, 2)))
    auth.valid_to.CopyFrom(_date(dt.date(2026, 5, 31)))
    auth.issued_at.FromDatetime(utcnow())
    return events_pb2.AuthorizationsIssued(request_id=det.request_id, determination_id=det.determination_id,
                                           authorizations=[auth])


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    s = Subscriber()
    s.up()
    yield s
    s.close()


def test_an_approval_reaches_the_endpoint_once_after_it_comes_back(
        make_database: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str, subscriber: Subscriber,
        make_topics: Callable[[Iterable[str], int], None]) -> None:
    intake = Intake(make_database("intake"), topic_prefix)
    settings = IntakeSettings(database_url=intake.engine.url.render_as_string(hide_password=False),
                              topic_prefix=topic_prefix, kafka_bootstrap_servers=kafka_bootstrap,
                              topic_partitions=3, subscriptions_retry_first_s=0.2, subscriptions_retry_max_s=1.0,
                              subscriptions_poll_s=0.1, subscriptions_metrics_listen="off")
    make_topics(settings.topics.all(), 3)  # as the services make them (broker time stamps under time travel)
    worker = bootstrap.build_worker(settings, submissions=intake.submissions, schema_wait_s=10)
    service = bootstrap.subscription_service(worker.engine, submissions=intake.submissions)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    topics = settings.topics

    def publish(topic: str, event_id: str, message: events_pb2.DeterminationMade | events_pb2.AuthorizationsIssued,
                key: str) -> None:
        producer.send(topic, key=key.encode(), value=message.SerializeToString(),
                      headers=[("event-type", message.DESCRIPTOR.full_name.encode()), ("event-id", event_id.encode()),
                               ("schema-version", b"1")])
        producer.flush()

    worker.start()
    try:
        sub = service.create(ORG, SubscriptionRequest(
            channel=Channel(subscriber.url, ("Authorization: Bearer subscriber-secret",)), reason="pended results"))
        wait_until(lambda: subscriber.of_kind("handshake"), 30, what="the handshake")
        assert subscriber.received[0].headers["authorization"] == "Bearer subscriber-secret"

        # A pend notifies nobody; then the endpoint goes down and a nurse approves.
        pended_request = intake.submit()
        pend = determination(pended_request, types_pb2.ACTION_CODE_PENDED)
        publish(topics.determination_made, "pend-1", pend, pended_request)
        intake.apply("pend-1", pend)
        subscriber.down()
        request_id = intake.submit()
        approval = determination(request_id, types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL)
        issued = authorizations(approval, "UR27-SUBS-0001")
        approval_id, issued_id = str(uuid.uuid4()), str(uuid.uuid4())
        publish(topics.determination_made, approval_id, approval, request_id)
        publish(topics.determination_made, approval_id, approval, request_id)  # delivered twice
        intake.apply(approval_id, approval)
        publish(topics.authorizations_issued, issued_id, issued, request_id)
        intake.apply(issued_id, issued)

        def status() -> Status:
            return service.get(ORG, sub.subscription_id).status

        wait_until(status, 60, what="deliveries to fail while the endpoint is down",
                   until=lambda s: s is Status.ERROR)
        assert subscriber.of_kind("event-notification") == []
        subscriber.up()
        [notification] = wait_until(lambda: subscriber.of_kind("event-notification"), 60,
                                    what="the approval's notification")
        assert notification.action_codes() == ["A1"]
        assert notification.numbers() == ["UR27-SUBS-0001"]
        assert notification.focus()["identifier"]["value"] == "B-1"  # the submitter's own Bundle identifier
        wait_until(status, 30, what="the subscription to be active again", until=lambda s: s is Status.ACTIVE)
        with bootstrap.unit_of_work(worker.engine, intake.submissions)().read_only() as uow:
            owed = uow.notifications.of_subscription(sub.subscription_id)
        assert [(n.request_id, n.event_number, n.state.value) for n in owed] == [(request_id, 1, "delivered")]
        assert len(subscriber.of_kind("event-notification")) == 1
    finally:
        producer.close()
        worker.stop()
        intake.engine.dispose()
