"""Subscriptions to the PAS topic and the delivery of what they are owed, as values and pure rules.

A :class:`Subscription` belongs to the organization that created it (its ``owner``, as the FHIR door
authenticated it) and is owed one notification per determination event that decides a request
that organization submitted. Delivery to its endpoint is a small state machine over the
subscription's delivery columns, decided by :func:`next_delivery`, :func:`after_success` and
:func:`after_failure`:

* the **handshake** goes first (R4 Subscriptions Backport: the subscription is ``requested`` until
  its endpoint has accepted one, then ``active``);
* then the **event notifications**, one at a time in event-number order (the oldest undelivered one
  is the head of the line; later ones wait behind it, so a subscriber sees them in order);
* with nothing to send, a **heartbeat** every ``heartbeat_period`` after the last delivery;
* a failed attempt (refused, timed out, a non-2xx answer) is retried after :meth:`Backoff.delay` of
  the consecutive failures (exponential, capped); the subscription reads ``error`` meanwhile and
  ``active`` again after the next success. Nothing is dropped: the retries go on until the endpoint
  answers, the subscription ends (``end``) or its owner deletes it.

``due_at`` is when the deliverer next has to look at a subscription (``None``: nothing to do until
a notification is recorded for it); it is what the delivery pass selects on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

#: The canonical URL of the Da Vinci PAS subscription topic (Basic-PASSubscriptionTopic.json).
PAS_TOPIC = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic"

#: The longest a failure message is kept (it is shown in the Subscription's ``error``).
MAX_ERROR_CHARS = 300


class Status(StrEnum):
    """Subscription.status (R4): ``requested`` until the handshake is accepted; ``error`` while
    deliveries fail; ``off`` once its ``end`` has passed."""

    REQUESTED = "requested"
    ACTIVE = "active"
    ERROR = "error"
    OFF = "off"


class Kind(StrEnum):
    """The backport's notification types (SubscriptionStatus ``type``)."""

    HANDSHAKE = "handshake"
    HEARTBEAT = "heartbeat"
    EVENT = "event-notification"
    QUERY_STATUS = "query-status"


class NotificationState(StrEnum):
    """A notification is ``held`` while the PAS response it will carry is not complete yet (a
    certified line waiting for its authorization number), ``pending`` once it is (it has its event
    number and its focus), ``delivered`` once the endpoint accepted it."""

    HELD = "held"
    PENDING = "pending"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class Backoff:
    """Delay before retrying a subscription whose last ``failures`` attempts failed: ``first_s``
    doubling (``factor``) per further failure, never more than ``max_s``."""

    first_s: float = 5.0
    max_s: float = 300.0
    factor: float = 2.0

    def delay(self, failures: int) -> dt.timedelta:
        if failures < 1:
            return dt.timedelta(0)
        # The exponent is bounded so that a subscription failing for months does not overflow a float.
        seconds = self.first_s * self.factor ** min(failures - 1, 64)
        return dt.timedelta(seconds=min(seconds, self.max_s))


@dataclass(frozen=True)
class Channel:
    """Where and how notifications are sent: a rest-hook POST of ``application/fhir+json``
    full-resource Bundles to ``endpoint`` with ``headers`` ("Name: value", as the subscriber gave
    them); ``timeout_s`` bounds one attempt."""

    endpoint: str
    headers: tuple[str, ...] = ()
    heartbeat_period_s: int | None = None
    timeout_s: int = 10


@dataclass(frozen=True)
class SubscriptionRequest:
    """What a subscriber asks for (a parsed, checked Subscription resource)."""

    channel: Channel
    reason: str
    #: The orgIdentifier filter (the requesting provider organization's identifier, an NPI), if any.
    org_identifier: str | None = None
    end: dt.datetime | None = None


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    owner: str
    status: Status
    reason: str
    org_identifier: str | None
    channel: Channel
    end: dt.datetime | None
    created_at: dt.datetime
    #: Event notifications released to this subscription so far (the backport's
    #: events-since-subscription-start; the last one's event number).
    events_since_start: int = 0
    handshake_at: dt.datetime | None = None
    last_delivered_at: dt.datetime | None = None
    failures: int = 0
    due_at: dt.datetime | None = None
    #: While an attempt is in flight: others keep off the subscription until then.
    leased_until: dt.datetime | None = None
    error: str = ""

    def matches(self, requesting_npi: str) -> bool:
        """Whether a request from this requester is for this subscription (its owner's requests
        only are ever considered; the orgIdentifier filter narrows them to one requester)."""
        return self.org_identifier is None or self.org_identifier == requesting_npi

    def live(self, now: dt.datetime) -> bool:
        """Still owed notifications: not ``off`` and not past its ``end``."""
        return self.status is not Status.OFF and (self.end is None or now < self.end)


