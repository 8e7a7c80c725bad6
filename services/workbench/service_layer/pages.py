"""What each page shows, gathered from the services, and the access log entry of every page that
shows patient data. The workbench holds no domain rule: what a reviewer may do is review's to say
(refusals come back as service errors); the role checks here only decide which controls a page
offers, so a nurse is never shown a deny button the server would refuse anyway.

What a reviewer may see of intake and authorization. Those services know the workbench (its own
service identity, allowed to read every request and authorization), not the reviewer; so the
workbench reads them only for what review has just shown the reviewer with the reviewer's own
token: a task's request and its member's authorizations after review answered GetTask for that
task, a member's requests and authorizations after review answered ListMemberTasks for that member
(which any signed-in reviewer may, as review's access policy says). A token review refuses sees
nothing from intake or authorization either."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.common.clock import Clock
from services.common.errors import NotFound, ServiceError
from services.workbench.service_layer.ports import AccessLog, Platform, Session

QUEUE_LIMIT = 200  # ListMyTasks' most
QUEUE_PAGE = 50  # what the queue shows unless asked for more: two screens, the top of the queue

NURSE_LEVEL = {review_pb2.REVIEWER_ROLE_NURSE, review_pb2.REVIEWER_ROLE_ADJUSTER}
PHYSICIAN = review_pb2.REVIEWER_ROLE_PHYSICIAN
SUPERVISOR = review_pb2.REVIEWER_ROLE_SUPERVISOR
CASE_MANAGER = review_pb2.REVIEWER_ROLE_CASE_MANAGER


@dataclass(frozen=True)
class QueueFilters:
    line_of_business: int = 0  # 0: any
    urgency: int = 0
    category: str = ""
    show: str = "all"  # all | held | available
    limit: int = QUEUE_PAGE  # most available tasks asked of review (QUEUE_PAGE or QUEUE_LIMIT)

    def keeps(self, view: review_pb2.TaskView) -> bool:
        t = view.task
        return ((not self.line_of_business or t.line_of_business == self.line_of_business)
                and (not self.urgency or t.urgency == self.urgency)
                and (not self.category or t.category == self.category))


@dataclass(frozen=True)
class QueuePage:
    held: list[review_pb2.TaskView]
    available: list[review_pb2.TaskView]
    filters: QueueFilters
    categories: list[str]  # of the tasks before filtering, for the filter's choices
    total_held: int
    total_available: int


@dataclass(frozen=True)
class Criterion:
    """One condition of the criteria explanation, as a deny or partial approval would cite it."""

    reference: str  # "imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks"
    description: str
    status: int  # types_pb2.ConditionStatus


@dataclass(frozen=True)
class TaskPage:
    view: review_pb2.TaskView
    request: intake_pb2.RequestView | None
    line: intake_pb2.LineView | None
    authorizations: list[types_pb2.Authorization]
    criteria: list[Criterion]
    missing_facts: list[str]
    unmet_facts: list[str]  # the facts unmet conditions looked at: what more information could change
    held_by_me: bool
    decisions: frozenset[str]  # the decisions this reviewer's role may make
    peer_to_peer: bool
    extend: bool
    problems: list[str] = field(default_factory=list)  # parts of the page that could not be loaded


@dataclass(frozen=True)
class SupervisorPage:
    overview: review_pb2.GetQueueOverviewResponse
    reviewers: list[review_pb2.Reviewer]
    names: dict[str, str]


@dataclass(frozen=True)
class MemberPage:
    member_id: str
    requests: list[intake_pb2.RequestView]
    authorizations: list[types_pb2.Authorization]
    tasks: list[review_pb2.ReviewTask]
    notes: list[review_pb2.CaseNote]
    may_write_notes: bool


@dataclass(frozen=True)
class ClaimPage:
    """A workers' comp claim as its adjuster follows it: the claim as its newest request states it
    (``claim``: employer, date of injury, adjuster, attorney), the injured worker(s) (member id and
    name, newest first: a claim has one, but requests are the submitters' word), every request under
    the claim, the authorizations issued for them and their open tasks."""

    claim_number: str
    claim: types_pb2.WorkersCompClaim
    workers: list[tuple[str, str]]  # (member id, name as the request's member contact gives it)
    requests: list[intake_pb2.RequestView]
    authorizations: list[types_pb2.Authorization]
    tasks: list[review_pb2.ReviewTask]

    def authorization_of(self, request_id: str, line_number: int) -> types_pb2.Authorization | None:
        """The authorization issued for the request's line, as authorization knows it (units used and
        remaining), or None."""
        return next((a for a in self.authorizations if a.request_id == request_id and a.line_number == line_number),
                    None)


def decisions_for(role: int) -> frozenset[str]:
    """Which decision controls to offer (review enforces the same table: services/review/domain/workflow.py)."""
    if role in NURSE_LEVEL:
        return frozenset({"approve", "request_information", "refer_to_physician"})
    if role == PHYSICIAN:
        return frozenset({"approve", "request_information", "refer_to_physician", "approve_partial", "modify",
                          "deny"})
    return frozenset()


class Pages:
    def __init__(self, platform: Platform, access: AccessLog, *, clock: Clock) -> None:
        self._platform = platform
        self._access = access
        self._now = clock

    def _viewed(self, me: Session, page: str, *, request_ids: Sequence[str] = (), member_ids: Sequence[str] = (),
                task_ids: Sequence[str] = ()) -> None:
        self._access.viewed(reviewer_id=me.reviewer_id, page=page, at=self._now(), request_ids=request_ids,
                            member_ids=member_ids, task_ids=task_ids)

    async def queue(self, me: Session, filters: QueueFilters) -> QueuePage:
        mine = await self._platform.my_tasks(me.token, min(max(filters.limit, 1), QUEUE_LIMIT))
        categories = sorted({v.task.category for v in [*mine.held, *mine.available]})
        held = [v for v in mine.held if filters.keeps(v)] if filters.show != "available" else []
        available = [v for v in mine.available if filters.keeps(v)] if filters.show != "held" else []
        shown = [*held, *available]
        self._viewed(me, "queue", request_ids=[v.task.request_id for v in shown],
                     task_ids=[v.task.task_id for v in shown])
        return QueuePage(held, available, filters, categories, len(mine.held), len(mine.available))

    async def task(self, me: Session, task_id: str) -> TaskPage:
        view = await self._platform.get_task(me.token, task_id)
        problems: list[str] = []
        request: intake_pb2.RequestView | None = None
        authorizations: list[types_pb2.Authorization] = []
        try:
            request = await self._platform.request(view.task.request_id)
            authorizations = list(await self._platform.member_authorizations(request.member_id))
        except ServiceError as exc:  # the task is still worth showing; say what is missing
            problems.append(f"The request's details could not be loaded: {exc}")
        line = next((ln for ln in request.lines if ln.line.line_number == view.task.line_number), None) \
            if request is not None else None
        explanation = view.determination.explanation
        reference = f"{explanation.criteria_id}@{explanation.criteria_version}"
        criteria = [Criterion(f"{reference}: {c.condition_id}", c.description, c.status)
                    for c in explanation.conditions] if explanation.criteria_id else []
        missing = list(dict.fromkeys([*explanation.missing_facts, *view.task.requested_facts]))
        unmet = [name for c in explanation.conditions if c.status == types_pb2.CONDITION_STATUS_UNMET
                 for name in (o.partition("=")[0].strip() for o in c.observed) if name and name not in missing]
        self._viewed(me, "task", request_ids=[view.task.request_id], task_ids=[view.task.task_id],
                     member_ids=[request.member_id] if request is not None else [])
        held_by_me = view.task.status == "claimed" and view.task.assigned_to == me.reviewer_id
        return TaskPage(view=view, request=request, line=line, authorizations=authorizations, criteria=criteria,
                        missing_facts=missing, unmet_facts=list(dict.fromkeys(unmet)), held_by_me=held_by_me,
                        decisions=decisions_for(me.role),
                        peer_to_peer=me.role == PHYSICIAN,
                        extend=me.role in (review_pb2.REVIEWER_ROLE_NURSE, PHYSICIAN, SUPERVISOR), problems=problems)

    async def supervisor(self, me: Session) -> SupervisorPage:
        overview, reviewers = await asyncio.gather(self._platform.queue_overview(me.token, 200),
                                                   self._platform.reviewers(me.token))
        tasks = [*overview.at_risk, *overview.missed, *overview.held]
        self._viewed(me, "supervisor", request_ids=[t.request_id for t in tasks], task_ids=[t.task_id for t in tasks])
        return SupervisorPage(overview, sorted(reviewers, key=lambda r: r.name),
                              {r.reviewer_id: r.name for r in reviewers})

    async def member(self, me: Session, member_id: str) -> MemberPage:
        member_id = member_id.strip()
        # Review first, as the reviewer: only once it has answered are intake and authorization asked.
        tasks, notes = await asyncio.gather(self._platform.member_tasks(me.token, member_id),
                                            self._platform.case_notes(me.token, member_id))
        requests, authorizations = await asyncio.gather(self._platform.member_requests(member_id),
                                                        self._platform.member_authorizations(member_id))
        if not (requests or authorizations or tasks or notes):
            raise NotFound(f"nothing on file for member {member_id}")
        self._viewed(me, "member", member_ids=[member_id], request_ids=[r.request_id for r in requests],
                     task_ids=[t.task_id for t in tasks])
        return MemberPage(member_id, list(requests), list(authorizations), list(tasks), list(notes),
                          may_write_notes=me.role in (CASE_MANAGER, *NURSE_LEVEL))

    async def claim(self, me: Session, claim_number: str) -> ClaimPage:
        """The claim's page, for any reviewer review accepts (as a member's page is): review answers
        first with the reviewer's own token, then intake lists the claim's requests, then review the
        open tasks of their members (the reviewer's token again) and authorization their
        authorizations. Only the claim's own requests' tasks and authorizations are shown; NotFound
        when no request is under the claim."""
        claim_number = claim_number.strip()
        await self._platform.whoami(me.token)
        requests = list(await self._platform.claim_requests(claim_number))
        if not requests:
            raise NotFound(f"no request is under claim {claim_number}")
        members = list(dict.fromkeys(r.member_id for r in requests))
        tasks = await asyncio.gather(*(self._platform.member_tasks(me.token, m) for m in members))
        authorizations = await asyncio.gather(*(self._platform.member_authorizations(m) for m in members))
        ids = {r.request_id for r in requests}
        open_tasks = sorted((t for found in tasks for t in found if t.request_id in ids),
                            key=lambda t: (t.due_at.seconds, t.due_at.nanos))
        issued = [a for found in authorizations for a in found if a.request_id in ids]
        names: dict[str, str] = {}
        for r in reversed(requests):  # oldest first: the newest request's name wins
            names[r.member_id] = r.member_contact.name or names.get(r.member_id, "")
        stated = next((r.workers_comp for r in requests if r.HasField("workers_comp")), types_pb2.WorkersCompClaim())
        self._viewed(me, "claim", member_ids=members, request_ids=[r.request_id for r in requests],
                     task_ids=[t.task_id for t in open_tasks])
        return ClaimPage(claim_number, stated, [(m, names.get(m, "")) for m in members], requests, issued,
                         open_tasks)
