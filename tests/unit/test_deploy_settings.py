"""deploy/ (compose, Kubernetes) may only pass the services variables declared in
services/common/settings.py, and must use the ports of DEFAULT_PORTS (gRPC) and DEFAULT_METRICS_PORTS.

A typo in a manifest (UR_INTAKE_DATABASE_ULR) would otherwise be silently ignored and the
service would fall back to its default; these tests catch it before a deployment does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml")) + sorted((DEPLOY / "k8s").glob("*.yml"))

#: console script -> service (pyproject's [project.scripts]).
COMMANDS = {f"ur-{service}": service for service in settings.SERVICES}


def _service_of(command: Any) -> str | None:
    """The service a container runs, from its command (list or string), else None."""
    if isinstance(command, str):
        command = command.split()
    if not command:
        return None
    return COMMANDS.get(Path(str(command[0])).name)


def _port_of(address: str) -> int:
    """The port of host:port (or [v6]:port)."""
    match = re.fullmatch(r".*:(\d+)", address.strip())
    assert match, f"{address!r} is not host:port"
    return int(match.group(1))


def _check_address_settings(env: dict[str, str], where: str) -> None:
    """*_GRPC_LISTEN and *_TARGET values must name the service's default port."""
    for service, port in settings.DEFAULT_PORTS.items():
        for name in (f"UR_{service.upper()}_GRPC_LISTEN", f"UR_{service.upper()}_TARGET"):
            if env.get(name):
                assert _port_of(env[name]) == port, f"{where}: {name}={env[name]} but {service} uses port {port}"


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict), COMPOSE
    assert isinstance(document.get("services"), dict), COMPOSE
    return document


def _compose_env(spec: dict[str, Any]) -> dict[str, str]:
    environment = spec.get("environment") or {}
    if isinstance(environment, list):  # ["NAME=value", "NAME"]
        pairs = (item.split("=", 1) for item in environment)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


