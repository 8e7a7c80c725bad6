"""FHIR Subscriptions end to end, the services and the subscription worker as processes on
PostgreSQL and Kafka: an organization subscribes through the Subscription routes; its request
needs a nurse (pended, A4); its endpoint is down (refusing connections) for a minute while the nurse
approves; when it comes back it receives the notification with A1 and the authorization number,
exactly once, and the subscription reads active again.

The FHIR door's part (``$submit``: the request to intake as the organization, its PAS Bundle
recorded in the door's database) is played by the test until the door's branch is merged: the
command goes to intake over gRPC and the Bundle into a ``pas_requests`` table like the door's."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import insert
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.cli.platform import SUBSCRIPTIONS, Platform
from services.common.clock import utcnow
from services.common.db import make_engine
from services.intake.adapters.door_store import migrate
from services.intake.adapters.door_tables import pas_requests
from services.intake.entrypoints.fhir_subscriptions import routes
from services.intake.interop.subscriptions import bootstrap
from services.intake.interop.subscriptions.domain.model import PAS_TOPIC
from services.intake.interop.subscriptions.resource import EXT_CONTENT, EndpointPolicy
from tests.e2e.conftest import Clients, start_platform
from tests.e2e.test_reviewer_flow import NURSE, claim
from tests.factories import lumbar_mri
from tests.identity import CLINIC
from tests.polling import wait_until
from tests.subscriber import Subscriber
from tests.topics import new_topic_prefix
from tests.unit.interop.pas_fixtures import complete_bundle

pytestmark = pytest.mark.e2e

#: The submitting organization: the principal the platform's own intake client is (intake records it as
#: the request's submitter), as the door would call intake on the organization's behalf.
ORG = CLINIC
#: How long the endpoint stays down while the nurse decides.
OUTAGE_S = 60.0


class Door:
    """What the FHIR door does for this flow: the Subscription routes on intake's database (as the
    door mounts them, the organization authenticated), and ``$submit``'s two effects."""

    def __init__(self, platform: Platform, clients: Clients, door_url: str) -> None:
        self.clients = clients
        self.intake = make_engine(platform.database_urls["intake"])
        self.door = make_engine(door_url)
        migrate(self.door)  # the door's own database, as the door makes it

        async def organization(request: Request) -> str | None:
            return request.headers.get("x-organization")

        service = bootstrap.subscription_service(self.intake)
        app = Starlette(routes=[Mount("/fhir", routes=routes(service, organization,
                                                             policy=EndpointPolicy(allow_http=True)))])
        self.http = TestClient(app, base_url="http://door.test")

    def subscribe(self, endpoint: str) -> dict[str, object]:
        resource = {"resourceType": "Subscription", "status": "requested", "reason": "pended PAS results",
                    "criteria": PAS_TOPIC,
                    "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                                "_payload": {"extension": [{"url": EXT_CONTENT, "valueCode": "full-resource"}]},
                                "header": ["Authorization: Bearer from-the-ehr"]}}
        answer = self.http.post("/fhir/Subscription", content=json.dumps(resource),
                                headers={"x-organization": ORG, "content-type": "application/fhir+json"})
        assert answer.status_code == 201, answer.text
        created: dict[str, object] = answer.json()
        return created

    def status(self, subscription_id: str) -> str:
        answer = self.http.get(f"/fhir/Subscription/{subscription_id}", headers={"x-organization": ORG})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    def submit_needing_a_nurse(self) -> str:
        command = lumbar_mri(meets=False)
        command.wait_ms = 3000
        reply = self.clients.intake.SubmitRequest(command, timeout=30)
        request_id = str(reply.request.request_id)
        bundle = complete_bundle("72148")
        with self.door.begin() as conn:
            conn.execute(insert(pas_requests).values(request_id=request_id, submitter=ORG, recorded_at=utcnow(),
                                                   bundle=zlib.compress(json.dumps(bundle).encode())))
        return request_id

    def close(self) -> None:
        self.http.close()
        self.intake.dispose()
        self.door.dispose()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[str], str],
            kafka_bootstrap: str) -> Iterator[tuple[Platform, str]]:
    door_url = make_database("fhir")
    platform = start_platform(tmp_path_factory.mktemp("subscriptions"), make_database, kafka_bootstrap,
                              new_topic_prefix(), extra_env={
                                  "UR_FHIR_DATABASE_URL": door_url,
                                  "UR_INTAKE_SUBSCRIPTIONS_RETRY_FIRST_S": "1",
                                  "UR_INTAKE_SUBSCRIPTIONS_RETRY_MAX_S": "8",
                                  "UR_INTAKE_SUBSCRIPTIONS_POLL_S": "0.2"})
    try:
        platform.start_subscriptions()
        yield platform, door_url
    finally:
        platform.stop()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    s = Subscriber()
    s.up()
    yield s
    s.close()


def test_a_pended_request_decided_while_the_endpoint_is_down_arrives_once_with_a1(
        running: tuple[Platform, str], subscriber: Subscriber) -> None:
    platform, door_url = running
    clients = Clients(platform)
    door = Door(platform, clients, door_url)
    try:
        created = door.subscribe(subscriber.url)
        subscription_id = str(created["id"])
        wait_until(lambda: subscriber.of_kind("handshake"), 60, what="the handshake")
        wait_until(lambda: door.status(subscription_id), 30, what="the handshake to make the subscription active",
                   until=lambda s: s == "active")

        request_id = door.submit_needing_a_nurse()
        view = clients.settle(request_id)
        assert view.status == intake_pb2.REQUEST_STATUS_PENDED  # $submit would have answered A4

        subscriber.down()
        down_since = time.monotonic()
        task = claim(clients, NURSE, request_id)
        clients.review.DecideTask(review_pb2.DecideTaskRequest(
            task_id=task.task.task_id, approve=review_pb2.DecideTaskRequest.Approve(note="meets on review")),
            metadata=NURSE, timeout=10)
        wait_until(lambda: door.status(subscription_id), 60, what="delivery to fail while the endpoint is down",
                   until=lambda s: s == "error")
        # The outage lasts a minute: the worker keeps retrying meanwhile (its attempts back off).
        wait_until(lambda: time.monotonic() - down_since, OUTAGE_S + 5, what="a minute of outage",
                   until=lambda s: s >= OUTAGE_S, interval_s=1.0)
        assert subscriber.of_kind("event-notification") == []
        assert door.status(subscription_id) == "error"

        subscriber.up()
        [notification] = wait_until(lambda: subscriber.of_kind("event-notification"), 60,
                                    what="the approval's notification once the endpoint is back")
        assert notification.headers["authorization"] == "Bearer from-the-ehr"
        assert notification.action_codes() == ["A1"]
        auth = clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id),
                                         timeout=10).request.lines[0].authorization
        assert notification.numbers() == [auth.authorization_number]
        wait_until(lambda: door.status(subscription_id), 30, what="the subscription to be active again",
                   until=lambda s: s == "active")
        with bootstrap.unit_of_work(door.intake)().read_only() as uow:
            owed = uow.notifications.of_subscription(subscription_id)
        assert [(n.request_id, n.event_number, n.state.value) for n in owed] == [(request_id, 1, "delivered")]
        assert len(subscriber.of_kind("event-notification")) == 1
        assert platform.procs[SUBSCRIPTIONS].poll() is None
    finally:
        door.close()
        clients.close()
