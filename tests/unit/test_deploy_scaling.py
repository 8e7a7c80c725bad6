"""deploy/k8s scales each service out: at least two replicas, no more than the topics' partitions (a
consumer group's members beyond them get none), a PodDisruptionBudget that keeps one serving, gRPC
health probes (readiness on the API's own health name), and review reaching every authorization pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
API_NAMES = {"intake": "ur.intake.v1.IntakeService", "review": "ur.review.v1.ReviewService",
             "authorization": "ur.authorization.v1.AuthorizationService"}


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    found = [d for path in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    assert found
    return found


def _of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def _config(documents: list[dict[str, Any]]) -> dict[str, str]:
    return {str(k): str(v) for k, v in _of_kind(documents, "ConfigMap")["ur-config"]["data"].items()}


@pytest.mark.parametrize("service", settings.SERVICES)
def test_each_service_runs_replicas_within_the_partitions(documents: list[dict[str, Any]], service: str) -> None:
    deployment = _of_kind(documents, "Deployment")[f"ur-{service}"]
    replicas = deployment["spec"]["replicas"]
    partitions = int(_config(documents)["UR_TOPIC_PARTITIONS"])
    assert 2 <= replicas <= partitions, f"ur-{service}: {replicas} replicas, topics of {partitions} partitions"
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0  # a rollout never drops below the replicas asked for
    # A rollout's surge replica joins the consumer group too: still within the partitions.
    assert replicas + rolling["maxSurge"] <= partitions


@pytest.mark.parametrize("service", settings.SERVICES)
def test_a_disruption_budget_keeps_a_replica_serving(documents: list[dict[str, Any]], service: str) -> None:
    deployment = _of_kind(documents, "Deployment")[f"ur-{service}"]
    budget = _of_kind(documents, "PodDisruptionBudget")[f"ur-{service}"]
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    replicas = deployment["spec"]["replicas"]
    if "maxUnavailable" in budget["spec"]:
        assert 1 <= budget["spec"]["maxUnavailable"] < replicas
    else:
        assert 1 <= budget["spec"]["minAvailable"] < replicas


@pytest.mark.parametrize("service", settings.SERVICES)
def test_probes_ask_grpc_health(documents: list[dict[str, Any]], service: str) -> None:
    pod = _of_kind(documents, "Deployment")[f"ur-{service}"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    port = settings.DEFAULT_PORTS[service]
    # Over mutual TLS, which a kubelet gRPC probe cannot speak: services/cli/reflect.py health.
    health = ["python", "-m", "services.cli.reflect", "health", f"127.0.0.1:{port}"]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == health
    # Ready while the API works (its database); a broker outage delays decisions, not answers.
    assert container["readinessProbe"]["exec"]["command"] == [*health, "--service", API_NAMES[service]]


def test_review_reaches_every_authorization_pod(documents: list[dict[str, Any]]) -> None:
    target = _config(documents)["UR_AUTHORIZATION_TARGET"]
    name = target.split(".")[0]
    service = _of_kind(documents, "Service")[name]
    assert service["spec"]["clusterIP"] == "None", "a ClusterIP Service holds each connection to one pod"
    pods = _of_kind(documents, "Deployment")["ur-authorization"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