def new_subscription(subscription_id: str, owner: str, request: SubscriptionRequest,
                     now: dt.datetime) -> Subscription:
    """A new subscription: ``requested``, its handshake due at once."""
    return Subscription(subscription_id=subscription_id, owner=owner, status=Status.REQUESTED, reason=request.reason,
                        org_identifier=request.org_identifier, channel=request.channel, end=request.end,
                        created_at=now, due_at=now)


def updated(current: Subscription, request: SubscriptionRequest, now: dt.datetime) -> Subscription:
    """The subscription as its owner replaced it (PUT): what it asks for changes; a new endpoint
    (or headers) gets a new handshake; the events counted so far and what is owed stay."""
    rehandshake = request.channel.endpoint != current.channel.endpoint or \
        request.channel.headers != current.channel.headers or current.status is Status.OFF
    return replace(current, reason=request.reason, org_identifier=request.org_identifier, channel=request.channel,
                   end=request.end, status=Status.REQUESTED if rehandshake else current.status,
                   handshake_at=None if rehandshake else current.handshake_at, failures=0, due_at=now, error="")


@dataclass(frozen=True)
class Notification:
    """An event notification owed to a subscription: recorded (``held`` or ``pending``) with the
    event that caused it, released with its event number and focus (the PAS response Bundle, JSON),
    then delivered. At most one per subscription and event."""

    subscription_id: str
    event_id: str
    request_id: str
    determination_id: str
    state: NotificationState
    created_at: dt.datetime
    #: Held: the certified lines whose authorization the result waits for.
    awaiting: tuple[int, ...] = ()
    notification_id: int = 0  # assigned when stored
    event_number: int | None = None
    focus: bytes | None = None
    released_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None


@dataclass(frozen=True)
class Release:
    """A held (or new) notification made pending: its event number and focus."""

    notification_id: int
    event_number: int
    focus: bytes
    released_at: dt.datetime


@dataclass(frozen=True)
class Delivery:
    """One attempt to make: what to send to which subscription (as it stood when claimed)."""

    subscription: Subscription
    kind: Kind
    notification: Notification | None = None  # for an event notification


def heartbeat_due(sub: Subscription) -> dt.datetime | None:
    """When the next heartbeat is due (None: the subscription asked for none, or has no handshake)."""
    if sub.channel.heartbeat_period_s is None or sub.handshake_at is None:
        return None
    since = max(t for t in (sub.handshake_at, sub.last_delivered_at) if t is not None)
    return since + dt.timedelta(seconds=sub.channel.heartbeat_period_s)


def next_delivery(sub: Subscription, head: Notification | None, now: dt.datetime) -> Kind | None:
    """What to send to ``sub`` now, given the head of its line (None: nothing is due)."""
    if not sub.live(now) or sub.due_at is None or sub.due_at > now or leased(sub, now):
        return None
    if sub.handshake_at is None:
        return Kind.HANDSHAKE
    if head is not None:
        return Kind.EVENT
    beat = heartbeat_due(sub)
    if beat is not None and beat <= now:
        return Kind.HEARTBEAT
    return None


def idle_until(sub: Subscription) -> dt.datetime | None:
    """``due_at`` for a subscription with nothing to send: its next heartbeat, else never."""
    return heartbeat_due(sub)


def after_success(sub: Subscription, kind: Kind, now: dt.datetime, more_pending: bool) -> Subscription:
    """The subscription after its endpoint accepted a ``kind`` notification at ``now``."""
    done = replace(sub, status=Status.ACTIVE, failures=0, error="", last_delivered_at=now, leased_until=None,
                   handshake_at=now if kind is Kind.HANDSHAKE else sub.handshake_at)
    return replace(done, due_at=now if more_pending else idle_until(done))


def after_failure(sub: Subscription, now: dt.datetime, error: str, backoff: Backoff) -> Subscription:
    """The subscription after an attempt failed at ``now``: retried after the backoff of its
    consecutive failures; ``error`` (and its reason) until a delivery succeeds."""
    failures = sub.failures + 1
    return replace(sub, status=Status.ERROR, failures=failures, error=error[:MAX_ERROR_CHARS], leased_until=None,
                   due_at=now + backoff.delay(failures))


def lease(sub: Subscription, now: dt.datetime) -> Subscription:
    """``sub`` claimed for an attempt at ``now``: others keep off it for its timeout and a margin. A
    deliverer that dies mid-attempt leaves it to be tried again after that."""
    return replace(sub, leased_until=now + dt.timedelta(seconds=sub.channel.timeout_s + 30))


def leased(sub: Subscription, now: dt.datetime) -> bool:
    return sub.leased_until is not None and sub.leased_until > now
