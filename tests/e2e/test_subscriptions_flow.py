"""FHIR Subscriptions end to end: the services, the FHIR door and the subscription worker as
processes on PostgreSQL and Kafka. The sample clinic subscribes once at the door (``POST
[base]/Subscription`` with its bearer token); a ``$submit`` needing a nurse is answered pended (A4);
the clinic's endpoint is down (refusing connections) for a minute while the nurse approves; when it
comes back it receives the notification with A1 and the authorization number, exactly once, and the
subscription reads active again. The other submitter can neither see nor delete the clinic's
subscription."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from ur.review.v1 import review_pb2

from services.cli.platform import SUBSCRIPTIONS, Platform
from services.common.db import make_engine
from services.intake.interop.pas.response import action_codes
from services.intake.interop.subscriptions import bootstrap
from services.intake.interop.subscriptions.domain.model import PAS_TOPIC
from services.intake.interop.subscriptions.resource import EXT_CONTENT
from tests.e2e.conftest import Clients, start_platform
from tests.e2e.test_fhir_door import (
    CLEARINGHOUSE,
    CLINIC,
    FHIR_JSON,
    Door,
    authorization_number,
    request_id,
    unique,
    via_fhir,
)
from tests.e2e.test_reviewer_flow import NURSE, claim
from tests.polling import wait_until
from tests.subscriber import Subscriber
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e

#: How long the endpoint stays down while the nurse decides.
OUTAGE_S = 60.0


class SubscribingDoor(Door):
    """The door as a subscriber's EHR uses it."""

    def subscribe(self, endpoint: str, who: str = CLINIC[0]) -> httpx.Response:
        resource = {"resourceType": "Subscription", "status": "requested", "reason": "pended PAS results",
                    "criteria": PAS_TOPIC,
                    "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON,
                                "_payload": {"extension": [{"url": EXT_CONTENT, "valueCode": "full-resource"}]},
                                "header": ["Authorization: Bearer from-the-ehr"]}}
        return self.post("/Subscription", resource, who)

    def get(self, path: str, who: str = CLINIC[0]) -> httpx.Response:
        return self.http.get(f"{self.base}{path}", headers={"authorization": f"Bearer {self.tokens[who]}"})

    def status(self, subscription_id: str) -> str:
        reply = self.get(f"/Subscription/{subscription_id}")
        assert reply.status_code == 200, reply.text
        return str(reply.json()["status"])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[str], str],
            kafka_bootstrap: str) -> Iterator[tuple[Platform, SubscribingDoor]]:
    door_url = make_database("fhir")
    platform = start_platform(tmp_path_factory.mktemp("subscriptions"), make_database, kafka_bootstrap,
                              new_topic_prefix(), extra_env={
                                  "UR_INTAKE_SUBSCRIPTIONS_RETRY_FIRST_S": "1",
                                  "UR_INTAKE_SUBSCRIPTIONS_RETRY_MAX_S": "8",
                                  "UR_INTAKE_SUBSCRIPTIONS_POLL_S": "0.2",
                                  # The test's endpoint is plain HTTP on this machine.
                                  "UR_INTAKE_SUBSCRIPTIONS_PLAIN_HTTP": "true"})
    try:
        base = platform.start_fhir(port=0, database_url=door_url)
        platform.start_subscriptions(fhir_database_url=door_url)
        door = SubscribingDoor(platform, base, door_url, platform.database_urls["intake"])
        yield platform, door
        door.http.close()
    finally:
        platform.stop()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    s = Subscriber()
    s.up()
    yield s
    s.close()


def test_the_capability_statement_offers_the_subscription_topic(running: tuple[Platform, SubscribingDoor]) -> None:
    _, door = running
    reply = door.http.get(f"{door.base}/metadata")
    CapabilityStatement.model_validate(reply.json())
    [entry] = [r for r in reply.json()["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert entry["extension"][0]["valueCanonical"] == PAS_TOPIC


def test_a_pended_request_decided_while_the_endpoint_is_down_arrives_once_with_a1(
        running: tuple[Platform, SubscribingDoor], subscriber: Subscriber) -> None:
    platform, door = running
    clients = Clients(platform)
    try:
        created = door.subscribe(subscriber.url)
        assert created.status_code == 201, created.text
        subscription_id = str(created.json()["id"])
        wait_until(lambda: subscriber.of_kind("handshake"), 60, what="the handshake")
        wait_until(lambda: door.status(subscription_id), 30, what="the handshake to make the subscription active",
                   until=lambda s: s == "active")
        # The other submitter: the clinic's subscription does not exist for it.
        assert door.get(f"/Subscription/{subscription_id}", CLEARINGHOUSE[0]).status_code == 404
        reply = door.http.delete(f"{door.base}/Subscription/{subscription_id}",
                                 headers={"authorization": f"Bearer {door.tokens[CLEARINGHOUSE[0]]}"})
        assert reply.status_code == 404
        assert door.get("/Subscription", CLEARINGHOUSE[0]).json().get("entry", []) == []

        answer = door.submit(via_fhir(meets=False, transaction=unique("subs")))
        assert action_codes(answer) == {1: "A4"}
        rid = request_id(answer)

        subscriber.down()
        down_since = time.monotonic()
        task = claim(clients, NURSE, rid)
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
        focus: dict[str, Any] = notification.focus()
        assert request_id(focus) == rid
        assert action_codes(focus) == {1: "A1"}
        assert authorization_number(focus)
        assert notification.numbers() == [authorization_number(focus)]
        wait_until(lambda: door.status(subscription_id), 30, what="the subscription to be active again",
                   until=lambda s: s == "active")
        engine = make_engine(platform.database_urls["intake"])
        try:
            with bootstrap.unit_of_work(engine)().read_only() as uow:
                owed = uow.notifications.of_subscription(subscription_id)
        finally:
            engine.dispose()
        assert [(n.request_id, n.event_number, n.state.value) for n in owed] == [(rid, 1, "delivered")]
        assert len(subscriber.of_kind("event-notification")) == 1
        assert platform.procs[SUBSCRIPTIONS].poll() is None
        status = door.get(f"/Subscription/{subscription_id}/$status").json()
        params = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
        assert params["events-since-subscription-start"]["valueString"] == "1"
        assert params["status"]["valueCode"] == "active"
    finally:
        clients.close()
