"""Acceptance (issue 10, transport): the platform over mutual TLS.

The three services serve TLS and require client certificates from a throw-away CA; review's calls
to authorization present the services' certificate, and that certificate is review's identity
(review is given no token: the credentials file maps the certificate's common name to svc-review).
A request travels the whole way (review asks authorization about overlapping authorizations, over
mutual TLS); a client without a certificate, one whose certificate another CA signed, and a
plaintext client are all refused, and a trusted certificate that names no principal gets no answer
without a token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.common.tls import TransportSecurity, open_channel
from tests.e2e.conftest import start_platform
from tests.factories import lumbar_mri
from tests.grpc_helpers import health_of
from tests.identity import CREDENTIALS
from tests.tls_material import make_material
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e


def test_the_platform_runs_over_mutual_tls_and_refuses_clients_without_a_certificate(
        tmp_path: Path, make_database: Callable[[str], str], kafka_bootstrap: str) -> None:
    material = make_material(tmp_path / "tls")
    credentials = yaml.safe_load(CREDENTIALS.read_text())
    for principal in credentials["principals"]:
        if principal["id"] == "svc-review":
            principal["certificates"] = [{"common_name": "ur-service"}]
    (tmp_path / "credentials.yaml").write_text(yaml.safe_dump(credentials))
    platform = start_platform(tmp_path / "platform", make_database, kafka_bootstrap, new_topic_prefix(),
                              security=material.services(require_client_cert=True),
                              credentials_file=tmp_path / "credentials.yaml", token_files={})
    try:
        with platform.channel("intake") as channel:
            request = lumbar_mri()
            request.wait_ms = 15000
            view = intake_pb2_grpc.IntakeServiceStub(channel).SubmitRequest(request, timeout=30).request
        assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE, view
        number = view.lines[0].authorization.authorization_number
        with platform.channel("authorization") as channel:
            found = authorization_pb2_grpc.AuthorizationServiceStub(channel).GetAuthorization(
                authorization_pb2.GetAuthorizationRequest(authorization_number=number), timeout=10).authorization
        assert found.request_id == view.request_id
        client = TransportSecurity(ca_file=material.ca, cert_file=material.client.cert, key_file=material.client.key)
        with open_channel(platform.target("authorization"), client) as channel, pytest.raises(grpc.RpcError) as nobody:
            authorization_pb2_grpc.AuthorizationServiceStub(channel).GetAuthorization(
                authorization_pb2.GetAuthorizationRequest(authorization_number=number), timeout=10)
        assert nobody.value.code() is grpc.StatusCode.UNAUTHENTICATED
        for service in ("intake", "review", "authorization"):
            target = platform.target(service)
            assert health_of(target, platform.security) == health_pb2.HealthCheckResponse.SERVING
            assert health_of(target, material.client_without_certificate()) is grpc.StatusCode.UNAVAILABLE, service
            assert health_of(target, material.stranger_client()) is grpc.StatusCode.UNAVAILABLE, service
            assert health_of(target, None) is grpc.StatusCode.UNAVAILABLE, service
        assert "mutual TLS" in platform.log_path("intake").read_text()
    finally:
        platform.stop()
