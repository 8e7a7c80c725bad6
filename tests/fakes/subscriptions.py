"""The subscription ports in memory (``services/intake/interop/subscriptions/service_layer/ports.py``),
a clock the tests move, and a rest-hook endpoint the tests switch off and on."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from services.common.errors import DuplicateKey
from services.intake.interop.subscriptions.domain.events import RequestFacts
from services.intake.interop.subscriptions.domain.model import (
    Notification,
    NotificationState,
    Release,
    Status,
    Subscription,
)
from services.intake.interop.subscriptions.service_layer import ports
from tests.fakes.common import FakeStore, FakeUnitOfWork

T0 = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


class SubscriptionsStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, Subscription] = {}
        self.notifications: dict[int, Notification] = {}
        # Intake's side, as the Results port reads it:
        self.requests: dict[str, RequestFacts] = {}
        self.applied: set[str] = set()  # event ids intake has applied
        self.bundles: dict[str, dict[str, Any]] = {}  # request id → its PAS response Bundle now

    def unit_of_work(self) -> FakeSubscriptionsUnitOfWork:
        return FakeSubscriptionsUnitOfWork(self)


class FakeSubscriptionRepository(ports.SubscriptionRepository):
    def __init__(self, store: SubscriptionsStore) -> None:
        self.store = store

    def add(self, sub: Subscription) -> None:
        if sub.subscription_id in self.store.subscriptions:
            raise DuplicateKey(f"subscription {sub.subscription_id}")
        self.store.subscriptions[sub.subscription_id] = sub

    def get(self, subscription_id: str, *, for_update: bool = False) -> Subscription | None:
        return self.store.subscriptions.get(subscription_id)

    def _sorted(self, subs: list[Subscription]) -> list[Subscription]:
        return sorted(subs, key=lambda s: (s.created_at, s.subscription_id))

    def of_owner(self, owner: str) -> list[Subscription]:
        return self._sorted([s for s in self.store.subscriptions.values() if s.owner == owner])

    def of_owners(self, owners: Sequence[str]) -> list[Subscription]:
        return self._sorted([s for s in self.store.subscriptions.values()
                             if s.owner in owners and s.status is not Status.OFF])

    def replace(self, sub: Subscription) -> None:
        current = self.store.subscriptions.get(sub.subscription_id)
        if current is not None:
            self.store.subscriptions[sub.subscription_id] = replace(sub,
                                                                    events_since_start=current.events_since_start)

    def set_delivery(self, sub: Subscription) -> None:
        current = self.store.subscriptions.get(sub.subscription_id)
        if current is not None:
            self.store.subscriptions[sub.subscription_id] = replace(
                current, status=sub.status, handshake_at=sub.handshake_at, last_delivered_at=sub.last_delivered_at,
                failures=sub.failures, due_at=sub.due_at, leased_until=sub.leased_until, error=sub.error)

    def delete(self, subscription_id: str) -> None:
        self.store.subscriptions.pop(subscription_id, None)
        for key in [k for k, n in self.store.notifications.items() if n.subscription_id == subscription_id]:
            del self.store.notifications[key]

    def count_events(self, subscription_id: str, n: int) -> int:
        sub = self.store.subscriptions[subscription_id]
        self.store.subscriptions[subscription_id] = replace(sub, events_since_start=sub.events_since_start + n)
        return sub.events_since_start + n

    def wake(self, subscription_ids: Sequence[str], now: dt.datetime) -> None:
        for sid in subscription_ids:
            sub = self.store.subscriptions.get(sid)
            if sub is not None and sub.failures == 0 and (sub.due_at is None or sub.due_at > now):
                self.store.subscriptions[sid] = replace(sub, due_at=now)

    def due(self, now: dt.datetime, limit: int) -> list[Subscription]:
        found = [s for s in self.store.subscriptions.values()
                 if s.status is not Status.OFF and s.due_at is not None and s.due_at <= now
                 and (s.leased_until is None or s.leased_until <= now)]
        return sorted(found, key=lambda s: (s.due_at or now, s.subscription_id))[:limit]

    def turn_off_ended(self, now: dt.datetime) -> int:
        ended = [s for s in self.store.subscriptions.values()
                 if s.status is not Status.OFF and s.end is not None and s.end <= now]
        for sub in ended:
            self.store.subscriptions[sub.subscription_id] = replace(sub, status=Status.OFF, due_at=None)
        return len(ended)


class FakeNotificationRepository(ports.NotificationRepository):
    def __init__(self, store: SubscriptionsStore) -> None:
        self.store = store

    def add(self, notifications: Sequence[Notification]) -> list[Notification]:
        stored = []
        for n in notifications:
            if any(o.subscription_id == n.subscription_id and o.event_id == n.event_id
                   for o in self.store.notifications.values()):
                raise DuplicateKey("a notification of that event for that subscription")
            notification_id = max(self.store.notifications, default=0) + 1
            kept = replace(n, notification_id=notification_id)
            self.store.notifications[notification_id] = kept
            stored.append(kept)
        return stored

    def held(self, request_ids: Sequence[str] = (), created_before: dt.datetime | None = None,
             limit: int = 1000) -> list[Notification]:
        found = [n for n in self.store.notifications.values() if n.state is NotificationState.HELD
                 and (not request_ids or n.request_id in request_ids)
                 and (created_before is None or n.created_at < created_before)]
        return sorted(found, key=lambda n: (n.created_at, n.notification_id))[:limit]

    def release(self, releases: Sequence[Release]) -> None:
        for r in releases:
            n = self.store.notifications[r.notification_id]
            self.store.notifications[r.notification_id] = replace(
                n, state=NotificationState.PENDING, event_number=r.event_number, focus=r.focus,
                released_at=r.released_at)

    def discard(self, notification_ids: Sequence[int]) -> None:
        for notification_id in notification_ids:
            self.store.notifications.pop(notification_id, None)

    def head(self, subscription_id: str) -> Notification | None:
        pending = [n for n in self.store.notifications.values()
                   if n.subscription_id == subscription_id and n.state is NotificationState.PENDING]
        return min(pending, key=lambda n: n.event_number or 0, default=None)

    def delivered(self, notification_id: int, at: dt.datetime) -> None:
        n = self.store.notifications[notification_id]
        self.store.notifications[notification_id] = replace(n, state=NotificationState.DELIVERED, delivered_at=at)

    def of_subscription(self, subscription_id: str) -> list[Notification]:
        return sorted((n for n in self.store.notifications.values() if n.subscription_id == subscription_id),
                      key=lambda n: n.notification_id)

    def prune_delivered(self, before: dt.datetime, limit: int) -> int:
        old = sorted((n for n in self.store.notifications.values() if n.state is NotificationState.DELIVERED
                      and n.delivered_at is not None and n.delivered_at < before),
                     key=lambda n: n.delivered_at or before)[:limit]
        for n in old:
            del self.store.notifications[n.notification_id]
        return len(old)


class FakeResults(ports.Results):
    def __init__(self, store: SubscriptionsStore) -> None:
        self.store = store

    def applied(self, event_ids: Sequence[str]) -> set[str]:
        return {e for e in event_ids if e in self.store.applied}

    def requests(self, request_ids: Sequence[str]) -> dict[str, RequestFacts]:
        return {r: self.store.requests[r] for r in request_ids if r in self.store.requests}

    def response_bundle(self, request_id: str) -> dict[str, Any] | None:
        bundle = self.store.bundles.get(request_id)
        return None if bundle is None else json.loads(json.dumps(bundle))


class FakeSubscriptionsUnitOfWork(FakeUnitOfWork[SubscriptionsStore], ports.SubscriptionsUnitOfWork):
    def _open(self, working: SubscriptionsStore) -> None:
        self.subscriptions = FakeSubscriptionRepository(working)
        self.notifications = FakeNotificationRepository(working)
        self.results = FakeResults(working)


@dataclass
class Received:
    endpoint: str
    headers: list[tuple[str, str]]
    body: dict[str, Any]
    at: dt.datetime

    @property
    def kind(self) -> str:
        status = self.body["entry"][0]["resource"]
        return str(next(p["valueCode"] for p in status["parameter"] if p["name"] == "type"))

    @property
    def event_number(self) -> int | None:
        status = self.body["entry"][0]["resource"]
        for p in status["parameter"]:
            if p["name"] == "notification-event":
                return int(next(part["valueString"] for part in p["part"] if part["name"] == "event-number"))
        return None


@dataclass
class FakeEndpoint(ports.Sender):
    """Subscribers' endpoints: each POST while ``down`` fails (connection refused); otherwise it is
    received. ``attempts`` counts every POST, accepted or not."""

    clock: Clock
    down: bool = False
    received: list[Received] = field(default_factory=list)
    attempts: list[dt.datetime] = field(default_factory=list)

    def post(self, endpoint: str, headers: Sequence[tuple[str, str]], body: bytes, timeout_s: float) -> str | None:
        self.attempts.append(self.clock())
        if self.down:
            return "connection refused"
        self.received.append(Received(endpoint, list(headers), json.loads(body), self.clock()))
        return None

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]
