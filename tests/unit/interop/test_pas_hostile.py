"""Hostile and malformed PAS Bundles: every one comes back as problems (or, when the change was
harmless, as a command intake accepts); nothing raises, nothing takes long."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from ur.intake.v1 import intake_pb2

from services.intake.domain.model import validate
from services.intake.entrypoints.mapping import to_domain
from services.intake.interop.pas.guard import Limits
from services.intake.interop.pas.inquiry import parse_inquiry
from services.intake.interop.pas.outcome import Problem, operation_outcome
from services.intake.interop.pas.request import pas_request_to_command
from tests.unit.interop.pas_fixtures import REQUEST_EXAMPLES, complete_bundle, example

TEN_MB = "x" * (10 * 1024 * 1024)
WRONG_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "💥", [], {}, [[]], {"resourceType": "Patient"},
                           "2026-13-45", 10**30, "a" * 5000, {"reference": "Patient/ghost"}]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _deep_extension(depth: int) -> Any:
    deep: Any = {"url": "http://x", "valueString": "bottom"}
    for _ in range(depth):
        deep = {"url": "http://x", "extension": [deep]}
    return deep


def _dangle(rng: random.Random, b: Any) -> None:
    """Point a random reference at nothing in the Bundle."""
    refs = [p for p in _paths(b) if p and p[-1] == "reference"]
    if refs:
        _get(b, rng.choice(refs)[:-1])["reference"] = rng.choice(["Patient/ghost", "#nope", "urn:uuid:x", "",
                                                                  "http://evil.example/Claim/1", "a/b/c/d/e"])


def _mutations(rng: random.Random) -> list[tuple[str, Any]]:
    bases = [complete_bundle("72148", "97110"), *(example(n) for n in REQUEST_EXAMPLES)]
    cases: list[tuple[str, Any]] = []

    def mutate(kind: str, fn: Callable[[Any, tuple[Any, ...]], None]) -> None:
        base = copy.deepcopy(rng.choice(bases))
        targets = [p for p in _paths(base) if p]
        path = rng.choice(targets)
        fn(base, path)
        cases.append((f"{kind} at {'/'.join(map(str, path))}", base))

    def delete(b: Any, path: tuple[Any, ...]) -> None:
        parent = _get(b, path[:-1])
        del parent[path[-1]]

    def replace(b: Any, path: tuple[Any, ...]) -> None:
        _get(b, path[:-1])[path[-1]] = copy.deepcopy(rng.choice(WRONG_VALUES))

    def explode(b: Any, path: tuple[Any, ...]) -> None:
        _get(b, path[:-1])[path[-1]] = [copy.deepcopy(_get(b, path))] * 6000

    def nest(b: Any, path: tuple[Any, ...]) -> None:
        _get(b, path[:-1])[path[-1]] = _deep_extension(rng.randint(45, 400))

    def huge(b: Any, path: tuple[Any, ...]) -> None:
        _get(b, path[:-1])[path[-1]] = TEN_MB

    def retype(b: Any, path: tuple[Any, ...]) -> None:
        entry = rng.choice(b["entry"])
        entry["resource"]["resourceType"] = rng.choice(["Nope", "Quantity", "", 7, "Claim", "Bundle", "Patient"])

    def dangle(b: Any, path: tuple[Any, ...]) -> None:
        _dangle(rng, b)

    kinds = [("delete", delete)] * 60 + [("replace", replace)] * 60 + [("explode", explode)] * 8 + [
        ("nest", nest)] * 8 + [("huge", huge)] * 4 + [("retype", retype)] * 20 + [("dangle", dangle)] * 15
    for kind, fn in kinds:
        mutate(kind, fn)
    text = json.dumps(complete_bundle())
    for _ in range(10):
        cases.append(("truncated text", text[: rng.randint(0, len(text) - 1)]))
    cases += [
        ("random bytes", bytes(rng.getrandbits(8) for _ in range(300))),
        ("not UTF-8", b'{"resourceType": "Bundle", "id": "\xff\xfe"}'),
        ("a JSON array", "[1, 2, 3]"), ("a JSON number", "42"), ("JSON null", "null"), ("a JSON string", '"Bundle"'),
        ("another resource", '{"resourceType": "Patient"}'),
        ("deep arrays", "[" * 200_000 + "]" * 200_000),
        ("duplicate keys", '{"resourceType": "Bundle", "type": "collection", "type": "batch"}'),
        ("NaN", '{"resourceType": "Bundle", "type": "collection", "total": NaN}'),
        ("a 10 MB string in the text", json.dumps({**complete_bundle(), "id": TEN_MB})),
        ("huge integer", '{"resourceType": "Bundle", "type": "collection", "total": ' + "9" * 5000 + "}"),
        ("empty object", "{}"), ("empty body", ""), ("empty entries", {**complete_bundle(), "entry": []}),
        ("entry without resource", {**complete_bundle(), "entry": [{"fullUrl": "urn:uuid:1"}]}),
    ]
    return cases


CASES = _mutations(random.Random(14))


def test_there_are_at_least_200_hostile_bundles() -> None:
    assert len(CASES) >= 200


@pytest.mark.parametrize(("name", "body"), CASES, ids=[f"{i:03d}" for i in range(len(CASES))])
def test_hostile_bundle_gives_problems_never_an_exception(name: str, body: Any) -> None:
    # No time limit here (speed is measured by make bench, not by a timed test): the input guard's
    # bounds (size, depth, array length) are what keep a hostile body cheap, and they are tested below.
    result = pas_request_to_command(body, "submitter-1")
    if isinstance(result, intake_pb2.SubmitRequestRequest):
        # a harmless change (an optional element removed): the command must still be one intake takes
        assert not validate(to_domain(result)), name
        return
    assert result, name
    assert all(isinstance(p, Problem) and p.expression.startswith("Bundle") and p.message for p in result)
    assert not [p for p in result if p.code == "exception"], f"{name}: a defect, not a problem: {result}"
    assert operation_outcome(result)["resourceType"] == "OperationOutcome"


def test_most_hostile_bundles_are_refused() -> None:
    refused = sum(isinstance(pas_request_to_command(body, "s"), list) for _name, body in CASES[:120])
    assert refused >= 100


@pytest.mark.parametrize(("name", "body"), [c for c in CASES if c[0] in (
    "a 10 MB string in the text", "deep arrays", "random bytes", "duplicate keys", "NaN")])
def test_specific_hostile_bodies_name_the_limit(name: str, body: Any) -> None:
    result = pas_request_to_command(body, "s")
    assert isinstance(result, list)
    expected = {"a 10 MB string in the text": "too-long", "deep arrays": "too-costly", "random bytes": "structure",
                "duplicate keys": "structure", "NaN": "structure"}[name]
    assert result[0].code == expected


def test_a_10_mb_string_inside_a_parsed_bundle_is_named_by_its_path() -> None:
    bundle = complete_bundle()
    bundle["entry"][5]["resource"]["name"][0]["family"] = TEN_MB
    result = pas_request_to_command(bundle, "s")
    assert isinstance(result, list)
    assert [(p.code, p.expression) for p in result] == [("too-long", "Bundle.entry[5].resource.name[0].family")]


def test_limits_are_configurable() -> None:
    result = pas_request_to_command(complete_bundle(), "s", limits=Limits(max_nodes=50))
    assert isinstance(result, list)
    assert result[0].code == "too-costly"


def test_inquiry_parsing_survives_the_same_bodies() -> None:
    for name, body in CASES[::5]:
        result = parse_inquiry(body)
        assert isinstance(result, list) or result.member_id, name
