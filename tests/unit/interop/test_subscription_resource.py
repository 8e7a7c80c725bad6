"""The FHIR Subscription resource ⇄ the subscription kept: the guide's example, what is refused
(each problem naming its element) and the round trip."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription as FhirSubscription

from services.intake.interop.pas.outcome import Problem
from services.intake.interop.subscriptions.domain.model import PAS_TOPIC, Kind, new_subscription
from services.intake.interop.subscriptions.notification import notification_bundle, status_bundle
from services.intake.interop.subscriptions.resource import (
    EXT_CONTENT,
    EXT_FILTER,
    EXT_HEARTBEAT,
    EXT_TIMEOUT,
    EndpointPolicy,
    parse_subscription,
    subscription_resource,
)
from tests.unit.interop.pas_fixtures import EXAMPLES

NOW = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)


def guide_example() -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((EXAMPLES / "Subscription-PASSubscriptionExample.json").read_text())
    return resource


def subscription(**changes: Any) -> dict[str, Any]:
    resource = guide_example()
    resource["channel"]["endpoint"] = "https://ehr.example.org/pas-notifications"
    resource.update(changes)
    return resource


def problems(body: Any) -> list[Problem]:
    parsed = parse_subscription(body if isinstance(body, (str, bytes)) else json.dumps(body), NOW)
    assert isinstance(parsed, list), parsed
    return parsed


def test_the_guides_example_is_accepted_with_its_filter() -> None:
    parsed = parse_subscription(guide_example(), NOW, EndpointPolicy(allow_http=True))
    assert not isinstance(parsed, list), parsed
    assert parsed.org_identifier == "1234567893"
    assert parsed.channel.endpoint == "http://example.org/send-me-subscription-notifications"
    assert parsed.reason == "Receive notifications about claim responses for my organization."
    assert parsed.channel.timeout_s == 10
    assert parsed.channel.heartbeat_period_s is None


def test_plain_http_is_refused_unless_the_deployment_allows_it() -> None:
    [problem] = problems(guide_example())
    assert (problem.expression, problem.code) == ("Subscription.channel.endpoint", "value")
    assert "https" in problem.message


def test_heartbeat_timeout_and_headers_are_kept_and_rendered_back() -> None:
    resource = subscription(end="2027-06-01T00:00:00Z")
    resource["channel"]["header"] = ["Authorization: Bearer abc.def", "X-Org: 42"]
    resource["channel"]["extension"] = [{"url": EXT_HEARTBEAT, "valueUnsignedInt": 120},
                                        {"url": EXT_TIMEOUT, "valueUnsignedInt": 20}]
    parsed = parse_subscription(resource, NOW)
    assert not isinstance(parsed, list), parsed
    assert parsed.channel.headers == ("Authorization: Bearer abc.def", "X-Org: 42")
    assert (parsed.channel.heartbeat_period_s, parsed.channel.timeout_s) == (120, 20)
    assert parsed.end == dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    kept = new_subscription("0b8f4a52-54b4-4d0b-a8a3-1c3f9c7f2f11", "org-a", parsed, NOW)
    rendered = subscription_resource(kept)
    FhirSubscription.model_validate(rendered)
    assert rendered["status"] == "requested"
    assert rendered["criteria"] == PAS_TOPIC
    assert rendered["_criteria"]["extension"] == [{"url": EXT_FILTER, "valueString": "orgIdentifier=1234567893"}]
    assert rendered["channel"]["_payload"]["extension"] == [{"url": EXT_CONTENT, "valueCode": "full-resource"}]
    again = parse_subscription(rendered, NOW)  # what a client reads back, it can PUT back
    assert again == parsed


@pytest.mark.parametrize(("change", "expression", "code"), [
    (lambda r: r.update(criteria="http://example.org/SubscriptionTopic/other"), "Subscription.criteria",
     "not-supported"),
    (lambda r: r.pop("criteria"), "Subscription.criteria", "required"),
    (lambda r: r["channel"].update(type="websocket"), "Subscription.channel.type", "not-supported"),
    (lambda r: r["channel"].update(payload="application/fhir+xml"), "Subscription.channel.payload",
     "not-supported"),
    (lambda r: r["channel"].pop("payload"), "Subscription.channel.payload", "required"),
    (lambda r: r["channel"]["_payload"]["extension"][0].update(valueCode="id-only"),
     "Subscription.channel._payload.extension", "not-supported"),
    (lambda r: r["channel"].pop("_payload"), "Subscription.channel._payload.extension", "not-supported"),
    (lambda r: r["channel"].pop("endpoint"), "Subscription.channel.endpoint", "required"),
    (lambda r: r["channel"].update(endpoint="https://user:pw@ehr.example.org/x"), "Subscription.channel.endpoint",
     "value"),
    (lambda r: r["channel"].update(endpoint="ftp://ehr.example.org/x"), "Subscription.channel.endpoint", "value"),
    (lambda r: r["channel"].update(endpoint="/relative/path"), "Subscription.channel.endpoint", "value"),
    (lambda r: r["channel"].update(endpoint="https://ehr.example.org:99999/x"), "Subscription.channel.endpoint",
     "value"),
    (lambda r: r["channel"].update(header=["Content-Type: text/plain"]), "Subscription.channel.header[0]",
     "not-supported"),
    (lambda r: r["channel"].update(header=["no colon here"]), "Subscription.channel.header[0]", "value"),
    (lambda r: r["channel"].update(header=["X-A: 1", "Bad Name: 2"]), "Subscription.channel.header[1]", "value"),
    (lambda r: r["channel"].update(extension=[{"url": EXT_HEARTBEAT, "valueUnsignedInt": 0}]),
     "Subscription.channel.extension[0]", "value"),
    (lambda r: r["channel"].update(extension=[{"url": EXT_TIMEOUT, "valueUnsignedInt": 600}]),
     "Subscription.channel.extension[0]", "value"),
    (lambda r: r["_criteria"]["extension"][0].update(valueString="patient=Patient/1"),
     "Subscription._criteria.extension[0].valueString", "not-supported"),
    (lambda r: r["_criteria"]["extension"][0].update(valueString="orgIdentifier=a b"),
     "Subscription._criteria.extension[0].valueString", "value"),
    (lambda r: r["_criteria"]["extension"].append(copy.deepcopy(r["_criteria"]["extension"][0])),
     "Subscription._criteria.extension", "value"),
    (lambda r: r.pop("reason"), "Subscription.reason", "structure"),  # the model library enforces R4 1..1
    (lambda r: r.update(status="off"), "Subscription.status", "value"),
    (lambda r: r.update(end="2027-02-01T00:00:00Z"), "Subscription.end", "value"),
])
def test_what_is_refused_names_the_element(change: Any, expression: str, code: str) -> None:
    resource = subscription()
    change(resource)
    found = problems(resource)
    assert (expression, code) in [(p.expression, p.code) for p in found], found


@pytest.mark.parametrize("body", [
    b"{not json", b"\xff\xfe", b"[]", b'{"resourceType": "Patient"}', b'{"resourceType": "Nope"}',
    json.dumps({"resourceType": "Subscription", "channel": {"type": 3}}).encode(),
    b'{"resourceType": "Subscription", "resourceType": "Subscription"}',
    b"{" * 5000 + b"}" * 5000,
    json.dumps({"resourceType": "Subscription", "reason": "x" * 70_000}).encode(),
    json.dumps({"resourceType": "Subscription", "channel": {"header": ["a: b"] * 500}}).encode(),
])
def test_hostile_or_malformed_bodies_are_problems_never_exceptions(body: bytes) -> None:
    found = problems(body)
    assert found
    assert all(p.expression.startswith("Subscription") for p in found)


def test_notification_and_status_bundles_parse_as_fhir_r4() -> None:
    parsed = parse_subscription(subscription(), NOW)
    assert not isinstance(parsed, list)
    sub = new_subscription("0b8f4a52-54b4-4d0b-a8a3-1c3f9c7f2f11", "org-a", parsed, NOW)
    for kind in (Kind.HANDSHAKE, Kind.HEARTBEAT):
        bundle = notification_bundle(sub, kind, NOW)
        Bundle.model_validate(bundle)
        assert bundle["type"] == "history"
        assert bundle["entry"][0]["resource"]["meta"]["profile"] == [
            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"]
    status = status_bundle(sub, NOW)
    Bundle.model_validate(status)
    params = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert params["type"]["valueCode"] == "query-status"
    assert params["status"]["valueCode"] == "requested"
