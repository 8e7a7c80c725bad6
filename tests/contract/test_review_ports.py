"""Review's ports (services/review/service_layer/ports.py), one contract each, held against every
implementation: the in-memory fakes the unit tests use (tests/fakes/review.py), and the real ones
(the SQL adapters on SQLite and on PostgreSQL, the criteria library's evaluator on both matchers, the
authorization service's gRPC lookup, the wall clock). A fake that passes behaves like the real thing.

The PostgreSQL variants need the test server (tests/conftest.py ``make_database``) and are marked
integration; they fail, never skip, without it.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, delete, select
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.adapters import tables as authorization_tables
from services.authorization.adapters.repository import SqlAuthorizationUnitOfWork
from services.authorization.entrypoints.grpc_api import AuthorizationServicer
from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common import migrations
from services.common.audit.chain import AuditRecord
from services.common.audit.store import AuditLog, read_entries
from services.common.clock import Clock, utcnow
from services.common.db import make_engine
from services.common.errors import DuplicateKey
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.grpc_server import Registration, RunningServer, create_server
from services.common.metrics import Metrics
from services.common.topics import Topics
from services.review.adapters import tables
from services.review.adapters.authorization_client import GrpcDuplicateChecker
from services.review.adapters.criteria_evaluator import LibraryEvaluator
from services.review.adapters.criteria_loader import load_library
from services.review.adapters.metrics import PrometheusDecisions
from services.review.adapters.notice_pdf import ReportLabNoticeRenderer
from services.review.adapters.repository import ReviewUnitOfWork
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.bootstrap import DEFAULT_CRITERIA_DIR
from services.review.domain.appeals import Appeal, AppealOutcome
from services.review.domain.case import Case
from services.review.domain.criteria import Outcome, PythonMatcher
from services.review.domain.deadlines import ClockState, PendEffect
from services.review.domain.notes import CaseNote
from services.review.domain.notices import Notice, NoticeKind, Party, Section
from services.review.domain.policy import LineOutcome, ProviderRecord
from services.review.domain.task import AuditEntry, Task
from services.review.domain.workflow import Reviewer, Role, StaleTask, TaskStatus
from services.review.service_layer import ports
from services.review.service_layer.lines import request_lines
from services.review.service_layer.ports import DuplicateChecker, Evaluator, LineQuery, NoticeRenderer, UnitOfWork
from tests.factories import lumbar_mri
from tests.fakes.common import FAKE_AUDIT_KEY
from tests.fakes.review import (
    Authorization,
    FakeDuplicateChecker,
    FakeEvaluator,
    FakeUnitOfWork,
    FixedClock,
    RecordingDecisionMetrics,
    ReviewStore,
)

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


# -- the stores under test -----------------------------------------------------------------------

class Store(abc.ABC):
    """A review store a contract runs against: fresh for each test."""

    @abc.abstractmethod
    def uow(self) -> UnitOfWork: ...

    @abc.abstractmethod
    def reset(self) -> None: ...

    @abc.abstractmethod
    def published(self) -> list[str]:
        """Keys of the events the outbox holds (committed)."""

    @abc.abstractmethod
    def processed(self) -> set[tuple[str, str]]: ...

    @abc.abstractmethod
    def audit_log(self) -> list[tuple[str, str, str]]:
        """(actor, action, request id) of the committed audit records, in order."""


class FakeStore(Store):
    def __init__(self) -> None:
        self.store = ReviewStore()

    def uow(self) -> UnitOfWork:
        return FakeUnitOfWork(self.store)

    def reset(self) -> None:
        self.store = ReviewStore()

    def published(self) -> list[str]:
        return [e.key for e in self.store.outbox]

    def processed(self) -> set[tuple[str, str]]:
        return set(self.store.processed)

    def audit_log(self) -> list[tuple[str, str, str]]:
        return [(r.actor, r.action, r.request_id) for r in self.store.audit]


class SqlStore(Store):
    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        migrations.upgrade("review", self.engine)

    def uow(self) -> UnitOfWork:
        return ReviewUnitOfWork(self.engine, tables.outbox, tables.processed_events,
                                audit=AuditLog.of(tables.metadata, service="review", key=FAKE_AUDIT_KEY))

    def audit_log(self) -> list[tuple[str, str, str]]:
        with self.engine.connect() as conn:
            return [(e.actor, e.action, e.request_id) for e in read_entries(conn)]

    def reset(self) -> None:
        with self.engine.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                conn.execute(delete(table))

    def published(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(tables.outbox.c.message_key).order_by(tables.outbox.c.id)).scalars())

    def processed(self) -> set[tuple[str, str]]:
        t = tables.processed_events
        with self.engine.connect() as conn:
            return {(r.consumer, r.event_id) for r in conn.execute(select(t.c.consumer, t.c.event_id))}


@pytest.fixture(scope="module")
def fake_store() -> FakeStore:
    return FakeStore()


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('contract') / 'review.db'}")
    yield store
    store.engine.dispose()


@pytest.fixture(scope="module")
def postgresql_store(make_database: Callable[[str], str]) -> Iterator[SqlStore]:
    store = SqlStore(make_database("contract"))
    yield store
    store.engine.dispose()


class StoreContract:
    """Base of the store contracts: ``store_name`` picks the implementation."""

    store_name: str

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Store:
        store: Store = request.getfixturevalue(f"{self.store_name}_store")
        store.reset()
        return store


# -- builders ------------------------------------------------------------------------------------

def a_clock(due: dt.datetime | None = T0 + 24 * H, **changes: Any) -> ClockState:
    return dataclasses.replace(ClockState(regime="erisa-pre-service", rule="15 calendar days", due_at=due,
                                          received_at=T0, pend_effect=PendEffect.TOLL), **changes)


def a_case(request_id: str | None = None, **changes: Any) -> Case:
    rid = request_id or str(uuid.uuid4())
    return dataclasses.replace(Case(
        request_id=rid, determination_id=str(uuid.uuid4()), member_id="M-1", line_of_business="commercial",
        member_state="TX", urgency="standard", review_type="prospective", requesting_npi="1234567893",
        received_at=T0, due_at=T0 + 24 * H, regime="erisa-pre-service", request=b"request-" + rid.encode(),
        determination=b"determination", created_at=T0, clock=a_clock()), **changes)


def a_task(**changes: Any) -> Task:
    return dataclasses.replace(Task(
        task_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()), line_number=1, procedure_code="72148",
        line_of_business="commercial", member_state="TX", urgency="standard", outcome=Outcome.REFER_TO_NURSE,
        reasons=("two weeks of symptoms", "possible duplicate"), status=TaskStatus.OPEN, due_at=T0 + 24 * H,
        created_at=T0, category="advanced_imaging", required_role=Role.NURSE, units=3, regime="erisa-pre-service",
        clock_rule="15 calendar days", at_risk_at=T0 + 20 * H), **changes)


def a_reviewer(rid: str, **changes: Any) -> Reviewer:
    return dataclasses.replace(Reviewer(rid, f"Reviewer {rid}", Role.NURSE, frozenset({"advanced_imaging", "general"}),
                                        frozenset({"TX", "CA"}), frozenset({"commercial", "medicaid"}), 7, "RN"),
                               **changes)


def ids(tasks: list[Task]) -> list[str]:
    return [t.task_id for t in tasks]


# -- the unit of work ----------------------------------------------------------------------------

class UnitOfWorkContract(StoreContract):
    def test_commit_makes_changes_visible_and_leaving_without_commit_rolls_back(self, store: Store) -> None:
        kept, dropped = a_case(), a_case()
        with store.uow() as uow:
            uow.cases.add_many([kept])
            uow.publish(OutgoingEvent(topic="t", key=kept.request_id, message=events_pb2.DeterminationMade()))
            uow.mark_processed("review", ["e-1"])
            uow.commit()
        with store.uow() as uow:
            uow.cases.add_many([dropped])
            uow.publish(OutgoingEvent(topic="t", key=dropped.request_id, message=events_pb2.DeterminationMade()))
            uow.mark_processed("review", ["e-2"])
        with store.uow().read_only() as uow:
            assert uow.cases.get(kept.request_id) == kept
            assert uow.cases.get(dropped.request_id) is None
        assert store.published() == [kept.request_id]
        assert store.processed() == {("review", "e-1")}

    def test_an_error_inside_rolls_back(self, store: Store) -> None:
        case = a_case()

        def stage_then_fail() -> None:
            with store.uow() as uow:
                uow.cases.add_many([case])
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            stage_then_fail()
        with store.uow().read_only() as uow:
            assert uow.cases.get(case.request_id) is None

    def test_rollback_discards_what_was_staged(self, store: Store) -> None:
        first, second = a_case(), a_case()
        with store.uow() as uow:
            uow.cases.add_many([first])
            uow.publish(OutgoingEvent(topic="t", key="dropped", message=events_pb2.DeterminationMade()))
            uow.rollback()
            uow.cases.add_many([second])
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.cases.get(first.request_id) is None
            assert uow.cases.get(second.request_id) == second
        assert store.published() == []

    def test_events_are_processed_once_per_consumer(self, store: Store) -> None:
        with store.uow() as uow:
            assert uow.already_processed("review", ["a", "b"]) == set()
            uow.mark_processed("review", ["a"])
            assert uow.already_processed("review", ["a", "b"]) == {"a"}  # within the unit of work too
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.already_processed("review", ["a", "b"]) == {"a"}
            assert uow.already_processed("review-information", ["a"]) == set()

    def test_a_read_only_unit_of_work_refuses_to_commit(self, store: Store) -> None:
        with pytest.raises(RuntimeError), store.uow().read_only() as uow:
            uow.commit()

    def test_audit_records_commit_with_the_changes_and_vanish_without(self, store: Store) -> None:
        case = a_case()
        with store.uow() as uow:
            uow.cases.add_many([case])
            uow.audit(AuditRecord("request.received", case.request_id))
            uow.commit()
        with store.uow() as uow:
            uow.audit(AuditRecord("task.claimed", case.request_id, actor="reviewer:rn-1"))
            uow.rollback()
            uow.audit(AuditRecord("task.released", case.request_id, actor="reviewer:rn-1"))
        with store.uow() as uow:
            uow.audit(AuditRecord("task.viewed", case.request_id, actor="reviewer:rn-2"))
            uow.commit()
        assert store.audit_log() == [("service:review", "request.received", case.request_id),
                                     ("reviewer:rn-2", "task.viewed", case.request_id)]


class TestUnitOfWorkOnFakes(UnitOfWorkContract):
    store_name = "fake"


class TestUnitOfWorkOnSqlite(UnitOfWorkContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestUnitOfWorkOnPostgresql(UnitOfWorkContract):
    store_name = "postgresql"


# -- cases ---------------------------------------------------------------------------------------

class CaseRepositoryContract(StoreContract):
    def test_a_case_comes_back_as_stored(self, store: Store) -> None:
        with_clock, without = a_case(), a_case(clock=None)
        with store.uow() as uow:
            uow.cases.add_many([with_clock, without])
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.cases.get(with_clock.request_id) == with_clock
            assert uow.cases.get(without.request_id, for_update=True) == without
            assert uow.cases.get("unknown") is None
            assert uow.cases.existing([with_clock.request_id, "unknown"]) == {with_clock.request_id}
            assert uow.cases.existing([]) == set()

    def test_a_request_has_one_case(self, store: Store) -> None:
        case = a_case()
        with store.uow() as uow:
            uow.cases.add_many([case])
            uow.commit()
        with pytest.raises(DuplicateKey), store.uow() as uow:
            uow.cases.add_many([a_case(case.request_id)])

    def test_save_stores_what_may_change(self, store: Store) -> None:
        case = a_case()
        with store.uow() as uow:
            uow.cases.add_many([case])
            uow.commit()
        tolled = a_clock(None, paused_at=T0 + H, remaining_s=3600.0, rule="tolled")
        with store.uow() as uow:
            stored = uow.cases.get(case.request_id, for_update=True)
            assert stored is not None
            stored.request, stored.determination = b"merged facts", b"decided"
            stored.follow_clock(tolled)  # a tolled clock keeps the last due time
            stored.urgency = "expedited"  # a person expedited it, and its clock with it
            stored.member_id = "not saved: a case's member never changes"
            uow.cases.save(stored)
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.cases.get(case.request_id) == dataclasses.replace(
                case, request=b"merged facts", determination=b"decided", clock=tolled, urgency="expedited")
        resumed = a_clock(T0 + 48 * H, rule="resumed")
        with store.uow() as uow:
            again = uow.cases.get(case.request_id)
            assert again is not None
            again.follow_clock(resumed)
            uow.cases.save(again)
            uow.commit()
        with store.uow().read_only() as uow:
            found = uow.cases.get(case.request_id)
            assert found is not None
            assert found.due_at == T0 + 48 * H
            assert found.clock == resumed

    def test_a_members_cases_oldest_received_first(self, store: Store) -> None:
        later, earlier = a_case(received_at=T0 + H), a_case(received_at=T0)
        with store.uow() as uow:
            uow.cases.add_many([later, a_case(member_id="M-2"), earlier])
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.cases.request_ids_of_member("M-1") == [earlier.request_id, later.request_id]
            assert uow.cases.request_ids_of_member("nobody") == []


class TestCasesOnFakes(CaseRepositoryContract):
    store_name = "fake"


class TestCasesOnSqlite(CaseRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestCasesOnPostgresql(CaseRepositoryContract):
    store_name = "postgresql"


# -- tasks ---------------------------------------------------------------------------------------

class TaskRepositoryContract(StoreContract):
    def add(self, store: Store, *tasks: Task) -> list[Task]:
        with store.uow() as uow:
            uow.tasks.add_many(list(tasks))
            uow.commit()
        return list(tasks)

    def test_a_task_comes_back_as_stored_with_every_field(self, store: Store) -> None:
        plain = a_task()
        full = a_task(status=TaskStatus.PENDED_INFORMATION, urgency="expedited", required_role=Role.PHYSICIAN,
                      outcome=Outcome.PEND_MISSING_INFORMATION, assigned_to="rn-1", lease_expires_at=T0 + H,
                      requested_facts=("conservative_therapy_weeks",), information_due=dt.date(2026, 12, 1),
                      escalated_at=T0 + 2 * H, missed_at=T0 + 3 * H, deemed_denial=True, updated_at=T0 + 4 * H,
                      clock_paused=True, at_risk_at=None, reasons=())
        self.add(store, plain, full)
        with store.uow().read_only() as uow:
            assert uow.tasks.get(plain.task_id) == plain
            assert uow.tasks.get(full.task_id) == full
            assert uow.tasks.get("unknown") is None

    def test_a_line_has_one_task(self, store: Store) -> None:
        task = self.add(store, a_task())[0]
        for clash in (a_task(task_id=task.task_id), a_task(request_id=task.request_id)):
            with pytest.raises(DuplicateKey), store.uow() as uow:
                uow.tasks.add_many([clash])

    def test_save_is_a_compare_and_set_that_bumps_the_version_and_appends_the_trail(self, store: Store) -> None:
        task = self.add(store, a_task())[0]
        with store.uow() as uow:
            mine = uow.tasks.get(task.task_id)
            assert mine is not None
            assert mine.version == 0
            mine.claim(a_reviewer("rn-1"), T0, H)
            uow.tasks.save(mine)
            assert mine.version == 1
            assert mine.new_entries == []
            mine.release(a_reviewer("rn-1"), T0, "later")
            uow.tasks.save(mine)  # twice in one unit of work
            uow.commit()
        with store.uow().read_only() as uow:
            stored = uow.tasks.get(task.task_id)
            assert stored is not None
            assert stored.version == 2
            assert stored.status is TaskStatus.OPEN
            assert stored.updated_at == T0
            assert stored.new_entries == []
            assert [(e.actor, e.action) for e in uow.tasks.history(task.task_id)] == [
                ("rn-1", "claimed"), ("rn-1", "released")]

    def test_a_save_over_another_writers_change_is_refused_and_stores_nothing(self, store: Store) -> None:
        task = self.add(store, a_task())[0]
        with store.uow().read_only() as uow:
            mine = uow.tasks.get(task.task_id)
        with store.uow() as other:  # (SQLite serializes writers, so the other one commits in between)
            theirs = other.tasks.get(task.task_id)
            assert theirs is not None
            theirs.claim(a_reviewer("rn-2"), T0, H)
            other.tasks.save(theirs)
            other.commit()
        assert mine is not None
        with store.uow() as uow:
            mine.claim(a_reviewer("rn-1"), T0, H)
            with pytest.raises(StaleTask):
                uow.tasks.save(mine)
            assert mine.version == 0
            assert len(mine.new_entries) == 1
            uow.commit()
        with store.uow().read_only() as uow:
            stored = uow.tasks.get(task.task_id)
            assert stored is not None
            assert stored.assigned_to == "rn-2"
            assert stored.version == 1
            assert [e.actor for e in uow.tasks.history(task.task_id)] == ["rn-2"]

    def test_a_stale_or_unknown_task_is_not_saved(self, store: Store) -> None:
        task = self.add(store, a_task())[0]
        with store.uow() as uow:
            with pytest.raises(StaleTask):
                uow.tasks.save(dataclasses.replace(task, version=5))
            with pytest.raises(StaleTask):
                uow.tasks.save(a_task())

    def test_the_trail_is_in_time_order_then_in_the_order_written(self, store: Store) -> None:
        task = self.add(store, a_task())[0]
        with store.uow() as uow:
            stored = uow.tasks.get(task.task_id)
            assert stored is not None
            stored.new_entries.extend([AuditEntry(T0 + H, "b", "second", ""), AuditEntry(T0 + H, "c", "third", ""),
                                       AuditEntry(T0, "a", "first", "earlier")])
            uow.tasks.save(stored)
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.tasks.history(task.task_id) == [
                AuditEntry(T0, "a", "first", "earlier"), AuditEntry(T0 + H, "b", "second", ""),
                AuditEntry(T0 + H, "c", "third", "")]
            assert uow.tasks.history("unknown") == []

    def test_a_requests_tasks_by_line(self, store: Store) -> None:
        request_id = str(uuid.uuid4())
        two, one, _ = self.add(store, a_task(request_id=request_id, line_number=2),
                            a_task(request_id=request_id, line_number=1), a_task())
        with store.uow().read_only() as uow:
            assert ids(uow.tasks.of_request(request_id)) == [one.task_id, two.task_id]

    def test_held_by_lists_live_leases_most_urgent_first(self, store: Store) -> None:
        now = T0 + H
        late = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now + H, due_at=T0 + 48 * H)
        soon = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now + H, due_at=T0 + 24 * H)
        urgent = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now + H,
                        due_at=T0 + 72 * H, urgency="expedited")
        expired = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now)
        others = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-2", lease_expires_at=now + H)
        decided = a_task(status=TaskStatus.DECIDED, assigned_to="rn-1", lease_expires_at=None)
        self.add(store, late, soon, urgent, expired, others, decided)
        with store.uow().read_only() as uow:
            assert ids(uow.tasks.held_by("rn-1", now)) == [urgent.task_id, soon.task_id, late.task_id]
            assert (uow.tasks.count_held("rn-1", now), uow.tasks.count_held("rn-2", now),
                    uow.tasks.count_held("rn-3", now)) == (3, 1, 0)

    def test_claimable_tasks_match_role_line_of_business_and_category(self, store: Store) -> None:
        now = T0 + H
        tie = T0 + 30 * H
        a, b = sorted([a_task(due_at=tie), a_task(due_at=tie)], key=lambda t: t.task_id)
        lapsed = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-2", lease_expires_at=now, due_at=T0 + 20 * H)
        urgent = a_task(urgency="expedited", due_at=T0 + 60 * H)
        excluded = [a_task(status=TaskStatus.CLAIMED, assigned_to="rn-2", lease_expires_at=now + H),
                    a_task(status=TaskStatus.PENDED_INFORMATION), a_task(status=TaskStatus.DECIDED),
                    a_task(status=TaskStatus.CANCELLED), a_task(required_role=Role.PHYSICIAN),
                    a_task(line_of_business="workers_comp"), a_task(category="sleep_medicine")]
        self.add(store, a, b, lapsed, urgent, *excluded)
        with store.uow().read_only() as uow:
            found = uow.tasks.claimable([Role.NURSE], ["commercial", "medicaid"], ["advanced_imaging", "general"],
                                        now, 10)
            assert ids(found) == [urgent.task_id, lapsed.task_id, a.task_id, b.task_id]
            assert ids(uow.tasks.claimable([Role.NURSE], ["commercial"], ["advanced_imaging"], now, 2)) == [
                urgent.task_id, lapsed.task_id]
            assert uow.tasks.claimable([Role.ADJUSTER], ["commercial"], ["advanced_imaging"], now, 10) == []

    def test_a_task_saved_with_another_urgency_takes_its_place_in_the_queue(self, store: Store) -> None:
        # The queue orders by a rank stored beside the urgency (an index column): a save that
        # changes the urgency must move the task, in claims and in the open pages alike.
        soon, later = self.add(store, a_task(due_at=T0 + 24 * H), a_task(due_at=T0 + 48 * H))
        with store.uow() as uow:
            task = uow.tasks.get(later.task_id)
            assert task is not None
            task.set_urgency(a_reviewer("rn-1"), "expedited", "new weakness reported by phone", T0)
            uow.tasks.save(task)
            uow.commit()
        with store.uow().read_only() as uow:
            claimable = uow.tasks.claimable([Role.NURSE], ["commercial"], ["advanced_imaging"], T0 + H, 10)
            assert ids(claimable) == [later.task_id, soon.task_id]
            assert ids(uow.tasks.open_tasks(10, 0)[0]) == [later.task_id, soon.task_id]

    def test_expired_leases(self, store: Store) -> None:
        now = T0 + H
        ran_out = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now)
        live = a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now + dt.timedelta(seconds=1))
        self.add(store, ran_out, live, a_task())
        with store.uow().read_only() as uow:
            assert ids(uow.tasks.expired_leases(now)) == [ran_out.task_id]

    def test_needing_attention_is_undecided_missed_or_at_risk_earliest_deadline_first(self, store: Store) -> None:
        now = T0 + 24 * H
        missed = a_task(due_at=now, at_risk_at=None)
        at_risk = a_task(due_at=now + H, at_risk_at=now)
        escalated_then_missed = a_task(due_at=now - H, escalated_at=T0)
        pended_at_risk = a_task(status=TaskStatus.PENDED_INFORMATION, due_at=now + 2 * H, at_risk_at=now - H)
        quiet = [a_task(due_at=now + H, at_risk_at=now + dt.timedelta(seconds=1)),
                 a_task(due_at=now - H, missed_at=now - H, escalated_at=T0),
                 a_task(due_at=now + H, at_risk_at=now, escalated_at=T0),
                 a_task(due_at=now + H, at_risk_at=None),
                 a_task(status=TaskStatus.DECIDED, due_at=now - H)]
        self.add(store, missed, at_risk, escalated_then_missed, pended_at_risk, *quiet)
        with store.uow().read_only() as uow:
            assert ids(uow.tasks.needing_attention(now)) == [escalated_then_missed.task_id, missed.task_id,
                                                             at_risk.task_id, pended_at_risk.task_id]
            assert ids(uow.tasks.needing_attention(now, limit=1)) == [escalated_then_missed.task_id]

    def test_open_tasks_page_most_urgent_first(self, store: Store) -> None:
        tie = T0 + 24 * H
        older = a_task(due_at=tie, created_at=T0 - H)
        newer = a_task(due_at=tie, created_at=T0)
        urgent = a_task(urgency="expedited", due_at=tie + H)
        self.add(store, newer, older, urgent, a_task(status=TaskStatus.CLAIMED, assigned_to="x"))
        with store.uow().read_only() as uow:
            page, total = uow.tasks.open_tasks(2, 0)
            assert total == 3
            assert ids(page) == [urgent.task_id, older.task_id]
            page, total = uow.tasks.open_tasks(2, 2)
            assert total == 3
            assert ids(page) == [newer.task_id]


    # -- the supervisor's overview
    def test_depth_counts_undecided_tasks_by_kind_with_those_at_risk_and_missed(self, store: Store) -> None:
        now = T0 + 12 * H  # the default task is due at T0 + 24 h and at risk from T0 + 20 h
        self.add(store,
                 a_task(due_at=now + H, at_risk_at=now - H),  # at risk
                 a_task(due_at=now - H),  # missed
                 a_task(due_at=now + H, at_risk_at=now - H, clock_paused=True),  # tolled: neither
                 a_task(due_at=now + 9 * H),
                 a_task(urgency="expedited", line_of_business="medicaid"),
                 a_task(status=TaskStatus.CLAIMED, assigned_to="rn-1", lease_expires_at=now + H),
                 a_task(required_role=Role.PHYSICIAN, category="spine_surgery"),
                 a_task(status=TaskStatus.DECIDED), a_task(status=TaskStatus.CANCELLED))
        with store.uow().read_only() as uow:
            depth = [(d.category, d.urgency, d.line_of_business, d.required_role, d.status, d.count, d.at_risk,
                      d.missed) for d in uow.tasks.depth(now)]
        assert depth == [
            ("advanced_imaging", "expedited", "medicaid", Role.NURSE, "open", 1, 0, 0),
            ("advanced_imaging", "standard", "commercial", Role.NURSE, "claimed", 1, 0, 0),
            ("advanced_imaging", "standard", "commercial", Role.NURSE, "open", 4, 1, 1),
            ("spine_surgery", "standard", "commercial", Role.PHYSICIAN, "open", 1, 0, 0)]

    def test_at_risk_and_missed_are_undecided_on_a_running_clock_earliest_due_first(self, store: Store) -> None:
        now = T0 + 24 * H
        risky_later = a_task(due_at=now + 2 * H, at_risk_at=now - H)
        risky_sooner = a_task(due_at=now + H, at_risk_at=now, status=TaskStatus.PENDED_INFORMATION)
        missed_long_ago = a_task(due_at=now - 5 * H, missed_at=now - 5 * H)
        missed_just_now = a_task(due_at=now)
        self.add(store, risky_later, risky_sooner, missed_long_ago, missed_just_now,
                 a_task(due_at=now + H, at_risk_at=now + dt.timedelta(seconds=1)),
                 a_task(due_at=now - H, clock_paused=True), a_task(due_at=now + H, at_risk_at=now, clock_paused=True),
                 a_task(due_at=now - H, status=TaskStatus.DECIDED), a_task(due_at=now + H, at_risk_at=None))
        with store.uow().read_only() as uow:
            assert ids(uow.tasks.at_risk(now, 10)) == [risky_sooner.task_id, risky_later.task_id]
            assert ids(uow.tasks.at_risk(now, 1)) == [risky_sooner.task_id]
            assert ids(uow.tasks.missed(now, 10)) == [missed_long_ago.task_id, missed_just_now.task_id]

    def test_all_held_is_live_leases_by_holder_then_most_urgent(self, store: Store) -> None:
        now = T0 + H
        def held(who: str, **changes: Any) -> Task:
            return a_task(status=TaskStatus.CLAIMED, assigned_to=who, lease_expires_at=now + H, **changes)
        b_late, b_urgent, a_only = held("rn-b", due_at=T0 + 30 * H), held("rn-b", urgency="expedited"), held("rn-a")
        self.add(store, b_late, b_urgent, a_only,
                 a_task(status=TaskStatus.CLAIMED, assigned_to="rn-a", lease_expires_at=now), a_task())
        with store.uow().read_only() as uow:
            assert ids(uow.tasks.all_held(now, 10)) == [a_only.task_id, b_urgent.task_id, b_late.task_id]
            assert ids(uow.tasks.all_held(now, 2)) == [a_only.task_id, b_urgent.task_id]


class TestTasksOnFakes(TaskRepositoryContract):
    store_name = "fake"


class TestTasksOnSqlite(TaskRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestTasksOnPostgresql(TaskRepositoryContract):
    store_name = "postgresql"


# -- the reviewer directory ----------------------------------------------------------------------

class ReviewerRepositoryContract(StoreContract):
    def test_put_inserts_or_replaces_and_all_is_by_id(self, store: Store) -> None:
        with store.uow() as uow:
            uow.reviewers.put(a_reviewer("rn-2"), T0)
            uow.reviewers.put(a_reviewer("md-1", role=Role.PHYSICIAN, credential="MD", licence_states=frozenset()),
                              T0)
            uow.commit()
        replaced = a_reviewer("rn-2", active=False, capacity=1, specialties=frozenset({"general"}))
        with store.uow() as uow:
            uow.reviewers.put(replaced, T0 + H)
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.reviewers.get("rn-2") == replaced
            assert uow.reviewers.get("nobody") is None
            assert [r.reviewer_id for r in uow.reviewers.all()] == ["md-1", "rn-2"]
            assert uow.reviewers.all()[0] == a_reviewer("md-1", role=Role.PHYSICIAN, credential="MD",
                                                        licence_states=frozenset())


class TestReviewersOnFakes(ReviewerRepositoryContract):
    store_name = "fake"


class TestReviewersOnSqlite(ReviewerRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestReviewersOnPostgresql(ReviewerRepositoryContract):
    store_name = "postgresql"


# -- case notes ----------------------------------------------------------------------------------

def a_note(member_id: str = "M-1", **changes: Any) -> CaseNote:
    return dataclasses.replace(CaseNote(note_id=str(uuid.uuid4()), member_id=member_id, author_id="cm-1",
                                        author_name="Jordan Ross", author_role=Role.CASE_MANAGER, written_at=T0,
                                        text="Called the member; PT starts Monday.\nRide arranged."), **changes)


class CaseNoteRepositoryContract(StoreContract):
    def test_notes_come_back_as_written_oldest_first(self, store: Store) -> None:
        first, amended = a_note(written_at=T0), a_note(written_at=T0 + H, author_role=Role.NURSE)
        amendment = a_note(written_at=T0 + H, amends=first.note_id, text="Correction: PT starts Tuesday.")
        with store.uow() as uow:
            for note in (amended, a_note("M-2"), first):
                uow.case_notes.add(note)
            uow.case_notes.add(amendment)
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.case_notes.get(amendment.note_id) == amendment
            assert uow.case_notes.get("nope") is None
            assert uow.case_notes.of_member("M-1") == [first, *sorted([amended, amendment], key=lambda n: n.note_id)]
            assert uow.case_notes.of_member("nobody") == []

    def test_a_note_id_is_taken_once_and_uncommitted_notes_are_not_stored(self, store: Store) -> None:
        note = a_note()
        with store.uow() as uow:
            uow.case_notes.add(note)
            uow.commit()
        with pytest.raises(DuplicateKey), store.uow() as uow:
            uow.case_notes.add(a_note(note_id=note.note_id, text="other"))
        with store.uow() as uow:
            uow.case_notes.add(a_note())
        with store.uow().read_only() as uow:
            assert uow.case_notes.of_member("M-1") == [note]


class TestCaseNotesOnFakes(CaseNoteRepositoryContract):
    store_name = "fake"


class TestCaseNotesOnSqlite(CaseNoteRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestCaseNotesOnPostgresql(CaseNoteRepositoryContract):
    store_name = "postgresql"


# -- notices, appeals and appeal tasks -------------------------------------------------------------

def a_notice(request_id: str = "r-1", **changes: Any) -> Notice:
    return dataclasses.replace(Notice(
        notice_id=str(uuid.uuid4()), request_id=request_id, determination_id="d-1", member_id="M-1",
        kind=NoticeKind.DENIAL, recipient_role="member", recipient=Party("Maria Lopez", ("1 Oak St", "Austin, TX")),
        issued_at=T0, line_numbers=(1, 2), subject="We did not approve your request",
        sections=(Section("What we decided", (), ("Lumbar spine MRI: not approved.",)),
                  Section("The rules", ("42 CFR 422.582(b)",), reference=True)),
        about="About: Maria Lopez, member ID M-1"), **changes)


def an_appeal(**changes: Any) -> Appeal:
    return dataclasses.replace(Appeal(
        appeal_id=str(uuid.uuid4()), request_id="r-1", line_number=1, member_id="M-1", urgency="expedited",
        appellant="provider_on_behalf", appellant_name="Valley Orthopedics", filed_at=T0, reason="notes attached",
        regime="ma-reconsideration", clock=a_clock(regime="ma-reconsideration"), original_decider="md-patel",
        task_id=str(uuid.uuid4())), **changes)


class NoticeRepositoryContract(StoreContract):
    def test_notices_come_back_as_issued_oldest_first(self, store: Store) -> None:
        later, first, other = a_notice(issued_at=T0 + H), a_notice(), a_notice("r-2", member_id="M-2")
        with store.uow() as uow:
            uow.notices.add_many([later, first, other])
            uow.notices.add_many([])
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.notices.get(first.notice_id) == first
            assert uow.notices.get("nope") is None
            assert uow.notices.of_request("r-1") == [first, later]
            assert uow.notices.of_member("M-2") == [other]
        with pytest.raises(DuplicateKey), store.uow() as uow:
            uow.notices.add_many([a_notice(notice_id=first.notice_id)])


class AppealRepositoryContract(StoreContract):
    def test_an_appeal_is_stored_decided_and_listed_by_line(self, store: Store) -> None:
        appeal, other_line = an_appeal(), an_appeal(line_number=2, filed_at=T0 + H)
        with store.uow() as uow:
            uow.appeals.add(appeal)
            uow.appeals.add(other_line)
            uow.commit()
        with pytest.raises(DuplicateKey), store.uow() as uow:
            uow.appeals.add(an_appeal(task_id=appeal.task_id))
        appeal.decide(AppealOutcome.UPHELD, "md-osei", T0 + 2 * H, "the IRE")
        with store.uow() as uow:
            uow.appeals.save(appeal)
            uow.commit()
        with store.uow().read_only() as uow:
            assert uow.appeals.get(appeal.appeal_id) == appeal
            assert uow.appeals.get("nope") is None
            assert uow.appeals.of_line("r-1", 1) == [appeal]
            assert uow.appeals.of_line("r-1", 2) == [other_line]

    def test_a_line_has_one_first_review_and_one_task_per_appeal(self, store: Store) -> None:
        first = a_task()
        appeal_task = a_task(request_id=first.request_id, appeal_id="ap-1", required_role=Role.PHYSICIAN,
                             excluded_reviewers=("md-patel",))
        with store.uow() as uow:
            uow.tasks.add_many([first, appeal_task])
            uow.commit()
        with pytest.raises(DuplicateKey), store.uow() as uow:
            uow.tasks.add_many([a_task(request_id=first.request_id, appeal_id="ap-1")])
        with store.uow().read_only() as uow:
            assert uow.tasks.get(appeal_task.task_id) == appeal_task
            assert [t.appeal_id for t in uow.tasks.of_request(first.request_id)] in (["", "ap-1"], ["ap-1", ""])


class TestNoticesOnFakes(NoticeRepositoryContract):
    store_name = "fake"


class TestNoticesOnSqlite(NoticeRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestNoticesOnPostgresql(NoticeRepositoryContract):
    store_name = "postgresql"


class TestAppealsOnFakes(AppealRepositoryContract):
    store_name = "fake"


class TestAppealsOnSqlite(AppealRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestAppealsOnPostgresql(AppealRepositoryContract):
    store_name = "postgresql"


class NoticeRendererContract:
    """A renderer's PDF shows every section of the notice: its text reads back out (pypdf)."""

    def make_renderer(self) -> NoticeRenderer:
        raise NotImplementedError

    def test_the_pdf_holds_every_word_of_the_notice(self) -> None:
        from pypdf import PdfReader

        notice = a_notice()
        pdf = self.make_renderer().pdf(notice)
        text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages).split())
        for part in (notice.subject, notice.recipient.name, *notice.recipient.address_lines,
                     *(x for sec in notice.sections for x in (sec.heading, *sec.paragraphs, *sec.items))):
            assert part in text


