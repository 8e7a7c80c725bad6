"""The subscription ports (``services/intake/interop/subscriptions/service_layer/ports.py``): one
contract, run against the fakes (``tests/fakes/subscriptions.py``), SQLite and PostgreSQL."""

from __future__ import annotations

import abc
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Table
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.common.errors import DuplicateKey
from services.intake.adapters import tables
from services.intake.adapters.repository import SqlIntakeUnitOfWork
from services.intake.domain.model import RequestStatus
from services.intake.domain.records import LineRecord
from services.intake.interop.pas.request import pas_request_to_command
from services.intake.interop.subscriptions.adapters.repository import SqlSubscriptionsUnitOfWork
from services.intake.interop.subscriptions.adapters.results import PasSubmission
from services.intake.interop.subscriptions.domain.events import RequestFacts
from services.intake.interop.subscriptions.domain.model import (
    Channel,
    Notification,
    NotificationState,
    Release,
    Status,
    Subscription,
    SubscriptionRequest,
    new_subscription,
)
from services.intake.interop.subscriptions.service_layer.handlers import INTAKE_CONSUMER
from tests.contract.unit_of_work import Backend, FakeBackend, SqlBackend, UnitOfWorkContract
from tests.fakes.subscriptions import SubscriptionsStore
from tests.unit.interop.pas_fixtures import complete_bundle
from tests.unit.interop.subscription_fixtures import intake_record

T0 = dt.datetime(2027, 3, 1, 9, 0, 0, 123000, tzinfo=dt.UTC)


def sub_of(owner: str = "org-a", n: int = 1, **changes: Any) -> Subscription:
    asked = SubscriptionRequest(channel=Channel("https://ehr.example.org/hook", ("Authorization: Bearer x", "X-A: 1"),
                                                heartbeat_period_s=60, timeout_s=7),
                                reason="pended results", org_identifier="1245319599",
                                end=T0 + dt.timedelta(days=30))
    sub = new_subscription(f"00000000-0000-4000-a000-{n:012d}", owner, asked, T0 + dt.timedelta(seconds=n))
    return replace(sub, **changes)


def note(sub: Subscription, event: str, request_id: str = "r-1", *, held: bool = False,
         at: dt.datetime = T0) -> Notification:
    return Notification(subscription_id=sub.subscription_id, event_id=event, request_id=request_id,
                        determination_id=f"d-{event}", state=NotificationState.HELD if held else
                        NotificationState.PENDING, created_at=at, awaiting=(1, 3) if held else ())


class SubscriptionBackend(Backend):
    @abc.abstractmethod
    def arrange(self, facts: RequestFacts, applied: Sequence[str]) -> None:
        """Intake's records hold this request (and applied these events); a PAS request when
        ``facts.pas``, submitted by ``facts.submitter``."""


