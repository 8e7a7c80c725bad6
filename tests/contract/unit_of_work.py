"""The contract every unit of work keeps (``services/common/ports.py``), as an abstract test class.
A service's contract suite inherits it and supplies a ``backend`` fixture: a :class:`Backend` for
the fake, SQLite or PostgreSQL."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, select
from ur.events.v1 import events_pb2

from services.common import migrations
from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord, RefValue, member_ref
from services.common.audit.store import AuditLog, read_entries
from services.common.db import make_engine
from services.common.events import OutgoingEvent
from services.common.ports import UnitOfWork
from tests.fakes.common import FAKE_AUDIT_KEY, FakeStore

Stored = tuple[str, str, str, bytes]  # an outbox entry: topic, key, event type, payload
Audited = tuple[str, str, str, dict[str, RefValue], str]  # an audit entry: actor, action, request, refs, event


class Backend(abc.ABC):
    """One implementation of a service's ports, seen from a test."""

    @abc.abstractmethod
    def uow(self) -> Any:
        """A new unit of work (the service's own type, so its repositories are there)."""

    @abc.abstractmethod
    def outbox(self) -> list[Stored]:
        """The committed events, in the order they were stored."""

    @abc.abstractmethod
    def audit_log(self) -> list[Audited]:
        """The committed audit records, in the order they were appended."""


class FakeBackend(Backend):
    def __init__(self, store: FakeStore, uow: Callable[[], UnitOfWork]) -> None:
        self.store = store
        self._uow = uow

    def uow(self) -> Any:
        return self._uow()

    def outbox(self) -> list[Stored]:
        return [(e.topic, e.key, e.event_type, e.message.SerializeToString()) for e in self.store.outbox]

    def audit_log(self) -> list[Audited]:
        return [(r.actor, r.action, r.request_id, dict(r.refs), r.event_id) for r in self.store.audit]


class SqlBackend(Backend):
    """A migrated database shared by a test class; :meth:`clear` empties it between tests."""

    def __init__(self, service: str, url: str, metadata: MetaData, uow: Callable[..., UnitOfWork]) -> None:
        self.engine = make_engine(url)
        migrations.upgrade(service, self.engine)
        self.metadata = metadata
        # The fakes' key, so that member references compare alike.
        log = AuditLog.of(metadata, service=service, key=FAKE_AUDIT_KEY)
        self._uow: Callable[[], UnitOfWork] = lambda: uow(self.engine, metadata.tables["outbox"],
                                                          metadata.tables["processed_events"], audit=log)

    def uow(self) -> Any:
        return self._uow()

    def outbox(self) -> list[Stored]:
        outbox: Table = self.metadata.tables["outbox"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).order_by(outbox.c.id)).all()
        return [(r.topic, r.message_key, r.event_type, bytes(r.payload)) for r in rows]

    def audit_log(self) -> list[Audited]:
        with self.engine.connect() as conn:
            entries = read_entries(conn)
        return [(e.actor, e.action, e.request_id, dict(e.refs), e.event_id) for e in entries]

    def clear(self) -> None:
        with self.engine.begin() as conn:
            for table in reversed(self.metadata.sorted_tables):
                conn.execute(table.delete())


def event(key: str, topic: str = "t.contract.v1") -> OutgoingEvent:
    return OutgoingEvent(topic=topic, key=key, message=events_pb2.RequestSubmitted(request_id=key))


def stored(e: OutgoingEvent) -> Stored:
    return (e.topic, e.key, e.event_type, e.message.SerializeToString())


