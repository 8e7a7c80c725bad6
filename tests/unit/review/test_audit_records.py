"""What review records in its audit log (on fakes): software's decisions, every task action with the
reviewer who took it, the lines a person decides, what the monitor does on its own, and every view
of a task or a member's notes; never a note's text or a member id."""

from __future__ import annotations

import uuid

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord, member_ref
from services.common.errors import PermissionDenied
from tests.factories import lumbar_mri, submitted_event
from tests.fakes.common import FAKE_AUDIT_KEY
from tests.unit.review.test_workflow_use_cases import APPROVE, DENY, LEASE, Review, clocks, review

__all__ = ["clocks", "review"]  # the fixtures


def since(review: Review, start: int) -> list[AuditRecord]:
    return review.store.audit[start:]


def what(records: list[AuditRecord]) -> list[tuple[str, str]]:
    return [(r.action, r.actor) for r in records]


def test_the_directory_loaded_at_start_is_recorded(review: Review) -> None:
    seeded = [r for r in review.store.audit if r.action == "reviewer.put"]
    assert {r.refs["reviewer_id"] for r in seeded} == {"rn-1", "rn-2", "md-1", "sup-1", "rn-off", "adj-1"}
    assert {r.actor for r in seeded} == {"service:review"}


def test_a_request_taken_up_is_recorded_line_by_line_with_its_events(review: Review) -> None:
    start = len(review.store.audit)
    request_id = str(uuid.uuid4())
    consumed = submitted_event(lumbar_mri(meets=False, lob=types_pb2.LINE_OF_BUSINESS_COMMERCIAL, state="TX"),
                               request_id, review.clock())
    review.handlers.handle_batch([consumed])
    records = since(review, start)
    assert what(records) == [("request.received", "service:review"), ("line.decided", "service:review"),
                             ("task.opened", "service:review")]
    announced = [e for e in review.store.outbox if isinstance(e.message, events_pb2.DeterminationMade)][-1]
    received, line, opened = records
    assert {r.event_id for r in records} == {consumed.event_id}
    assert line.refs["emitted"] == announced.event_id
    assert (line.refs["action"], line.refs["decider"], line.refs["line"]) == ("pended", "software", 1)
    assert received.refs["count"] == 1
    assert opened.refs["task_id"] == review.task_of(request_id).task_id
    assert received.refs["member_ref"] == member_ref(FAKE_AUDIT_KEY, "T-MA-0001")


def test_each_task_action_is_recorded_with_the_reviewer_who_took_it(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    start = len(review.store.audit)
    review.workflow.queue.claim_next("rn-1")
    review.workflow.queue.release("rn-1", task_id, "back to the queue")
    review.workflow.queue.claim_next("rn-2")
    review.workflow.decisions.decide("rn-2", task_id, APPROVE)
    records = since(review, start)
    assert what(records) == [("task.claimed", "reviewer:rn-1"), ("task.released", "reviewer:rn-1"),
                             ("task.claimed", "reviewer:rn-2"), ("task.approve", "reviewer:rn-2"),
                             ("line.decided", "reviewer:rn-2")]
    announced = [e for e in review.store.outbox if isinstance(e.message, events_pb2.DeterminationMade)][-1]
    decided = records[-1]
    assert decided.event_id == announced.event_id
    assert (decided.refs["action"], decided.refs["decider"]) == ("certified_in_total", "nurse")
    assert "back to the queue" not in repr(review.store.audit)  # a note's text never


def test_a_refused_action_records_nothing(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    review.workflow.queue.claim_next("rn-1")
    start = len(review.store.audit)
    with pytest.raises(PermissionDenied):
        review.workflow.decisions.decide("rn-1", task_id, DENY)  # a nurse never denies
    assert since(review, start) == []


def test_what_the_monitor_does_is_the_services_own(review: Review) -> None:
    review.submit()
    review.workflow.queue.claim_next("rn-1")
    start = len(review.store.audit)
    review.clock.advance(LEASE * 2)
    review.workflow.monitor.run()
    assert ("task.lease_expired", "service:review") in what(since(review, start))


def test_views_name_the_reviewer_the_page_and_what_was_shown(review: Review) -> None:
    task_id = review.task_of(review.submit()).task_id
    start = len(review.store.audit)
    review.workflow.queue.get_task("rn-2", task_id)
    review.workflow.queue.my_tasks("rn-1", 10)
    with actors.acting_as(actors.ANONYMOUS):
        review.handlers.queue(50, "")
    records = since(review, start)
    assert [(r.action, r.actor, r.refs["page"], r.refs["task_id"]) for r in records] == [
        ("task.viewed", "reviewer:rn-2", "task", task_id), ("task.viewed", "reviewer:rn-1", "my_tasks", task_id),
        ("task.viewed", "anonymous", "queue", task_id)]


def test_case_notes_are_recorded_without_their_text_or_member(review: Review) -> None:
    start = len(review.store.audit)
    note = review.workflow.case_notes.add("rn-1", "T-MA-0001", "Ms Lopez called about her back pain", "")
    review.workflow.case_notes.of_member("rn-2", "T-MA-0001")
    added, viewed = since(review, start)
    assert (added.action, added.actor, added.refs["note_id"]) == ("case_note.added", "reviewer:rn-1", note.note_id)
    assert (viewed.action, viewed.actor, viewed.refs["count"]) == ("case_notes.viewed", "reviewer:rn-2", 1)
    assert added.refs["member_ref"] == viewed.refs["member_ref"] == member_ref(FAKE_AUDIT_KEY, "T-MA-0001")
    logged = repr(review.store.audit)
    assert "Lopez" not in logged
    assert "back pain" not in logged
    assert "T-MA-0001" not in logged