class SubscriptionPortsContract(UnitOfWorkContract):
    @pytest.fixture
    def backend(self) -> SubscriptionBackend:
        raise NotImplementedError

    def _add(self, backend: Backend, *subs: Subscription) -> None:
        with backend.uow() as uow:
            for sub in subs:
                uow.subscriptions.add(sub)
            uow.commit()

    # -- subscriptions ---------------------------------------------------------------------------
    def test_a_subscription_reads_back_as_stored(self, backend: Backend) -> None:
        sub = sub_of(handshake_at=T0, last_delivered_at=T0, failures=2, due_at=T0, leased_until=T0, error="HTTP 500",
                     status=Status.ERROR)
        self._add(backend, sub)
        with backend.uow().read_only() as uow:
            assert uow.subscriptions.get(sub.subscription_id) == sub
            assert uow.subscriptions.get("00000000-0000-4000-a000-999999999999") is None
        with pytest.raises(DuplicateKey):
            self._add(backend, sub)

    def test_owners_see_their_own_oldest_first_and_off_ones_are_not_live(self, backend: Backend) -> None:
        a2, a1, b = sub_of("org-a", 2), sub_of("org-a", 1), sub_of("org-b", 3)
        off = sub_of("org-a", 4, status=Status.OFF)
        self._add(backend, a2, a1, b, off)
        with backend.uow().read_only() as uow:
            assert [s.subscription_id for s in uow.subscriptions.of_owner("org-a")] == [
                a1.subscription_id, a2.subscription_id, off.subscription_id]
            assert [s.subscription_id for s in uow.subscriptions.of_owners(["org-a", "org-b"])] == [
                a1.subscription_id, a2.subscription_id, b.subscription_id]
            assert uow.subscriptions.of_owners([]) == []

    def test_replace_and_delivery_state_touch_their_own_columns(self, backend: Backend) -> None:
        sub = sub_of()
        self._add(backend, sub)
        with backend.uow() as uow:
            assert uow.subscriptions.count_events(sub.subscription_id, 2) == 2
            assert uow.subscriptions.count_events(sub.subscription_id, 1) == 3
            uow.subscriptions.replace(replace(sub, reason="changed", channel=Channel("https://new.example/h"),
                                              events_since_start=0, org_identifier=None, end=None))
            uow.subscriptions.set_delivery(replace(sub, reason="ignored", status=Status.ACTIVE, failures=1,
                                                   handshake_at=T0, due_at=T0, error="e"))
            uow.commit()
        with backend.uow().read_only() as uow:
            got = uow.subscriptions.get(sub.subscription_id)
        assert got is not None
        assert (got.reason, got.channel, got.org_identifier, got.end) == (
            "changed", Channel("https://new.example/h"), None, None)
        assert (got.events_since_start, got.status, got.failures, got.handshake_at, got.error) == (
            3, Status.ACTIVE, 1, T0, "e")

    def test_wake_leaves_backoff_alone(self, backend: Backend) -> None:
        later = T0 + dt.timedelta(minutes=5)
        idle, waiting, backing_off, early = (sub_of(n=1, due_at=None), sub_of(n=2, due_at=later),
                                             sub_of(n=3, due_at=later, failures=2), sub_of(n=4, due_at=T0))
        self._add(backend, idle, waiting, backing_off, early)
        now = T0 + dt.timedelta(minutes=1)
        with backend.uow() as uow:
            uow.subscriptions.wake([s.subscription_id for s in (idle, waiting, backing_off, early)], now)
            uow.commit()
        with backend.uow().read_only() as uow:
            due = {s.subscription_id: uow.subscriptions.get(s.subscription_id).due_at
                   for s in (idle, waiting, backing_off, early)}
        assert due == {idle.subscription_id: now, waiting.subscription_id: now,
                       backing_off.subscription_id: later, early.subscription_id: T0}

    def test_due_earliest_first_without_leased_off_or_future_ones(self, backend: Backend) -> None:
        now = T0 + dt.timedelta(minutes=10)
        first, second = sub_of(n=1, due_at=T0), sub_of(n=2, due_at=T0 + dt.timedelta(minutes=1))
        lease_over = sub_of(n=3, due_at=T0 + dt.timedelta(minutes=2), leased_until=now)
        leased = sub_of(n=4, due_at=T0, leased_until=now + dt.timedelta(seconds=1))
        off, future, idle = (sub_of(n=5, due_at=T0, status=Status.OFF), sub_of(n=6, due_at=now + dt.timedelta(1)),
                             sub_of(n=7, due_at=None))
        self._add(backend, second, lease_over, first, leased, off, future, idle)
        with backend.uow() as uow:
            assert [s.subscription_id for s in uow.subscriptions.due(now, 10)] == [
                first.subscription_id, second.subscription_id, lease_over.subscription_id]
            assert [s.subscription_id for s in uow.subscriptions.due(now, 1)] == [first.subscription_id]

    def test_ended_subscriptions_turn_off(self, backend: Backend) -> None:
        ends, lasts, forever = sub_of(n=1, end=T0), sub_of(n=2, end=T0 + dt.timedelta(seconds=1)), sub_of(n=3, end=None)
        self._add(backend, ends, lasts, forever)
        with backend.uow() as uow:
            assert uow.subscriptions.turn_off_ended(T0) == 1
            assert uow.subscriptions.turn_off_ended(T0) == 0
            uow.commit()
        with backend.uow().read_only() as uow:
            assert [s.status for s in uow.subscriptions.of_owner("org-a")] == [Status.OFF, Status.REQUESTED,
                                                                               Status.REQUESTED]

    # -- notifications ---------------------------------------------------------------------------
    def test_one_notification_per_subscription_and_event(self, backend: Backend) -> None:
        a, b = sub_of(n=1), sub_of(n=2)
        self._add(backend, a, b)
        with backend.uow() as uow:
            stored = uow.notifications.add([note(a, "e1"), note(b, "e1"), note(a, "e2", held=True)])
            uow.commit()
        assert len({n.notification_id for n in stored}) == 3
        assert all(n.notification_id > 0 for n in stored)
        with pytest.raises(DuplicateKey), backend.uow() as uow:
            uow.notifications.add([note(a, "e1")])
        with backend.uow().read_only() as uow:
            assert uow.notifications.of_subscription(a.subscription_id) == [stored[0], stored[2]]

    def test_held_by_request_and_age_oldest_first(self, backend: Backend) -> None:
        sub = sub_of()
        self._add(backend, sub)
        with backend.uow() as uow:
            stored = uow.notifications.add([note(sub, "e2", "r-2", held=True, at=T0 + dt.timedelta(seconds=2)),
                                            note(sub, "e1", "r-1", held=True, at=T0),
                                            note(sub, "e3", "r-1")])
            uow.commit()
        with backend.uow().read_only() as uow:
            assert [n.event_id for n in uow.notifications.held()] == ["e1", "e2"]
            assert [n.event_id for n in uow.notifications.held(["r-2", "r-9"])] == ["e2"]
            assert [n.event_id for n in uow.notifications.held(created_before=T0 + dt.timedelta(seconds=1))] == ["e1"]
            assert [n.event_id for n in uow.notifications.held(limit=1)] == ["e1"]
            assert uow.notifications.held(["r-1"])[0].awaiting == (1, 3)
        assert stored[2].state is NotificationState.PENDING

    def test_released_notifications_line_up_by_event_number(self, backend: Backend) -> None:
        sub = sub_of()
        self._add(backend, sub)
        with backend.uow() as uow:
            one, two = uow.notifications.add([note(sub, "e1", held=True), note(sub, "e2", held=True)])
            assert uow.notifications.head(sub.subscription_id) is None  # held ones are not in line
            uow.notifications.release([Release(two.notification_id, 2, b'{"b": 2}', T0),
                                       Release(one.notification_id, 1, b'{"b": 1}', T0)])
            uow.commit()
        with backend.uow() as uow:
            head = uow.notifications.head(sub.subscription_id)
            assert head is not None
            assert (head.event_id, head.event_number, head.focus, head.released_at, head.state) == (
                "e1", 1, b'{"b": 1}', T0, NotificationState.PENDING)
            uow.notifications.delivered(head.notification_id, T0 + dt.timedelta(seconds=1))
            uow.commit()
        with backend.uow().read_only() as uow:
            head = uow.notifications.head(sub.subscription_id)
            assert head is not None
            assert head.event_id == "e2"
            assert uow.notifications.held() == []
            delivered = uow.notifications.of_subscription(sub.subscription_id)[0]
            assert (delivered.state, delivered.delivered_at) == (NotificationState.DELIVERED,
                                                                 T0 + dt.timedelta(seconds=1))

    def test_discarded_notifications_are_gone(self, backend: Backend) -> None:
        sub = sub_of()
        self._add(backend, sub)
        with backend.uow() as uow:
            kept, dropped = uow.notifications.add([note(sub, "e1", held=True), note(sub, "e2", held=True)])
            uow.notifications.discard([dropped.notification_id])
            uow.notifications.discard([])
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.notifications.of_subscription(sub.subscription_id) == [kept]

    def test_deleting_a_subscription_drops_what_it_was_owed(self, backend: Backend) -> None:
        sub, other = sub_of(n=1), sub_of(n=2)
        self._add(backend, sub, other)
        with backend.uow() as uow:
            uow.notifications.add([note(sub, "e1"), note(other, "e1")])
            uow.subscriptions.delete(sub.subscription_id)
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.subscriptions.get(sub.subscription_id) is None
            assert uow.notifications.of_subscription(sub.subscription_id) == []
            assert len(uow.notifications.of_subscription(other.subscription_id)) == 1

    def test_old_delivered_notifications_are_pruned_oldest_first(self, backend: Backend) -> None:
        sub = sub_of()
        self._add(backend, sub)
        with backend.uow() as uow:
            stored = uow.notifications.add([note(sub, f"e{i}") for i in range(4)])
            for i, n in enumerate(stored[:3]):
                uow.notifications.delivered(n.notification_id, T0 + dt.timedelta(days=i))
            uow.commit()
        with backend.uow() as uow:
            assert uow.notifications.prune_delivered(T0 + dt.timedelta(days=2), limit=1) == 1
            assert uow.notifications.prune_delivered(T0 + dt.timedelta(days=2), limit=10) == 1
            uow.commit()
        with backend.uow().read_only() as uow:
            assert [n.event_id for n in uow.notifications.of_subscription(sub.subscription_id)] == ["e2", "e3"]

    # -- intake's records --------------------------------------------------------------------------
    def test_results_read_intakes_records(self, backend: SubscriptionBackend) -> None:
        pas = RequestFacts(request_id=str(uuid.uuid4()), submitter="org-a", requesting_npi="1245319599",
                           line_numbers=frozenset({1, 2}), authorized={2: "d-1"}, pas=True)
        plain = RequestFacts(request_id=str(uuid.uuid4()), submitter="", requesting_npi="1245319599",
                             line_numbers=frozenset({1}), authorized={}, pas=False)
        backend.arrange(pas, ["e1", "e2"])
        backend.arrange(plain, [])
        with backend.uow().read_only() as uow:
            found = uow.results.requests([pas.request_id, plain.request_id, str(uuid.uuid4())])
            assert found == {pas.request_id: pas, plain.request_id: plain}
            assert uow.results.applied(["e1", "e3"]) == {"e1"}
            assert uow.results.applied([]) == set()
            bundle = uow.results.response_bundle(pas.request_id)
            assert bundle is not None
            assert bundle["resourceType"] == "Bundle"
            assert bundle["entry"][0]["resource"]["resourceType"] == "ClaimResponse"
            assert uow.results.response_bundle(plain.request_id) is None
            assert uow.results.response_bundle(str(uuid.uuid4())) is None