class TestReportLabRenderer(NoticeRendererContract):
    def make_renderer(self) -> NoticeRenderer:
        return ReportLabNoticeRenderer()


# -- the gold-card record ------------------------------------------------------------------------

class ProviderOutcomeRepositoryContract(StoreContract):
    def test_records_count_lines_per_provider_and_category_since_a_date(self, store: Store) -> None:
        npi, other = "1234567893", "1245319599"
        with store.uow() as uow:
            uow.provider_outcomes.add_many([
                LineOutcome("r1", 1, npi, "advanced_imaging", T0, True, "system:rules-engine"),
                LineOutcome("r1", 2, npi, "advanced_imaging", T0, False, "system:rules-engine"),
                LineOutcome("r2", 1, npi, "advanced_imaging", T0 - 48 * H, True, "system:rules-engine"),
                LineOutcome("r3", 1, npi, "sleep_medicine", T0, True, "rn-1"),
                LineOutcome("r4", 1, other, "advanced_imaging", T0, False, "md-1")])
            uow.commit()
        with store.uow() as uow:
            assert uow.provider_outcomes.update_outcome("r1", 2, approved=True, decided_by="rn-1", decided_at=T0 + H)
            assert not uow.provider_outcomes.update_outcome("r9", 1, approved=True, decided_by="rn-1",
                                                            decided_at=T0)
            uow.commit()
        with store.uow().read_only() as uow:
            found = uow.provider_outcomes.records([(npi, "advanced_imaging"), (other, "advanced_imaging"),
                                                   (npi, "chiropractic")], T0 - H)
            assert sorted(found, key=lambda r: r.npi) == [
                ProviderRecord(npi, "advanced_imaging", 2, 2, (T0 - H).date()),
                ProviderRecord(other, "advanced_imaging", 0, 1, (T0 - H).date())]
            assert uow.provider_outcomes.records([(npi, "advanced_imaging")], T0 + H) == [
                ProviderRecord(npi, "advanced_imaging", 1, 1, (T0 + H).date())]
            assert uow.provider_outcomes.records([], T0) == []

    def test_a_line_is_recorded_once(self, store: Store) -> None:
        line = LineOutcome("r1", 1, "1234567893", "advanced_imaging", T0, True, "system:rules-engine")
        with store.uow() as uow:
            uow.provider_outcomes.add_many([line])
            uow.commit()
        with pytest.raises(DuplicateKey), store.uow() as uow:
            uow.provider_outcomes.add_many([line])