def _compose_ur_services(compose: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """compose service name -> (ur service, spec), for the containers that run one of ours."""
    found = {}
    for name, spec in compose["services"].items():
        service = _service_of(spec.get("command") or spec.get("entrypoint"))
        if service:
            found[name] = (service, spec)
    return found


def test_compose_runs_each_service_once(compose: dict[str, Any]) -> None:
    services = sorted(service for service, _ in _compose_ur_services(compose).values())
    assert services == sorted(settings.SERVICES)


def test_compose_passes_only_declared_settings(compose: dict[str, Any]) -> None:
    known = settings.known_env_vars()
    for name, (_, spec) in _compose_ur_services(compose).items():
        assert "env_file" not in spec, f"compose service {name}: env_file hides its variables from this check"
        unknown = sorted(set(_compose_env(spec)) - known)
        assert not unknown, f"compose service {name} passes undeclared variables {unknown}"


def test_compose_ports_match_defaults(compose: dict[str, Any]) -> None:
    services = _compose_ur_services(compose)
    for name, (service, spec) in services.items():
        port = settings.DEFAULT_PORTS[service]
        env = _compose_env(spec)
        listen = env.get(f"UR_{service.upper()}_GRPC_LISTEN", "")
        assert listen, f"compose service {name}: UR_{service.upper()}_GRPC_LISTEN must be set (default binds 127.0.0.1)"
        assert listen.startswith("0.0.0.0:"), f"compose service {name}: {listen} is unreachable from other containers"
        _check_address_settings(env, f"compose service {name}")
        for mapping in spec.get("ports") or []:
            target = mapping.get("target") if isinstance(mapping, dict) else str(mapping).split("/")[0].split(":")[-1]
            assert int(str(target)) == port, f"compose service {name} publishes container port {target}, not {port}"
        health = " ".join(map(str, (spec.get("healthcheck") or {}).get("test") or []))
        for probed in re.findall(r"127\.0\.0\.1:(\d+)", health):
            assert int(probed) == port, f"compose service {name}: healthcheck probes port {probed}, not {port}"
    # *_TARGET must also name the compose service that runs that service.
    by_service = {service: name for name, (service, _) in services.items()}
    for name, (_, spec) in services.items():
        for var, value in _compose_env(spec).items():
            target = re.fullmatch(r"UR_([A-Z]+)_TARGET", var)
            if target and target.group(1).lower() in by_service:
                host = value.rsplit(":", 1)[0]
                assert host == by_service[target.group(1).lower()], f"compose service {name}: {var}={value}"


def test_compose_database_urls_use_the_installed_driver(compose: dict[str, Any]) -> None:
    for name, (service, spec) in _compose_ur_services(compose).items():
        url = _compose_env(spec).get(f"UR_{service.upper()}_DATABASE_URL", "")
        assert url.startswith("postgresql+psycopg://"), f"compose service {name}: database URL {url!r}"


# ---------------------------------------------------------------- Kubernetes


def _k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in K8S_FILES:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                assert isinstance(document, dict), f"{path}: not a Kubernetes object"
                assert "kind" in document, f"{path}: not a Kubernetes object"
                yield path, document


@pytest.fixture(scope="module")
def k8s() -> list[tuple[Path, dict[str, Any]]]:
    documents = list(_k8s_documents())
    assert documents, "deploy/k8s holds no manifests"
    return documents


def _key(document: dict[str, Any]) -> tuple[str, str]:
    return document["metadata"].get("namespace", "default"), document["metadata"]["name"]


def _config_keys(k8s: list[tuple[Path, dict[str, Any]]]) -> dict[tuple[str, str, str], dict[str, str]]:
    """(kind, namespace, name) -> its keys and (where readable) values, for ConfigMaps and Secrets."""
    keys: dict[tuple[str, str, str], dict[str, str]] = {}
    for _, document in k8s:
        if document["kind"] in ("ConfigMap", "Secret"):
            values = {**(document.get("data") or {}), **(document.get("stringData") or {})}
            keys[(document["kind"], *_key(document))] = {str(k): str(v) for k, v in values.items()}
    return keys


def _workloads(k8s: list[tuple[Path, dict[str, Any]]]) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(file, workload, pod spec) for every object that has a pod template."""
    for path, document in k8s:
        spec = document.get("spec") or {}
        if document["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        template = spec.get("template")
        if template:
            yield path, document, template["spec"]


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


def _container_env(container: dict[str, Any], namespace: str,
                   config: dict[tuple[str, str, str], dict[str, str]], where: str) -> dict[str, str]:
    """Every variable the container gets: env, and envFrom's ConfigMaps/Secrets (with prefixes)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref_key in source:
                ref = (kind, namespace, source[ref_key]["name"])
                assert ref in config, f"{where}: envFrom {kind} {ref[2]} is not in deploy/k8s"
                env.update({prefix + k: v for k, v in config[ref].items()})
    for item in container.get("env") or []:
        value = item.get("value", "")
        secret = (item.get("valueFrom") or {}).get("secretKeyRef")
        config_map = (item.get("valueFrom") or {}).get("configMapKeyRef")
        for kind, key_ref in (("Secret", secret), ("ConfigMap", config_map)):
            if key_ref:
                source = config.get((kind, namespace, key_ref["name"]))
                assert source is not None, (f"{where}: {item['name']} refers to {kind} {key_ref['name']}, "
                                            "not in deploy/k8s")
                assert key_ref["key"] in source, f"{where}: {kind} {key_ref['name']} has no key {key_ref['key']}"
                value = source[key_ref["key"]]
        env[item["name"]] = str(value)
    return env


def test_k8s_runs_each_service_once(k8s: list[tuple[Path, dict[str, Any]]]) -> None:
    services = sorted(service for _, document, pod in _workloads(k8s) if document["kind"] == "Deployment"
                      for service in {_service_of(c.get("command")) for c in pod.get("containers") or []} if service)
    assert services == sorted(settings.SERVICES)


def test_k8s_passes_only_declared_settings(k8s: list[tuple[Path, dict[str, Any]]]) -> None:
    known = settings.known_env_vars()
    config = _config_keys(k8s)
    checked = 0
    for path, document, pod in _workloads(k8s):
        namespace = _key(document)[0]
        for container in _containers(pod):
            if not _service_of(container.get("command") or container.get("args")):
                continue
            where = f"{path.name}: {document['kind']} {document['metadata']['name']}, container {container['name']}"
            env = _container_env(container, namespace, config, where)
            unknown = sorted(set(env) - known)
            assert not unknown, f"{where} passes undeclared variables {unknown}"
            _check_address_settings(env, where)
            checked += 1
    assert checked >= len(settings.SERVICES)


def _probed_port(probe: dict[str, Any]) -> int | None:
    """The port a probe asks the gRPC health service on: a kubelet gRPC probe's, or (TLS, which
    those cannot speak) that of an exec probe running ``services.cli.reflect health HOST:PORT``."""
    if "grpc" in probe:
        return int(probe["grpc"]["port"])
    command = [str(part) for part in (probe.get("exec") or {}).get("command") or []]
    if command[:4] == ["python", "-m", "services.cli.reflect", "health"] and len(command) > 4:
        return _port_of(command[4])
    return None


def test_k8s_ports_match_defaults(k8s: list[tuple[Path, dict[str, Any]]]) -> None:
    config = _config_keys(k8s)
    pod_ports: dict[tuple[str, str], tuple[str, dict[str, int]]] = {}  # (ns, app label) -> service, named ports
    for path, document, pod in _workloads(k8s):
        namespace = _key(document)[0]
        for container in pod.get("containers") or []:
            service = _service_of(container.get("command"))
            if not service:
                continue
            port = settings.DEFAULT_PORTS[service]
            metrics_port = settings.DEFAULT_METRICS_PORTS[service]
            where = f"{path.name}: {document['metadata']['name']}, container {container['name']}"
            ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container.get("ports") or []}
            assert ports == {"grpc": port, "metrics": metrics_port}, (
                f"{where}: container ports {ports}, expected grpc {port} and metrics {metrics_port}")
            env = _container_env(container, namespace, config, where)
            listen = env.get(f"UR_{service.upper()}_GRPC_LISTEN", "")
            assert listen.startswith("0.0.0.0:"), f"{where}: UR_{service.upper()}_GRPC_LISTEN={listen!r}"
            metrics = env.get(f"UR_{service.upper()}_METRICS_LISTEN", "")
            assert metrics == f"0.0.0.0:{metrics_port}", f"{where}: UR_{service.upper()}_METRICS_LISTEN={metrics!r}"
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                assert probe, f"{where}: needs a gRPC {probe_name}"
                assert _probed_port(probe) == port, f"{where}: {probe_name} probes {_probed_port(probe)}"
            labels = document["spec"]["selector"]["matchLabels"]
            pod_ports[(namespace, labels.get("app.kubernetes.io/name", ""))] = (service, ports)

    services_seen = set()
    for path, document in k8s:
        if document["kind"] != "Service":
            continue
        namespace = _key(document)[0]
        app: str | None = (document["spec"].get("selector") or {}).get("app.kubernetes.io/name")
        selected = pod_ports.get((namespace, app)) if app is not None else None
        if not selected:
            continue
        service, named = selected
        expected = settings.DEFAULT_PORTS[service]
        for entry in document["spec"]["ports"]:
            target = entry.get("targetPort", entry["port"])
            target = named.get(target, target) if isinstance(target, str) else target
            where = f"{path.name}: Service {document['metadata']['name']}"
            assert entry["port"] == expected, f"{where} exposes {entry['port']}, expected {expected}"
            assert target == expected, f"{where} targets {target}, expected {expected}"
        services_seen.add(service)
    assert services_seen == set(settings.SERVICES), f"Services expose only {sorted(services_seen)}"


def test_k8s_targets_name_the_services(k8s: list[tuple[Path, dict[str, Any]]]) -> None:
    """UR_<SERVICE>_TARGET must point at the Kubernetes Service in front of that service."""
    services = {document["metadata"]["name"] for _, document in k8s if document["kind"] == "Service"}
    for (kind, _, name), values in _config_keys(k8s).items():
        for var, value in values.items():
            target = re.fullmatch(r"UR_([A-Z]+)_TARGET", var)
            if target and kind == "ConfigMap":
                host = value.rsplit(":", 1)[0].split(".")[0]
                assert host in services, f"ConfigMap {name}: {var}={value} names no Service of deploy/k8s"
