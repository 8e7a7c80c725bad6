"""The subscription use cases: an organization's subscriptions (create, read, search, replace,
delete); recording the notifications the determination events owe them; delivering those.

Contracts:

* **Recorded once, with the event.** :class:`NotificationRecorder` is the Kafka consumer's handler
  (``services/common/consumer.py``): the notifications an event owes are stored in the same
  transaction that records the event as processed (consumer :data:`CONSUMER_NAME`), so a
  redelivered event finds itself processed and records nothing; a subscription has at most one
  notification per event (a unique key as well).
* **After intake.** A notification carries the PAS response Bundle built from intake's records, so
  an event is recorded only once intake has applied it (intake's ``processed_events``); until then
  the batch is retried (:class:`~services.common.errors.TransientError`).
* **Never lost, in order.** :class:`Deliverer` sends each subscription's notifications one at a time
  in event-number order, retrying a failed one with exponential backoff until the endpoint accepts
  it (``domain/model.py``); an attempt is claimed with a lease so that two deliverers never send
  the same notification at once. HTTP cannot be made exactly-once: a deliverer that dies after the
  endpoint accepted but before recording it sends that notification again (same Bundle id and event
  number, so the subscriber can tell).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.errors import NotFound, ResourceExhausted, TransientError, Unauthenticated
from services.common.events import IncomingEvent
from services.intake.interop.subscriptions import notification as bundles
from services.intake.interop.subscriptions.domain.events import (
    Authorized,
    Decided,
    RequestFacts,
    complete,
    consistent,
)
from services.intake.interop.subscriptions.domain.model import (
    Backoff,
    Delivery,
    Kind,
    Notification,
    NotificationState,
    Release,
    Subscription,
    SubscriptionRequest,
    after_failure,
    after_success,
    idle_until,
    lease,
    new_subscription,
    next_delivery,
    updated,
)
from services.intake.interop.subscriptions.service_layer.ports import Clock, Sender, SubscriptionsUnitOfWork

logger = logging.getLogger(__name__)

#: The consumer name of the notification recorder (processed_events, consumer group suffix).
CONSUMER_NAME = "intake-subscriptions"
#: Intake's own consumer, whose processed events the recorder waits for.
INTAKE_CONSUMER = "intake"
#: Most subscriptions one organization may hold (PAS expects one per submitting system).
MAX_PER_OWNER = 10
#: Pending action codes: a line still under review, or not decided at all.
_UNDECIDED = frozenset({types_pb2.ACTION_CODE_UNSPECIFIED, types_pb2.ACTION_CODE_PENDED})
_CERTIFIED = frozenset({types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL,
                        types_pb2.ACTION_CODE_MODIFIED})

UowFactory = Callable[[], SubscriptionsUnitOfWork]


def _looks_like_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class SubscriptionService:
    """An organization's subscriptions. ``owner`` is the authenticated organization: it sees,
    replaces and deletes its own subscriptions only (another's is NotFound, as is one that never
    existed: nothing tells them apart)."""

    def __init__(self, uow: UowFactory, *, clock: Clock, max_per_owner: int = MAX_PER_OWNER) -> None:
        self._uow = uow
        self._now = clock
        self._max = max_per_owner

    def create(self, owner: str, request: SubscriptionRequest) -> Subscription:
        _check_owner(owner)
        sub = new_subscription(str(uuid.uuid4()), owner, request, self._now())
        with self._uow() as uow:
            if len(uow.subscriptions.of_owner(owner)) >= self._max:
                raise ResourceExhausted(f"an organization may hold at most {self._max} subscriptions; delete one "
                                        "first (one per submitting system is what PAS expects)")
            uow.subscriptions.add(sub)
            uow.commit()
        logger.info("subscription %s created for %s (heartbeat %s s)", sub.subscription_id, owner,
                    sub.channel.heartbeat_period_s)
        return sub

    def get(self, owner: str, subscription_id: str) -> Subscription:
        with self._uow().read_only() as uow:
            return _own(uow, owner, subscription_id)

    def search(self, owner: str) -> list[Subscription]:
        _check_owner(owner)
        with self._uow().read_only() as uow:
            return uow.subscriptions.of_owner(owner)

    def replace(self, owner: str, subscription_id: str, request: SubscriptionRequest) -> Subscription:
        with self._uow() as uow:
            current = _own(uow, owner, subscription_id, for_update=True)
            changed = updated(current, request, self._now())
            uow.subscriptions.replace(changed)
            uow.commit()
        return changed

    def delete(self, owner: str, subscription_id: str) -> None:
        with self._uow() as uow:
            _own(uow, owner, subscription_id, for_update=True)
            uow.subscriptions.delete(subscription_id)
            uow.commit()
        logger.info("subscription %s deleted by %s", subscription_id, owner)


def _check_owner(owner: str) -> None:
    if not owner.strip():
        raise Unauthenticated("no authenticated organization")


def _own(uow: SubscriptionsUnitOfWork, owner: str, subscription_id: str, *,
         for_update: bool = False) -> Subscription:
    _check_owner(owner)
    sub = uow.subscriptions.get(subscription_id, for_update=for_update) if _looks_like_id(subscription_id) else None
    if sub is None or sub.owner != owner:
        raise NotFound(f"no subscription {subscription_id[:64]!r}")
    return sub


# -- recording ---------------------------------------------------------------------------------------

def decided_of(event_id: str, message: events_pb2.DeterminationMade) -> Decided:
    det = message.determination
    decided = tuple(ln.line_number for ln in det.lines
                    if ln.action_code not in _UNDECIDED and not ln.queued_for_review)
    certified = tuple(ln.line_number for ln in det.lines if ln.line_number in decided and ln.action_code in _CERTIFIED)
    return Decided(event_id=event_id, request_id=det.request_id, determination_id=det.determination_id,
                   decided_lines=decided, certified_lines=certified,
                   named_lines=tuple(ln.line_number for ln in det.lines))


def _fact_of(event: IncomingEvent) -> Decided | Authorized | None:
    message = event.message
    if isinstance(message, events_pb2.DeterminationMade):
        return decided_of(event.event_id, message)
    if isinstance(message, events_pb2.AuthorizationsIssued):
        return Authorized(event.event_id, message.request_id, message.determination_id)
    return None


class _NotApplied(Exception):
    """Intake has not applied events whose notifications would be built from its records."""


class NotificationRecorder:
    """The consumer's handler for DeterminationMade and AuthorizationsIssued (see the module's
    contract). A batch that owes notifications built from events intake has not applied yet is
    looked at again after ``pause(poll_s)``, for up to ``wait_s`` (intake's consumer reads the same
    records; it is usually milliseconds behind), then retried by the loop; a batch that owes nothing
    waits for nobody."""

    def __init__(self, uow: UowFactory, *, clock: Clock, pause: Callable[[float], None], wait_s: float = 5.0,
                 poll_s: float = 0.05) -> None:
        self._uow = uow
        self._now = clock
        self._pause = pause
        self._polls = max(1, int(wait_s / poll_s))
        self._poll_s = poll_s

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        facts = [(e, _fact_of(e)) for e in events]
        for attempt in range(self._polls):
            try:
                self._record(facts)
            except _NotApplied as exc:
                if attempt + 1 == self._polls:
                    raise TransientError(str(exc)) from exc
                self._pause(self._poll_s)
            else:
                return

    def _record(self, facts: Sequence[tuple[IncomingEvent, Decided | Authorized | None]]) -> None:
        now = self._now()
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e, _ in facts])
            fresh = []
            for event, fact in facts:
                if event.event_id not in done:  # new, and (should the loop not have) its copies dropped
                    done.add(event.event_id)
                    fresh.append((event, fact))
            known = uow.results.requests(sorted({f.request_id for _, f in fresh if f is not None}))
            owners = sorted({k.submitter for k in known.values() if k.submitter})
            subs = [s for s in uow.subscriptions.of_owners(owners) if s.live(now)] if owners else []
            new: list[Notification] = []
            authorized: dict[str, list[str]] = defaultdict(list)  # request id → its AuthorizationsIssued
            for event, fact in fresh:
                if isinstance(fact, Decided):
                    new += _owed(fact, known.get(fact.request_id), subs, now)
                elif isinstance(fact, Authorized) and fact.request_id in known:
                    authorized[fact.request_id].append(event.event_id)
            held = uow.notifications.held(sorted(authorized)) if authorized else []
            # What the notifications are built from must be in intake's records: the determinations
            # that owe them, and the authorizations of the requests they are about.
            needed = {n.event_id for n in new} | {e for n in (*new, *held) for e in authorized.get(n.request_id, ())}
            missing = needed - uow.results.applied(sorted(needed)) if needed else set()
            if missing:
                raise _NotApplied(f"intake has not applied {len(missing)} of the batch's events yet")
            stored = uow.notifications.add(new) if new else []
            ready = [n for n in stored if n.state is NotificationState.PENDING]
            ready += [n for n in held if known[n.request_id].pas
                      and complete(n.determination_id, n.awaiting, known[n.request_id])]
            released = release(uow, ready, now)
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e, _ in fresh])
            uow.commit()
        if stored or released:
            logger.info("recorded %d notifications (%d held), released %d", len(stored),
                        sum(1 for n in stored if n.state is NotificationState.HELD), released)


def _owed(decided: Decided, facts: RequestFacts | None, subs: Sequence[Subscription],
          now: dt.datetime) -> list[Notification]:
    """The notifications a determination owes: one per live subscription of the request's
    submitter that its filter admits; held when certified lines await their authorization, or when
    the door has not recorded the request's PAS Bundle (yet: it records it once intake answered
    ``$submit``, so a decision may come first; a request that did not come as a PAS Bundle never gets
    one, and its held notifications are discarded when the hold times out)."""
    if facts is None or not decided.notifies or not consistent(decided, facts):
        return []
    ready = facts.pas and complete(decided.determination_id, decided.certified_lines, facts)
    state = NotificationState.PENDING if ready else NotificationState.HELD
    return [Notification(subscription_id=s.subscription_id, event_id=decided.event_id, request_id=decided.request_id,
                         determination_id=decided.determination_id, state=state, created_at=now,
                         awaiting=() if ready else decided.certified_lines)
            for s in subs if s.owner == facts.submitter and s.matches(facts.requesting_npi)]


def release(uow: SubscriptionsUnitOfWork, ready: Sequence[Notification], now: dt.datetime) -> int:
    """Make ``ready`` notifications pending: each gets its focus (the request's PAS response Bundle
    as intake's records have it now) and the next event numbers of its subscription, in the order
    given; their subscriptions are woken. Those of requests without a PAS Bundle are discarded.
    Returns how many were released."""
    if not ready:
        return 0
    focus: dict[str, bytes] = {}
    for request_id in sorted({n.request_id for n in ready}):
        bundle = uow.results.response_bundle(request_id)
        if bundle is not None:
            focus[request_id] = bundles.encode(bundle)
    unanswerable = [n for n in ready if n.request_id not in focus]
    if unanswerable:
        # Requests that did not come in as PAS Bundles (submitted over gRPC or X12): nothing to send.
        uow.notifications.discard([n.notification_id for n in unanswerable])
        logger.info("discarded %d notifications of requests without a PAS Bundle", len(unanswerable))
    by_subscription: dict[str, list[Notification]] = defaultdict(list)
    for n in ready:
        if n.request_id not in focus:
            continue
        by_subscription[n.subscription_id].append(n)
    releases = []
    for subscription_id, owed in by_subscription.items():
        last = uow.subscriptions.count_events(subscription_id, len(owed))
        first = last - len(owed) + 1
        releases += [Release(n.notification_id, first + i, focus[n.request_id], now) for i, n in enumerate(owed)]
    uow.notifications.release(releases)
    uow.subscriptions.wake(sorted(by_subscription), now)
    return len(releases)


# -- delivery ----------------------------------------------------------------------------------------

CONTENT_TYPE = ("Content-Type", "application/fhir+json")
DEFAULT_BACKOFF = Backoff()


def header_pairs(sub: Subscription) -> list[tuple[str, str]]:
    """What a notification is sent with: its content type, then the subscriber's own headers."""
    pairs = [CONTENT_TYPE]
    for line in sub.channel.headers:
        name, _, value = line.partition(":")
        pairs.append((name.strip(), value.strip()))
    return pairs


class Deliverer:
    """Sends what subscriptions are owed (see the module's contract and ``domain/model.py``).

    ``hold_s``: how long a held notification waits for its authorization numbers before it is sent
    as the result stands; ``keep_delivered_s``: how long delivered notifications are kept."""

    def __init__(self, uow: UowFactory, sender: Sender, *, clock: Clock, backoff: Backoff = DEFAULT_BACKOFF,
                 hold_s: float = 120.0, batch: int = 50, keep_delivered_s: float = 30 * 86400.0) -> None:
        self._uow = uow
        self._sender = sender
        self._now = clock
        self._backoff = backoff
        self._hold = dt.timedelta(seconds=hold_s)
        self._batch = batch
        self._keep = dt.timedelta(seconds=keep_delivered_s)

    def release_held(self) -> int:
        """Release the held notifications whose result is now complete in intake's records (the
        AuthorizationsIssued that completes one may be consumed before its determination: the recorder
        then has nothing to release, and intake applies it a moment later), and those held longer
        than ``hold_s`` as their result stands (their authorization never came, or came for another
        request: an extension's is its original's); those of requests without a PAS Bundle are
        discarded then."""
        now = self._now()
        with self._uow() as uow:
            held = uow.notifications.held(limit=self._batch * 10)
            if not held:
                return 0
            facts = uow.results.requests(sorted({n.request_id for n in held}))
            ready = [n for n in held if (f := facts.get(n.request_id)) is not None and f.pas
                     and complete(n.determination_id, n.awaiting, f)]
            overdue = [n for n in held if n not in ready and n.created_at < now - self._hold]
            released = release(uow, [*ready, *overdue], now)
            uow.commit()
        if overdue:
            logger.warning("%d notifications held longer than %s were released or discarded", len(overdue),
                           self._hold)
        return released

    def claim(self) -> list[Delivery]:
        """Claim the attempts due now (each subscription leased for its attempt)."""
        now = self._now()
        deliveries = []
        with self._uow() as uow:
            uow.subscriptions.turn_off_ended(now)
            for sub in uow.subscriptions.due(now, self._batch):
                head = uow.notifications.head(sub.subscription_id) if sub.handshake_at is not None else None
                kind = next_delivery(sub, head, now)
                if kind is None:
                    # Woken with nothing to send (its head was sent meanwhile): idle until its heartbeat.
                    uow.subscriptions.set_delivery(replace(sub, due_at=idle_until(sub)))
                    continue
                claimed = lease(sub, now)
                uow.subscriptions.set_delivery(claimed)
                deliveries.append(Delivery(claimed, kind, head if kind is Kind.EVENT else None))
            uow.commit()
        return deliveries

    def attempt(self, delivery: Delivery) -> bool:
        """Send one claimed notification and record how it went; whether the endpoint took it."""
        sub, kind = delivery.subscription, delivery.kind
        body = bundles.encode(bundles.notification_bundle(sub, kind, self._now(), delivery.notification))
        error = self._sender.post(sub.channel.endpoint, header_pairs(sub), body, float(sub.channel.timeout_s))
        now = self._now()
        with self._uow() as uow:
            current = uow.subscriptions.get(sub.subscription_id, for_update=True)
            if current is None:
                return error is None  # deleted meanwhile: its notifications went with it
            if current.channel != sub.channel:
                # Its owner changed where it goes meanwhile: that endpoint gets its own handshake.
                uow.subscriptions.set_delivery(replace(current, leased_until=None))
                uow.commit()
                return error is None
            if error is None:
                if delivery.notification is not None:
                    uow.notifications.delivered(delivery.notification.notification_id, now)
                more = uow.notifications.head(sub.subscription_id) is not None
                uow.subscriptions.set_delivery(after_success(current, kind, now, more))
                level = logging.DEBUG if kind is Kind.HEARTBEAT and not current.failures else logging.INFO
                logger.log(level, "subscription %s: %s%s delivered%s", sub.subscription_id, kind.value,
                           f" {delivery.notification.event_number}" if delivery.notification is not None else "",
                           f" after {current.failures} failed attempts" if current.failures else "")
            else:
                failed = after_failure(current, now, error, self._backoff)
                uow.subscriptions.set_delivery(failed)
                logger.info("subscription %s: %s not delivered (%s); attempt %d, next at %s", sub.subscription_id,
                            kind.value, error, failed.failures, failed.due_at)
            uow.commit()
        return error is None

    def run_once(self) -> int:
        """One pass: release what is held and can go, then claim and attempt what is due; how many were
        sent."""
        self.release_held()
        return sum(1 for delivery in self.claim() if self.attempt(delivery))

    def prune(self) -> int:
        """Forget delivered notifications older than ``keep_delivered_s``."""
        with self._uow() as uow:
            pruned = uow.notifications.prune_delivered(self._now() - self._keep, 10_000)
            uow.commit()
        return pruned


