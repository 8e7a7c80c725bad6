"""deploy/ runs with TLS on and every caller known, and holds no secret (issue 10).

Compose and Kubernetes alike: every service serves gRPC over mutual TLS and reads the credentials
file; Kafka and PostgreSQL are reached over TLS with their certificates verified; every file a
setting names is mounted from a secret (compose secrets made by deploy/secrets/make-secrets.sh,
Kubernetes Secrets made by deploy/secrets/k8s-secrets.sh); no password, token or key is written in
a manifest, and nothing asks for plaintext. tests/integration/test_deploy_secrets.py runs the
scripts and serves with what they make.
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
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))
MAKE_SECRETS = DEPLOY / "secrets" / "make-secrets.sh"
K8S_SECRETS = DEPLOY / "secrets" / "k8s-secrets.sh"

#: What a service must be given, whatever the deployment.
TLS_ON = {"UR_GRPC_TLS_CERT_FILE", "UR_GRPC_TLS_KEY_FILE", "UR_GRPC_TLS_CA_FILE", "UR_CREDENTIALS_FILE",
          "UR_DATABASE_SSLROOTCERT", "UR_DATABASE_PASSWORD_FILE"}
#: Settings that name a file.
FILE_SETTINGS = re.compile(r"UR_(GRPC_TLS_(CERT|KEY|CA)_FILE|CREDENTIALS_FILE|KAFKA_SSL_(CAFILE|CERTFILE|KEYFILE)|"
                           r"KAFKA_SASL_PASSWORD_FILE|DATABASE_(SSLROOTCERT|SSLCERT|SSLKEY|PASSWORD_FILE))")
#: A password, token or private key written out (a URL's password, a PEM block, a dev token).
WRITTEN_SECRET = re.compile(r"://[^/@\s:]+:[^/@\s]+@|-----BEGIN|dev-only-|CHANGE-ME|PASSWORD:\s*\S", re.IGNORECASE)


def _services(document: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for name, spec in document["services"].items():
        command = spec.get("command") or []
        if command and str(command[0]) in {f"ur-{s}" for s in settings.SERVICES}:
            found[name] = (str(command[0]).removeprefix("ur-"), spec)
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def _env(spec: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (spec.get("environment") or {}).items()}


def test_compose_serves_mutual_tls_and_reaches_kafka_and_postgres_over_tls(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert sorted(s for s, _ in services.values()) == sorted(settings.SERVICES)
    for name, (service, spec) in services.items():
        env = _env(spec)
        assert set(env) >= TLS_ON, f"{name}: missing {sorted(TLS_ON - set(env))}"
        assert env["UR_GRPC_TLS_REQUIRE_CLIENT_CERT"] == "true", name
        assert "UR_GRPC_ALLOW_PLAINTEXT" not in env, f"{name} asks for plaintext"
        assert env["UR_KAFKA_SECURITY_PROTOCOL"] in ("SSL", "SASL_SSL"), name
        assert env["UR_DATABASE_SSLMODE"] == "verify-full", name
        url = env[f"UR_{service.upper()}_DATABASE_URL"]
        assert "@" in url, f"{name}: {url} names no user"
        assert ":" not in url.split("://", 1)[1].split("@", 1)[0], f"{name}: a password in {url}"
        # The probe asks over TLS (the service's own settings), on the service's port.
        test = " ".join(spec["healthcheck"]["test"])
        assert f"services.cli.reflect health 127.0.0.1:{settings.DEFAULT_PORTS[service]}" in test, name


def test_compose_mounts_every_file_its_settings_name_from_a_secret(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    for name, (_, spec) in _services(compose).items():
        mounted = {f"/run/secrets/{s}" for s in spec.get("secrets") or []}
        for variable, value in _env(spec).items():
            if FILE_SETTINGS.fullmatch(variable):
                assert value in mounted, f"{name}: {variable}={value} is not one of its secrets"
        assert set(spec.get("secrets") or []) <= set(declared), name
    # Every secret is in the directory make-secrets.sh writes by default (that it writes each file:
    # tests/integration/test_deploy_secrets.py).
    for secret, spec in declared.items():
        assert Path(spec["file"]).parent == Path("./secrets/generated"), f"secret {secret}: {spec['file']}"


def test_compose_kafka_and_postgres_require_tls(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    command = " ".join(postgres["command"])
    assert "ssl=on" in command
    assert "hba_file=/etc/ur/pg_hba.conf" in command
    hba = [line.split() for line in (DEPLOY / "postgres" / "pg_hba.conf").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert ["hostssl", "all", "all", "all", "scram-sha-256"] in hba
    assert hba[-1] == ["host", "all", "all", "all", "reject"]  # anything not over TLS
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    kafka = compose["services"]["kafka"]
    assert "/run/secrets/kafka-server-properties" in " ".join(kafka["command"])
    script = MAKE_SECRETS.read_text()
    for line in ("listeners=SSL://:9092,CONTROLLER://localhost:9093", "ssl.client.auth=required",
                 "listener.security.protocol.map=SSL:SSL,CONTROLLER:PLAINTEXT"):
        assert line in script


def test_no_secret_is_written_in_a_manifest() -> None:
    for path in [COMPOSE, *K8S]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            assert not WRITTEN_SECRET.search(line), f"{path.name}:{number}: {line.strip()}"


# -- Kubernetes ----------------------------------------------------------------------------------------


def _k8s() -> Iterator[dict[str, Any]]:
    for path in K8S:
        yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def _config() -> dict[str, str]:
    [config] = [d for d in _k8s() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ur-config"]
    return {str(k): str(v) for k, v in config["data"].items()}


def _deployments() -> Iterator[tuple[str, dict[str, Any]]]:
    for document in _k8s():
        if document["kind"] == "Deployment":
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def test_k8s_holds_no_secret_objects_and_reads_them_from_files() -> None:
    """The Secrets come from deploy/secrets/k8s-secrets.sh: a Secret in the manifests would be a
    placeholder that `kubectl apply -f deploy/k8s` puts over the real one."""
    assert not [d["metadata"]["name"] for d in _k8s() if d["kind"] == "Secret"]
    config = _config()
    assert set(config) >= TLS_ON
    assert config["UR_GRPC_TLS_REQUIRE_CLIENT_CERT"] == "true"
    assert "UR_GRPC_ALLOW_PLAINTEXT" not in config
    assert config["UR_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["UR_DATABASE_SSLMODE"] == "verify-full"


def test_k8s_mounts_every_file_a_setting_names_from_the_secrets_the_script_makes() -> None:
    config = _config()
    made = set(re.findall(r'secret "?(ur-[a-z$-]+)', K8S_SECRETS.read_text()))
    made = {name.replace("$service", s) for name in made for s in settings.SERVICES}
    checked = 0
    for name, pod in _deployments():
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
            env = {**config, **{e["name"]: str(e.get("value", "")) for e in container.get("env") or []}}
            for variable, value in env.items():
                if not FILE_SETTINGS.fullmatch(variable):
                    continue
                directory = str(Path(value).parent)
                assert directory in mounts, f"{name}/{container['name']}: {variable}={value} is not mounted"
                secret = volumes[mounts[directory]]["secret"]["secretName"]
                assert secret in made, f"{name}: Secret {secret} is not one k8s-secrets.sh makes"
                checked += 1
        url = next(str(e["value"]) for e in pod["containers"][0]["env"] if e["name"].endswith("_DATABASE_URL"))
        assert ":" not in url.split("://", 1)[1].split("@", 1)[0], f"{name}: a password in {url}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = pod["containers"][0][probe]["exec"]["command"]
            assert command[:4] == ["python", "-m", "services.cli.reflect", "health"], f"{name}: {probe}"
    assert checked >= 3 * len(settings.SERVICES) * 2
