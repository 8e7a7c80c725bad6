"""What deploy/secrets/make-secrets.sh makes is what the deployments mount, and it works: a service
served with its certificate and the credentials file it wrote admits the callers it names, by
certificate or by token, and refuses the others; the deployments' probe answers over mutual TLS;
deploy/secrets/k8s-secrets.sh makes every Secret deploy/k8s mounts (issue 10, Deploy).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc

from services.authorization import bootstrap as authorization_bootstrap
from services.common.credentials import load_credentials
from services.common.grpc_server import RunningServer, create_server
from services.common.settings import AuthorizationSettings
from services.common.tls import TransportSecurity, open_channel
from tests.conftest import REPO

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"


@dataclass
class Made:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def token(self, principal: str) -> str:
        return (self.directory / "tokens" / f"{principal}.token").read_text().strip()

    def client(self, name: str | None) -> TransportSecurity:
        """TLS as ``name`` (its certificate), or with none."""
        if name is None:
            return TransportSecurity(ca_file=self.path("ca.pem"))
        return TransportSecurity(ca_file=self.path("ca.pem"), cert_file=self.path(f"{name}.pem"),
                                 key_file=self.path(f"{name}.key"))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    directory = tmp_path_factory.mktemp("deploy") / "generated"
    subprocess.run([str(DEPLOY / "secrets" / "make-secrets.sh"), str(directory)], check=True, capture_output=True)
    return Made(directory)


def test_it_makes_every_file_compose_mounts_and_keeps_the_secrets_private(made: Made) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, spec in compose["secrets"].items():
        assert made.path(Path(spec["file"]).name).is_file(), f"compose secret {name}: {spec['file']} not made"
    assert made.directory.stat().st_mode & 0o777 == 0o700
    assert made.path("ca.key").stat().st_mode & 0o777 == 0o600  # the CA's key is never mounted
    for token in (made.directory / "tokens").iterdir():
        assert token.stat().st_mode & 0o777 == 0o600
    # Run again: what is there stays (a restart of compose keeps its CA and passwords).
    before = made.path("ca.pem").read_bytes()
    subprocess.run([str(DEPLOY / "secrets" / "make-secrets.sh"), str(made.directory)], check=True,
                   capture_output=True)
    assert made.path("ca.pem").read_bytes() == before


def test_the_credentials_hold_digests_of_the_tokens_it_made(made: Made) -> None:
    text = made.path("credentials.yaml").read_text()
    credentials = load_credentials(made.path("credentials.yaml"))
    for principal in ("operator", "provider-portal", "claims-system", "svc-workbench"):
        token = made.token(principal)
        assert token not in text
        found = credentials.by_token(token)
        assert found is not None
        assert found.id == principal
    assert credentials.by_token("dev-only-token-ops-console") is None


def test_k8s_secrets_makes_every_secret_the_manifests_mount(made: Made) -> None:
    printed = subprocess.run([str(DEPLOY / "secrets" / "k8s-secrets.sh"), "--print", str(made.directory)],
                             check=True, capture_output=True, text=True).stdout
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(printed) if d}
    mounted = set()
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "Deployment":
                for volume in document["spec"]["template"]["spec"]["volumes"]:
                    if "secret" in volume:
                        mounted.add(volume["secret"]["secretName"])
    assert mounted
    assert mounted <= set(secrets), f"not made: {sorted(mounted - set(secrets))}"
    assert set(secrets["ur-intake-tls"]["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert set(secrets["ur-kafka"]["data"]) == {"password", "ca.crt"}
    assert all(s["metadata"]["namespace"] == "ur" for s in secrets.values())


# -- a service served with them -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(made: Made, make_database: Callable[[str], str]) -> Iterator[tuple[str, Any]]:
    app = authorization_bootstrap.build(AuthorizationSettings(
        database_url=make_database("deploy_secrets"), topic_prefix="ds",
        credentials_file=made.path("credentials.yaml")))
    server: RunningServer = create_server(
        "127.0.0.1:0", app.runtime.registrations, interceptors=app.runtime.interceptors,
        security=TransportSecurity(ca_file=made.path("ca.pem"), cert_file=made.path("authorization.pem"),
                                   key_file=made.path("authorization.key"), require_client_cert=True))
    yield f"localhost:{server.port}", app
    server.stop(0)
    app.runtime.engine.dispose()


def _code(target: str, security: TransportSecurity, method: str, token: str | None = None) -> str:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    requests: dict[str, Any] = {
        "ListMemberAuthorizations": authorization_pb2.ListMemberAuthorizationsRequest(member_id="T-MA-0001"),
        "FindOverlappingAuthorizations": authorization_pb2.FindOverlappingAuthorizationsRequest(),
        "GetAuthorizationMetrics": authorization_pb2.GetAuthorizationMetricsRequest(),
        "ConsumeUnits": authorization_pb2.ConsumeUnitsRequest(claim_line_id="CLM-1/1"),
    }
    with open_channel(target, security) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        try:
            getattr(stub, method)(requests[method], metadata=metadata, timeout=15)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return "OK"


def test_the_callers_it_names_are_admitted_and_no_others(made: Made, served: tuple[str, Any]) -> None:
    target, _ = served
    # Certificates as identities: review (svc-review) and the operator read; neither draws units.
    assert _code(target, made.client("review"), "ListMemberAuthorizations") == "OK"
    assert _code(target, made.client("review"), "FindOverlappingAuthorizations") == "OK"  # its duplicate check
    assert _code(target, made.client("operator"), "GetAuthorizationMetrics") == "OK"
    assert _code(target, made.client("review"), "ConsumeUnits") == "PERMISSION_DENIED"
    # A token names the caller whatever certificate carries it: the claims system may draw.
    assert _code(target, made.client("operator"), "ConsumeUnits", made.token("claims-system")) == "INVALID_ARGUMENT"
    assert _code(target, made.client("operator"), "ConsumeUnits", made.token("provider-portal")) == \
        "PERMISSION_DENIED"
    # A certificate the CA signed that names nobody, a forged token: refused.
    assert _code(target, made.client("intake"), "ListMemberAuthorizations") == "UNAUTHENTICATED"
    assert _code(target, made.client("operator"), "ListMemberAuthorizations", "forged-token-forged-token") == \
        "UNAUTHENTICATED"
    # No client certificate: the handshake itself fails.
    assert _code(target, made.client(None), "ListMemberAuthorizations") == "UNAVAILABLE"


def test_the_deployments_probe_answers_over_mutual_tls(made: Made, served: tuple[str, Any]) -> None:
    target, _ = served
    port = target.rpartition(":")[2]
    env = {**os.environ, "UR_GRPC_TLS_CA_FILE": str(made.path("ca.pem")),
           "UR_GRPC_TLS_CERT_FILE": str(made.path("authorization.pem")),
           "UR_GRPC_TLS_KEY_FILE": str(made.path("authorization.key"))}
    # As compose and Kubernetes run it: the address 127.0.0.1, which the certificate names.
    probe = [sys.executable, "-m", "services.cli.reflect", "health", f"127.0.0.1:{port}"]
    assert subprocess.run(probe, env=env, capture_output=True, timeout=60).returncode == 0
    ready = subprocess.run([*probe, "--service", "ur.authorization.v1.AuthorizationService"], env=env,
                           capture_output=True, timeout=60)
    assert ready.returncode == 0
    without = {k: v for k, v in env.items() if k != "UR_GRPC_TLS_CERT_FILE" and k != "UR_GRPC_TLS_KEY_FILE"}
    assert subprocess.run(probe, env=without, capture_output=True, timeout=60).returncode == 1
