"""The notification Bundles of the R4 Subscriptions Backport, for the PAS topic (pure).

A notification is a ``Bundle`` of type ``history`` whose first entry is the SubscriptionStatus
(R4: a ``Parameters`` resource, profile backport-subscription-status-r4): the subscription, the
topic, its status, the notification type, ``events-since-subscription-start`` and, for an event
notification, one ``notification-event`` (its event number, when the result became available, and
the ``focus``). With the PAS topic's full-resource payload the focus is the whole PAS response
Bundle, the second entry (as in the guide's ``Bundle-PASSubscriptionNotification`` example).
Handshakes and heartbeats carry the status alone. ``$status`` answers a ``searchset`` Bundle with a
``query-status`` SubscriptionStatus.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from services.intake.interop.subscriptions.domain.model import PAS_TOPIC, Kind, Notification, Subscription

STATUS_PROFILE = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
_NAMESPACE = uuid.UUID("5f0c51a2-8f7e-4b1e-9a53-6a1c2de3b7f4")


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def focus_id(subscription_id: str, event_number: int) -> str:
    """The id the focus (the PAS response Bundle) carries in a notification: the same on every
    retry of it."""
    return str(uuid.uuid5(_NAMESPACE, f"focus|{subscription_id}|{event_number}"))


def notification_id(subscription_id: str, kind: Kind, number: int | str) -> str:
    """A notification Bundle's id: the same on every retry of an event notification (a subscriber
    can tell a retry from a new one by it, as by the event number)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind.value}|{subscription_id}|{number}"))


def status_parameters(sub: Subscription, kind: Kind, pending: Notification | None = None) -> dict[str, Any]:
    """The SubscriptionStatus (R4 Parameters) of ``sub`` for a ``kind`` notification."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"Subscription/{sub.subscription_id}"}},
        {"name": "topic", "valueCanonical": PAS_TOPIC},
        {"name": "status", "valueCode": sub.status.value},
        {"name": "type", "valueCode": kind.value},
        {"name": "events-since-subscription-start", "valueString": str(sub.events_since_start)},
    ]
    if pending is not None:
        number, _, released_at = _released(pending)
        parameters.append({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": _instant(released_at)},
            {"name": "focus", "valueReference": {"reference": f"urn:uuid:{focus_id(sub.subscription_id, number)}"}},
        ]})
    if sub.error and kind is Kind.QUERY_STATUS:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": sub.error}})
    return {"resourceType": "Parameters", "meta": {"profile": [STATUS_PROFILE]}, "parameter": parameters}


def notification_bundle(sub: Subscription, kind: Kind, now: dt.datetime,
                        pending: Notification | None = None) -> dict[str, Any]:
    """The Bundle POSTed to the subscriber's endpoint (``pending``: the event notification's event
    and focus). ``sub`` as it stands when sending: its status and event count."""
    status_id = notification_id(sub.subscription_id, kind,
                                _released(pending)[0] if pending is not None else _instant(now))
    entries: list[dict[str, Any]] = [{
        "fullUrl": f"urn:uuid:{status_id}",
        "resource": {"id": status_id, **status_parameters(sub, kind, pending)},
        "request": {"method": "GET", "url": f"Subscription/{sub.subscription_id}/$status"},
        "response": {"status": "200"},
    }]
    if pending is not None:
        number, body, _ = _released(pending)
        focus = json.loads(body)
        fid = focus_id(sub.subscription_id, number)
        entries.append({"fullUrl": f"urn:uuid:{fid}", "resource": {"resourceType": "Bundle", "id": fid,
                                                                   **_without(focus, "resourceType", "id")},
                        "request": {"method": "GET", "url": f"Bundle/{fid}"}, "response": {"status": "200"}})
    return {"resourceType": "Bundle", "id": status_id, "type": "history", "timestamp": _instant(now),
            "entry": entries}


def status_bundle(sub: Subscription, now: dt.datetime) -> dict[str, Any]:
    """The answer to ``Subscription/{id}/$status``: a searchset with the query-status."""
    status_id = notification_id(sub.subscription_id, Kind.QUERY_STATUS, _instant(now))
    return {"resourceType": "Bundle", "id": status_id, "type": "searchset", "timestamp": _instant(now), "total": 1,
            "entry": [{"fullUrl": f"urn:uuid:{status_id}",
                       "resource": {"id": status_id, **status_parameters(sub, Kind.QUERY_STATUS)},
                       "search": {"mode": "match"}}]}


def encode(resource: dict[str, Any]) -> bytes:
    """The body sent: compact UTF-8 JSON."""
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _released(notification: Notification) -> tuple[int, bytes, dt.datetime]:
    """A released notification's event number, focus and release time."""
    if notification.event_number is None or notification.focus is None or notification.released_at is None:
        raise ValueError(f"notification {notification.notification_id} is not released yet")
    return notification.event_number, notification.focus, notification.released_at


def _without(resource: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in keys}
