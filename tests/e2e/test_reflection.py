"""A generic client, knowing nothing but what reflection tells it, lists and calls every service."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from services.cli.platform import Platform
from tests.conftest import REPO
from tests.grpc_helpers import GARBAGE, SERVICES, pool_of, raw, reflect
from tests.identity import CLINIC, OPERATOR, token

pytestmark = pytest.mark.e2e

EXPECTED = {"intake": "ur.intake.v1.IntakeService", "review": "ur.review.v1.ReviewService",
            "authorization": "ur.authorization.v1.AuthorizationService"}


def _reflect(*args: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: proves the client needs no generated stubs loaded.
    return subprocess.run([sys.executable, "-m", "services.cli.reflect", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)


def test_reflection_lists_and_calls_every_service(platform: Platform) -> None:
    for service, full_name in EXPECTED.items():
        listed = _reflect("list", platform.target(service))
        assert listed.returncode == 0, listed.stderr
        names = listed.stdout.split()
        assert full_name in names
        assert "grpc.health.v1.Health" in names
        described = _reflect("describe", platform.target(service), full_name)
        assert described.returncode == 0
        assert "rpc " in described.stdout
    queue = _reflect("call", platform.target("review"), "ur.review.v1.ReviewService/ListReviewQueue",
                     '{"page_size": 5}', "--token", token(OPERATOR))
    assert queue.returncode == 0, queue.stderr
    assert isinstance(json.loads(queue.stdout), dict)
    anonymous = _reflect("call", platform.target("review"), "ur.review.v1.ReviewService/ListReviewQueue",
                         '{"page_size": 5}')
    assert anonymous.returncode == 1
    assert "UNAUTHENTICATED" in anonymous.stderr
    health = _reflect("call", platform.target("intake"), "grpc.health.v1.Health/Check", "{}")
    assert json.loads(health.stdout)["status"] == "SERVING"
    missing = _reflect("call", platform.target("intake"), "ur.intake.v1.IntakeService/GetRequest",
                       '{"request_id": "no-such-request"}', "--token", token(CLINIC))
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    for service in EXPECTED:  # the probe of the deployment manifests
        assert _reflect("health", platform.target(service)).returncode == 0
        assert _reflect("health", platform.target(service), "--service", EXPECTED[service]).returncode == 0
    unknown = _reflect("health", platform.target("intake"), "--service", "no.such.Service")
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_describes_every_method_of_the_running_services(platform: Platform, version: str) -> None:
    """What ``grpcurl describe ur.intake.v1.IntakeService.SubmitRequest`` asks, for every method."""
    for service, full_name in EXPECTED.items():
        descriptor = SERVICES[full_name]
        with platform.channel(service) as channel:
            answers = reflect(channel, version, *(reflection_pb2.ServerReflectionRequest(
                file_containing_symbol=m.full_name) for m in descriptor.methods))
        for method, answer in zip(descriptor.methods, answers, strict=True):
            found = pool_of(answer).FindServiceByName(full_name).FindMethodByName(method.name)
            assert found.input_type.full_name == method.input_type.full_name


def test_an_undecodable_body_is_invalid_argument(platform: Platform) -> None:
    with platform.channel("intake") as channel, pytest.raises(grpc.RpcError) as refused:
        raw(channel, "/ur.intake.v1.IntakeService/SubmitRequest")(GARBAGE, timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    log = platform.log_path("intake").read_text()
    assert "SubmitRequest: undecodable request body answered INVALID_ARGUMENT" in log
