"""Acceptance (issues 11.3 and 11.4): intake's database goes away and comes back.

Intake reaches PostgreSQL through a TCP proxy this test controls; cutting it is an outage for
intake alone. During it, calls answer UNAVAILABLE with a retry hint (google.rpc.RetryInfo), which
standard retry policies retry, not INTERNAL; health turns NOT_SERVING within 5 s, for "" and for the
service's name, and SERVING again within 5 s of the database's return; the log says so once per
change, not once per call."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import make_url
from ur.intake.v1 import intake_pb2, intake_pb2_grpc

from services.cli.platform import Platform
from tests.e2e.conftest import start_intake_alone
from tests.factories import lumbar_mri
from tests.polling import wait_until
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

INTAKE = "ur.intake.v1.IntakeService"


@pytest.fixture
def proxied_intake(tmp_path: Path, make_database: Callable[[str], str], kafka_bootstrap: str,
                   topic_prefix: str) -> Iterator[tuple[Platform, TcpProxy]]:
    url = make_url(make_database("intake"))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        platform = start_intake_alone(tmp_path, kafka_bootstrap, topic_prefix, through_proxy)
    except RuntimeError:
        proxy.close()
        raise
    yield platform, proxy
    platform.stop()
    proxy.close()


def statuses(health: health_pb2_grpc.HealthStub) -> tuple[int, ...]:
    return tuple(int(health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2).status)
                 for name in ("", INTAKE))


def test_a_database_outage_is_unavailable_and_not_serving_then_heals(
        proxied_intake: tuple[Platform, TcpProxy]) -> None:
    platform, proxy = proxied_intake
    serving = (health_pb2.HealthCheckResponse.SERVING,) * 2
    not_serving = (health_pb2.HealthCheckResponse.NOT_SERVING,) * 2
    with platform.channel("intake") as channel:
        intake = intake_pb2_grpc.IntakeServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        before = intake.SubmitRequest(lumbar_mri(key=f"before-{uuid.uuid4().hex[:8]}"), timeout=10).request
        assert statuses(health) == serving

        proxy.cut()
        cut_at = time.monotonic()
        refused = 0
        def read() -> object:
            return intake.GetRequest(intake_pb2.GetRequestRequest(request_id=before.request_id), timeout=10)

        def submit() -> object:
            return intake.SubmitRequest(lumbar_mri(key=f"during-{uuid.uuid4().hex}"), timeout=10)

        for _ in range(20):
            for call in (read, submit):
                with pytest.raises(grpc.RpcError) as failed:
                    call()
                assert failed.value.code() is grpc.StatusCode.UNAVAILABLE, failed.value.details()
                status = rpc_status.from_call(cast(grpc.Call, failed.value))
                assert status is not None
                assert status.code == code_pb2.UNAVAILABLE
                hint = error_details_pb2.RetryInfo()
                assert any(d.Unpack(hint) for d in status.details)
                assert hint.retry_delay.seconds >= 1
                refused += 1
        wait_until(lambda: statuses(health), 5 - (time.monotonic() - cut_at), interval_s=0.1,
                   what="NOT_SERVING within 5 s of the outage", until=lambda s: s == not_serving)

        proxy.restore()
        wait_until(lambda: statuses(health), 5, interval_s=0.1, what="SERVING within 5 s of the database's return",
                   until=lambda s: s == serving)
        after = intake.GetRequest(intake_pb2.GetRequestRequest(request_id=before.request_id), timeout=10).request
        assert after.request_id == before.request_id
        intake.SubmitRequest(lumbar_mri(key=f"after-{uuid.uuid4().hex[:8]}"), timeout=10)

    log = platform.log_path("intake").read_text(errors="replace").splitlines()
    outage = [line for line in log if "services.common.grpc_errors" in line]
    assert len(outage) == 2, outage  # began, ended: not one line for each of the 40 refused calls
    assert "database unavailable" in outage[0]
    assert f"{refused} call(s) were answered UNAVAILABLE" in outage[1]
    assert not [line for line in log if "unhandled error" in line]
    turns = [line for line in log if "services.common.health" in line]
    assert any("NOT_SERVING" in line and "database" in line for line in turns)
    assert any("'' SERVING" in line for line in turns)
