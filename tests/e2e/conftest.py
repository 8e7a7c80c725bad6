"""The platform as separate processes on PostgreSQL and the real Kafka broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from ur.authorization.v1 import authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2_grpc

from services.cli.platform import DEV_CREDENTIALS, DEV_TOKEN_FILES, Platform
from services.common.tls import TransportSecurity
from tests.conftest import REPO
from tests.polling import wait_until
from tests.topics import new_topic_prefix

SETTLED = {intake_pb2.REQUEST_STATUS_PENDED, intake_pb2.REQUEST_STATUS_COMPLETE,
           intake_pb2.REQUEST_STATUS_INELIGIBLE}


def start_platform(tmp: Path, make_database: Callable[[str], str], kafka_bootstrap: str,
                   prefix: str, extra_env: Mapping[str, str] | None = None,
                   security: TransportSecurity | None = None, credentials_file: Path = DEV_CREDENTIALS,
                   token_files: Mapping[str, Path] = DEV_TOKEN_FILES) -> Platform:
    """The platform on throw-away databases; every service knows the callers of ``credentials_file``
    (the sample's development credentials), and review and the workbench send the tokens of
    ``token_files``."""
    platform = Platform(
        var_dir=tmp, kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, security=security,
        credentials_file=credentials_file, token_files=dict(token_files),
        database_urls={s: make_database(s) for s in ("intake", "review", "authorization")},
        # Port 0: each service binds a free port and reports it; nothing can take it in between.
        ports={s: 0 for s in ("intake", "review", "authorization")},
        members_seed=REPO / "tests" / "data" / "members.yaml",
        # The tests' one submitter polls intake faster than a caller may (UR_INTAKE_RATE_PER_S): the
        # limit is off here, and tested on its own (tests/integration/test_access_matrix.py).
        extra_env={"UR_LOG_LEVEL": "INFO", "UR_TOPIC_PARTITIONS": "3", "UR_INTAKE_RATE_PER_S": "0",
                   **(extra_env or {})})
    platform.start()
    try:
        platform.wait_healthy(timeout_s=120)
    except RuntimeError:
        platform.stop()
        raise
    return platform


def start_intake_alone(tmp: Path, kafka_bootstrap: str, prefix: str, database_url: str,
                       extra_env: Mapping[str, str] | None = None) -> Platform:
    """Intake without review and authorization (nothing decides its requests), on ``database_url``."""
    platform = Platform(var_dir=tmp, kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix,
                        database_urls={"intake": database_url}, ports={"intake": 0, "review": 0, "authorization": 0},
                        members_seed=REPO / "tests" / "data" / "members.yaml",
                        extra_env={"UR_TOPIC_PARTITIONS": "3", **(extra_env or {})})
    platform.start("intake")
    try:
        platform.wait_healthy("intake", timeout_s=120)
    except RuntimeError:
        platform.stop()
        raise
    return platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[str], str],
             kafka_bootstrap: str) -> Iterator[Platform]:

    running = start_platform(tmp_path_factory.mktemp("platform"), make_database, kafka_bootstrap,
                             new_topic_prefix())
    yield running
    running.stop()


class Clients:
    """Stubs of the three services as the platform's own clients call them: as the sample clinic
    (a submitter) to intake, as the operator console (review:read, authorizations:read) to review
    and authorization (services/cli/platform.py DEV_TOKENS). A call that passes its own
    ``authorization`` metadata (a reviewer's token) is made as that caller instead."""

    def __init__(self, platform: Platform) -> None:
        self.channels = {s: platform.channel(s) for s in ("intake", "review", "authorization")}
        self.intake = intake_pb2_grpc.IntakeServiceStub(self.channels["intake"])
        self.review = review_pb2_grpc.ReviewServiceStub(self.channels["review"])
        self.authorization = authorization_pb2_grpc.AuthorizationServiceStub(self.channels["authorization"])

    def settle(self, request_id: str, timeout_s: float = 60) -> intake_pb2.RequestView:
        def status() -> intake_pb2.RequestView:
            return self.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request

        view: intake_pb2.RequestView = wait_until(status, timeout_s, what=f"request {request_id} to settle",
                                                  until=lambda v: v.status in SETTLED)
        return view

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


#: Authorization records a claim can draw on. Since issue 12 every decided line has a record (and a
#: reference number): pended and denied lines too, so a number alone says nothing about approval.
USABLE = frozenset({types_pb2.AUTHORIZATION_STATUS_APPROVED, types_pb2.AUTHORIZATION_STATUS_PARTIALLY_APPROVED,
                    types_pb2.AUTHORIZATION_STATUS_MODIFIED})


def usable(authorization: types_pb2.Authorization) -> bool:
    """Whether the line's authorization record is one a claim could draw on."""
    return bool(authorization.authorization_number) and authorization.status in USABLE


@pytest.fixture(scope="module")
def clients(platform: Platform) -> Iterator[Clients]:
    c = Clients(platform)
    yield c
    c.close()
