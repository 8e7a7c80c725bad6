"""The supervisor's overview, a member's tasks and case notes, through review's service layer on
the in-memory fakes: who may ask, what comes back, and that a note is never changed, only amended."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from services.common.errors import PermissionDenied, ValidationFailed
from services.review.domain.notes import MAX_TEXT
from services.review.domain.workflow import Role, TaskStatus
from tests.unit.review.test_workflow_use_cases import T0, Review, clocks, review, reviewer

__all__ = ["clocks", "review"]  # fixtures this module uses


@pytest.fixture
def with_case_manager(review: Review) -> Review:
    review.workflow.directory.seed([dataclasses.replace(reviewer("cm-1"), role=Role.CASE_MANAGER,
                                                        specialties=frozenset(), capacity=0, credential="RN, CCM")])
    return review


def test_the_overview_counts_the_queue_and_lists_at_risk_missed_and_held(review: Review) -> None:
    for _ in range(3):
        review.submit()
    held = review.workflow.queue.claim_next("rn-1").task
    assert held.status is TaskStatus.CLAIMED
    review.clock.advance(dt.timedelta(days=20))  # past every standard deadline
    overview = review.workflow.oversight.overview("sup-1", 0)
    assert sum(d.count for d in overview.depth) == 3
    assert sum(d.missed for d in overview.depth) >= 2
    assert len(overview.missed) == sum(d.missed for d in overview.depth)
    assert overview.at_risk == [] or all(t.status is not TaskStatus.DECIDED for t in overview.at_risk)
    assert overview.held == []  # the lease ran out in those 20 days
    review.clock.set(T0)
    again = review.workflow.oversight.overview("sup-1", 1)
    assert [t.task_id for t in again.held] == [held.task_id]


@pytest.mark.parametrize("who", ["rn-1", "md-1", "adj-1"])
def test_only_a_supervisor_sees_the_overview(review: Review, who: str) -> None:
    with pytest.raises(PermissionDenied, match="supervisor"):
        review.workflow.oversight.overview(who, 0)


def test_the_overview_limit_is_checked(review: Review) -> None:
    for limit in (-1, 501):
        with pytest.raises(ValidationFailed):
            review.workflow.oversight.overview("sup-1", limit)


def test_a_members_undecided_tasks_most_urgent_first(review: Review) -> None:
    first, second = review.submit(), review.submit()
    tasks = review.workflow.oversight.member_tasks("rn-2", "T-MA-0001")
    assert {t.request_id for t in tasks} == {first, second}
    assert review.workflow.oversight.member_tasks("rn-2", "nobody") == []
    with pytest.raises(PermissionDenied):
        review.workflow.oversight.member_tasks("stranger", "T-MA-0001")


def test_a_case_manager_writes_and_amends_notes_that_are_never_changed(with_case_manager: Review) -> None:
    notes = with_case_manager.workflow.case_notes
    first = notes.add("cm-1", " T-MA-0001 ", "  Spoke with the member: PT starts Monday.  ", "")
    assert (first.member_id, first.author_id, first.author_role, first.written_at, first.text, first.amends) == (
        "T-MA-0001", "cm-1", Role.CASE_MANAGER, T0, "Spoke with the member: PT starts Monday.", None)
    with_case_manager.clock.advance(dt.timedelta(hours=1))
    amendment = notes.add("rn-1", "T-MA-0001", "Correction: PT starts Tuesday.", first.note_id)
    assert amendment.amends == first.note_id
    assert amendment.author_role is Role.NURSE
    assert notes.of_member("md-1", "T-MA-0001") == [first, amendment]  # any reviewer reads them


@pytest.mark.parametrize(("who", "member", "text", "amends", "refusal"), [
    ("md-1", "T-MA-0001", "a note", "", PermissionDenied),
    ("sup-1", "T-MA-0001", "a note", "", PermissionDenied),
    ("cm-1", "T-MA-0001", "   ", "", ValidationFailed),
    ("cm-1", "T-MA-0001", "x" * (MAX_TEXT + 1), "", ValidationFailed),
    ("cm-1", " ", "a note", "", ValidationFailed),
    ("cm-1", "T-MA-\u0661", "a note", "", ValidationFailed),  # an Arabic-Indic digit
    ("cm-1", "T-MA-0001\u202e", "a note", "", ValidationFailed),  # a right-to-left override
    ("cm-1", "M" * 41, "a note", "", ValidationFailed),
    ("cm-1", "T-MA-0001", "a note", "no-such-note", ValidationFailed),
    ("stranger", "T-MA-0001", "a note", "", PermissionDenied),
])
def test_refused_notes_store_nothing(with_case_manager: Review, who: str, member: str, text: str, amends: str,
                                     refusal: type[Exception]) -> None:
    with pytest.raises(refusal):
        with_case_manager.workflow.case_notes.add(who, member, text, amends)
    assert with_case_manager.store.notes == {}


def test_an_amendment_names_a_note_of_the_same_member(with_case_manager: Review) -> None:
    other = with_case_manager.workflow.case_notes.add("cm-1", "T-OTHER", "about someone else", "")
    with pytest.raises(ValidationFailed, match="amends"):
        with_case_manager.workflow.case_notes.add("cm-1", "T-MA-0001", "amending the wrong member", other.note_id)


def test_a_case_manager_takes_no_task(with_case_manager: Review) -> None:
    with_case_manager.submit()
    held, available = with_case_manager.workflow.queue.my_tasks("cm-1", 0)
    assert held == []
    assert available == []
    with pytest.raises(PermissionDenied):
        with_case_manager.workflow.queue.claim_next("cm-1")


def test_a_summary_queue_leaves_out_history_and_determination(review: Review) -> None:
    review.submit()
    review.workflow.queue.claim_next("rn-1")  # a history to leave out
    [full], _ = review.workflow.queue.my_tasks("rn-1", 0)
    [summary], _ = review.workflow.queue.my_tasks("rn-1", 0, summary=True)
    assert full.history
    assert full.determination is not None
    assert (summary.task, summary.why_eligible) == (full.task, full.why_eligible)
    assert summary.history == ()
    assert summary.determination is None
