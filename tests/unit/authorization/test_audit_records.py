"""What authorization records in its audit log (on fakes): each record made or changed, with the
determination event it came from; each look-up of a member's records."""

from __future__ import annotations

from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common.audit import actor as actors
from services.common.audit.chain import member_ref
from tests.fakes.authorization import AuthorizationStore
from tests.fakes.common import FAKE_AUDIT_KEY
from tests.unit.authorization.test_handlers import CERTIFIED, DENIED, decided, handlers, incoming, store

__all__ = ["handlers", "store"]  # the fixtures


def test_records_made_and_changed_name_the_event_they_came_from(store: AuthorizationStore,
                                                                handlers: AuthorizationHandlers) -> None:
    first = incoming(decided("r1", (1, CERTIFIED, 2), (2, DENIED, 0)))
    handlers.handle_batch([first])
    again = incoming(decided("r1", (2, CERTIFIED, 1), determination_id="d2"))
    handlers.handle_batch([again])
    assert [(r.action, r.request_id, r.refs["line"], r.refs["status"], r.event_id, r.actor) for r in store.audit] == [
        ("authorization.recorded", "r1", 1, "approved", first.event_id, "service:authorization"),
        ("authorization.recorded", "r1", 2, "denied", first.event_id, "service:authorization"),
        ("authorization.changed", "r1", 2, "approved", again.event_id, "service:authorization")]
    numbers = {a.line_number: a.authorization_number for a in store.authorizations.values()}
    assert store.audit[0].refs["authorization_number"] == numbers[1]
    assert store.audit[0].refs["member_ref"] == member_ref(FAKE_AUDIT_KEY, "T-MA-0001")


def test_every_look_up_is_a_view_in_the_log(store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided("r1", (1, CERTIFIED, 2)))])
    number = next(iter(store.authorizations.values())).authorization_number
    with actors.acting_as(actors.caller("claims")):
        handlers.get(number)
        handlers.for_member("T-MA-0001", "", None, None, False, 10)
        handlers.for_member("T-NOBODY-2", "", None, None, False, 10)
    views = [(r.action, r.request_id, r.actor, r.refs.get("authorization_number")) for r in store.audit[1:]]
    assert views == [("authorization.viewed", "r1", "caller:claims", number),
                     ("authorization.viewed", "r1", "caller:claims", number),
                     ("authorization.listed", "", "caller:claims", None)]
    assert "T-MA-0001" not in repr(store.audit)
    assert "T-NOBODY-2" not in repr(store.audit)


def test_a_batch_of_overlap_checks_records_each_view(store: AuthorizationStore,
                                                                handlers: AuthorizationHandlers) -> None:
    handlers.handle_batch([incoming(decided("r1", (1, CERTIFIED, 2)))])
    number = next(iter(store.authorizations.values())).authorization_number
    before = len(store.audit)
    [valid_from] = {a.valid_from for a in store.authorizations.values()}
    with actors.acting_as(actors.service("review")):
        handlers.overlapping([("T-MA-0001", valid_from, valid_from), ("T-NOBODY-2", valid_from, valid_from)])
    views = [(r.action, r.request_id, r.actor, r.refs.get("authorization_number"), r.refs.get("count"))
             for r in store.audit[before:]]
    assert views == [("authorization.viewed", "r1", "service:review", number, None),
                     ("authorization.listed", "", "service:review", None, 0)]
    assert store.audit[-1].refs["member_ref"] == member_ref(FAKE_AUDIT_KEY, "T-NOBODY-2")
