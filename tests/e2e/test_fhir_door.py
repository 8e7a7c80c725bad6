"""The FHIR (Da Vinci PAS) and X12 door end to end: the services and the door as processes on PostgreSQL
and Kafka, the door calling intake's gRPC API as each submitting organization.

* Every request example of the PAS 2.2.1 package is accepted and answered over HTTP: as published
  (they leave out what the platform reviews by: the guide's error response, naming each element) and
  completed (a diagnosis, dates, a CPT code: reviewed, the items' sequences echoed). Each response
  parses with fhir.resources and carries the PAS extensions and code systems.
* A request meeting criteria is certified (A1) with an authorization number within 15 seconds; one
  needing a nurse is pended (A4), and ``$inquire`` after the nurse approves answers A1; a Claim update
  cancelling a pending request answers C.
* One submitter cannot inquire into, nor update, another's request.
* 200 malformed and hostile Bundles are refused with 4xx OperationOutcomes; nothing is stored, and the
  door serves on.
* The X12 278 over HTTP, and ``urctl x12 submit``.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from sqlalchemy import create_engine, text
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.cli.pas_bundles import TRACE_SYSTEM, pas_bundle
from services.cli.platform import Platform
from services.intake.interop.codes import ACTION_SYSTEM, REJECT_REASON_SYSTEM
from services.intake.interop.pas.response import (
    EXT_ERROR_PATH,
    EXT_REVIEW_ACTION,
    EXT_REVIEW_ACTION_CODE,
    EXT_REVIEWER,
    REQUEST_ID_SYSTEM,
    action_codes,
)
from tests.conftest import REPO
from tests.e2e.conftest import Clients
from tests.e2e.test_reviewer_flow import NURSE
from tests.e2e.test_workbench import claim
from tests.factories import lumbar_mri
from tests.polling import wait_until
from tests.unit.intake.test_doors import completed, update_of
from tests.unit.interop.pas_fixtures import REQUEST_EXAMPLES, complete_bundle, example
from tests.unit.interop.pas_fixtures import claim as claim_of
from tests.unit.interop.test_pas_hostile import _get, _paths
from tests.unit.interop.x12_fixtures import interchange, transaction

pytestmark = pytest.mark.e2e

CLINIC = ("sample-clinic", "dev-only-token-sample-clinic")
CLEARINGHOUSE = ("sample-clearinghouse", "dev-only-token-sample-clearinghouse")
FHIR_JSON = "application/fhir+json"
ACTIONS = {"A1", "A2", "A3", "A4", "A6", "C", "CT", "NA"}


class Door:
    def __init__(self, platform: Platform, base: str, database_url: str, intake_url: str) -> None:
        self.platform = platform
        self.base = base
        self.http = httpx.Client(timeout=60)
        self.database_url = database_url
        self.intake_url = intake_url
        self.tokens = {who[0]: self.token(*who) for who in (CLINIC, CLEARINGHOUSE)}

    def token(self, client_id: str, secret: str) -> str:
        reply = self.http.post(f"{self.base}/auth/token", data={"grant_type": "client_credentials"},
                               auth=(client_id, secret))
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def post(self, path: str, body: Any, who: str = CLINIC[0]) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(f"{self.base}{path}", content=data,
                              headers={"content-type": FHIR_JSON, "authorization": f"Bearer {self.tokens[who]}"})

    def submit(self, bundle: Any, who: str = CLINIC[0]) -> dict[str, Any]:
        reply = self.post("/Claim/$submit", bundle, who)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith(FHIR_JSON)
        body: dict[str, Any] = reply.json()
        checked_response(body)
        return body

    def inquire(self, bundle: Any, who: str = CLINIC[0]) -> list[dict[str, Any]]:
        reply = self.post("/Claim/$inquire", bundle, who)
        assert reply.status_code == 200, reply.text
        Parameters.model_validate(reply.json())
        found = [p["resource"] for p in reply.json().get("parameter", [])]
        for bundle_found in found:
            checked_response(bundle_found)
        return found

    def counts(self) -> tuple[int, int]:
        """(intake's requests, the door's recorded Bundles)."""
        counted = []
        for url, table in ((self.intake_url, "requests"), (self.database_url, "pas_requests")):
            engine = create_engine(url)
            with engine.connect() as conn:
                counted.append(int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()))
            engine.dispose()
        return counted[0], counted[1]


@pytest.fixture(scope="module")
def door(platform: Platform, make_database: Callable[[str], str]) -> Iterator[Door]:
    url = make_database("fhir")
    base = platform.start_fhir(port=0, database_url=url)
    d = Door(platform, base, url, platform.database_urls["intake"])
    yield d
    d.http.close()


def checked_response(bundle: dict[str, Any]) -> dict[str, Any]:
    """A PAS response Bundle as the profiles require it, as far as a Python check can tell; its
    ClaimResponse."""
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    assert bundle["timestamp"]
    assert bundle["identifier"]
    assert all(e.get("fullUrl") and e.get("resource") for e in bundle["entry"])
    response: dict[str, Any] = bundle["entry"][0]["resource"]
    assert response["resourceType"] == "ClaimResponse"
    assert response["use"] == "preauthorization"
    assert response["request"]
    assert response["outcome"] in (
        "complete", "error", "partial")
    for item in response.get("item", []):
        [adjudication] = item["adjudication"]
        [review] = [e for e in adjudication["extension"] if e["url"] == EXT_REVIEW_ACTION]
        [code] = [p for p in review["extension"] if p["url"] == EXT_REVIEW_ACTION_CODE]
        coding = code["valueCodeableConcept"]["coding"][0]
        assert coding["system"] == ACTION_SYSTEM
        assert coding["code"] in ACTIONS
    for error in response.get("error", []):
        assert error["code"]["coding"][0]["system"] == REJECT_REASON_SYSTEM
    if response["outcome"] != "error":
        [reviewer] = [e for e in response["extension"] if e["url"] == EXT_REVIEWER]
        assert next(p["url"] for p in reviewer["extension"]) == "wasHumanReviewedFlag"
    return response


def request_id(bundle: dict[str, Any]) -> str:
    ids = [i["value"] for i in bundle["entry"][0]["resource"]["identifier"] if i["system"] == REQUEST_ID_SYSTEM]
    assert len(ids) == 1
    return str(ids[0])


def authorization_number(bundle: dict[str, Any]) -> str | None:
    for item in bundle["entry"][0]["resource"].get("item", []):
        for ext in item["adjudication"][0]["extension"]:
            for part in ext.get("extension", []):
                if part["url"] == "number":
                    return str(part["valueString"])
    return None


def via_fhir(*, meets: bool, transaction: str) -> dict[str, Any]:
    request = lumbar_mri(meets=meets)
    return pas_bundle(request, transaction=transaction, trace=f"TRN-{transaction}",
                      timestamp=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))


def unique(label: str) -> str:
    return f"{label}-{random.getrandbits(48):012x}"


# -- the basics -----------------------------------------------------------------------------------------

def test_metadata_is_a_capability_statement(door: Door) -> None:
    reply = door.http.get(f"{door.base}/metadata")
    assert reply.status_code == 200
    CapabilityStatement.model_validate(reply.json())
    assert reply.json()["implementation"]["url"] == door.base


def test_without_a_token_nothing_is_answered(door: Door) -> None:
    reply = door.http.post(f"{door.base}/Claim/$submit", content=b"{}", headers={"content-type": FHIR_JSON})
    assert reply.status_code == 401
    OperationOutcome.model_validate(reply.json())
    refused = door.http.post(f"{door.base}/auth/token", data={"grant_type": "client_credentials"},
                             auth=(CLINIC[0], "dev-only-token-sample-clearinghouse"))
    assert refused.status_code == 401


# -- the guide's examples ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_every_request_example_as_published_is_answered(door: Door, name: str) -> None:
    before = door.counts()
    response = checked_response(door.submit(example(name)))
    assert response["outcome"] == "error"
    for error in response["error"]:
        paths = [e["valueString"] for e in error["extension"] if e["url"] == EXT_ERROR_PATH]
        assert paths, error
        assert paths[0].startswith("Bundle.entry["), error
    assert door.counts() == before  # refused before intake: nothing stored


def _later(bundle: dict[str, Any], label: str) -> dict[str, Any]:
    """A completed example with its own transaction and trace numbers and its dates in 2027 (the examples
    share theirs, and a second request for the same service and days would be a possible duplicate)."""
    changed = copy.deepcopy(bundle)
    changed["identifier"]["value"] = unique(label)
    claim_of(changed)["identifier"] = [{"system": TRACE_SYSTEM, "value": unique("trace")}]
    day = f"2027-0{random.randint(1, 9)}-{random.randint(10, 28)}"
    for item in claim_of(changed)["item"]:
        item.pop("servicedPeriod", None)
        item["servicedDate"] = day
    return changed


@pytest.mark.parametrize("name", REQUEST_EXAMPLES[:3])
def test_every_request_example_completed_is_reviewed_and_echoes_its_items(door: Door, name: str) -> None:
    bundle = _later(completed(name), "example")
    response = checked_response(door.submit(bundle))
    assert response["outcome"] == "complete", response.get("error")
    assert [i["itemSequence"] for i in response["item"]] == [i["sequence"] for i in claim_of(bundle)["item"]]


def test_the_update_example_completed_is_answered_against_its_original(door: Door) -> None:
    original = _later(completed("Bundle-HomecareAuthorizationBundleExample.json"), "homecare")
    trace = claim_of(original)["identifier"][0]
    checked_response(door.submit(original))
    update = completed("Bundle-HomecareAuthorizationUpdateBundleExample.json")
    update["identifier"]["value"] = unique("homecare-update")
    prior = next(e["resource"] for e in update["entry"][1:] if e["resource"]["resourceType"] == "Claim")
    prior["identifier"] = [trace]
    response = checked_response(door.submit(update))
    assert response["outcome"] == "error"  # it cancels one item and adds another: not a whole-request change
    assert any("cancelling some items" in n["text"] for n in response["processNote"])


# -- decisions ---------------------------------------------------------------------------------------------

def test_a_bundle_meeting_criteria_is_certified_with_an_authorization_number_within_15_s(door: Door) -> None:
    began = time.monotonic()
    answer = door.submit(via_fhir(meets=True, transaction=unique("a1")))
    elapsed = time.monotonic() - began
    assert elapsed < 15, elapsed
    assert action_codes(answer) == {1: "A1"}
    number = authorization_number(answer)
    assert number
    assert number.startswith("UR")
    [item] = answer["entry"][0]["resource"]["item"]
    assert any(e["url"].endswith("extension-itemPreAuthPeriod") for e in item["extension"])
    [reviewer] = [e for e in answer["entry"][0]["resource"]["extension"] if e["url"] == EXT_REVIEWER]
    assert reviewer["extension"][0] == {"url": "wasHumanReviewedFlag", "valueBoolean": False}


def _inquiry(bundle: dict[str, Any], transaction: str) -> dict[str, Any]:
    asked = copy.deepcopy(bundle)
    asked["identifier"]["value"] = transaction
    c = claim_of(asked)
    c["meta"] = {"profile": ["http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-inquiry"]}
    for key in ("item", "supportingInfo", "careTeam"):
        c.pop(key, None)
    return asked


def test_one_needing_a_nurse_is_pended_then_inquire_after_approval_answers_a1(door: Door, clients: Clients) -> None:
    bundle = via_fhir(meets=False, transaction=unique("a4"))
    began = time.monotonic()
    answer = door.submit(bundle)
    assert time.monotonic() - began < 15
    assert action_codes(answer) == {1: "A4"}
    rid = request_id(answer)
    task = claim(clients, NURSE, rid)
    clients.review.DecideTask(review_pb2.DecideTaskRequest(task_id=task.task.task_id,
                                                           approve=review_pb2.DecideTaskRequest.Approve(
                                                               note="conservative therapy documented")),
                              metadata=NURSE, timeout=10)

    def inquired() -> list[dict[str, Any]]:
        return door.inquire(_inquiry(bundle, unique("inq")))

    [found] = wait_until(inquired, 60, what="the inquiry to answer A1 with its authorization",
                         until=lambda f: len(f) == 1 and action_codes(f[0]) == {1: "A1"}
                         and authorization_number(f[0]) is not None)
    [reviewer] = [e for e in found["entry"][0]["resource"]["extension"] if e["url"] == EXT_REVIEWER]
    assert reviewer["extension"][0] == {"url": "wasHumanReviewedFlag", "valueBoolean": True}
    assert found["entry"][0]["resource"]["meta"]["profile"][0].endswith("profile-claiminquiryresponse")
    by_id = _inquiry(bundle, unique("inq"))
    claim_of(by_id)["identifier"] = [{"system": REQUEST_ID_SYSTEM, "value": rid}]
    assert [action_codes(b) for b in door.inquire(by_id)] == [{1: "A1"}]


def test_a_claim_update_cancelling_a_pending_request_answers_c(door: Door, clients: Clients) -> None:
    bundle = via_fhir(meets=False, transaction=unique("cancel"))
    rid = request_id(door.submit(bundle))
    answer = door.submit(update_of(bundle, cancel=(0,), trace=unique("trace"), transaction=unique("cancel-upd")))
    assert request_id(answer) == rid
    assert action_codes(answer) == {1: "C"}
    view = clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=rid), timeout=10).request
    assert view.status == intake_pb2.REQUEST_STATUS_CANCELLED


# -- one submitter, one submitter's requests ----------------------------------------------------------------

def test_one_submitter_cannot_inquire_into_or_update_anothers_request(door: Door) -> None:
    bundle = via_fhir(meets=False, transaction=unique("mine"))
    rid = request_id(door.submit(bundle, CLINIC[0]))
    assert len(door.inquire(_inquiry(bundle, unique("inq")), CLINIC[0])) == 1
    by_trace = _inquiry(bundle, unique("inq"))
    by_id = _inquiry(bundle, unique("inq"))
    claim_of(by_id)["identifier"] = [{"system": REQUEST_ID_SYSTEM, "value": rid}]
    by_member = _inquiry(bundle, unique("inq"))
    claim_of(by_member)["identifier"] = []
    for asked in (by_trace, by_id, by_member):
        assert door.inquire(asked, CLEARINGHOUSE[0]) == [], asked["entry"][0]["resource"]["identifier"]
    update = update_of(bundle, cancel=(0,), trace=unique("trace"), transaction=unique("theirs"))
    claim_of(update)["related"][0]["claim"] = {"identifier": {"system": REQUEST_ID_SYSTEM, "value": rid}}
    refused = checked_response(door.submit(update, CLEARINGHOUSE[0]))
    assert refused["outcome"] == "error"
    assert action_codes(door.inquire(_inquiry(bundle, unique("inq")), CLINIC[0])[0]) == {1: "A4"}  # untouched


# -- hostile input -------------------------------------------------------------------------------------------

TEN_MB = "x" * (10 * 1024 * 1024)


Bodies = list[tuple[str, Any]]


def _wrong_types(rng: random.Random, base: dict[str, Any]) -> Bodies:
    out: Bodies = []
    for path in rng.sample([p for p in _paths(base) if p and isinstance(_get(base, p), (dict, list))], 60):
        b = copy.deepcopy(base)
        value = _get(b, path)
        _get(b, path[:-1])[path[-1]] = "not an object" if isinstance(value, dict) else {"not": "a list"}
        out.append((f"wrong type at {'/'.join(map(str, path))}", b))
    numbers = [p for p in _paths(base) if p and isinstance(_get(base, p), int) and not isinstance(_get(base, p), bool)]
    for path in rng.sample(numbers, min(6, len(numbers))):
        b = copy.deepcopy(base)
        _get(b, path[:-1])[path[-1]] = {"n": 1}
        out.append((f"an object for a number at {'/'.join(map(str, path))}", b))
    return out


def _no_claim(rng: random.Random, base: dict[str, Any]) -> Bodies:
    out: Bodies = []
    for kind in ("Patient", "Coverage", "Organization", "Bundle", "Nope", "", 7):
        b = copy.deepcopy(base)
        b["entry"][0]["resource"]["resourceType"] = kind
        out.append((f"first entry a {kind!r}", b))
    for n in range(12):
        b = copy.deepcopy(base)
        del b["entry"][0]
        rng.shuffle(b["entry"])
        out.append((f"no Claim ({n})", b))
    out += [("no entries", {**base, "entry": []}),
            ("an entry without resource", {**base, "entry": [{"fullUrl": "urn:uuid:1"}]})]
    return out


def _dangling(rng: random.Random, base: dict[str, Any], count: int) -> Bodies:
    references = [p for p in _paths(base) if p and p[-1] == "reference"]
    out: Bodies = []
    for n in range(count):
        b = copy.deepcopy(base)
        where = rng.choice(references)
        _get(b, where[:-1])["reference"] = rng.choice(["Patient/ghost", "#nope", "urn:uuid:nothing",
                                                      "http://evil.example/Claim/1", "Coverage/x/y/z/w",
                                                      f"Practitioner/ghost-{n}"])
        out.append((f"unresolved reference at {'/'.join(map(str, where))} ({n})", b))
    return out


def _deep_and_big(rng: random.Random, base: dict[str, Any]) -> Bodies:
    out: Bodies = []
    marked = copy.deepcopy(base)
    marked["entry"][0]["resource"]["extension"] = ["MARK"]
    text = json.dumps(marked)
    for depth in (45, 60, 100, 200, 400, 1000, 5000, 20000):  # written as text: too deep for json.dumps
        deep = '{"url": "http://x", "extension": [' * depth + '{"url": "http://x", "valueString": "b"}' + "]}" * depth
        out.append((f"nested {depth} deep", text.replace('"MARK"', deep).encode()))
    for n in range(4):
        b = copy.deepcopy(base)
        b["entry"][rng.randrange(len(b["entry"]))]["resource"]["id"] = TEN_MB
        out.append((f"10 MB string ({n})", b))
    out.append(("10 MB of text", TEN_MB.encode()))
    return out


def _not_pas(rng: random.Random, base: dict[str, Any]) -> Bodies:
    text_base = json.dumps(base)
    out: Bodies = [(f"truncated ({n})", text_base[: rng.randint(0, len(text_base) - 2)].encode()) for n in range(20)]
    out += [("random bytes", bytes(rng.getrandbits(8) for _ in range(500))),
            ("not UTF-8", b'{"resourceType": "Bundle", "id": "\xff\xfe"}'), ("an array", b"[1, 2]"),
            ("null", b"null"), ("a number", b"42"), ("a string", b'"Bundle"'), ("empty", b""),
            ("empty object", b"{}"), ("another resource", b'{"resourceType": "Patient"}'),
            ("deep arrays", b"[" * 100_000 + b"]" * 100_000),
            ("duplicate keys", b'{"resourceType": "Bundle", "type": "collection", "type": "batch"}'),
            ("NaN", b'{"resourceType": "Bundle", "type": "collection", "total": NaN}'),
            ("huge integer", b'{"resourceType": "Bundle", "total": ' + b"9" * 5000 + b"}"),
            ("a batch", {**base, "type": "batch"}),
            ("no identifier", {k: v for k, v in base.items() if k != "identifier"}),
            ("no timestamp", {k: v for k, v in base.items() if k != "timestamp"})]
    return out


def hostile_bodies(rng: random.Random) -> list[tuple[str, bytes]]:
    """Malformed and hostile bodies, each invalid by construction: wrong JSON types, no Claim first,
    references to nothing, deep nesting, 10 MB, and what is not JSON or not PAS at all."""
    base = complete_bundle("72148", "97110")
    found = [*_wrong_types(rng, base), *_no_claim(rng, base), *_deep_and_big(rng, base), *_not_pas(rng, base)]
    found += _dangling(rng, base, max(40, 200 - len(found)))
    return [(name, body if isinstance(body, bytes) else json.dumps(body).encode()) for name, body in found]


HOSTILE = hostile_bodies(random.Random(1414))


def test_there_are_200_hostile_bodies() -> None:
    assert len(HOSTILE) >= 200


def test_hostile_bundles_are_refused_with_operation_outcomes_nothing_stored_the_door_serving(door: Door) -> None:
    before = door.counts()
    statuses: dict[int, int] = {}
    for name, body in HOSTILE:
        reply = door.post("/Claim/$submit", body)
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
        assert 400 <= reply.status_code < 500, f"{name}: {reply.status_code} {reply.text[:300]}"
        assert reply.headers["content-type"].startswith(FHIR_JSON), name
        outcome = reply.json()
        OperationOutcome.model_validate(outcome)
        assert all(issue.get("diagnostics") for issue in outcome["issue"]), name
        if reply.status_code == 400:
            assert all(e.startswith("Bundle") for issue in outcome["issue"] for e in issue.get("expression", [])), name
    assert set(statuses) <= {400, 413}, statuses
    assert statuses.get(413, 0) >= 5  # the 10 MB bodies, refused before they are read
    assert door.counts() == before
    assert door.http.get(f"{door.base}/metadata").status_code == 200
    assert action_codes(door.submit(via_fhir(meets=True, transaction=unique("after")))) in ({1: "A1"}, {1: "A4"})


# -- X12 ------------------------------------------------------------------------------------------------------

def test_a_278_over_http_is_answered_with_its_278_response(door: Door) -> None:
    base = door.base.removesuffix("/fhir")
    body = interchange(transaction(bht=f"BHT*0007*13*{unique('REF')[:30]}*20260301*1000~"))
    reply = door.http.post(f"{base}/x12/278", content=body.encode(),
                           headers={"authorization": f"Bearer {door.tokens[CLINIC[0]]}",
                                    "content-type": "application/edi-x12"})
    assert reply.status_code == 200
    assert reply.headers["x-ur-x12-answer"] == "278"
    hcr = [s.split("*") for s in reply.text.split("~") if s.strip().startswith("HCR*")]
    assert [h[1] for h in hcr] in (["A1"], ["A4"])
    rejected = door.http.post(f"{base}/x12/278", content=interchange(transaction(payer="OTHER")).encode(),
                              headers={"authorization": f"Bearer {door.tokens[CLINIC[0]]}"})
    assert "AAA*N**79*" in rejected.text


def test_urctl_x12_submit_prints_the_278_response(door: Door, tmp_path: Path) -> None:
    path = tmp_path / "request.x12"
    path.write_text(interchange(transaction(bht=f"BHT*0007*13*{unique('URCTL')[:30]}*20260301*1000~")))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("UR_")},
           "UR_INTAKE_TARGET": door.platform.target("intake"), "UR_INTAKE_TOKEN": CLINIC[1]}
    done = subprocess.run([sys.executable, "-m", "services.cli.urctl", "x12", "submit", str(path)], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ISA*")
    assert "ST*278*" in done.stdout
    assert "HCR*" in done.stdout
