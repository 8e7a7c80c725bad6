"""Drawing units on PostgreSQL under concurrency: 100 claim lines of one unit each, all at once,
against an authorization of 50 units: exactly 50 draw, the other 50 are refused with the units left
(none), and the record ends with 50 used. Then the same claim line ids again, all at once: every
answer is the first one's, and nothing more is drawn."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.adapters import tables
from services.authorization.adapters.repository import SqlAuthorizationUnitOfWork
from services.authorization.domain.claims import ClaimLine
from services.authorization.service_layer.handlers import AuthorizationHandlers, ConsumeResult
from services.common import migrations
from services.common.db import make_engine
from services.common.errors import FailedPrecondition
from services.common.events import IncomingEvent
from services.common.topics import Topics

pytestmark = pytest.mark.integration

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
NPI = "1234567893"
DRAWS = 100
UNITS = 50


@pytest.fixture(scope="module")
def handlers(make_database: Callable[[str], str]) -> Iterator[AuthorizationHandlers]:
    # 100 calls at once on at most 50 connections (pool and overflow): the calls queue for them as they
    # would for a server's pool, and the test leaves the shared server's connections to others.
    engine = make_engine(make_database("claims"), pool_size=25)
    migrations.upgrade("authorization", engine)

    def uow() -> SqlAuthorizationUnitOfWork:
        return SqlAuthorizationUnitOfWork(engine, tables.outbox, tables.processed_events)

    yield AuthorizationHandlers(uow, Topics("t"), clock=lambda: NOW)
    engine.dispose()


def authorize(handlers: AuthorizationHandlers, member: str, units: int) -> None:
    det = types_pb2.Determination(request_id=str(uuid.uuid4()), determination_id=str(uuid.uuid4()))
    line = det.lines.add(line_number=1, procedure_code="97110", approved_units=units,
                         action_code=types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL)
    line.approved_start.CopyFrom(types_pb2.Date(year=2027, month=3, day=1))
    line.approved_end.CopyFrom(types_pb2.Date(year=2027, month=5, day=31))
    message = events_pb2.DeterminationMade(determination=det, member_id=member,
                                           servicing_provider=types_pb2.Provider(npi=NPI))
    handlers.handle_batch([IncomingEvent(str(uuid.uuid4()), message.DESCRIPTOR.full_name, "1", "k", message, "t",
                                         0, 0)])


def all_at_once(handlers: AuthorizationHandlers, ids: list[str],
                claim: ClaimLine) -> list[ConsumeResult | FailedPrecondition]:
    start = threading.Barrier(len(ids))

    def draw(claim_line_id: str) -> ConsumeResult | FailedPrecondition:
        start.wait(timeout=30)
        try:
            return handlers.consume(claim_line_id, claim)
        except FailedPrecondition as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        return list(pool.map(draw, ids))


def test_one_hundred_concurrent_draws_of_one_unit_against_fifty(handlers: AuthorizationHandlers) -> None:
    member = f"M-{uuid.uuid4().hex[:8]}"
    authorize(handlers, member, UNITS)
    claim = ClaimLine(member, NPI, "97110", dt.date(2027, 3, 15), 1)
    ids = [f"clm-{i}/1" for i in range(DRAWS)]

    answers = all_at_once(handlers, ids, claim)
    drawn = {i for i, a in zip(ids, answers, strict=True) if isinstance(a, ConsumeResult)}
    refused = [a for a in answers if isinstance(a, FailedPrecondition)]
    assert len(drawn) == UNITS
    assert len(refused) == DRAWS - UNITS
    assert all("has 0 of 50 units left" in str(r) for r in refused)
    decision = handlers.check_claim(claim)
    assert (decision.units_remaining, decision.authorization and decision.authorization.units_used) == (0, UNITS)

    # Retries of every claim line, all at once: the drawn ones replay, the refused ones are refused again.
    again = all_at_once(handlers, ids, claim)
    assert {i for i, a in zip(ids, again, strict=True) if isinstance(a, ConsumeResult) and a.replayed} == drawn
    assert sum(isinstance(a, FailedPrecondition) for a in again) == DRAWS - UNITS
    after = handlers.check_claim(claim).authorization
    assert after is not None
    assert after.units_used == UNITS