# -- the fakes ---------------------------------------------------------------------------------------

class FakeSubscriptionBackend(FakeBackend, SubscriptionBackend):
    def __init__(self) -> None:
        self.subs = SubscriptionsStore()
        super().__init__(self.subs, self.subs.unit_of_work)

    def arrange(self, facts: RequestFacts, applied: Sequence[str]) -> None:
        self.subs.requests[facts.request_id] = facts
        self.subs.applied.update(applied)
        if facts.pas:
            self.subs.bundles[facts.request_id] = {"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "ClaimResponse"}}]}


class TestFakeSubscriptionPorts(SubscriptionPortsContract):
    @pytest.fixture
    def backend(self) -> SubscriptionBackend:
        return FakeSubscriptionBackend()


# -- SQL: intake's database, the door's PAS Bundles from a dictionary ---------------------------------

class SqlSubscriptionBackend(SqlBackend, SubscriptionBackend):
    def __init__(self, url: str) -> None:
        self.submissions: dict[str, PasSubmission] = {}

        def make(engine: Engine, _outbox: Table, _processed: Table, **_audit: object) -> SqlSubscriptionsUnitOfWork:
            # Subscriptions keep no audit entries of their own (the door's calls into intake do).
            return SqlSubscriptionsUnitOfWork(engine, self._lookup)

        super().__init__("intake", url, tables.metadata, make)

    def _lookup(self, _conn: Connection, request_ids: Sequence[str]) -> dict[str, PasSubmission]:
        return {r: self.submissions[r] for r in request_ids if r in self.submissions}

    def clear(self) -> None:
        super().clear()
        self.submissions.clear()

    def arrange(self, facts: RequestFacts, applied: Sequence[str]) -> None:
        bundle = complete_bundle(*(["72148"] * len(facts.line_numbers)))
        command = pas_request_to_command(bundle, facts.submitter or "someone")
        assert isinstance(command, intake_pb2.SubmitRequestRequest), command
        command.requesting_provider.npi = facts.requesting_npi
        lines = []
        for number in sorted(facts.line_numbers):
            auth = None
            if number in facts.authorized:
                auth = types_pb2.Authorization(authorization_number=f"UR27-{number:04d}", line_number=number,
                                               determination_id=facts.authorized[number]).SerializeToString()
            lines.append(LineRecord(number, "72148", authorization=auth))
        record = intake_record(
            facts.submitter,
            request_id=facts.request_id, idempotency_key=f"k-{facts.request_id}", fingerprint="f" * 64,
            member_id=command.member_id, line_of_business="medicare_advantage", member_state="TX", urgency="standard",
            review_type="prospective", status=RequestStatus.IN_REVIEW, status_reason="", received_at=T0,
            payload=command.SerializeToString(), lines=tuple(lines))
        with SqlIntakeUnitOfWork(self.engine, tables.outbox, tables.processed_events) as uow:
            uow.requests.add(record)
            uow.mark_processed(INTAKE_CONSUMER, list(applied))
            uow.commit()
        if facts.pas:
            self.submissions[facts.request_id] = PasSubmission(facts.submitter, json.dumps(bundle).encode())


@pytest.fixture(scope="module")
def sqlite_subscriptions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlSubscriptionBackend]:
    backend = SqlSubscriptionBackend(f"sqlite:///{tmp_path_factory.mktemp('subs') / 'intake.db'}")
    yield backend
    backend.engine.dispose()


