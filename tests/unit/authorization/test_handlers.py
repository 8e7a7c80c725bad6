"""Authorization's use cases on fakes (tests/fakes/authorization.py): one authorization per
certified line, issued once however often its determination arrives, and the look-ups."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest
from google.protobuf.message import Message
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.domain import numbers
from services.authorization.domain.model import AuthorizationToIssue
from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common.errors import NotFound, PoisonMessage, ValidationFailed
from services.common.events import IncomingEvent
from services.common.topics import Topics
from tests.fakes.authorization import AuthorizationStore

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
ISSUED_TOPIC = "t.authorization.authorizations-issued.v1"
CERTIFIED, PARTIAL, MODIFIED = (types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_CERTIFIED_PARTIAL,
                                types_pb2.ACTION_CODE_MODIFIED)
PENDED, DENIED = types_pb2.ACTION_CODE_PENDED, types_pb2.ACTION_CODE_NOT_CERTIFIED


@pytest.fixture
def store() -> AuthorizationStore:
    return AuthorizationStore()


@pytest.fixture
def handlers(store: AuthorizationStore) -> AuthorizationHandlers:
    return AuthorizationHandlers(store.unit_of_work, Topics("t"), validity_days=90, clock=lambda: NOW)


def date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def decided(request_id: str, *lines: tuple[int, int, int], member_id: str = "T-MA-0001",
            determination_id: str = "d1", dates: tuple[dt.date, dt.date] | None = None) -> events_pb2.DeterminationMade:
    """``lines``: (line number, action code, approved units)."""
    det = types_pb2.Determination(request_id=request_id, determination_id=determination_id)
    for number, action, units in lines:
        line = det.lines.add(line_number=number, procedure_code=f"7214{number}", action_code=action,
                             approved_units=units)
        if dates is not None:
            line.approved_start.CopyFrom(date(dates[0]))
            line.approved_end.CopyFrom(date(dates[1]))
    return events_pb2.DeterminationMade(determination=det, member_id=member_id)


def incoming(message: Message, event_id: str | None = None) -> IncomingEvent:
    return IncomingEvent(event_id=event_id or str(uuid.uuid4()), event_type=message.DESCRIPTOR.full_name,
                         schema_version="1", key="k", message=message, topic="t", partition=0, offset=0)


def issued_events(store: AuthorizationStore) -> list[events_pb2.AuthorizationsIssued]:
    found = [e.message for e in store.outbox if e.topic == ISSUED_TOPIC]
    assert all(isinstance(m, events_pb2.AuthorizationsIssued) for m in found)
    return found  # type: ignore[return-value]


# -- issuing -----------------------------------------------------------------------------------

def test_each_decided_line_gets_one_record_and_the_news_goes_out(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided("r1", (1, CERTIFIED, 2), (2, PENDED, 0), (3, DENIED, 0),
                                            (4, PARTIAL, 3), (5, MODIFIED, 1), (6, CERTIFIED, 0)))])
    stored = sorted(store.authorizations.values(), key=lambda a: a.line_number)
    assert [(a.line_number, a.status, a.units) for a in stored] == [
        (1, "approved", 2), (2, "pended", 0), (3, "denied", 0), (4, "partially_approved", 3), (5, "modified", 1),
        (6, "approved", 0)]
    assert all(a.request_id == "r1" and a.member_id == "T-MA-0001" and a.determination_id == "d1"
               and a.issued_at == NOW for a in stored)
    # No approved dates: valid from the day of the decision for the default 90 days; a record that
    # approves nothing is valid on no other day.
    assert {(a.valid_from, a.valid_to) for a in stored if a.units} == {(dt.date(2027, 3, 1), dt.date(2027, 5, 29))}
    assert {(a.valid_from, a.valid_to) for a in stored if not a.units} == {(dt.date(2027, 3, 1),) * 2}
    # Denials get a number too: the reference a provider quotes on appeal.
    assert all(numbers.is_well_formed(a.authorization_number) and a.authorization_number.startswith("UR27-")
               for a in stored)

    [event] = issued_events(store)
    assert [e.key for e in store.outbox] == ["r1"]
    assert (event.request_id, event.determination_id) == ("r1", "d1")
    assert [(a.authorization_number, a.line_number, a.procedure_code, a.units) for a in event.authorizations] == [
        (a.authorization_number, a.line_number, a.procedure_code, a.units) for a in stored]
    first = event.authorizations[0]
    assert first.status == types_pb2.AUTHORIZATION_STATUS_APPROVED
    assert (first.units_remaining, first.units_used) == (2, 0)
    assert event.authorizations[2].status == types_pb2.AUTHORIZATION_STATUS_DENIED
    assert first.member_id == "T-MA-0001"
    assert first.issued_at.ToDatetime(dt.UTC) == NOW
    assert (first.valid_from, first.valid_to) == (date(dt.date(2027, 3, 1)), date(dt.date(2027, 5, 29)))


def test_approved_dates_bound_the_authorization(store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided("r1", (1, CERTIFIED, 1),
                                            dates=(dt.date(2027, 4, 1), dt.date(2027, 4, 14))))])
    [auth] = store.authorizations.values()
    assert (auth.valid_from, auth.valid_to) == (dt.date(2027, 4, 1), dt.date(2027, 4, 14))


def test_a_redelivered_determination_issues_nothing_more(store: AuthorizationStore,
                                                         handlers: AuthorizationHandlers) -> None:
    event = incoming(decided("r1", (1, CERTIFIED, 1), (2, CERTIFIED, 1)), "e1")
    handlers.handle_batch([event])
    before = dict(store.authorizations)
    handlers.handle_batch([event])  # same event id: already processed
    handlers.handle_batch([incoming(event.message, "e2")])  # published twice: new id, lines already authorized
    assert store.authorizations == before
    assert len(issued_events(store)) == 1
    assert store.processed == {("authorization", "e1"), ("authorization", "e2")}


def test_a_line_approved_later_follows_on_its_record(store: AuthorizationStore,
                                                    handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided("r1", (1, CERTIFIED, 1), (2, PENDED, 0)))])
    [pended] = [a for a in store.authorizations.values() if a.line_number == 2]
    handlers.handle_batch([incoming(decided("r1", (2, CERTIFIED, 4), determination_id="d2"))])
    assert sorted((a.line_number, a.determination_id, a.status, a.units) for a in store.authorizations.values()) == [
        (1, "d1", "approved", 1), (2, "d2", "approved", 4)]
    [later] = [a for a in store.authorizations.values() if a.line_number == 2]
    assert later.authorization_number == pended.authorization_number
    first, second = issued_events(store)
    assert [a.line_number for a in first.authorizations] == [1, 2]
    assert [a.line_number for a in second.authorizations] == [2]
    assert second.determination_id == "d2"


def test_a_decision_older_than_the_records_is_ignored(store: AuthorizationStore,
                                                      handlers: AuthorizationHandlers) -> None:
    newer = decided("r1", (1, CERTIFIED, 2), determination_id="d2")
    newer.determination.lines[0].decided_at.FromDatetime(NOW)
    older = decided("r1", (1, PENDED, 0), determination_id="d1")
    older.determination.lines[0].decided_at.FromDatetime(NOW - dt.timedelta(hours=1))
    handlers.handle_batch([incoming(newer), incoming(older)])
    [record] = store.authorizations.values()
    assert (record.status, record.determination_id) == ("approved", "d2")


def test_lines_needing_no_authorization_get_no_record_but_the_event_is_remembered(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided("r1", (1, types_pb2.ACTION_CODE_NO_ACTION_REQUIRED, 0)), "e1")])
    assert store.authorizations == {}
    assert store.outbox == []
    assert store.processed == {("authorization", "e1")}


def test_one_batch_issues_for_every_determination_with_one_event_each(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided(f"r{i}", (1, CERTIFIED, 1), (2, CERTIFIED, 1), member_id=f"M-{i}"))
                           for i in range(5)])
    assert len(store.authorizations) == 10
    assert len({a.authorization_number for a in store.authorizations.values()}) == 10
    assert [(e.request_id, len(e.authorizations)) for e in issued_events(store)] == [
        (f"r{i}", 2) for i in range(5)]


def _bad_date() -> events_pb2.DeterminationMade:
    message = decided("r1", (1, CERTIFIED, 1))
    message.determination.lines[0].approved_start.CopyFrom(types_pb2.Date(year=2027, month=2, day=30))
    return message


@pytest.mark.parametrize(("message", "problem"), [
    (events_pb2.AuthorizationsIssued(request_id="r1"), "does not consume AuthorizationsIssued"),
    (decided("", (1, CERTIFIED, 1)), "without request id"),
    (decided("r1", (1, CERTIFIED, 1), determination_id=""), "without request id or determination id"),
    (decided("r1", (1, CERTIFIED, 1), member_id=""), "carries no member id"),
    (_bad_date(), "invalid date 2027-2-30"),
])
def test_a_determination_that_cannot_apply_is_poison_and_its_batch_changes_nothing(
        store: AuthorizationStore, handlers: AuthorizationHandlers, message: Message, problem: str) -> None:
    with pytest.raises(PoisonMessage, match=problem):
        handlers.handle_batch([incoming(decided("r0", (1, CERTIFIED, 1))), incoming(message)])
    assert store.authorizations == {}
    assert store.outbox == []
    assert store.processed == set()


# -- queries -----------------------------------------------------------------------------------

def issue(store: AuthorizationStore, request_id: str, *, member_id: str = "T-MA-0001", code: str = "72148",
          status: str = "approved", issued_at: dt.datetime = NOW) -> str:
    with store.unit_of_work() as uow:
        [auth] = uow.authorizations.add_many([AuthorizationToIssue(
            request_id=request_id, line_number=1, determination_id="d1", member_id=member_id, procedure_code=code,
            units=1, valid_from=dt.date(2027, 3, 1), valid_to=dt.date(2027, 3, 31), status=status,
            issued_at=issued_at)])
        uow.commit()
    return auth.authorization_number


def test_an_authorization_is_found_by_its_number_however_it_is_typed(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    number = issue(store, "r1")
    typed = f" {number[:4].lower()}{number[4:].lower().replace('0', 'o').replace('1', 'l')} "
    for asked in (number, typed):
        found = handlers.get(asked)
        assert (found.authorization_number, found.request_id, found.member_id) == (number, "r1", "T-MA-0001")
        assert found.issued_at.ToDatetime(dt.UTC) == NOW


def test_a_malformed_number_is_invalid_and_an_unknown_one_not_found(handlers: AuthorizationHandlers) -> None:
    with pytest.raises(ValidationFailed) as caught:
        handlers.get("12345")
    assert [v.field for v in caught.value.violations] == ["authorization_number"]
    with pytest.raises(NotFound, match="no authorization UR27-0000-0000"):
        handlers.get("ur27-oooo-oooo")


def test_a_members_authorizations_are_listed_newest_first_with_filters(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    older = issue(store, "r1", issued_at=NOW - dt.timedelta(days=1))
    newer = issue(store, "r2")
    knee = issue(store, "r3", code="27447")
    cancelled = issue(store, "r4", status="cancelled")
    issue(store, "r5", member_id="T-OTHER-1")

    def listed(**kw: object) -> list[str]:
        args: dict[str, object] = {"member_id": "T-MA-0001", "procedure_code": "", "overlaps_from": None,
                                   "overlaps_to": None, "active_only": False, "limit": 0, **kw}
        return [a.authorization_number for a in handlers.for_member(**args)]  # type: ignore[arg-type]

    assert listed() == [cancelled, knee, newer, older]
    assert listed(procedure_code="72148", active_only=True) == [newer, older]
    assert listed(limit=1) == [cancelled]
    assert listed(overlaps_from=dt.date(2027, 4, 1)) == []
    assert listed(overlaps_to=dt.date(2027, 3, 1)) == [cancelled, knee, newer, older]
    assert handlers.for_member("T-OTHER-1", "", None, None, False, 0)[0].status == (
        types_pb2.AUTHORIZATION_STATUS_APPROVED)
    cancelled_proto = handlers.get(cancelled)
    assert cancelled_proto.status == types_pb2.AUTHORIZATION_STATUS_CANCELLED


def test_listing_returns_at_most_100_unless_asked(store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    for i in range(101):
        issue(store, f"r{i}")
    assert len(handlers.for_member("T-MA-0001", "", None, None, False, 0)) == 100
    assert len(handlers.for_member("T-MA-0001", "", None, None, False, 1000)) == 101


@pytest.mark.parametrize(("call", "field"), [
    (lambda h: h.for_member("", "", None, None, False, 10), "member_id"),
    (lambda h: h.for_member("T-MA-0001", "", None, None, False, -1), "limit"),
    (lambda h: h.for_member("T-MA-0001", "", None, None, False, 1001), "limit"),
])
def test_a_listing_needs_a_member_and_a_sane_limit(handlers: AuthorizationHandlers,
                                                   call: Callable[[AuthorizationHandlers], object],
                                                   field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        call(handlers)
    assert [v.field for v in caught.value.violations] == [field]


# -- a batch of duplicate checks ---------------------------------------------------------------------

def test_overlapping_answers_each_query_in_order_with_the_members_usable_records(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    mri = issue(store, "r1")  # valid 2027-03-01 .. 2027-03-31
    knee = issue(store, "r2", code="27447")
    issue(store, "r3", status="cancelled")
    other = issue(store, "r4", member_id="T-OTHER-1")
    answers = handlers.overlapping([
        ("T-MA-0001", dt.date(2027, 3, 31), dt.date(2027, 4, 30)),  # overlaps on the last day
        ("T-NOBODY-9", dt.date(2027, 3, 1), dt.date(2027, 3, 2)),
        ("T-OTHER-1", dt.date(2027, 2, 1), dt.date(2027, 3, 1)),  # overlaps on the first day
        ("T-MA-0001", dt.date(2027, 4, 1), dt.date(2027, 4, 30)),  # after the validity
    ])
    assert [sorted(a.authorization_number for a in found) for found in answers] == [
        sorted([mri, knee]), [], [other], []]
    assert handlers.overlapping([]) == []


def test_overlapping_names_the_query_of_each_problem(handlers: AuthorizationHandlers) -> None:
    with pytest.raises(ValidationFailed) as caught:
        handlers.overlapping([("T-MA-0001", dt.date(2027, 3, 1), dt.date(2027, 3, 2)),
                              ("", dt.date(2027, 3, 1), dt.date(2027, 3, 2)),
                              ("T-MA-0001", dt.date(2027, 3, 2), dt.date(2027, 3, 1))])
    assert [v.field for v in caught.value.violations] == ["queries[1].member_id", "queries[2].overlaps_to"]
    with pytest.raises(ValidationFailed) as caught:
        handlers.overlapping([("T-MA-0001", dt.date(2027, 3, 1), dt.date(2027, 3, 2))] * 1001)
    assert [v.field for v in caught.value.violations] == ["queries"]
