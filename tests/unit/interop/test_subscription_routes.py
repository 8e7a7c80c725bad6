"""The Subscription routes over HTTP (Starlette's test client) on fakes: each organization sees,
replaces and deletes only its own subscriptions; problems answer OperationOutcomes naming the
element; nothing is stored for a refused body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.subscription import Subscription as FhirSubscription
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

from services.intake.entrypoints.fhir_subscriptions import capability_resource, routes
from services.intake.interop.subscriptions.domain.model import PAS_TOPIC, Status
from services.intake.interop.subscriptions.resource import EXT_CONTENT, EndpointPolicy
from services.intake.interop.subscriptions.service_layer.handlers import SubscriptionService
from tests.fakes.subscriptions import Clock, SubscriptionsStore

FHIR_JSON = "application/fhir+json"


async def organization(request: Request) -> str | None:
    """The door's authentication, faked: the organization a test names in a header."""
    return request.headers.get("x-test-org")


def as_org(org: str) -> dict[str, str]:
    return {"x-test-org": org, "content-type": FHIR_JSON}


def subscription(endpoint: str = "https://ehr-a.example.org/pas", **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription", "status": "requested", "reason": "pended PAS results",
        "criteria": PAS_TOPIC,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON,
                    "_payload": {"extension": [{"url": EXT_CONTENT, "valueCode": "full-resource"}]},
                    "header": ["Authorization: Bearer for-org-a"]},
    }
    resource.update(changes)
    return resource


class Door:
    def __init__(self, policy: EndpointPolicy | None = None) -> None:
        self.store = SubscriptionsStore()
        self.clock = Clock()
        service = SubscriptionService(self.store.unit_of_work, clock=self.clock, max_per_owner=3)
        app = Starlette(routes=[Mount("/fhir", routes=routes(service, organization, clock=self.clock,
                                                               policy=policy))])
        self.client = TestClient(app, base_url="http://door.test")

    def create(self, org: str, resource: dict[str, Any] | None = None) -> str:
        answer = self.client.post("/fhir/Subscription", content=json.dumps(resource or subscription()),
                                  headers=as_org(org))
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


@pytest.fixture
def door() -> Iterator[Door]:
    d = Door()
    with d.client:
        yield d


def test_create_answers_201_with_location_and_the_subscription_as_kept(door: Door) -> None:
    answer = door.client.post("/fhir/Subscription", content=json.dumps(subscription()), headers=as_org("org-a"))
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    body = answer.json()
    FhirSubscription.model_validate(body)
    assert answer.headers["location"] == f"/fhir/Subscription/{body['id']}"
    assert body["status"] == "requested"
    assert body["channel"]["header"] == ["Authorization: Bearer for-org-a"]
    [kept] = door.store.subscriptions.values()
    assert kept.owner == "org-a"


def test_without_an_authenticated_organization_everything_is_401(door: Door) -> None:
    for method, path in (("POST", "/fhir/Subscription"), ("GET", "/fhir/Subscription"),
                         ("GET", "/fhir/Subscription/x"), ("DELETE", "/fhir/Subscription/x"),
                         ("GET", "/fhir/Subscription/x/$status")):
        answer = door.client.request(method, path, content=json.dumps(subscription()),
                                     headers={"content-type": FHIR_JSON})
        assert answer.status_code == 401, (method, path)
        OperationOutcome.model_validate(answer.json())
    assert door.store.subscriptions == {}


def test_an_organization_sees_and_deletes_only_its_own(door: Door) -> None:
    mine = door.create("org-a")
    theirs = door.create("org-b", subscription("https://ehr-b.example.org/pas"))
    listed = door.client.get("/fhir/Subscription", headers=as_org("org-a")).json()
    Bundle.model_validate(listed)
    assert [e["resource"]["id"] for e in listed["entry"]] == [mine]
    assert door.client.get(f"/fhir/Subscription/{mine}", headers=as_org("org-a")).status_code == 200
    # Another's subscription does not exist, as far as this organization can tell.
    for method in ("GET", "DELETE"):
        answer = door.client.request(method, f"/fhir/Subscription/{theirs}", headers=as_org("org-a"))
        assert answer.status_code == 404, method
        assert answer.json()["issue"][0]["code"] == "not-found"
    assert door.client.get(f"/fhir/Subscription/{theirs}/$status", headers=as_org("org-a")).status_code == 404
    answer = door.client.put(f"/fhir/Subscription/{theirs}", content=json.dumps(subscription()),
                             headers=as_org("org-a"))
    assert answer.status_code == 404
    assert door.store.subscriptions[theirs].channel.endpoint == "https://ehr-b.example.org/pas"
    assert door.client.delete(f"/fhir/Subscription/{mine}", headers=as_org("org-a")).status_code == 204
    assert set(door.store.subscriptions) == {theirs}
    assert door.client.get("/fhir/Subscription/not-a-uuid", headers=as_org("org-a")).status_code == 404


