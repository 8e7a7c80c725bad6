"""The FHIR R4 Subscription resource (Subscriptions Backport, PAS ``profile-subscription``) ⇄ the
subscription the platform keeps.

:func:`parse_subscription` reads a posted Subscription into a
:class:`~.domain.model.SubscriptionRequest`, or every problem found (never raises for the body):
the bounded JSON decoding of the PAS door, the model library's validation, then the rules the
platform keeps:

* ``criteria`` is the PAS topic canonical; the only filter (``_criteria`` backport-filter-criteria)
  is ``orgIdentifier=<value>`` (also written ``ClaimResponse?orgIdentifier=`` or with ``:eq``), at
  most once;
* ``channel.type`` is ``rest-hook``; ``channel.endpoint`` an absolute ``https`` URL (``http`` only
  where the deployment allows it); ``channel.payload`` ``application/fhir+json`` with the
  backport-payload-content ``full-resource``; ``channel.header`` entries are ``Name: value`` lines
  the platform sends with every notification (not the ones it sets itself);
* the backport channel extensions heartbeat-period (seconds, 1 to 86400) and timeout (seconds, 1
  to 60) are honoured; max-count is accepted (every notification carries one event);
* ``reason`` is required (R4 1..1), ``status`` may only ask (``requested``/``active``), ``end`` must
  lie ahead.

:func:`subscription_resource` renders a kept subscription back (its status, error and the events
counted are the platform's).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fhir.resources.R4B.subscription import Subscription as FhirSubscription
from pydantic import ValidationError

from services.intake.interop.pas.guard import Limits, load
from services.intake.interop.pas.outcome import Problem, fhirpath
from services.intake.interop.subscriptions.domain.model import (
    PAS_TOPIC,
    Channel,
    Subscription,
    SubscriptionRequest,
)

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
EXT_FILTER = BACKPORT + "backport-filter-criteria"
EXT_CONTENT = BACKPORT + "backport-payload-content"
EXT_HEARTBEAT = BACKPORT + "backport-heartbeat-period"
EXT_TIMEOUT = BACKPORT + "backport-timeout"
EXT_MAX_COUNT = BACKPORT + "backport-max-count"
PROFILE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription"
FHIR_JSON = "application/fhir+json"

#: A Subscription is small: far tighter bounds than a PAS Bundle's.
LIMITS = Limits(max_bytes=64 * 1024, max_string=8 * 1024, max_depth=12, max_nodes=2_000, max_array=50)
MAX_HEADERS = 20
MAX_HEADER_CHARS = 4096
MAX_ENDPOINT_CHARS = 2000
MAX_REASON_CHARS = 1000
MAX_HEARTBEAT_S = 86_400
MAX_TIMEOUT_S = 60
DEFAULT_TIMEOUT_S = 10
#: Headers the platform sets on every notification itself; a subscriber may not replace them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection",
                              "expect", "te", "upgrade", "trailer", "keep-alive"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_FILTER = re.compile(r"(?:ClaimResponse\?)?orgIdentifier(?::eq)?=(.+)")
_ORG_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:|/-]{0,79}")


@dataclass(frozen=True)
class EndpointPolicy:
    """Which endpoints a subscriber may name: ``https`` always; plain ``http`` only when
    ``allow_http`` (development and tests, where the subscriber runs on the same machine)."""

    allow_http: bool = False


def _problem(path: tuple[str | int, ...], code: str, message: str) -> Problem:
    return Problem(fhirpath(path, root="Subscription"), code, message)


def _validated(value: Any) -> tuple[FhirSubscription | None, list[Problem]]:
    if not isinstance(value, Mapping) or value.get("resourceType") != "Subscription":
        got = value.get("resourceType") if isinstance(value, Mapping) else type(value).__name__
        return None, [Problem("Subscription", "structure", f"expected a Subscription resource, got {str(got)[:80]!r}")]
    try:
        return FhirSubscription.model_validate(value), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:50]:
            loc = tuple(p for p in error["loc"] if p != "root")
            message = str(error["msg"]).replace("Value error, ", "")
            problems.append(_problem(loc, "structure", message[:300]))
        return None, problems or [Problem("Subscription", "structure", "not a valid FHIR R4 Subscription")]


def parse_subscription(body: str | bytes | Mapping[str, Any], now: dt.datetime,
                       policy: EndpointPolicy = EndpointPolicy()) -> SubscriptionRequest | list[Problem]:
    """The subscription a posted Subscription asks for, or every problem with it."""
    value, problems = load(body, LIMITS)
    if problems:
        # The guard names the posted resource "Bundle" (it was written for $submit).
        return [Problem(p.expression.replace("Bundle", "Subscription", 1), p.code, p.message) for p in problems]
    resource, problems = _validated(value)
    if resource is None:
        return problems
    reader = _Reader(resource, now, policy)
    request = reader.read()
    return reader.problems if request is None else request


class _Reader:
    """One pass over a validated Subscription, collecting every problem."""

    def __init__(self, resource: FhirSubscription, now: dt.datetime, policy: EndpointPolicy) -> None:
        self.resource = resource
        self.now = now
        self.policy = policy
        self.problems: list[Problem] = []

    def fail(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        self.problems.append(_problem(path, code, message))

    def read(self) -> SubscriptionRequest | None:
        r = self.resource
        if r.status not in ("requested", "active"):
            self.fail(("status",), "value" if r.status else "required",
                      "a new subscription is 'requested' (the server sets the rest)")
        reason = (r.reason or "").strip()
        if not reason:
            self.fail(("reason",), "required", "say why the subscription is wanted (R4 Subscription.reason, 1..1)")
        elif len(reason) > MAX_REASON_CHARS:
            self.fail(("reason",), "too-long", f"at most {MAX_REASON_CHARS} characters")
        if r.criteria != PAS_TOPIC:
            self.fail(("criteria",), "not-supported" if r.criteria else "required",
                      f"the only topic offered is the PAS subscription topic, {PAS_TOPIC}")
        org = self.org_identifier()
        end = self.end()
        channel = self.channel()
        if self.problems or channel is None:
            return None
        return SubscriptionRequest(channel=channel, reason=reason, org_identifier=org, end=end)

    def org_identifier(self) -> str | None:
        found: list[str] = []
        extensions = self.resource.criteria__ext.extension if self.resource.criteria__ext is not None else None
        for i, ext in enumerate(extensions or []):
            if ext.url != EXT_FILTER:
                continue
            path: tuple[str | int, ...] = ("_criteria", "extension", i, "valueString")
            match = _FILTER.fullmatch((ext.valueString or "").strip())
            if match is None:
                self.fail(path, "not-supported", "the PAS topic filters on orgIdentifier only: "
                                                 "'orgIdentifier=<the requesting organization's identifier>'")
                continue
            value = match.group(1).strip()
            if not _ORG_IDENTIFIER.fullmatch(value):
                self.fail(path, "value", "an identifier value: letters, digits and . _ : | / - (at most 80)")
                continue
            found.append(value)
        if len(found) > 1:
            self.fail(("_criteria", "extension"), "value", "at most one orgIdentifier filter")
        return found[0] if found else None

    def end(self) -> dt.datetime | None:
        end = self.resource.end
        if end is None:
            return None
        moment = end if isinstance(end, dt.datetime) else dt.datetime.fromisoformat(str(end))
        if moment.tzinfo is None:  # an instant has a zone; be safe with what the library hands back
            moment = moment.replace(tzinfo=dt.UTC)
        if moment <= self.now:
            self.fail(("end",), "value", "the end of a new subscription must lie ahead")
        return moment.astimezone(dt.UTC)

    def channel(self) -> Channel | None:
        channel = self.resource.channel
        if channel.type != "rest-hook":
            self.fail(("channel", "type"), "not-supported", "the channel offered is 'rest-hook'")
        endpoint = self.endpoint(str(channel.endpoint) if channel.endpoint is not None else None)
        if channel.payload != FHIR_JSON:
            self.fail(("channel", "payload"), "required" if not channel.payload else "not-supported",
                      f"notifications are sent as {FHIR_JSON}")
        content = [e.valueCode for e in (channel.payload__ext.extension or []) if e.url == EXT_CONTENT] \
            if channel.payload__ext is not None else []
        if content != ["full-resource"]:
            self.fail(("channel", "_payload", "extension"), "not-supported",
                      "PAS notifications carry the full PAS response Bundle: backport-payload-content "
                      "'full-resource'")
        headers = self.headers([h or "" for h in channel.header or []])
        heartbeat = self.seconds(channel.extension, EXT_HEARTBEAT, MAX_HEARTBEAT_S, "heartbeat period")
        timeout = self.seconds(channel.extension, EXT_TIMEOUT, MAX_TIMEOUT_S, "timeout")
        if endpoint is None:
            return None
        return Channel(endpoint=endpoint, headers=headers, heartbeat_period_s=heartbeat,
                       timeout_s=timeout or DEFAULT_TIMEOUT_S)

    def endpoint(self, endpoint: str | None) -> str | None:
        path = ("channel", "endpoint")
        if not endpoint:
            self.fail(path, "required", "where notifications are to be POSTed (PAS: 1..1)")
            return None
        if len(endpoint) > MAX_ENDPOINT_CHARS or any(c.isspace() for c in endpoint):
            self.fail(path, "value", f"an absolute URL without spaces, at most {MAX_ENDPOINT_CHARS} characters")
            return None
        try:
            parts = urlsplit(endpoint)
            port = parts.port
        except ValueError:
            self.fail(path, "value", "not a valid URL")
            return None
        schemes = ("https", "http") if self.policy.allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            self.fail(path, "value", f"an absolute {' or '.join(schemes)} URL (notifications carry PHI)")
            return None
        if parts.username is not None or parts.password is not None:
            self.fail(path, "value", "no credentials in the URL: send them in channel.header")
            return None
        if parts.fragment or port == 0:
            self.fail(path, "value", "a URL without a fragment, on a real port")
            return None
        return endpoint

    def headers(self, headers: list[str]) -> tuple[str, ...]:
        if len(headers) > MAX_HEADERS:
            self.fail(("channel", "header"), "too-costly", f"at most {MAX_HEADERS} headers")
            return ()
        out = []
        for i, header in enumerate(headers):
            path: tuple[str | int, ...] = ("channel", "header", i)
            name, sep, value = header.partition(":")
            if not sep or not _TOKEN.fullmatch(name.strip()) or name != name.strip():
                self.fail(path, "value", "a 'Name: value' header line")
            elif any(c in value for c in "\r\n\x00") or len(header) > MAX_HEADER_CHARS:
                self.fail(path, "value", f"one line without control characters, at most {MAX_HEADER_CHARS}")
            elif name.lower() in RESERVED_HEADERS:
                self.fail(path, "not-supported", f"{name} is set by the platform")
            else:
                out.append(f"{name}: {value.strip()}")
        return tuple(out)

    def seconds(self, extensions: list[Any] | None, url: str, most: int, what: str) -> int | None:
        found = [(i, e) for i, e in enumerate(extensions or []) if e.url == url]
        if not found:
            return None
        i, ext = found[-1]
        value = ext.valueUnsignedInt
        if value is None or not 1 <= int(value) <= most or len(found) > 1:
            self.fail(("channel", "extension", i), "value", f"one {what} of 1 to {most} seconds (valueUnsignedInt)")
            return None
        return int(value)


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def subscription_resource(sub: Subscription) -> dict[str, Any]:
    """The kept subscription as a FHIR R4 Subscription (JSON-ready)."""
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": sub.channel.endpoint, "payload": FHIR_JSON,
                               "_payload": {"extension": [{"url": EXT_CONTENT, "valueCode": "full-resource"}]}}
    extensions = [{"url": EXT_TIMEOUT, "valueUnsignedInt": sub.channel.timeout_s}]
    if sub.channel.heartbeat_period_s is not None:
        extensions.insert(0, {"url": EXT_HEARTBEAT, "valueUnsignedInt": sub.channel.heartbeat_period_s})
    channel["extension"] = extensions
    if sub.channel.headers:
        channel["header"] = list(sub.channel.headers)
    resource: dict[str, Any] = {"resourceType": "Subscription", "id": sub.subscription_id,
                                "meta": {"profile": [PROFILE]}, "status": sub.status.value, "reason": sub.reason,
                                "criteria": PAS_TOPIC}
    if sub.org_identifier is not None:
        resource["_criteria"] = {"extension": [{"url": EXT_FILTER,
                                                "valueString": f"orgIdentifier={sub.org_identifier}"}]}
    resource["channel"] = channel
    if sub.end is not None:
        resource["end"] = _instant(sub.end)
    if sub.error:
        resource["error"] = sub.error
    return resource