class TestProviderOutcomesOnFakes(ProviderOutcomeRepositoryContract):
    store_name = "fake"


class TestProviderOutcomesOnSqlite(ProviderOutcomeRepositoryContract):
    store_name = "sqlite"


@pytest.mark.integration
class TestProviderOutcomesOnPostgresql(ProviderOutcomeRepositoryContract):
    store_name = "postgresql"


# -- the criteria evaluator ----------------------------------------------------------------------

def lumbar_line(**kwargs: Any) -> Any:
    [(_, line)] = request_lines(lumbar_mri(lob=types_pb2.LINE_OF_BUSINESS_COMMERCIAL, **kwargs))
    return line


class EvaluatorContract:
    def make_evaluator(self) -> Evaluator:
        raise NotImplementedError

    def test_a_line_no_criteria_set_covers_has_no_evaluation(self) -> None:
        assert self.make_evaluator().evaluate(lumbar_line(procedure_code="99999")) is None

    @pytest.mark.parametrize(("kwargs", "outcome"), [
        ({"meets": True}, Outcome.MEETS_CRITERIA), ({"meets": False}, Outcome.REFER_TO_NURSE),
        ({"missing_facts": True}, Outcome.PEND_MISSING_INFORMATION)])
    def test_the_lumbar_mri(self, kwargs: dict[str, bool], outcome: Outcome) -> None:
        evaluator = self.make_evaluator()
        got = evaluator.evaluate(lumbar_line(**kwargs))
        assert got is not None
        assert got.outcome is outcome
        assert got.category == "advanced_imaging"
        assert bool(got.missing_facts) is (outcome is Outcome.PEND_MISSING_INFORMATION)
        assert got.criteria_id
        assert got.criteria_version
        assert got.summary
        assert evaluator.evaluate(lumbar_line(**kwargs)) == got  # the same line, the same answer


