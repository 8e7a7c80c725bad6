"""The reviewers' queue: what a reviewer holds and could take, claiming the most urgent eligible
task under a lease, releasing it, and a supervisor's reassignment."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from services.common.audit.recording import record_views
from services.common.clock import Clock
from services.common.errors import FieldViolation, NotFound, ValidationFailed
from services.review.domain import workflow as wf
from services.review.domain.task import Task
from services.review.service_layer.auditing import save_task, tasks_viewed
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import identify, load_task, use_case
from services.review.service_layer.views import TaskView, task_view

# How many candidates a claim looks through: licences are checked here, not in the query, so a
# claim reads a short window first (nearly always enough) and a wide one only when none of that was
# the reviewer's to take.
CLAIM_FIRST_LOOK = 3
CLAIM_CANDIDATES = 200
LIST_CANDIDATES = 500


class Queue:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, clock: Clock, lease_s: float = 900.0) -> None:
        self._uow = uow_factory
        self._now = clock
        self._lease = dt.timedelta(seconds=lease_s)

    @use_case
    def my_tasks(self, principal: str, limit: int, *, summary: bool = False) -> tuple[list[TaskView], list[TaskView]]:
        """(held, available): what the reviewer holds, and up to ``limit`` (0: 20) tasks they could
        claim, most urgent first; ``summary`` views leave out history and determination."""
        if not 0 <= limit <= 200:
            raise ValidationFailed([FieldViolation("limit", "between 1 and 200 (0 means 20)")])
        now = self._now()
        with self._uow().read_only() as uow:
            me = identify(uow, principal)
            holding = uow.tasks.held_by(me.reviewer_id, now)
            held = [task_view(uow, t, me, summary=summary) for t in holding]
            available = self._candidates(uow, me, now, LIST_CANDIDATES)[:limit or 20]
            views = [task_view(uow, t, me, summary=summary) for t in available]
        record_views(self._uow, tasks_viewed([*holding, *available], me.reviewer_id, "my_tasks"))
        return held, views

    @use_case
    def get_task(self, principal: str, task_id: str) -> TaskView:
        with self._uow().read_only() as uow:
            me = identify(uow, principal)
            task = load_task(uow, task_id)
            view = task_view(uow, task, me)
        record_views(self._uow, tasks_viewed([task], me.reviewer_id, "task"))
        return view

    @use_case
    def claim_next(self, principal: str) -> TaskView:
        """Claim the most urgent task the reviewer is eligible for. Racing reviewers never share a
        task: the save is a compare-and-set, and the loser moves on to the next candidate."""
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal, may=wf.Action.CLAIM)
            wf.check_capacity(me, uow.tasks.count_held(me.reviewer_id, now))
            for window in (CLAIM_FIRST_LOOK, CLAIM_CANDIDATES):
                found = uow.tasks.claimable(wf.roles_served(me), me.lines_of_business, me.specialties, now, window)
                for task in (t for t in found if wf.eligibility(me, t.facts())[0]):
                    task.claim(me, now, self._lease)
                    try:
                        save_task(uow, task)
                    except wf.StaleTask:
                        continue  # another reviewer got it first
                    view = task_view(uow, task, me)
                    uow.commit()  # the view is read in the same transaction: no second one
                    return view
                if len(found) < window:
                    break  # that was every candidate there is
            raise NotFound("no open task you are eligible for")

    @use_case
    def release(self, principal: str, task_id: str, note: str) -> TaskView:
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal)
            task = load_task(uow, task_id)
            task.release(me, now, note)
            save_task(uow, task)
            view = task_view(uow, task, me)
            uow.commit()  # the view is read in the same transaction: no second one
            return view

    @use_case
    def reassign(self, principal: str, task_id: str, reviewer_id: str, note: str) -> TaskView:
        """A supervisor hands a task to ``reviewer_id``; the view is the new holder's."""
        now = self._now()
        with self._uow() as uow:
            me = identify(uow, principal, may=wf.Action.REASSIGN)
            task = load_task(uow, task_id)
            target = uow.reviewers.get(reviewer_id)
            task.reassign(me, reviewer_id, target, now, self._lease, note)
            save_task(uow, task)
            view = task_view(uow, task, target or me)
            uow.commit()  # the view is read in the same transaction: no second one
            return view

    @staticmethod
    def _candidates(uow: UnitOfWork, me: wf.Reviewer, now: dt.datetime, limit: int) -> list[Task]:
        found = uow.tasks.claimable(wf.roles_served(me), me.lines_of_business, me.specialties, now, limit)
        return [t for t in found if wf.eligibility(me, t.facts())[0]]
