"""What the subscription use cases need from the world, as abstract classes: a unit of work with the
subscriptions, their notifications and intake's records of the requests (one transaction over
intake's database), and the HTTP channel to subscribers.

Implementations: ``adapters/`` (SQL over intake's database; HTTP with the standard library) and
``tests/fakes/subscriptions.py`` (in memory); ``tests/contract/test_subscription_ports.py`` holds
both to the docstrings below.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from typing import Any

from services.common.clock import Clock
from services.common.ports import UnitOfWork
from services.intake.interop.subscriptions.domain.events import RequestFacts
from services.intake.interop.subscriptions.domain.model import Notification, Release, Subscription

__all__ = ["Clock", "NotificationRepository", "Results", "Sender", "SubscriptionRepository",
           "SubscriptionsUnitOfWork"]


class SubscriptionRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, sub: Subscription) -> None:
        """Store a new subscription."""

    @abc.abstractmethod
    def get(self, subscription_id: str, *, for_update: bool = False) -> Subscription | None:
        """The subscription (times in UTC); ``for_update`` locks it until the transaction ends
        where the store has row locks."""

    @abc.abstractmethod
    def of_owner(self, owner: str) -> list[Subscription]:
        """The owner's subscriptions, oldest first (then by id)."""

    @abc.abstractmethod
    def of_owners(self, owners: Sequence[str]) -> list[Subscription]:
        """The subscriptions of any of ``owners`` that are not ``off``, oldest first (then by id)."""

    @abc.abstractmethod
    def replace(self, sub: Subscription) -> None:
        """Store what the owner asks for and the delivery state of an existing subscription (its
        events count is the store's own: see :meth:`count_events`)."""

    @abc.abstractmethod
    def set_delivery(self, sub: Subscription) -> None:
        """Store the delivery state alone (status, handshake, last delivery, failures, due, lease,
        error): a delivery's outcome never overwrites what its owner changed meanwhile."""

    @abc.abstractmethod
    def delete(self, subscription_id: str) -> None:
        """Remove the subscription and every notification owed to it."""

    @abc.abstractmethod
    def count_events(self, subscription_id: str, n: int) -> int:
        """Add ``n`` to its events since start; returns the new total (the last event number)."""

    @abc.abstractmethod
    def wake(self, subscription_ids: Sequence[str], now: dt.datetime) -> None:
        """Make these subscriptions due now, unless they are retrying after failures (their backoff
        stands) or already due earlier."""

    @abc.abstractmethod
    def due(self, now: dt.datetime, limit: int) -> list[Subscription]:
        """Up to ``limit`` subscriptions not ``off``, due by ``now`` and not leased, earliest due
        first, locked for this transaction; rows another transaction holds are skipped where the
        store can tell (so that two deliverers never claim one subscription)."""

    @abc.abstractmethod
    def turn_off_ended(self, now: dt.datetime) -> int:
        """Subscriptions whose end has come turn ``off``; how many did."""


class NotificationRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, notifications: Sequence[Notification]) -> list[Notification]:
        """Store new notifications (held or pending); returns them with their ids. Raises
        ``DuplicateKey`` if a subscription already has one for that event."""

    @abc.abstractmethod
    def held(self, request_ids: Sequence[str] = (), created_before: dt.datetime | None = None,
             limit: int = 1000) -> list[Notification]:
        """Held notifications of ``request_ids`` (or of every request when none is given) recorded
        before ``created_before`` (when given), oldest first (then by id), at most ``limit``; locked
        for this transaction, skipping those another transaction holds where the store can tell (the
        recorder and the deliverer both release held notifications: never one twice)."""

    @abc.abstractmethod
    def release(self, releases: Sequence[Release]) -> None:
        """Make these notifications pending with their event number and focus."""

    @abc.abstractmethod
    def discard(self, notification_ids: Sequence[int]) -> None:
        """Forget these notifications (nothing can be sent for them)."""

    @abc.abstractmethod
    def head(self, subscription_id: str) -> Notification | None:
        """The subscription's pending notification with the lowest event number."""

    @abc.abstractmethod
    def delivered(self, notification_id: int, at: dt.datetime) -> None:
        """The endpoint accepted this notification."""

    @abc.abstractmethod
    def of_subscription(self, subscription_id: str) -> list[Notification]:
        """Every notification of the subscription, by id."""

    @abc.abstractmethod
    def prune_delivered(self, before: dt.datetime, limit: int) -> int:
        """Forget up to ``limit`` notifications delivered before ``before``; how many."""


class Results(abc.ABC):
    """Intake's records of requests, read in the unit of work's transaction."""

    @abc.abstractmethod
    def applied(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these events intake has applied to its records (committed)."""

    @abc.abstractmethod
    def requests(self, request_ids: Sequence[str]) -> dict[str, RequestFacts]:
        """Request id → its facts, for those of ``request_ids`` intake has."""

    @abc.abstractmethod
    def response_bundle(self, request_id: str) -> dict[str, Any] | None:
        """The PAS response Bundle for the request as intake's records have it now (JSON-ready),
        or None when the request did not come in as a PAS request Bundle (nothing to answer with)."""


class SubscriptionsUnitOfWork(UnitOfWork):
    """One transaction over intake's database (see :class:`services.common.ports.UnitOfWork`)."""

    subscriptions: SubscriptionRepository
    notifications: NotificationRepository
    results: Results


class Sender(abc.ABC):
    """The rest-hook channel."""

    @abc.abstractmethod
    def post(self, endpoint: str, headers: Sequence[tuple[str, str]], body: bytes, timeout_s: float) -> str | None:
        """POST ``body`` (application/fhir+json) to ``endpoint`` with ``headers``; None when the
        endpoint accepted it (a 2xx status), else why not ("connection refused", "HTTP 503", ...).
        Never raises for what the endpoint or the network does; takes at most about ``timeout_s``."""
