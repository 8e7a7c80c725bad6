"""The workbench's ports in memory (services/workbench/service_layer/ports.py): a platform that
knows a few reviewers and tasks and records what it was asked, and an access log that keeps its
entries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.common.errors import NotFound, PermissionDenied, Unauthenticated
from services.workbench.service_layer.ports import AccessLog, Platform

NURSE = review_pb2.Reviewer(reviewer_id="rn-1", name="Nurse One", role=review_pb2.REVIEWER_ROLE_NURSE,
                            credential="RN", active=True)
PHYSICIAN = review_pb2.Reviewer(reviewer_id="md-1", name="Dr. One", role=review_pb2.REVIEWER_ROLE_PHYSICIAN,
                                credential="MD", active=True)
SUPERVISOR = review_pb2.Reviewer(reviewer_id="sup-1", name="Sup One", role=review_pb2.REVIEWER_ROLE_SUPERVISOR,
                                 credential="RN", active=True)
ADJUSTER = review_pb2.Reviewer(reviewer_id="adj-1", name="Adjuster One", role=review_pb2.REVIEWER_ROLE_ADJUSTER,
                               credential="WCCA", active=True)
TOKENS = {"token-nurse-0000001": NURSE, "token-physician-001": PHYSICIAN, "token-supervisor-01": SUPERVISOR,
          "token-adjuster-0001": ADJUSTER}
REQUEST_ID = "11111111-2222-4333-8444-555555555555"
TASK_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#: Who calls intake and authorization: the workbench itself (its service identity), never a reviewer.
WORKBENCH = "svc-workbench"


def a_task(task_id: str = TASK_ID, *, assigned_to: str = "rn-1", status: str = "claimed") -> review_pb2.TaskView:
    view = review_pb2.TaskView(why_eligible=["role: nurse (task needs a nurse)"])
    t = view.task
    t.task_id, t.request_id, t.line_number, t.procedure_code = task_id, REQUEST_ID, 1, "72148"
    t.status, t.assigned_to, t.category = status, assigned_to, "advanced_imaging"
    t.line_of_business, t.urgency = types_pb2.LINE_OF_BUSINESS_COMMERCIAL, types_pb2.URGENCY_STANDARD
    t.due_at.FromDatetime(dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC))
    t.clock.regime, t.clock.rule = "erisa-2560.503-1", "15 calendar days"
    ex = view.determination.explanation
    ex.criteria_id, ex.criteria_version = "imaging-mri-lumbar-spine", "2026.1"
    ex.conditions.add(condition_id="symptoms_six_weeks", description="symptoms for at least 6 weeks",
                      status=types_pb2.CONDITION_STATUS_UNMET, observed=["symptom_duration_weeks=2 weeks"])
    ex.missing_facts.append("conservative_therapy_weeks")
    return view


@dataclass
class FakePlatform(Platform):
    tasks: dict[str, review_pb2.TaskView] = field(default_factory=lambda: {TASK_ID: a_task()})
    decisions: list[tuple[str, review_pb2.DecideTaskRequest]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, reviewer id or WORKBENCH)
    claims: list[intake_pb2.RequestView] = field(default_factory=list)  # workers' comp requests, newest first
    authorizations: list[types_pb2.Authorization] = field(default_factory=list)

    def _who(self, token: str, method: str) -> review_pb2.Reviewer:
        me = TOKENS.get(token)
        if me is None:
            raise Unauthenticated("unknown or revoked token")
        self.calls.append((method, me.reviewer_id))
        return me

    async def whoami(self, token: str) -> review_pb2.Reviewer:
        return self._who(token, "whoami")

    async def my_tasks(self, token: str, limit: int) -> review_pb2.ListMyTasksResponse:
        me = self._who(token, "my_tasks")
        held = [v for v in self.tasks.values() if v.task.assigned_to == me.reviewer_id]
        return review_pb2.ListMyTasksResponse(held=held)

    async def claim_next(self, token: str) -> review_pb2.TaskView:
        self._who(token, "claim_next")
        raise NotFound("no open task you are eligible for")

    async def get_task(self, token: str, task_id: str) -> review_pb2.TaskView:
        self._who(token, "get_task")
        if task_id not in self.tasks:
            raise NotFound(f"no task {task_id!r}")
        return self.tasks[task_id]

    async def decide(self, token: str, request: review_pb2.DecideTaskRequest) -> review_pb2.DecideTaskResponse:
        me = self._who(token, "decide")
        if request.WhichOneof("decision") == "deny" and me.role != review_pb2.REVIEWER_ROLE_PHYSICIAN:
            raise PermissionDenied("a nurse may not deny: only a physician may deny, reduce or modify a request")
        self.decisions.append((me.reviewer_id, request))
        return review_pb2.DecideTaskResponse(task=self.tasks[request.task_id])

    async def release(self, token: str, task_id: str, note: str) -> review_pb2.TaskView:
        self._who(token, "release")
        return self.tasks[task_id]

    async def reassign(self, token: str, task_id: str, reviewer_id: str, note: str) -> review_pb2.TaskView:
        self._who(token, "reassign")
        return self.tasks[task_id]

    async def peer_to_peer(self, token: str, request: review_pb2.RecordPeerToPeerRequest) -> review_pb2.TaskView:
        self._who(token, "peer_to_peer")
        return self.tasks[request.task_id]

    async def extend_deadline(self, token: str, request: review_pb2.ExtendDeadlineRequest) -> review_pb2.TaskView:
        self._who(token, "extend_deadline")
        return self.tasks[request.task_id]

    async def queue_overview(self, token: str, limit: int) -> review_pb2.GetQueueOverviewResponse:
        self._who(token, "queue_overview")
        return review_pb2.GetQueueOverviewResponse(held=[v.task for v in self.tasks.values()])

    async def reviewers(self, token: str) -> Sequence[review_pb2.Reviewer]:
        self._who(token, "reviewers")
        return list(TOKENS.values())

    async def member_tasks(self, token: str, member_id: str) -> Sequence[review_pb2.ReviewTask]:
        self._who(token, "member_tasks")
        return [v.task for v in self.tasks.values()]

    async def case_notes(self, token: str, member_id: str) -> Sequence[review_pb2.CaseNote]:
        self._who(token, "case_notes")
        return []

    async def add_case_note(self, token: str, member_id: str, text: str, amends: str) -> review_pb2.CaseNote:
        me = self._who(token, "add_case_note")
        return review_pb2.CaseNote(note_id="n1", member_id=member_id, author_id=me.reviewer_id, text=text)

    async def request(self, request_id: str) -> intake_pb2.RequestView:
        self.calls.append(("request", WORKBENCH))
        known = next((r for r in self.claims if r.request_id == request_id), None)
        if known is not None:
            return known
        view = intake_pb2.RequestView(request_id=request_id, member_id="M-1",
                                      line_of_business=types_pb2.LINE_OF_BUSINESS_COMMERCIAL)
        view.lines.add().line.CopyFrom(types_pb2.ServiceLine(line_number=1, procedure_code="72148", units=1))
        return view

    async def member_requests(self, member_id: str) -> Sequence[intake_pb2.RequestView]:
        self.calls.append(("member_requests", WORKBENCH))
        return [await self.request(REQUEST_ID)]

    async def claim_requests(self, claim_number: str) -> Sequence[intake_pb2.RequestView]:
        self.calls.append(("claim_requests", WORKBENCH))
        return [r for r in self.claims if r.workers_comp.claim_number == claim_number]

    async def member_authorizations(self, member_id: str) -> Sequence[types_pb2.Authorization]:
        self.calls.append(("member_authorizations", WORKBENCH))
        return [a for a in self.authorizations if a.member_id == member_id]


@dataclass
class Entry:
    reviewer_id: str
    page: str
    at: dt.datetime
    request_ids: tuple[str, ...]
    member_ids: tuple[str, ...]
    task_ids: tuple[str, ...]


@dataclass
class FakeAccessLog(AccessLog):
    entries: list[Entry] = field(default_factory=list)

    def viewed(self, *, reviewer_id: str, page: str, at: dt.datetime, request_ids: Sequence[str] = (),
               member_ids: Sequence[str] = (), task_ids: Sequence[str] = ()) -> None:
        self.entries.append(Entry(reviewer_id, page, at, tuple(request_ids), tuple(member_ids), tuple(task_ids)))
