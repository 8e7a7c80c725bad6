"""Two replicas of each service against one broker and one PostgreSQL database per service: the
replicas of a service share its consumer group's partitions and take turns at relaying its outbox
(services/common/outbox.py). Mid-stream one replica of each service is killed with -9 (review's is
the one holding its outbox lease) and another started, so every group rebalances and review's relay
moves to another replica; at the end every request has exactly one determination and every approved
line one authorization."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from ur.intake.v1 import intake_pb2_grpc

from services.cli.platform import SERVICES, Platform, replica_name
from services.common.tls import open_channel
from tests.e2e.conftest import Clients, start_platform
from tests.faults.conftest import assert_exactly_once, streaming
from tests.polling import wait_until
from tests.topics import new_topic_prefix

pytestmark = pytest.mark.e2e

#: Seconds a dead holder's outbox lease outlives it: short, so that the killed relay is replaced soon.
LEASE_S = 3


class ReplicatedClients(Clients):
    """The platform's clients, with intake reached through every intake replica given: round robin over
    those that answer, as a gateway in front of a Kubernetes headless Service would."""

    def __init__(self, platform: Platform, intakes: list[str]) -> None:
        super().__init__(platform)
        self.channels["intake"].close()
        addresses = ",".join(platform.target(name) for name in intakes)
        self.channels["intake"] = open_channel(f"ipv4:{addresses}", platform.security, token=platform.tokens["intake"])
        self.intake = intake_pb2_grpc.IntakeServiceStub(self.channels["intake"])


@pytest.fixture
def replicated(tmp_path: Path, make_database: Callable[[str], str], kafka_bootstrap: str) -> Iterator[Platform]:
    platform = start_platform(tmp_path, make_database, kafka_bootstrap, new_topic_prefix(),
                              extra_env={"UR_RELAY_LEASE_S": str(LEASE_S)})
    try:
        seconds = [replica_name(s, 2) for s in SERVICES]
        platform.start(*seconds)
        platform.wait_healthy(*seconds, timeout_s=120)
        yield platform
    finally:
        platform.stop()


def lease_holder(platform: Platform, service: str) -> tuple[str, int]:
    """(holder, epoch) of the service's outbox lease."""
    engine = create_engine(platform.database_urls[service])
    try:
        with engine.connect() as conn:
            holder, epoch = conn.execute(text("SELECT holder, epoch FROM relay_lease")).one()
    finally:
        engine.dispose()
    return str(holder), int(epoch)


def holder_pid(holder: str) -> int:
    """The process id in a holder's name (``review@host:pid<N>:random``: the replicas bind any free
    port, so each process is a replica of its own, services/common/outbox.py relay_identity)."""
    found = re.search(r":pid(\d+):", holder)
    assert found is not None, holder
    return int(found.group(1))


def test_replicas_rebalance_mid_stream_and_every_request_is_decided_once(replicated: Platform) -> None:
    platform = replicated
    clients = ReplicatedClients(platform, ["intake", "intake-2"])
    try:
        with streaming(clients, warmup=20) as stream:
            holder, epoch = lease_holder(platform, "review")
            owner = next(name for name in ("review", "review-2") if platform.procs[name].pid == holder_pid(holder))
            victims = [owner, "authorization-2", "intake-2"]
            for victim in victims:
                platform.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            newcomers = [replica_name(s, 3) for s in SERVICES]
            platform.start(*newcomers)
            # The survivor's relay takes review's lease over once the dead holder's runs out.
            taken = wait_until(lambda: lease_holder(platform, "review"), 60,
                               what=f"review's outbox lease to leave the killed {owner}",
                               until=lambda lease: lease[1] > epoch)
            assert holder_pid(taken[0]) != holder_pid(holder)
            print(f"\n[replicas] killed {', '.join(victims)}; review's relay moved to another replica "
                  f"{time.monotonic() - killed_at:.1f} s later")
            platform.wait_healthy(*newcomers, timeout_s=120)
            before = stream.count()
            wait_until(stream.count, 60, what="20 more submissions across the rebalance",
                       until=lambda count: count >= before + 20)
            requests = stream.stop()
        assert stream.unexpected == []
        assert len(requests) >= 40
        assert_exactly_once(platform, clients, requests)
        print(f"[replicas] {len(requests)} requests, each decided once, through "
              f"{time.monotonic() - killed_at:.1f} s of rebalancing")
    finally:
        clients.close()
