"""The delivery state machine on fakes: handshake first, event notifications in order, retries on
the backoff schedule while the endpoint is down (nothing lost, nothing sent twice), heartbeats
after the period, the status a subscriber reads. Time is the fake clock's."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from fhir.resources.R4B.bundle import Bundle

from services.intake.interop.subscriptions.domain.model import (
    PAS_TOPIC,
    Backoff,
    Kind,
    NotificationState,
    Status,
    Subscription,
    after_failure,
    after_success,
    new_subscription,
    next_delivery,
)
from tests.unit.interop.subscription_fixtures import A1, A3, ORG_A, World, asked

T = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    backoff = Backoff(first_s=5, max_s=300)
    assert [backoff.delay(n).total_seconds() for n in range(0, 9)] == [0, 5, 10, 20, 40, 80, 160, 300, 300]
    assert backoff.delay(10_000).total_seconds() == 300  # months of failures: no overflow


def test_a_new_subscription_is_requested_and_owes_its_handshake_first() -> None:
    sub = new_subscription("s1", ORG_A, asked(heartbeat_s=60), T)
    assert sub.status is Status.REQUESTED
    assert next_delivery(sub, None, T) is Kind.HANDSHAKE
    done = after_success(sub, Kind.HANDSHAKE, T, more_pending=False)
    assert done.status is Status.ACTIVE
    assert done.due_at == T + dt.timedelta(seconds=60)  # idle until its heartbeat
    assert next_delivery(done, None, T + dt.timedelta(seconds=59)) is None
    assert next_delivery(done, None, T + dt.timedelta(seconds=60)) is Kind.HEARTBEAT


def test_failures_back_off_and_the_next_success_clears_them() -> None:
    sub = new_subscription("s1", ORG_A, asked(), T)
    backoff = Backoff(first_s=2, max_s=60)
    failed = after_failure(sub, T, "connection refused", backoff)
    assert (failed.status, failed.failures, failed.error) == (Status.ERROR, 1, "connection refused")
    assert failed.due_at == T + dt.timedelta(seconds=2)
    assert next_delivery(failed, None, T + dt.timedelta(seconds=1)) is None
    again = after_failure(failed, T + dt.timedelta(seconds=2), "connection refused", backoff)
    assert again.due_at == T + dt.timedelta(seconds=6)
    ok = after_success(again, Kind.HANDSHAKE, T + dt.timedelta(seconds=6), more_pending=True)
    assert (ok.status, ok.failures, ok.error, ok.due_at) == (Status.ACTIVE, 0, "", T + dt.timedelta(seconds=6))


def _subscribe(world: World, **kwargs: object) -> Subscription:
    sub = world.service.create(ORG_A, asked(**kwargs))  # type: ignore[arg-type]
    assert world.deliver() == 1  # the handshake
    return sub


def test_the_handshake_then_the_notification_carrying_the_pas_response() -> None:
    world = World()
    sub = world.service.create(ORG_A, asked())
    world.deliver()
    [handshake] = world.endpoint.received
    assert handshake.kind == "handshake"
    assert handshake.headers == [("Content-Type", "application/fhir+json"), ("Authorization", "Bearer s3cret")]
    request_id = world.request()
    world.decide(request_id, A1)
    assert world.deliver() == 1
    [notification] = world.endpoint.of_kind("event-notification")
    bundle = notification.body
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    status, focus = bundle["entry"]
    params = {p["name"]: p for p in status["resource"]["parameter"]}
    assert status["resource"]["resourceType"] == "Parameters"
    assert params["subscription"]["valueReference"] == {"reference": f"Subscription/{sub.subscription_id}"}
    assert params["topic"]["valueCanonical"] == PAS_TOPIC
    assert params["status"]["valueCode"] == "active"
    assert params["events-since-subscription-start"]["valueString"] == "1"
    event = {p["name"]: p for p in params["notification-event"]["part"]}
    assert event["event-number"]["valueString"] == "1"
    assert event["focus"]["valueReference"]["reference"] == focus["fullUrl"]
    assert focus["resource"]["resourceType"] == "Bundle"
    assert focus["resource"]["identifier"]["value"] == request_id  # the PAS response Bundle, whole
    assert focus["resource"]["entry"][0]["resource"]["resourceType"] == "ClaimResponse"
    assert world.service.get(ORG_A, sub.subscription_id).status is Status.ACTIVE


def test_endpoint_down_retries_on_the_backoff_schedule_then_delivers_once() -> None:
    world = World()
    world.deliverer = type(world.deliverer)(world.store.unit_of_work, world.endpoint, clock=world.clock,
                                            backoff=Backoff(first_s=5, max_s=40))
    _subscribe(world)
    world.endpoint.down = True
    request_id = world.request()
    world.decide(request_id, A1)
    start = world.clock()
    # A minute and a half of outage, looked at every second: attempts only when the backoff says.
    for _ in range(90):
        world.deliver()
        world.clock.advance(1)
    offsets = [(a - start).total_seconds() for a in world.endpoint.attempts[1:]]
    assert offsets == [0, 5, 15, 35, 75]  # 5, 10, 20, 40, then capped at 40
    status = world.service.get(ORG_A, world.service.search(ORG_A)[0].subscription_id)
    assert status.status is Status.ERROR
    assert status.error == "connection refused"
    assert world.endpoint.of_kind("event-notification") == []
    world.endpoint.down = False
    world.clock.advance(60)
    world.deliver()
    for _ in range(5):  # more passes change nothing
        world.clock.advance(30)
        world.deliver()
    [delivered] = world.endpoint.of_kind("event-notification")
    assert delivered.event_number == 1
    assert world.service.search(ORG_A)[0].status is Status.ACTIVE


def test_notifications_go_in_event_order_one_at_a_time() -> None:
    world = World()
    _subscribe(world)
    world.endpoint.down = True
    requests = [world.request() for _ in range(3)]
    for request_id in requests:
        world.decide(request_id, A3)
    world.deliver()
    world.endpoint.down = False
    world.clock.advance(3600)
    world.deliver(passes=10)
    got = world.endpoint.of_kind("event-notification")
    assert [r.event_number for r in got] == [1, 2, 3]
    assert [r.body["entry"][1]["resource"]["identifier"]["value"] for r in got] == requests


def test_heartbeats_come_every_period_when_nothing_else_is_sent() -> None:
    world = World()
    _subscribe(world, heartbeat_s=60)
    world.clock.advance(59)
    world.deliver()
    assert world.endpoint.of_kind("heartbeat") == []
    world.clock.advance(1)
    world.deliver()
    assert len(world.endpoint.of_kind("heartbeat")) == 1
    # A notification resets the period: the next heartbeat is 60 s after it.
    world.clock.advance(30)
    world.decide(world.request(), A1)
    world.deliver()
    world.clock.advance(59)
    world.deliver()
    assert len(world.endpoint.of_kind("heartbeat")) == 1
    world.clock.advance(1)
    world.deliver()
    beats = world.endpoint.of_kind("heartbeat")
    assert len(beats) == 2
    params = {p["name"]: p for p in beats[-1].body["entry"][0]["resource"]["parameter"]}
    assert params["events-since-subscription-start"]["valueString"] == "1"
    assert "notification-event" not in params
    assert len(beats[-1].body["entry"]) == 1
    Bundle.model_validate(beats[-1].body)


def test_no_heartbeat_without_a_period() -> None:
    world = World()
    _subscribe(world)
    world.clock.advance(86_400)
    world.deliver()
    assert [r.kind for r in world.endpoint.received] == ["handshake"]


def test_a_redelivered_event_is_recorded_once_and_sent_once() -> None:
    world = World()
    _subscribe(world)
    event = world.decide(world.request(), A1)
    world.consume(event)  # Kafka delivers at least once
    world.deliver()
    world.consume(event)
    world.deliver()
    assert len(world.endpoint.of_kind("event-notification")) == 1
    [notification] = world.store.notifications.values()
    assert notification.state is NotificationState.DELIVERED


def test_a_leased_subscription_is_not_claimed_twice() -> None:
    world = World()
    _subscribe(world)
    world.decide(world.request(), A1)
    first = world.deliverer.claim()
    assert [d.kind for d in first] == [Kind.EVENT]
    assert world.deliverer.claim() == []  # another deliverer (or the next pass) keeps off
    assert world.deliverer.attempt(first[0])
    assert world.deliverer.claim() == []


def test_an_abandoned_lease_expires_and_the_attempt_is_made_again() -> None:
    world = World()
    _subscribe(world)
    world.decide(world.request(), A1)
    [claimed] = world.deliverer.claim()  # and the deliverer dies here
    world.clock.advance(claimed.subscription.channel.timeout_s + 31)
    world.deliver()
    assert len(world.endpoint.of_kind("event-notification")) == 1


def test_a_deleted_subscription_is_owed_nothing_more() -> None:
    world = World()
    sub = _subscribe(world)
    world.endpoint.down = True
    world.decide(world.request(), A1)
    world.deliver()
    world.service.delete(ORG_A, sub.subscription_id)
    world.endpoint.down = False
    world.clock.advance(3600)
    world.deliver()
    assert world.endpoint.of_kind("event-notification") == []
    assert world.store.notifications == {}


def test_a_subscription_past_its_end_turns_off_and_is_sent_nothing() -> None:
    world = World()
    sub = world.service.create(ORG_A, asked())
    world.store.subscriptions[sub.subscription_id] = replace(sub, end=world.clock() + dt.timedelta(seconds=10))
    world.deliver()
    world.clock.advance(10)
    world.decide(world.request(), A1)
    world.deliver()
    assert world.service.get(ORG_A, sub.subscription_id).status is Status.OFF
    assert world.endpoint.of_kind("event-notification") == []


@pytest.mark.parametrize("code", ["connection refused", "HTTP 503 Service Unavailable"])
def test_a_failed_handshake_is_retried_and_events_wait_behind_it(code: str) -> None:
    world = World()
    world.endpoint.down = True
    world.service.create(ORG_A, asked())
    world.deliver()
    world.decide(world.request(), A1)
    world.deliver()
    assert world.service.search(ORG_A)[0].status is Status.ERROR
    world.endpoint.down = False
    world.clock.advance(5)
    world.deliver()
    assert [r.kind for r in world.endpoint.received] == ["handshake", "event-notification"]


def test_delivered_notifications_are_forgotten_after_the_keep_period() -> None:
    world = World()
    _subscribe(world)
    world.decide(world.request(), A1)
    world.deliver()
    assert world.deliverer.prune() == 0
    world.clock.advance(31 * 86_400)
    assert world.deliverer.prune() == 1
    assert world.store.notifications == {}