class TestFakeEvaluator(EvaluatorContract):
    def make_evaluator(self) -> Evaluator:
        return FakeEvaluator()


@pytest.fixture(scope="module")
def shipped_library() -> Any:
    return load_library(DEFAULT_CRITERIA_DIR)


class TestLibraryEvaluatorOnThePythonMatcher(EvaluatorContract):
    @pytest.fixture(autouse=True)
    def _library(self, shipped_library: Any) -> None:
        self.library = shipped_library

    def make_evaluator(self) -> Evaluator:
        return LibraryEvaluator(self.library, PythonMatcher())


class TestLibraryEvaluatorOnDurableRules(EvaluatorContract):
    @pytest.fixture(autouse=True)
    def _library(self, shipped_library: Any) -> None:
        self.library = shipped_library

    def make_evaluator(self) -> Evaluator:
        return LibraryEvaluator(self.library, DurableRulesMatcher(self.library.all()))


# -- the duplicate check -------------------------------------------------------------------------

JAN = dt.date(2027, 1, 4)
# (member, code, first day, last day) of the active authorizations each checker is given.
HELD = [("M-1", "72148", JAN, JAN + dt.timedelta(days=13)), ("M-1", "72148", JAN + dt.timedelta(days=40),
                                                              JAN + dt.timedelta(days=50)),
        ("M-1", "97110", JAN, JAN + dt.timedelta(days=30)), ("M-2", "72148", JAN, JAN + dt.timedelta(days=13))]


