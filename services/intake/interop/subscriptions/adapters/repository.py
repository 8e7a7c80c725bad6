"""The subscription ports (``service_layer/ports.py``) over a connection to intake's database
(SQLAlchemy Core). Rows become domain values here; a unique-key refusal becomes ``DuplicateKey``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, or_, select, update

from services.common.clock import ensure_utc
from services.common.db import duplicate_keys_raised_as
from services.common.uow import SqlUnitOfWork
from services.intake.adapters import tables as t
from services.intake.interop.subscriptions.adapters.results import PasSubmissions, SqlResults
from services.intake.interop.subscriptions.domain.model import (
    Channel,
    Notification,
    NotificationState,
    Release,
    Status,
    Subscription,
)
from services.intake.interop.subscriptions.service_layer import ports

S = t.fhir_subscriptions
N = t.fhir_notifications


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else ensure_utc(value)


def _subscription(row: Row[Any]) -> Subscription:
    return Subscription(
        subscription_id=row.subscription_id, owner=row.owner, status=Status(row.status), reason=row.reason,
        org_identifier=row.org_identifier,
        channel=Channel(endpoint=row.endpoint, headers=tuple(json.loads(row.headers)),
                        heartbeat_period_s=row.heartbeat_period_s, timeout_s=row.timeout_s),
        end=_utc(row.end_at), created_at=ensure_utc(row.created_at), events_since_start=row.events_since_start,
        handshake_at=_utc(row.handshake_at), last_delivered_at=_utc(row.last_delivered_at), failures=row.failures,
        due_at=_utc(row.due_at), leased_until=_utc(row.leased_until), error=row.error)


def _asked(sub: Subscription) -> dict[str, Any]:
    """The columns its owner decides."""
    return {"reason": sub.reason, "org_identifier": sub.org_identifier, "endpoint": sub.channel.endpoint,
            "headers": json.dumps(list(sub.channel.headers)), "heartbeat_period_s": sub.channel.heartbeat_period_s,
            "timeout_s": sub.channel.timeout_s, "end_at": sub.end}


def _delivery(sub: Subscription) -> dict[str, Any]:
    """The columns delivery decides."""
    return {"status": sub.status.value, "handshake_at": sub.handshake_at, "last_delivered_at": sub.last_delivered_at,
            "failures": sub.failures, "due_at": sub.due_at, "leased_until": sub.leased_until, "error": sub.error}


class SqlSubscriptionRepository(ports.SubscriptionRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, sub: Subscription) -> None:
        with duplicate_keys_raised_as(f"subscription {sub.subscription_id}"):
            self.conn.execute(insert(S).values(subscription_id=sub.subscription_id, owner=sub.owner,
                                               created_at=sub.created_at, events_since_start=sub.events_since_start,
                                               **_asked(sub), **_delivery(sub)))

    def get(self, subscription_id: str, *, for_update: bool = False) -> Subscription | None:
        query = select(S).where(S.c.subscription_id == subscription_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else _subscription(row)

    def of_owner(self, owner: str) -> list[Subscription]:
        rows = self.conn.execute(select(S).where(S.c.owner == owner).order_by(S.c.created_at, S.c.subscription_id))
        return [_subscription(r) for r in rows]

    def of_owners(self, owners: Sequence[str]) -> list[Subscription]:
        if not owners:
            return []
        rows = self.conn.execute(select(S).where(S.c.owner.in_(list(owners)), S.c.status != Status.OFF.value)
                                 .order_by(S.c.created_at, S.c.subscription_id))
        return [_subscription(r) for r in rows]

    def replace(self, sub: Subscription) -> None:
        self.conn.execute(update(S).where(S.c.subscription_id == sub.subscription_id)
                          .values(**_asked(sub), **_delivery(sub)))

    def set_delivery(self, sub: Subscription) -> None:
        self.conn.execute(update(S).where(S.c.subscription_id == sub.subscription_id).values(**_delivery(sub)))

    def delete(self, subscription_id: str) -> None:
        # Explicitly, not by the foreign key's cascade: SQLite applies that only with its pragma on.
        self.conn.execute(delete(N).where(N.c.subscription_id == subscription_id))
        self.conn.execute(delete(S).where(S.c.subscription_id == subscription_id))

    def count_events(self, subscription_id: str, n: int) -> int:
        self.conn.execute(update(S).where(S.c.subscription_id == subscription_id)
                          .values(events_since_start=S.c.events_since_start + n))
        total = self.conn.execute(select(S.c.events_since_start)
                                  .where(S.c.subscription_id == subscription_id)).scalar_one()
        return int(total)

    def wake(self, subscription_ids: Sequence[str], now: dt.datetime) -> None:
        if subscription_ids:
            self.conn.execute(update(S).where(S.c.subscription_id.in_(list(subscription_ids)), S.c.failures == 0,
                                              or_(S.c.due_at.is_(None), S.c.due_at > now)).values(due_at=now))

    def due(self, now: dt.datetime, limit: int) -> list[Subscription]:
        query = (select(S).where(S.c.status != Status.OFF.value, S.c.due_at <= now,
                                 or_(S.c.leased_until.is_(None), S.c.leased_until <= now))
                 .order_by(S.c.due_at, S.c.subscription_id).limit(limit))
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_subscription(r) for r in self.conn.execute(query)]

    def turn_off_ended(self, now: dt.datetime) -> int:
        result = self.conn.execute(update(S).where(S.c.status != Status.OFF.value, S.c.end_at.is_not(None),
                                                   S.c.end_at <= now).values(status=Status.OFF.value, due_at=None))
        return int(result.rowcount)


def _notification(row: Row[Any]) -> Notification:
    return Notification(
        notification_id=row.notification_id, subscription_id=row.subscription_id, event_id=row.event_id,
        request_id=row.request_id, determination_id=row.determination_id, state=NotificationState(row.state),
        created_at=ensure_utc(row.created_at), awaiting=tuple(int(x) for x in row.awaiting.split(",") if x),
        event_number=row.event_number, focus=bytes(row.focus) if row.focus is not None else None,
        released_at=_utc(row.released_at), delivered_at=_utc(row.delivered_at))


class SqlNotificationRepository(ports.NotificationRepository):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, notifications: Sequence[Notification]) -> list[Notification]:
        stored = []
        with duplicate_keys_raised_as("a notification of that event for that subscription"):
            for n in notifications:
                notification_id = self.conn.execute(insert(N).values(
                    subscription_id=n.subscription_id, event_id=n.event_id, request_id=n.request_id,
                    determination_id=n.determination_id, state=n.state.value,
                    awaiting=",".join(str(x) for x in n.awaiting), created_at=n.created_at,
                    event_number=n.event_number, focus=n.focus, released_at=n.released_at,
                    delivered_at=n.delivered_at).returning(N.c.notification_id)).scalar_one()
                stored.append(replace(n, notification_id=int(notification_id)))
        return stored

    def held(self, request_ids: Sequence[str] = (), created_before: dt.datetime | None = None,
             limit: int = 1000) -> list[Notification]:
        query = select(N).where(N.c.state == NotificationState.HELD.value)
        if request_ids:
            query = query.where(N.c.request_id.in_(list(request_ids)))
        if created_before is not None:
            query = query.where(N.c.created_at < created_before)
        query = query.order_by(N.c.created_at, N.c.notification_id).limit(limit)
        if self.conn.dialect.name == "postgresql":
            # A row another releaser holds is skipped: that one releases it (READ COMMITTED would
            # otherwise let both release it, numbering it twice).
            query = query.with_for_update(skip_locked=True)
        return [_notification(r) for r in self.conn.execute(query)]

    def release(self, releases: Sequence[Release]) -> None:
        if releases:
            self.conn.execute(
                update(N).where(N.c.notification_id == bindparam("id_")).values(
                    state=NotificationState.PENDING.value, event_number=bindparam("number"),
                    focus=bindparam("focus_"), released_at=bindparam("at")),
                [{"id_": r.notification_id, "number": r.event_number, "focus_": r.focus, "at": r.released_at}
                 for r in releases])

    def discard(self, notification_ids: Sequence[int]) -> None:
        if notification_ids:
            self.conn.execute(delete(N).where(N.c.notification_id.in_(list(notification_ids))))

    def head(self, subscription_id: str) -> Notification | None:
        row = self.conn.execute(select(N).where(N.c.subscription_id == subscription_id,
                                                N.c.state == NotificationState.PENDING.value)
                                .order_by(N.c.event_number).limit(1)).first()
        return None if row is None else _notification(row)

    def delivered(self, notification_id: int, at: dt.datetime) -> None:
        self.conn.execute(update(N).where(N.c.notification_id == notification_id)
                          .values(state=NotificationState.DELIVERED.value, delivered_at=at))

    def of_subscription(self, subscription_id: str) -> list[Notification]:
        rows = self.conn.execute(select(N).where(N.c.subscription_id == subscription_id)
                                 .order_by(N.c.notification_id))
        return [_notification(r) for r in rows]

    def prune_delivered(self, before: dt.datetime, limit: int) -> int:
        oldest = (select(N.c.notification_id).where(N.c.state == NotificationState.DELIVERED.value,
                                                    N.c.delivered_at < before)
                  .order_by(N.c.delivered_at).limit(limit).scalar_subquery())
        result = self.conn.execute(delete(N).where(N.c.notification_id.in_(oldest)))
        return int(result.rowcount)


class SqlSubscriptionsUnitOfWork(SqlUnitOfWork, ports.SubscriptionsUnitOfWork):
    """The subscription ports on one transaction of intake's database; ``submissions`` finds the
    PAS request Bundles the door stored (see ``adapters/results.py``)."""

    def __init__(self, engine: Engine, submissions: PasSubmissions,
                 after_commit: Callable[[], None] | None = None) -> None:
        super().__init__(engine, t.outbox, t.processed_events, after_commit=after_commit)
        self._submissions = submissions

    def __enter__(self) -> SqlSubscriptionsUnitOfWork:
        super().__enter__()
        self.subscriptions = SqlSubscriptionRepository(self.conn)
        self.notifications = SqlNotificationRepository(self.conn)
        self.results = SqlResults(self.conn, self._submissions)
        return self



def backlog(engine: Engine) -> dict[str, int]:
    """Event notifications owed, by state (held, pending), for the backlog gauge."""
    owed = (NotificationState.HELD.value, NotificationState.PENDING.value)
    with engine.connect() as conn:
        rows = conn.execute(select(N.c.state, func.count()).where(N.c.state.in_(owed)).group_by(N.c.state)).all()
    counts = {state: 0 for state in owed}
    counts.update({row[0]: int(row[1]) for row in rows})
    return counts
