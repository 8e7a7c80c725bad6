"""The doors over HTTP (services/intake/entrypoints/fhir_http.py) on fakes, through Starlette's test
client: the token endpoint, authentication, content types, the body limit, the answers' status codes,
the X12 door, and routes mounted by another module."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from ur.intake.v1 import intake_pb2

from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    ValidationFailed,
)
from services.common.metrics import Metrics
from services.common.settings import FhirSettings
from services.intake.door_bootstrap import Built, build
from services.intake.entrypoints.fhir_http import organization_of, submitter_of
from services.intake.interop.pas.response import action_codes
from services.intake.service_layer.door_ports import Submitter
from tests.conftest import REPO
from tests.fakes.door import NOW, FakeClients, FakeSubmissionStore, HandlersIntake, member
from tests.unit.interop.pas_fixtures import complete_bundle
from tests.unit.interop.test_x12 import REJECTIONS
from tests.unit.interop.x12_fixtures import interchange, transaction

CLIENT, SECRET = "sample-clinic", "dev-only-token-sample-clinic"
PAYERS = REPO / "deploy" / "sample" / "payers.yaml"
FHIR_JSON = "application/fhir+json"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


class Door:
    def __init__(self) -> None:
        self.clock = Clock()
        self.intake = HandlersIntake({CLIENT: SECRET}, [member("M-1001")])
        self.store = FakeSubmissionStore()

        async def whoami(request: Request) -> Response:
            return JSONResponse({"id": submitter_of(request).id, "organization": await organization_of(request)})

        self.built: Built = build(
            FhirSettings(wait_ms=0, max_body_bytes=64 * 1024, token_ttl_s=300, payers_file=PAYERS),
            FakeClients({CLIENT: [SECRET]}),
            intake=self.intake, store=self.store, clock=self.clock, metrics=Metrics(process_collectors=False),
            extra_routes=[Route("/Whoami", whoami)])
        self.client = TestClient(self.built.app, base_url="http://door.test")

    def token(self) -> str:
        reply = self.client.post("/fhir/auth/token", data={"grant_type": "client_credentials"},
                                 auth=(CLIENT, SECRET))
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def post(self, path: str, body: Any, token: str | None = None, content_type: str = FHIR_JSON) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": content_type}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return self.client.post(path, content=data, headers=headers)


@pytest.fixture
def door() -> Iterator[Door]:
    d = Door()
    with d.client:
        yield d


def outcome(reply: Any) -> dict[str, Any]:
    assert reply.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = reply.json()
    OperationOutcome.model_validate(body)
    return body


def test_metadata_is_public_and_a_capability_statement(door: Door) -> None:
    reply = door.client.get("/fhir/metadata")
    assert reply.status_code == 200
    statement = reply.json()
    CapabilityStatement.model_validate(statement)
    assert statement["implementation"]["url"] == "http://door.test/fhir"
    [rest] = statement["rest"]
    token_uri = rest["security"]["extension"][0]["extension"][0]["valueUri"]
    assert token_uri == "http://door.test/fhir/auth/token"
    assert {op["name"] for op in rest["resource"][0]["operation"]} == {"submit", "inquire"}


def test_a_token_by_basic_or_form_fields_then_submit_with_it(door: Door) -> None:
    form = door.client.post("/fhir/auth/token", data={"grant_type": "client_credentials", "client_id": CLIENT,
                                                      "client_secret": SECRET})
    assert form.status_code == 200
    assert form.json()["token_type"] == "Bearer"
    assert form.json()["expires_in"] == 300
    assert form.headers["cache-control"] == "no-store"
    reply = door.post("/fhir/Claim/$submit", complete_bundle(), door.token())
    assert reply.status_code == 200
    Bundle.model_validate(reply.json())
    assert action_codes(reply.json()) == {1: "A4"}
    assert door.intake.calls == [("SubmitRequest", CLIENT)]


@pytest.mark.parametrize(("data", "auth", "status", "error"), [
    ({"grant_type": "client_credentials"}, (CLIENT, "wrong"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, ("nobody", SECRET), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
    ({"grant_type": "password"}, (CLIENT, SECRET), 400, "unsupported_grant_type"),
    ({"grant_type": "client_credentials", "client_assertion": "x"}, None, 400, "invalid_request"),
    ({"grant_type": "client_credentials", "client_id": CLIENT}, (CLIENT, SECRET), 400, "invalid_request"),
])
def test_token_refusals_follow_rfc_6749(door: Door, data: dict[str, str], auth: tuple[str, str] | None,
                                        status: int, error: str) -> None:
    reply = door.client.post("/fhir/auth/token", data=data, auth=auth) if auth is not None else \
        door.client.post("/fhir/auth/token", data=data)
    assert (reply.status_code, reply.json()["error"]) == (status, error)
    if status == 401 and auth is not None:
        assert reply.headers["www-authenticate"].startswith("Basic")


def test_a_token_request_that_is_not_a_form_is_invalid(door: Door) -> None:
    reply = door.client.post("/fhir/auth/token", json={"grant_type": "client_credentials"})
    assert (reply.status_code, reply.json()["error"]) == (400, "invalid_request")


def test_basic_credentials_are_form_urlencoded(door: Door) -> None:
    raw = base64.b64encode(f"{CLIENT}:{SECRET.replace('-', '%2D')}".encode()).decode()
    reply = door.client.post("/fhir/auth/token", data={"grant_type": "client_credentials"},
                             headers={"authorization": f"Basic {raw}"})
    assert reply.status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_without_a_live_token_nothing_but_the_public_endpoints_answers(door: Door, header: str | None) -> None:
    headers = {"content-type": FHIR_JSON, **({"authorization": header} if header else {})}
    for path in ("/fhir/Claim/$submit", "/fhir/Claim/$inquire", "/fhir/Whoami", "/fhir/Nothing"):
        reply = door.client.post(path, content=b"{}", headers=headers)
        assert reply.status_code == 401, path
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert outcome(reply)["issue"][0]["code"] == "login"
    x12 = door.client.post("/x12/278", content=b"ISA", headers=headers)
    assert x12.status_code == 401
    assert door.intake.calls == []


def test_a_token_expires(door: Door) -> None:
    token = door.token()
    door.clock.now = NOW + dt.timedelta(seconds=301)
    reply = door.post("/fhir/Claim/$submit", complete_bundle(), token)
    assert reply.status_code == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_routes_mounted_by_another_module_see_the_submitter(door: Door) -> None:
    reply = door.client.get("/fhir/Whoami", headers={"authorization": f"Bearer {door.token()}"})
    assert reply.json() == {"id": CLIENT, "organization": CLIENT}


def test_an_invalid_bundle_is_400_with_fhirpath_expressions(door: Door) -> None:
    reply = door.post("/fhir/Claim/$submit", {**complete_bundle(), "type": 7}, door.token())
    assert reply.status_code == 400
    assert outcome(reply)["issue"][0]["expression"] == ["Bundle.type"]


def test_a_body_over_the_limit_is_413_before_it_is_read(door: Door) -> None:
    token = door.token()
    big = b'{"resourceType": "Bundle", "id": "' + b"x" * (70 * 1024) + b'"}'
    reply = door.post("/fhir/Claim/$submit", big, token)
    assert reply.status_code == 413
    assert outcome(reply)["issue"][0]["code"] == "too-long"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(80):
            yield b"x" * 1024

    streamed = door.client.post("/fhir/Claim/$submit", content=chunks(),
                                headers={"authorization": f"Bearer {token}", "content-type": FHIR_JSON})
    assert streamed.status_code == 413
    assert door.intake.calls == []


def test_a_body_that_is_not_fhir_json_is_415(door: Door) -> None:
    reply = door.post("/fhir/Claim/$submit", complete_bundle(), door.token(), content_type="application/xml")
    assert reply.status_code == 415
    assert outcome(reply)["issue"][0]["code"] == "not-supported"


def test_unknown_endpoints_and_methods_are_operation_outcomes(door: Door) -> None:
    token = door.token()
    missing = door.client.get("/fhir/Patient/1", headers={"authorization": f"Bearer {token}"})
    assert missing.status_code == 404
    assert outcome(missing)["issue"][0]["code"] == "not-found"
    wrong = door.client.get("/fhir/Claim/$submit", headers={"authorization": f"Bearer {token}"})
    assert wrong.status_code == 405


def test_a_reused_bundle_identifier_is_409(door: Door) -> None:
    token = door.token()
    assert door.post("/fhir/Claim/$submit", complete_bundle("72148"), token).status_code == 200
    reply = door.post("/fhir/Claim/$submit", complete_bundle("72149"), token)
    assert reply.status_code == 409
    assert outcome(reply)["issue"][0]["code"] == "duplicate"


def test_intakes_rate_limit_is_429_with_retry_after(door: Door, monkeypatch: pytest.MonkeyPatch) -> None:
    async def limited(command: intake_pb2.SubmitRequestRequest, submitter: Submitter) -> Any:
        raise ResourceExhausted("rate limit", retry_after_s=0.2)

    monkeypatch.setattr(door.intake, "submit", limited)
    reply = door.post("/fhir/Claim/$submit", complete_bundle(), door.token())
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "1"
    assert outcome(reply)["issue"][0]["code"] == "throttled"


def test_the_doors_store_down_for_x12_is_503(door: Door) -> None:
    door.store.down = True
    reply = door.client.post("/x12/278", content=interchange(transaction()).encode(),
                             headers={"authorization": f"Bearer {door.token()}", "content-type": "application/edi-x12"})
    assert reply.status_code == 503
    assert "retry-after" in reply.headers


def test_an_inquiry_over_http(door: Door) -> None:
    token = door.token()
    door.post("/fhir/Claim/$submit", complete_bundle(), token)
    inquiry = complete_bundle()
    inquiry["identifier"]["value"] = "INQ-1"
    del inquiry["entry"][0]["resource"]["item"]
    inquiry["entry"][0]["resource"]["identifier"] = [{"system": "urn:trnorg:9012345678", "value": "TRN-1"}]
    reply = door.post("/fhir/Claim/$inquire", inquiry, token)
    assert reply.status_code == 200
    [found] = reply.json()["parameter"]
    assert action_codes(found["resource"]) == {1: "A4"}


def test_x12_over_http_answers_in_edi(door: Door) -> None:
    reply = door.client.post("/x12/278", content=interchange(transaction()).encode(),
                             headers={"authorization": f"Bearer {door.token()}", "content-type": "application/edi-x12"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/edi-x12"
    assert reply.headers["x-ur-x12-answer"] == "278"
    assert "HCR*A4" in reply.text


def test_healthz(door: Door) -> None:
    assert door.client.get("/healthz").json() == {"status": "ok"}


def test_requests_are_counted_by_route_never_by_path(door: Door) -> None:
    door.post("/fhir/Claim/$submit", complete_bundle(), door.token())
    text = "\n".join(str(m) for m in door.built.metrics.registry.collect())
    assert "/Claim/$submit" in text


@pytest.mark.parametrize(("name", "kwargs", "expected"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_every_278_rejection_path_over_http(door: Door, name: str, kwargs: dict[str, Any],
                                            expected: tuple[str, str, int]) -> None:
    reply = door.client.post("/x12/278", content=interchange(transaction(**kwargs)).encode(),
                             headers={"authorization": f"Bearer {door.token()}"})
    assert reply.status_code == 200
    aaa = [s.split("*")[3] for s in reply.text.split("~") if s.strip().startswith("AAA*")]
    assert aaa == [expected[1]], name
    assert door.intake.calls == []


def test_a_partly_refused_interchange_is_the_999_then_the_278s(door: Door) -> None:
    good = transaction(control="0001")
    bad = transaction(control="0002")
    bad[-1] = "SE*99*0002~"  # a wrong segment count: that set is rejected
    reply = door.client.post("/x12/278", content=interchange(good, bad).encode(),
                             headers={"authorization": f"Bearer {door.token()}"})
    assert reply.headers["x-ur-x12-answer"] == "999+278"
    first, second = reply.text.split("IEA*", 1)[0], reply.text.split("IEA*", 1)[1]
    assert "ST*999*" in first
    assert "AK9*P" in first
    assert second.count("ST*278*") == 1


@pytest.mark.parametrize(("error", "status"), [
    (NotFound("no request"), 404), (FailedPrecondition("decided"), 409), (IdempotencyConflict("key"), 409),
    (ValidationFailed([FieldViolation("member_id", "required")]), 400), (PermissionDenied("scope"), 403),
    (Unavailable("down"), 503)])
def test_any_refusal_from_intake_that_reaches_the_transport_is_a_4xx_or_503(
        door: Door, monkeypatch: pytest.MonkeyPatch, error: ServiceError, status: int) -> None:
    async def refuse(member_id: str, submitter: Submitter) -> Any:
        raise error

    monkeypatch.setattr(door.intake, "member_requests", refuse)
    inquiry = complete_bundle()
    inquiry["identifier"]["value"] = "INQ-2"
    del inquiry["entry"][0]["resource"]["item"]
    inquiry["entry"][0]["resource"]["identifier"] = []  # by member: intake's ListMemberRequests
    reply = door.post("/fhir/Claim/$inquire", inquiry, door.token())
    assert reply.status_code == status
    OperationOutcome.model_validate(reply.json())