class DuplicateCheckerContract:
    def make_checker(self) -> tuple[DuplicateChecker, list[str]]:
        """A checker whose member authorizations are :data:`HELD`, and their numbers in that order."""
        raise NotImplementedError

    def test_overlapping_authorizations_of_the_member_for_the_same_code(self) -> None:
        checker, numbers = self.make_checker()
        day = dt.timedelta(days=1)
        answers = checker.overlapping([
            ("M-1", [LineQuery(1, "72148", JAN + 13 * day, JAN + 20 * day),  # overlaps the first by a day
                     LineQuery(2, "72148", JAN + 14 * day, JAN + 39 * day),  # between the two
                     LineQuery(3, "97110", JAN - 5 * day, JAN + 60 * day),  # covers the whole of one
                     LineQuery(4, "72148", JAN + 10 * day, JAN + 45 * day),  # overlaps both
                     LineQuery(5, "99213", JAN, JAN)]),  # another code
            ("M-3", [LineQuery(1, "72148", JAN, JAN)]),  # another member
            ("M-2", [])])
        assert answers == [{1: [numbers[0]], 3: [numbers[2]], 4: sorted([numbers[0], numbers[1]])}, {}, {}]


class TestFakeDuplicateChecker(DuplicateCheckerContract):
    def make_checker(self) -> tuple[DuplicateChecker, list[str]]:
        numbers = [f"A-{i}" for i in range(len(HELD))]
        return FakeDuplicateChecker(Authorization(m, n, c, f, t) for n, (m, c, f, t) in zip(numbers, HELD,
                                                                                             strict=True)), numbers