def test_replace_keeps_the_id_and_a_new_endpoint_gets_a_new_handshake(door: Door) -> None:
    sid = door.create("org-a")
    door.store.subscriptions[sid] = replace(door.store.subscriptions[sid], handshake_at=door.clock(),
                                            status=Status.ACTIVE)
    answer = door.client.put(f"/fhir/Subscription/{sid}", content=json.dumps(subscription(
        "https://ehr-a.example.org/new")), headers=as_org("org-a"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "requested"
    assert door.store.subscriptions[sid].handshake_at is None


def test_status_is_the_backports_query_status(door: Door) -> None:
    sid = door.create("org-a")
    answer = door.client.get(f"/fhir/Subscription/{sid}/$status", headers=as_org("org-a"))
    assert answer.status_code == 200
    bundle = answer.json()
    Bundle.model_validate(bundle)
    params = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert params["type"]["valueCode"] == "query-status"
    assert params["subscription"]["valueReference"]["reference"] == f"Subscription/{sid}"


@pytest.mark.parametrize(("body", "status", "expression"), [
    (b"{", 400, "Subscription"),
    (json.dumps({"resourceType": "Patient"}).encode(), 400, "Subscription"),
    (json.dumps(subscription(criteria="http://example.org/topic")).encode(), 422, "Subscription.criteria"),
    (json.dumps(subscription("http://ehr-a.example.org/pas")).encode(), 422, "Subscription.channel.endpoint"),
    (json.dumps({**subscription(), "channel": {**subscription()["channel"], "type": "email"}}).encode(), 422,
     "Subscription.channel.type"),
])
def test_refused_bodies_answer_outcomes_and_store_nothing(door: Door, body: bytes, status: int,
                                                          expression: str) -> None:
    answer = door.client.post("/fhir/Subscription", content=body, headers=as_org("org-a"))
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    OperationOutcome.model_validate(outcome)
    assert expression in [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert door.store.subscriptions == {}


def test_oversized_and_wrongly_typed_bodies(door: Door) -> None:
    big = json.dumps(subscription(reason="x" * 100_000))
    assert door.client.post("/fhir/Subscription", content=big, headers=as_org("org-a")).status_code == 413
    answer = door.client.post("/fhir/Subscription", content=json.dumps(subscription()),
                              headers={"x-test-org": "org-a", "content-type": "text/plain"})
    assert answer.status_code == 415
    assert door.store.subscriptions == {}


def test_an_organization_holds_a_bounded_number(door: Door) -> None:
    for _ in range(3):
        door.create("org-a")
    answer = door.client.post("/fhir/Subscription", content=json.dumps(subscription()), headers=as_org("org-a"))
    assert answer.status_code == 422
    assert "at most 3" in answer.json()["issue"][0]["diagnostics"]
    door.create("org-b")  # others are not affected


def test_plain_http_endpoints_where_the_deployment_allows_them() -> None:
    door = Door(EndpointPolicy(allow_http=True))
    with door.client:
        door.create("org-a", subscription("http://127.0.0.1:9999/hook"))


def test_the_capability_statement_entry_names_the_topic() -> None:
    entry = capability_resource()
    assert entry["type"] == "Subscription"
    assert entry["extension"][0]["valueCanonical"] == PAS_TOPIC


def test_the_doors_authenticated_submitter_is_the_organization() -> None:
    from dataclasses import dataclass

    from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
    from starlette.responses import Response

    from services.intake.entrypoints.fhir_subscriptions import door_organization

    @dataclass(frozen=True)
    class Submitter:  # the door's: an id, and a credential that is none of this module's business
        id: str
        credential: str

    async def authenticate(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if "x-test-org" in request.headers:
            request.state.submitter = Submitter(request.headers["x-test-org"], "secret")
        return await call_next(request)

    store = SubscriptionsStore()
    service = SubscriptionService(store.unit_of_work, clock=Clock())
    app = Starlette(routes=[Mount("/fhir", routes=routes(service, door_organization))])
    app.add_middleware(BaseHTTPMiddleware, dispatch=authenticate)
    with TestClient(app) as client:
        assert client.post("/fhir/Subscription", content=json.dumps(subscription()),
                           headers=as_org("org-a")).status_code == 201
        assert client.get("/fhir/Subscription", headers={"content-type": FHIR_JSON}).status_code == 401
    assert [s.owner for s in store.subscriptions.values()] == ["org-a"]
