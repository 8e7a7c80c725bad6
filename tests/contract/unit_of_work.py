"""The contract every unit of work keeps (``services/common/ports.py``), as an abstract test class.
A service's contract suite inherits it and supplies a ``backend`` fixture: a :class:`Backend` for
the fake, SQLite or PostgreSQL."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, select
from ur.events.v1 import events_pb2

from services.common import migrations
from services.common.db import make_engine
from services.common.events import OutgoingEvent
from services.common.ports import UnitOfWork
from tests.fakes.common import FakeStore

Stored = tuple[str, str, str, bytes]  # an outbox entry: topic, key, event type, payload


class Backend(abc.ABC):
    """One implementation of a service's ports, seen from a test."""

    @abc.abstractmethod
    def uow(self) -> Any:
        """A new unit of work (the service's own type, so its repositories are there)."""

    @abc.abstractmethod
    def outbox(self) -> list[Stored]:
        """The committed events, in the order they were stored."""


class FakeBackend(Backend):
    def __init__(self, store: FakeStore, uow: Callable[[], UnitOfWork]) -> None:
        self.store = store
        self._uow = uow

    def uow(self) -> Any:
        return self._uow()

    def outbox(self) -> list[Stored]:
        return [(e.topic, e.key, e.event_type, e.message.SerializeToString()) for e in self.store.outbox]


class SqlBackend(Backend):
    """A migrated database shared by a test class; :meth:`clear` empties it between tests."""

    def __init__(self, service: str, url: str, metadata: MetaData,
                 uow: Callable[[Engine, Table, Table], UnitOfWork]) -> None:
        self.engine = make_engine(url)
        migrations.upgrade(service, self.engine)
        self.metadata = metadata
        self._uow: Callable[[], UnitOfWork] = lambda: uow(self.engine, metadata.tables["outbox"],
                                                          metadata.tables["processed_events"])

    def uow(self) -> Any:
        return self._uow()

    def outbox(self) -> list[Stored]:
        outbox: Table = self.metadata.tables["outbox"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).order_by(outbox.c.id)).all()
        return [(r.topic, r.message_key, r.event_type, bytes(r.payload)) for r in rows]

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