@pytest.fixture(scope="module")
def postgres_subscriptions(make_database: Callable[[str], str]) -> Iterator[SqlSubscriptionBackend]:
    backend = SqlSubscriptionBackend(make_database("subscription_ports"))
    yield backend
    backend.engine.dispose()


class TestSqliteSubscriptionPorts(SubscriptionPortsContract):
    @pytest.fixture
    def backend(self, sqlite_subscriptions: SqlSubscriptionBackend) -> SubscriptionBackend:
        sqlite_subscriptions.clear()
        return sqlite_subscriptions


@pytest.mark.integration
class TestPostgresSubscriptionPorts(SubscriptionPortsContract):
    @pytest.fixture
    def backend(self, postgres_subscriptions: SqlSubscriptionBackend) -> SubscriptionBackend:
        postgres_subscriptions.clear()
        return postgres_subscriptions





@pytest.mark.integration
def test_a_held_notification_is_released_by_one_transaction_at_a_time(
        postgres_subscriptions: SqlSubscriptionBackend) -> None:
    """The recorder and the deliverer both release held notifications: on PostgreSQL a second
    transaction skips the rows the first holds (the fakes and SQLite run one writer at a time)."""
    backend = postgres_subscriptions
    backend.clear()
    sub = sub_of()
    with backend.uow() as uow:
        uow.subscriptions.add(sub)
        uow.notifications.add([note(sub, "e1", held=True), note(sub, "e2", held=True, at=T0 + dt.timedelta(1))])
        uow.commit()
    with backend.uow() as first:
        assert [n.event_id for n in first.notifications.held(limit=1)] == ["e1"]
        with backend.uow() as second:
            assert [n.event_id for n in second.notifications.held()] == ["e2"]
