"""Recording the notifications determination events owe, on fakes: who is notified (the request's
submitter, through its filter), for what (a decision, not a pend), once per event, after intake,
and held until an approval's authorization numbers are in intake's records."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.common.errors import TransientError
from services.intake.interop.subscriptions.domain.model import NotificationState
from services.intake.interop.subscriptions.service_layer.handlers import NotificationRecorder
from tests.unit.interop.subscription_fixtures import (
    A1,
    A3,
    A4,
    NPI_A,
    ORG_A,
    ORG_B,
    World,
    asked,
    authorizations,
    determination,
    determination_id_of,
    pas_bundle,
)


def states(world: World) -> list[tuple[str, NotificationState, int | None]]:
    return [(n.request_id, n.state, n.event_number) for n in world.store.notifications.values()]


def test_a_decision_notifies_each_subscription_of_the_submitter_only() -> None:
    world = World()
    mine = world.service.create(ORG_A, asked())
    mine_too = world.service.create(ORG_A, asked("https://other.example/hook"))
    theirs = world.service.create(ORG_B, asked())
    request_id = world.request(ORG_A)
    world.consume(determination(request_id, A3))
    owed = {n.subscription_id for n in world.store.notifications.values()}
    assert owed == {mine.subscription_id, mine_too.subscription_id}
    assert theirs.subscription_id not in owed


def test_the_org_identifier_filter_narrows_to_one_requester() -> None:
    world = World()
    filtered = world.service.create(ORG_A, asked(org_identifier=NPI_A))
    other = world.service.create(ORG_A, asked(org_identifier="1999999999"))
    world.consume(determination(world.request(ORG_A, npi=NPI_A), A3))
    assert {n.subscription_id for n in world.store.notifications.values()} == {filtered.subscription_id}
    assert other.subscription_id not in {n.subscription_id for n in world.store.notifications.values()}


def test_a_filter_cannot_reach_another_organizations_requests() -> None:
    world = World()
    world.service.create(ORG_B, asked(org_identifier=NPI_A))  # B names A's requester
    world.consume(determination(world.request(ORG_A, npi=NPI_A), A1, A3))
    assert world.store.notifications == {}


@pytest.mark.parametrize("actions", [(A4,), (A4, A4)])
def test_a_determination_that_only_pends_notifies_nobody(actions: tuple[int, ...]) -> None:
    world = World()
    world.service.create(ORG_A, asked())
    world.consume(determination(world.request(ORG_A, lines=len(actions)), *actions))  # type: ignore[arg-type]
    assert world.store.notifications == {}


def test_requests_that_nobody_submitted_notify_nobody() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    world.consume(determination(world.request(""), A3))
    assert world.store.notifications == {}


def test_a_request_without_a_pas_bundle_is_held_then_discarded() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    request_id = world.request(ORG_A, pas=False)  # submitted over gRPC or X12 by the same organization
    world.consume(determination(request_id, A3))
    assert states(world) == [(request_id, NotificationState.HELD, None)]
    world.clock.advance(121)
    assert world.deliverer.release_held() == 0
    assert world.store.notifications == {}
    assert world.service.search(ORG_A)[0].events_since_start == 0


def test_a_decision_before_the_door_recorded_the_bundle_is_sent_once_it_has() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    world.deliver()
    request_id = world.request(ORG_A, pas=False)
    world.consume(determination(request_id, A3))  # decided between intake's answer and the door's record
    facts = world.store.requests[request_id]
    world.store.requests[request_id] = replace(facts, pas=True)
    world.store.bundles[request_id] = pas_bundle(request_id)
    world.clock.advance(121)
    assert world.deliverer.release_held() == 1
    world.deliver()
    [notification] = world.endpoint.of_kind("event-notification")
    assert notification.event_number == 1


def test_event_numbers_count_per_subscription() -> None:
    world = World()
    first = world.service.create(ORG_A, asked())
    requests = [world.request(ORG_A) for _ in range(3)]
    world.consume(*(determination(r, A3) for r in requests[:2]))
    second = world.service.create(ORG_A, asked("https://later.example/hook"))
    world.consume(determination(requests[2], A3))
    numbers = {(n.subscription_id, n.request_id): n.event_number for n in world.store.notifications.values()}
    assert [numbers[(first.subscription_id, r)] for r in requests] == [1, 2, 3]
    assert numbers[(second.subscription_id, requests[2])] == 1
    assert world.service.get(ORG_A, first.subscription_id).events_since_start == 3


def test_an_event_id_is_recorded_once_whatever_the_redeliveries() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    event = determination(world.request(ORG_A), A3)
    world.consume(event, event)  # the loop removes copies in a batch; a handler must cope anyway
    world.consume(event)
    assert len(world.store.notifications) == 1
    assert world.service.search(ORG_A)[0].events_since_start == 1


def test_an_approval_is_held_until_its_authorizations_are_in_intakes_records() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    request_id = world.request(ORG_A, lines=2)
    decided = determination(request_id, A1, A3)
    world.consume(decided)
    assert states(world) == [(request_id, NotificationState.HELD, None)]
    # An AuthorizationsIssued of another determination (an earlier one) releases nothing.
    world.authorize(request_id, "another-determination", 1)
    world.consume(authorizations(request_id, "another-determination"))
    assert states(world) == [(request_id, NotificationState.HELD, None)]
    world.authorize(request_id, determination_id_of(decided), 1)
    world.consume(authorizations(request_id, determination_id_of(decided)))
    assert states(world) == [(request_id, NotificationState.PENDING, 1)]


def test_an_approval_whose_authorizations_came_first_is_pending_at_once() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    request_id = world.request(ORG_A)
    decided = determination(request_id, A1)
    world.authorize(request_id, determination_id_of(decided), 1)
    world.consume(authorizations(request_id, determination_id_of(decided)), decided)
    assert states(world) == [(request_id, NotificationState.PENDING, 1)]


def test_a_hold_longer_than_the_timeout_is_released_as_the_result_stands() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    request_id = world.request(ORG_A)
    world.consume(determination(request_id, A1))
    world.clock.advance(119)
    assert world.deliverer.release_held() == 0
    world.clock.advance(2)
    assert world.deliverer.release_held() == 1
    assert states(world) == [(request_id, NotificationState.PENDING, 1)]


def test_nothing_is_recorded_before_intake_applied_the_event() -> None:
    world = World(wait_s=0.2)
    world.service.create(ORG_A, asked())
    event = determination(world.request(ORG_A), A3)
    with pytest.raises(TransientError, match="intake has not applied"):
        world.consume(event, applied=False)
    assert world.pauses == [0.05, 0.05, 0.05]  # it looked four times, pausing between
    assert world.store.notifications == {}
    assert not world.store.processed  # the loop retries the batch
    world.consume(event)
    assert len(world.store.notifications) == 1


def test_events_that_owe_nothing_wait_for_nobody() -> None:
    world = World()
    world.consume(determination(world.request(ORG_A), A3), applied=False)  # nobody subscribes
    assert world.pauses == []
    assert len(world.store.processed) == 1


def test_unknown_requests_and_foreign_lines_are_skipped_not_waited_for() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    unknown = determination("00000000-0000-4000-8000-000000000000", A3)
    foreign_line = determination(world.request(ORG_A, lines=1), A3, lines=[7])
    world.consume(unknown, foreign_line, applied=False)  # intake dead-letters both: never applied
    assert world.pauses == []
    assert world.store.notifications == {}


def test_an_approval_and_its_authorizations_in_one_batch_wait_for_intake_to_apply_both() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    request_id = world.request(ORG_A)
    decided = determination(request_id, A1)
    issued = authorizations(request_id, determination_id_of(decided))
    world.store.applied.add(decided.event_id)  # intake has applied the determination, not yet the rest

    def intake_catches_up(_seconds: float) -> None:
        world.authorize(request_id, determination_id_of(decided), 1)
        world.store.applied.add(issued.event_id)

    recorder = NotificationRecorder(world.store.unit_of_work, clock=world.clock, pause=intake_catches_up,
                                    wait_s=1.0, poll_s=0.05)
    recorder.handle_batch([decided, issued])
    assert states(world) == [(request_id, NotificationState.PENDING, 1)]  # with its number, not held


def test_authorizations_consumed_before_their_determination_release_it_at_the_next_pass() -> None:
    world = World()
    world.service.create(ORG_A, asked())
    request_id = world.request(ORG_A)
    decided = determination(request_id, A1)
    issued = authorizations(request_id, determination_id_of(decided))
    world.consume(issued, applied=False)  # nothing held yet: nothing to release, nothing to wait for
    world.consume(decided)  # intake has applied the determination, not yet the authorizations
    assert states(world) == [(request_id, NotificationState.HELD, None)]
    assert world.deliverer.release_held() == 0
    world.authorize(request_id, determination_id_of(decided), 1)  # intake applies them
    assert world.deliverer.release_held() == 1  # at once, not after the hold timeout
    assert states(world) == [(request_id, NotificationState.PENDING, 1)]
