"""ReviewService over gRPC."""

from __future__ import annotations

import datetime as dt

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from ur.common.v1 import types_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common.access import current_caller
from services.common.clock import ensure_utc
from services.common.errors import FailedPrecondition, FieldViolation, ValidationFailed
from services.common.grpc_errors import translate_errors
from services.common.proto_enums import to_name, to_number
from services.review.domain import workflow as wf
from services.review.domain.appeals import Appeal
from services.review.domain.notes import CaseNote
from services.review.domain.notices import Notice
from services.review.domain.task import DecisionInput, Task
from services.review.service_layer.handlers import ReviewHandlers
from services.review.service_layer.lines import to_proto_date
from services.review.service_layer.oversight import QueueOverview
from services.review.service_layer.ports import NoticeRenderer
from services.review.service_layer.views import TaskView
from services.review.service_layer.workflow import ReviewWorkflow

LOB = types_pb2.LineOfBusiness
URGENCY = types_pb2.Urgency
OUTCOME = types_pb2.LineOutcome


def _ts(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(ensure_utc(value))
    return ts


class ReviewServicer(review_pb2_grpc.ReviewServiceServicer):
    def __init__(self, handlers: ReviewHandlers) -> None:
        self._handlers = handlers

    @translate_errors
    def GetDetermination(self, request: review_pb2.GetDeterminationRequest,  # noqa: N802
                         context: grpc.ServicerContext) -> review_pb2.GetDeterminationResponse:
        return review_pb2.GetDeterminationResponse(determination=self._handlers.determination(request.request_id))

    @translate_errors
    def ListReviewQueue(self, request: review_pb2.ListReviewQueueRequest,  # noqa: N802
                        context: grpc.ServicerContext) -> review_pb2.ListReviewQueueResponse:
        tasks, next_token, total = self._handlers.queue(request.page_size, request.page_token)
        response = review_pb2.ListReviewQueueResponse(next_page_token=next_token, total=total)
        for task in tasks:
            response.tasks.add(
                task_id=task.task_id, request_id=task.request_id, line_number=task.line_number,
                procedure_code=task.procedure_code, member_state=task.member_state,
                line_of_business=to_number(LOB, task.line_of_business),
                urgency=to_number(URGENCY, task.urgency),
                outcome=to_number(OUTCOME, task.outcome.value),
                reasons=list(task.reasons), created_at=_ts(task.created_at), due_at=_ts(task.due_at),
                status=task.status.value, urgency_reason=task.urgency_reason)
        return response


ROLE = review_pb2.ReviewerRole
P2P_KIND = {review_pb2.RecordPeerToPeerRequest.KIND_OFFERED: "offered",
            review_pb2.RecordPeerToPeerRequest.KIND_HELD: "held",
            review_pb2.RecordPeerToPeerRequest.KIND_DECLINED: "declined"}


def reviewer_to_proto(r: wf.Reviewer) -> review_pb2.Reviewer:
    return review_pb2.Reviewer(
        reviewer_id=r.reviewer_id, name=r.name, role=to_number(ROLE, r.role.value),
        specialties=sorted(r.specialties), licence_states=sorted(r.licence_states),
        lines_of_business=[to_number(LOB, lob) for lob in sorted(r.lines_of_business)],
        capacity=r.capacity, credential=r.credential, active=r.active)


def reviewer_from_proto(p: review_pb2.Reviewer) -> wf.Reviewer:
    role = to_name(ROLE, p.role)
    if role is None:
        raise ValidationFailed([FieldViolation("reviewer.role", "nurse, physician, adjuster or supervisor")])
    lobs = []
    for i, number in enumerate(p.lines_of_business):
        name = to_name(LOB, number)
        if name is None:
            raise ValidationFailed([FieldViolation(f"reviewer.lines_of_business[{i}]", "unspecified")])
        lobs.append(name)
    return wf.Reviewer(reviewer_id=p.reviewer_id.strip(), name=p.name.strip(), role=wf.Role(role),
                       specialties=frozenset(s.strip() for s in p.specialties),
                       licence_states=frozenset(s.strip().upper() for s in p.licence_states),
                       lines_of_business=frozenset(lobs), capacity=p.capacity, credential=p.credential.strip(),
                       active=p.active)


def task_to_proto(view: TaskView) -> review_pb2.TaskView:
    out = review_pb2.TaskView(why_eligible=list(view.why_eligible))
    fill_task(out.task, view.task)
    for h in view.history:
        event = out.history.add(actor=h.actor, action=h.action, detail=h.detail)
        event.at.CopyFrom(_ts(h.at))
    if view.determination is not None:
        out.determination.CopyFrom(view.determination)
    return out


def review_task(task: Task) -> review_pb2.ReviewTask:
    out = review_pb2.ReviewTask()
    fill_task(out, task)
    return out


def fill_task(t: review_pb2.ReviewTask, task: Task) -> None:
    t.task_id, t.request_id, t.line_number = task.task_id, task.request_id, task.line_number
    t.procedure_code, t.member_state, t.status = task.procedure_code, task.member_state, task.status.value
    t.line_of_business = to_number(LOB, task.line_of_business)
    t.urgency = to_number(URGENCY, task.urgency)
    t.outcome = to_number(OUTCOME, task.outcome.value)
    t.reasons.extend(task.reasons)
    t.created_at.CopyFrom(_ts(task.created_at))
    t.due_at.CopyFrom(_ts(task.due_at))
    t.category = task.category
    t.required_role = to_number(ROLE, task.required_role.value)
    t.assigned_to = task.assigned_to or ""
    if task.lease_expires_at is not None:
        t.lease_expires_at.CopyFrom(_ts(task.lease_expires_at))
    t.clock.regime, t.clock.rule = task.regime, task.clock_rule
    t.clock.due_at.CopyFrom(_ts(task.due_at))
    t.escalated = task.escalated_at is not None
    t.requested_facts.extend(task.requested_facts)
    t.appeal_id = task.appeal_id
    t.urgency_reason = task.urgency_reason
    if task.information_due is not None:
        t.information_due.CopyFrom(to_proto_date(task.information_due))


def note_to_proto(note: CaseNote) -> review_pb2.CaseNote:
    out = review_pb2.CaseNote(note_id=note.note_id, member_id=note.member_id, author_id=note.author_id,
                              author_name=note.author_name, text=note.text, amends=note.amends or "",
                              author_role=to_number(ROLE, note.author_role.value))
    out.written_at.CopyFrom(_ts(note.written_at))
    return out


def overview_to_proto(overview: QueueOverview) -> review_pb2.GetQueueOverviewResponse:
    out = review_pb2.GetQueueOverviewResponse(
        at_risk=[review_task(t) for t in overview.at_risk], missed=[review_task(t) for t in overview.missed],
        held=[review_task(t) for t in overview.held])
    for d in overview.depth:
        out.depth.add(category=d.category, urgency=to_number(URGENCY, d.urgency),
                      line_of_business=to_number(LOB, d.line_of_business),
                      required_role=to_number(ROLE, d.required_role.value),
                      status=d.status, count=d.count, at_risk=d.at_risk, missed=d.missed)
    return out


# Dates a decision may carry: a year of 9999 would overflow the arithmetic downstream (validity ends).
MIN_YEAR, MAX_YEAR = 1900, 2199


def _opt_date(d: types_pb2.Date, field: str) -> dt.date | None:
    if d.year == 0 and d.month == 0 and d.day == 0:
        return None
    problem = ValidationFailed([FieldViolation(field, f"{d.year}-{d.month}-{d.day} is not a date between "
                                                      f"{MIN_YEAR} and {MAX_YEAR}")])
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise problem
    try:
        return dt.date(d.year, d.month, d.day)
    except ValueError:
        raise problem from None


def timestamp_from_proto(ts: Timestamp, field: str) -> dt.datetime:
    try:
        at = ts.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed([FieldViolation(field, "is not a valid timestamp")]) from None
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        raise ValidationFailed([FieldViolation(field, f"a time between {MIN_YEAR} and {MAX_YEAR}")])
    return at


def decision_from_proto(request: review_pb2.DecideTaskRequest) -> DecisionInput:
    kind = request.WhichOneof("decision")
    if kind is None:
        raise ValidationFailed([FieldViolation("decision", "choose approve, request_information, refer_to_physician, "
                                                           "approve_partial, modify or deny")])
    if kind == "approve":
        return DecisionInput(wf.Decision.APPROVE, note=request.approve.note)
    if kind == "request_information":
        ri = request.request_information
        return DecisionInput(wf.Decision.REQUEST_INFORMATION, note=ri.note, facts=tuple(ri.facts),
                             needed_by=_opt_date(ri.needed_by, "request_information.needed_by"))
    if kind == "refer_to_physician":
        return DecisionInput(wf.Decision.REFER_TO_PHYSICIAN, note=request.refer_to_physician.note)
    if kind == "deny":
        return DecisionInput(wf.Decision.DENY, reason=request.deny.reason, criterion=request.deny.criterion)
    part = request.approve_partial if kind == "approve_partial" else request.modify
    return DecisionInput(wf.Decision(kind), reason=part.reason, criterion=part.criterion,
                         approved_units=part.approved_units,
                         approved_start=_opt_date(part.approved_start, f"{kind}.approved_start"),
                         approved_end=_opt_date(part.approved_end, f"{kind}.approved_end"))


NOTICE_KIND = review_pb2.NoticeKind


def notice_to_proto(n: Notice) -> review_pb2.Notice:
    out = review_pb2.Notice(notice_id=n.notice_id, request_id=n.request_id, determination_id=n.determination_id,
                            kind=to_number(NOTICE_KIND, n.kind.value), recipient_role=n.recipient_role,
                            recipient=types_pb2.Contact(name=n.recipient.name,
                                                        address_lines=list(n.recipient.address_lines)),
                            line_numbers=list(n.line_numbers), subject=n.subject, text=n.text, member_id=n.member_id)
    out.issued_at.CopyFrom(_ts(n.issued_at))
    return out


def appeal_to_proto(a: Appeal) -> review_pb2.Appeal:
    out = review_pb2.Appeal(appeal_id=a.appeal_id, request_id=a.request_id, line_number=a.line_number,
                            urgency=to_number(URGENCY, a.urgency), appellant=a.appellant,
                            original_decider=a.original_decider, task_id=a.task_id, status=a.status.value,
                            clock=types_pb2.ClockRef(regime=a.clock.regime, rule=a.clock.rule))
    out.filed_at.CopyFrom(_ts(a.filed_at))
    if a.clock.due_at is not None:
        out.clock.due_at.CopyFrom(_ts(a.clock.due_at))
    if a.outcome is not None:
        out.outcome.CopyFrom(types_pb2.AppealOutcome(appeal_id=a.appeal_id, outcome=a.outcome.value,
                                                     forwarded=bool(a.forwarded_to), forwarded_to=a.forwarded_to))
        out.decided_by.id = a.decided_by
    if a.decided_at is not None:
        out.decided_at.CopyFrom(_ts(a.decided_at))
    return out


class ReviewerServicer(ReviewServicer):
    """ReviewService with the reviewer workflow. The access interceptor (entrypoints/access.py) has
    authenticated every call and let only reviewers (``review:work``) through to the workflow's
    methods; the caller's principal is their reviewer id, and the workflow checks their role."""

    def __init__(self, handlers: ReviewHandlers, workflow: ReviewWorkflow,
                 renderer: NoticeRenderer | None = None) -> None:
        super().__init__(handlers)
        self._workflow = workflow
        self._renderer = renderer

    def _principal(self, context: grpc.ServicerContext) -> str:
        return current_caller().principal

    @translate_errors
    def WhoAmI(self, request: review_pb2.WhoAmIRequest, context: grpc.ServicerContext) -> review_pb2.Reviewer:  # noqa: N802
        return reviewer_to_proto(self._workflow.directory.whoami(self._principal(context)))

    @translate_errors
    def PutReviewer(self, request: review_pb2.PutReviewerRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> review_pb2.Reviewer:
        principal = self._principal(context)
        return reviewer_to_proto(self._workflow.directory.put_reviewer(principal,
                                                                       reviewer_from_proto(request.reviewer)))

    @translate_errors
    def ListReviewers(self, request: review_pb2.ListReviewersRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> review_pb2.ListReviewersResponse:
        reviewers = self._workflow.directory.list_reviewers(self._principal(context))
        return review_pb2.ListReviewersResponse(reviewers=[reviewer_to_proto(r) for r in reviewers])

    @translate_errors
    def ListMyTasks(self, request: review_pb2.ListMyTasksRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> review_pb2.ListMyTasksResponse:
        held, available = self._workflow.queue.my_tasks(self._principal(context), request.limit,
                                                        summary=request.summary)
        return review_pb2.ListMyTasksResponse(held=[task_to_proto(v) for v in held],
                                              available=[task_to_proto(v) for v in available])

    @translate_errors
    def ClaimNextTask(self, request: review_pb2.ClaimNextTaskRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> review_pb2.ClaimNextTaskResponse:
        view = self._workflow.queue.claim_next(self._principal(context))
        return review_pb2.ClaimNextTaskResponse(task=task_to_proto(view))

    @translate_errors
    def ReleaseTask(self, request: review_pb2.ReleaseTaskRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> review_pb2.TaskView:
        return task_to_proto(self._workflow.queue.release(self._principal(context), request.task_id, request.note))

    @translate_errors
    def ReassignTask(self, request: review_pb2.ReassignTaskRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> review_pb2.TaskView:
        return task_to_proto(self._workflow.queue.reassign(self._principal(context), request.task_id,
                                                           request.reviewer_id, request.note))

    @translate_errors
    def DecideTask(self, request: review_pb2.DecideTaskRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> review_pb2.DecideTaskResponse:
        principal = self._principal(context)
        view, determination = self._workflow.decisions.decide(principal, request.task_id,
                                                              decision_from_proto(request))
        return review_pb2.DecideTaskResponse(task=task_to_proto(view), determination=determination)

    @translate_errors
    def RecordPeerToPeer(self, request: review_pb2.RecordPeerToPeerRequest,  # noqa: N802
                         context: grpc.ServicerContext) -> review_pb2.TaskView:
        principal = self._principal(context)
        kind = P2P_KIND.get(request.kind)
        if kind is None:
            raise ValidationFailed([FieldViolation("kind", "offered, held or declined")])
        at = timestamp_from_proto(request.at, "at") if request.HasField("at") else None
        return task_to_proto(self._workflow.peer_to_peer.record(principal, request.task_id, kind, at,
                                                                request.provider_contact, request.note))

    @translate_errors
    def GetTask(self, request: review_pb2.GetTaskRequest, context: grpc.ServicerContext) -> review_pb2.TaskView:  # noqa: N802
        return task_to_proto(self._workflow.queue.get_task(self._principal(context), request.task_id))

    @translate_errors
    def ExtendDeadline(self, request: review_pb2.ExtendDeadlineRequest,  # noqa: N802
                       context: grpc.ServicerContext) -> review_pb2.TaskView:
        principal = self._principal(context)
        return task_to_proto(self._workflow.deadlines.extend_deadline(principal, request.task_id,
                                                                      request.ground.strip(), request.notice_sent))

    @translate_errors
    def SetTaskUrgency(self, request: review_pb2.SetTaskUrgencyRequest,  # noqa: N802
                       context: grpc.ServicerContext) -> review_pb2.TaskView:
        principal = self._principal(context)
        urgency = to_name(URGENCY, request.urgency)
        if urgency is None:
            raise ValidationFailed([FieldViolation("urgency", "standard or expedited")])
        return task_to_proto(self._workflow.urgency.set_urgency(principal, request.task_id, urgency, request.reason))

    @translate_errors
    def GetQueueOverview(self, request: review_pb2.GetQueueOverviewRequest,  # noqa: N802
                         context: grpc.ServicerContext) -> review_pb2.GetQueueOverviewResponse:
        return overview_to_proto(self._workflow.oversight.overview(self._principal(context), request.limit))

    @translate_errors
    def ListMemberTasks(self, request: review_pb2.ListMemberTasksRequest,  # noqa: N802
                        context: grpc.ServicerContext) -> review_pb2.ListMemberTasksResponse:
        tasks = self._workflow.oversight.member_tasks(self._principal(context), request.member_id)
        return review_pb2.ListMemberTasksResponse(tasks=[review_task(t) for t in tasks])

    @translate_errors
    def AddCaseNote(self, request: review_pb2.AddCaseNoteRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> review_pb2.CaseNote:
        principal = self._principal(context)
        return note_to_proto(self._workflow.case_notes.add(principal, request.member_id, request.text,
                                                           request.amends))

    @translate_errors
    def ListCaseNotes(self, request: review_pb2.ListCaseNotesRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> review_pb2.ListCaseNotesResponse:
        notes = self._workflow.case_notes.of_member(self._principal(context), request.member_id)
        return review_pb2.ListCaseNotesResponse(notes=[note_to_proto(n) for n in notes])

    # -- notices and appeals (read by the member's portal, the mail room and urctl; no reviewer token) --
    @translate_errors
    def GetNotice(self, request: review_pb2.GetNoticeRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> review_pb2.GetNoticeResponse:
        notice = self._workflow.notices.get(request.notice_id)
        response = review_pb2.GetNoticeResponse(notice=notice_to_proto(notice))
        if request.include_pdf:
            if self._renderer is None:
                raise FailedPrecondition("this server renders no PDF")
            response.pdf = self._renderer.pdf(notice)
        return response

    @translate_errors
    def ListNotices(self, request: review_pb2.ListNoticesRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> review_pb2.ListNoticesResponse:
        notices = self._workflow.notices.listed(request.request_id, request.member_id)
        return review_pb2.ListNoticesResponse(notices=[notice_to_proto(n) for n in notices])

    @translate_errors
    def GetAppeal(self, request: review_pb2.GetAppealRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> review_pb2.Appeal:
        if self._workflow.appeals is None:
            raise FailedPrecondition("this server keeps no appeals")
        return appeal_to_proto(self._workflow.appeals.get(request.appeal_id))