@pytest.fixture(scope="module", params=["current", "older"])
def authorization_service(request: pytest.FixtureRequest,
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, list[str]]]:
    """The authorization service in-process on SQLite, holding :data:`HELD` (issued from
    determinations, as in production), behind a real gRPC server on a free port."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('authorization') / 'authorization.db'}")
    migrations.upgrade("authorization", engine)

    def uow() -> SqlAuthorizationUnitOfWork:
        return SqlAuthorizationUnitOfWork(engine, authorization_tables.outbox, authorization_tables.processed_events)

    handlers = AuthorizationHandlers(uow, Topics("t"), clock=lambda: T0)
    numbers = []
    for member, code, first, last in HELD:
        determination = types_pb2.Determination(request_id=str(uuid.uuid4()), determination_id=str(uuid.uuid4()))
        determination.lines.add(line_number=1, procedure_code=code, approved_units=1,
                                action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL,
                                approved_start=types_pb2.Date(year=first.year, month=first.month, day=first.day),
                                approved_end=types_pb2.Date(year=last.year, month=last.month, day=last.day))
        handlers.handle_batch([IncomingEvent(
            event_id=str(uuid.uuid4()), event_type="DeterminationMade", schema_version="1",
            key=determination.request_id, topic="t", partition=0, offset=0,
            message=events_pb2.DeterminationMade(determination=determination, member_id=member))])
        [issued] = handlers.for_member(member, code, first, first, True, 10)
        numbers.append(issued.authorization_number)
    servicer = AuthorizationServicer(handlers) if request.param == "current" else _OlderAuthorizationServicer(handlers)
    server = create_server("127.0.0.1:0", [Registration(
        authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server, servicer,
        authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name)])
    yield server, numbers
    server.stop(0)
    engine.dispose()


class _OlderAuthorizationServicer(AuthorizationServicer):
    """An authorization service from before FindOverlappingAuthorizations (UNIMPLEMENTED), as review
    meets one during a rolling upgrade: the checker asks per request instead."""

    def FindOverlappingAuthorizations(self, request: authorization_pb2.FindOverlappingAuthorizationsRequest,
                                      context: grpc.ServicerContext
                                      ) -> authorization_pb2.FindOverlappingAuthorizationsResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")  # as the generated base does
        raise AssertionError("abort raises")


class TestGrpcDuplicateChecker(DuplicateCheckerContract):
    @pytest.fixture(autouse=True)
    def _service(self, authorization_service: tuple[RunningServer, list[str]]) -> Iterator[None]:
        server, self.numbers = authorization_service
        self.checker = GrpcDuplicateChecker(f"127.0.0.1:{server.port}")
        yield
        self.checker.close()

    def make_checker(self) -> tuple[DuplicateChecker, list[str]]:
        return self.checker, self.numbers


# -- the clock -----------------------------------------------------------------------------------

class ClockContract:
    def make_clock(self) -> Clock:
        raise NotImplementedError

    def test_tells_aware_utc_time_that_never_runs_backwards(self) -> None:
        clock = self.make_clock()
        first, second = clock(), clock()
        assert first.utcoffset() == dt.timedelta(0)
        assert first.tzinfo is not None
        assert second >= first


class TestFixedClock(ClockContract):
    def make_clock(self) -> Clock:
        return FixedClock(dt.datetime(2027, 3, 14, 2, 30, tzinfo=dt.timezone(-dt.timedelta(hours=5))))

    def test_moves_only_when_told(self) -> None:
        clock = FixedClock(T0)
        assert clock() == clock() == T0
        assert clock.advance(H) == T0 + H == clock()


class TestWallClock(ClockContract):
    def make_clock(self) -> Clock:
        return utcnow


class DecisionMetricsContract:
    """Every line told is counted once by who decided and its outcome; nothing a line can hold (a
    pended line, a receipt after the decision by a skewed clock, an empty batch) makes it raise."""

    def make(self) -> ports.DecisionMetrics:
        raise NotImplementedError

    def count(self, metrics: ports.DecisionMetrics, decider: str, outcome: str) -> int:
        raise NotImplementedError

    def test_counts_each_line_once_by_decider_and_outcome(self) -> None:
        metrics = self.make()
        line = ports.LineDecided("software", "certified_in_total", "cms-0057-f", "standard", T0, T0 + H)
        metrics.decided([line, dataclasses.replace(line, decider="physician", outcome="not_certified")])
        metrics.decided([line])
        metrics.decided([])
        assert self.count(metrics, "software", "certified_in_total") == 2
        assert self.count(metrics, "physician", "not_certified") == 1
        assert self.count(metrics, "nurse", "pended") == 0

    def test_takes_pended_lines_and_a_skewed_clock(self) -> None:
        metrics = self.make()
        metrics.decided([ports.LineDecided("nurse", "pended", "", "expedited", T0, T0),
                         ports.LineDecided("nurse", "certified_in_total", "erisa", "expedited", T0 + H, T0)])
        assert self.count(metrics, "nurse", "pended") == 1
        assert self.count(metrics, "nurse", "certified_in_total") == 1


class TestRecordingDecisionMetrics(DecisionMetricsContract):
    def make(self) -> ports.DecisionMetrics:
        return RecordingDecisionMetrics()

    def count(self, metrics: ports.DecisionMetrics, decider: str, outcome: str) -> int:
        assert isinstance(metrics, RecordingDecisionMetrics)
        return sum(1 for line in metrics.lines if (line.decider, line.outcome) == (decider, outcome))


class TestPrometheusDecisions(DecisionMetricsContract):
    def make(self) -> ports.DecisionMetrics:
        self.registry = Metrics(process_collectors=False)
        return PrometheusDecisions(self.registry)

    def count(self, metrics: ports.DecisionMetrics, decider: str, outcome: str) -> int:
        return int(self.registry.value("ur_review_decisions_total", {"decider": decider, "outcome": outcome}) or 0)


def test_every_port_has_a_contract() -> None:
    """A new port gets its contract here, run against its fake and its real implementations."""
    from services.review.service_layer import ports
    contracts = {UnitOfWorkContract: ports.UnitOfWork, CaseRepositoryContract: ports.CaseRepository,
                 TaskRepositoryContract: ports.TaskRepository, ReviewerRepositoryContract: ports.ReviewerRepository,
                 ProviderOutcomeRepositoryContract: ports.ProviderOutcomeRepository,
                 CaseNoteRepositoryContract: ports.CaseNoteRepository,
                 NoticeRepositoryContract: ports.NoticeRepository, AppealRepositoryContract: ports.AppealRepository,
                 NoticeRendererContract: ports.NoticeRenderer,
                 EvaluatorContract: ports.Evaluator, DuplicateCheckerContract: ports.DuplicateChecker,
                 DecisionMetricsContract: ports.DecisionMetrics}
    abstract = {obj for name in ports.__all__ if isinstance(obj := getattr(ports, name), type)
                and issubclass(obj, abc.ABC)}
    assert abstract == set(contracts.values())  # and the clock (a callable, not a class): ClockContract