class UnitOfWorkContract:
    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("each implementation's test class supplies its backend")

    def test_nothing_survives_a_block_left_without_commit(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.publish(event("k1"))
            uow.mark_processed("c", ["e1"])
        with backend.uow() as uow:
            assert uow.already_processed("c", ["e1"]) == set()
        assert backend.outbox() == []

    def test_an_exception_rolls_back(self, backend: Backend) -> None:
        def stage_then_fail() -> None:
            with backend.uow() as uow:
                uow.publish(event("k1"))
                uow.mark_processed("c", ["e1"])
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            stage_then_fail()
        with backend.uow() as uow:
            assert uow.already_processed("c", ["e1"]) == set()
        assert backend.outbox() == []

    def test_commit_stores_events_in_order_with_the_processed_record(self, backend: Backend) -> None:
        first, second = event("k1"), event("k2", topic="t.other.v1")
        with backend.uow() as uow:
            uow.publish(first)
            uow.publish(second)
            uow.mark_processed("c", ["e1", "e2"])
            uow.commit()
        assert backend.outbox() == [stored(first), stored(second)]
        with backend.uow() as uow:
            assert uow.already_processed("c", ["e1", "e2", "e3"]) == {"e1", "e2"}

    def test_rollback_discards_what_came_before_it_only(self, backend: Backend) -> None:
        kept = event("k2")
        with backend.uow() as uow:
            uow.publish(event("k1"))
            uow.mark_processed("c", ["e1"])
            uow.rollback()
            uow.publish(kept)
            uow.mark_processed("c", ["e2"])
            uow.commit()
        assert backend.outbox() == [stored(kept)]
        with backend.uow() as uow:
            assert uow.already_processed("c", ["e1", "e2"]) == {"e2"}

    def test_work_after_a_commit_needs_its_own_commit(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.mark_processed("c", ["e1"])
            uow.commit()
            uow.mark_processed("c", ["e2"])
        with backend.uow() as uow:
            assert uow.already_processed("c", ["e1", "e2"]) == {"e1"}

    def test_processed_ids_are_recorded_per_consumer(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.mark_processed("a", ["e1"])
            uow.mark_processed("a", [])
            uow.commit()
        with backend.uow() as uow:
            assert uow.already_processed("b", ["e1"]) == set()
            assert uow.already_processed("a", []) == set()

    def test_a_read_only_unit_of_work_reads_but_refuses_to_commit(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.mark_processed("c", ["e1"])
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.already_processed("c", ["e1"]) == {"e1"}
            with pytest.raises(RuntimeError, match="read-only"):
                uow.commit()



class AuditedUnitOfWorkContract(UnitOfWorkContract):
    """A service's unit of work that keeps the audit log (issue 16): intake, review, authorization.
    (The PAS subscriptions' unit of work keeps none: the door's calls into intake are audited there.)"""

    # -- the audit log ---------------------------------------------------------------------------
    def test_audit_records_commit_with_the_changes_in_order(self, backend: Backend) -> None:
        announced = event("k1")
        with backend.uow() as uow:
            uow.publish(announced)
            uow.audit(AuditRecord("request.submitted", "req-1", {"lines": 2}, event_id=announced.event_id),
                      AuditRecord("request.viewed", "req-1", {"status": "in_review"}, actor="reviewer:rn-1"))
            uow.commit()
        log = backend.audit_log()
        service = log[0][0]
        assert service.startswith("service:")  # outside any call: the service itself
        assert log == [(service, "request.submitted", "req-1", {"lines": 2}, announced.event_id),
                       ("reviewer:rn-1", "request.viewed", "req-1", {"status": "in_review"}, "")]

    def test_audit_records_vanish_with_a_rollback_or_without_a_commit(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.audit(AuditRecord("request.viewed", "dropped-1"))
        with backend.uow() as uow:
            uow.audit(AuditRecord("request.viewed", "dropped-2"))
            uow.rollback()
            uow.audit(AuditRecord("request.viewed", "kept"))
            uow.commit()
        assert [a[2] for a in backend.audit_log()] == ["kept"]

    def test_the_actor_is_the_callers_and_a_member_only_a_reference(self, backend: Backend) -> None:
        with actors.acting_as(actors.ANONYMOUS), backend.uow() as uow:
            uow.audit(AuditRecord("request.listed", refs={"count": 0}, member_id="MA100001"))
            uow.commit()
        ((actor, _, _, refs, _),) = backend.audit_log()
        assert actor == "anonymous"
        assert refs == {"count": 0, "member_ref": member_ref(FAKE_AUDIT_KEY, "MA100001")}
        assert "MA100001" not in repr(backend.audit_log())
