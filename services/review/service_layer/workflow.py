"""Review's use cases for people: the reviewer directory, claiming tasks under a lease, decisions,
peer-to-peer, additional information, and the deadline monitor.

Every use case takes the authenticated principal (a reviewer id the entrypoint got from the
caller's token) and checks the reviewer's role itself; nothing trusts what the client says about
who it is. Each decision writes, in one transaction: the task's new state, an audit event, the
stored determination of the case (the decided line replaced), and a DeterminationMade event for the
decided line through the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.clock import Clock, ensure_utc
from services.common.consumer import PoisonMessage, TransientError
from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ValidationFailed,
)
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.proto_enums import to_number
from services.common.topics import Topics
from services.review.adapters.repository import ReviewUnitOfWork
from services.review.adapters.workflow_repository import WorkflowRepository
from services.review.domain import workflow as wf
from services.review.domain.criteria import CATEGORIES, Outcome
from services.review.domain.deadlines import ClockEngine, ClockError, ClockState, ExtensionRefused
from services.review.domain.decisions import decide_line
from services.review.service_layer.handlers import _certify, _explanation, _facts
from services.review.service_layer.lines import line_facts, proto_date, to_proto_date

logger = logging.getLogger(__name__)

CONSUMER_NAME = "review-information"
LOB = types_pb2.LineOfBusiness.DESCRIPTOR
ACTION = types_pb2.ActionCode.DESCRIPTOR
OUTCOME = types_pb2.LineOutcome.DESCRIPTOR
SYSTEM = "system"


@dataclass(frozen=True)
class TaskView:
    task: Row[Any]
    why_eligible: tuple[str, ...]
    history: tuple[Row[Any], ...]
    determination: types_pb2.LineDetermination | None


@dataclass(frozen=True)
class DecisionInput:
    decision: wf.Decision
    note: str = ""
    reason: str = ""
    criterion: str = ""
    approved_units: int | None = None
    approved_start: dt.date | None = None
    approved_end: dt.date | None = None
    facts: tuple[str, ...] = ()
    needed_by: dt.date | None = None


def task_facts(row: Row[Any]) -> wf.TaskFacts:
    return wf.TaskFacts(task_id=row.task_id, line_of_business=row.line_of_business, member_state=row.member_state,
                        category=row.category, required_role=wf.Role(row.required_role), urgency=row.urgency,
                        due_at=ensure_utc(row.due_at), regime=row.regime)


class ReviewWorkflow:
    def __init__(self, uow_factory: Callable[[], ReviewUnitOfWork], topics: Topics,
                 evaluator: Callable[[], Any], clocks: ClockEngine, *, lease_s: float = 900.0,
                 clock: Clock, at_risk_fraction: float = 0.2) -> None:
        self._clocks = clocks
        self._uow = uow_factory
        self._topics = topics
        self._evaluator = evaluator
        self._lease = dt.timedelta(seconds=lease_s)
        self._at_risk = at_risk_fraction
        self._now = clock

    # -- identity and directory ------------------------------------------------------------------
    def _me(self, repo: WorkflowRepository, principal: str) -> wf.Reviewer:
        reviewer = repo.reviewer(principal)
        if reviewer is None:
            raise PermissionDenied(f"{principal!r} is not in the reviewer directory")
        if not reviewer.active:
            raise PermissionDenied(f"reviewer {principal!r} is inactive")
        return reviewer

    def whoami(self, principal: str) -> wf.Reviewer:
        with self._uow().read_only() as uow:
            return self._me(WorkflowRepository(uow.conn), principal)

    def list_reviewers(self, principal: str) -> list[wf.Reviewer]:
        with self._uow().read_only() as uow:
            repo = WorkflowRepository(uow.conn)
            self._me(repo, principal)
            return repo.reviewers()

    def put_reviewer(self, principal: str, reviewer: wf.Reviewer) -> wf.Reviewer:
        validate_reviewer(reviewer)
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            if me.role is not wf.Role.SUPERVISOR:
                raise PermissionDenied("only a supervisor manages the reviewer directory")
            repo.put_reviewer(reviewer, self._now())
            uow.commit()
        logger.info("reviewer %s (%s) updated by %s", reviewer.reviewer_id, reviewer.role.value, principal)
        return reviewer

    def seed(self, reviewers: Sequence[wf.Reviewer]) -> None:
        """Load the directory from configuration at start (insert or update each)."""
        for r in reviewers:
            validate_reviewer(r)
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            for r in reviewers:
                repo.put_reviewer(r, self._now())
            uow.commit()

    # -- queue ---------------------------------------------------------------------------------
    def _view(self, repo: WorkflowRepository, row: Row[Any], me: wf.Reviewer | None) -> TaskView:
        why: tuple[str, ...] = ()
        if me is not None:
            ok, reasons = wf.eligibility(me, task_facts(row))
            why = reasons if ok else ()
        case_row = repo.case(row.request_id)
        line = None
        if case_row is not None:
            det = types_pb2.Determination.FromString(case_row.determination)
            line = next((ln for ln in det.lines if ln.line_number == row.line_number), None)
        return TaskView(row, why, tuple(repo.history(row.task_id)), line)

    def my_tasks(self, principal: str, limit: int) -> tuple[list[TaskView], list[TaskView]]:
        if not 0 <= limit <= 200:
            raise ValidationFailed([FieldViolation("limit", "between 1 and 200 (0 means 20)")])
        now = self._now()
        with self._uow().read_only() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            held = [self._view(repo, r, me) for r in repo.held_by(me.reviewer_id, now)]
            rows = repo.claimable(_roles_for(me), me.lines_of_business, me.specialties, now, 500)
            available = [self._view(repo, r, me) for r in rows if wf.eligibility(me, task_facts(r))[0]][:limit or 20]
        return held, available

    def get_task(self, principal: str, task_id: str) -> TaskView:
        with self._uow().read_only() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            row = repo.task(task_id)
            if row is None:
                raise NotFound(f"no task {task_id!r}")
            return self._view(repo, row, me)

    def claim_next(self, principal: str) -> TaskView:
        now = self._now()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            if me.role is wf.Role.SUPERVISOR:
                raise PermissionDenied("a supervisor assigns tasks but does not claim them")
            held = len(repo.held_by(me.reviewer_id, now))
            if held >= me.capacity:
                raise ResourceExhausted(f"you hold {held} task(s), your capacity; decide or release one first")
            rows = repo.claimable(_roles_for(me), me.lines_of_business, me.specialties, now, 200)
            for row in rows:
                if not wf.eligibility(me, task_facts(row))[0]:
                    continue
                if repo.try_claim(row.task_id, row.version, me.reviewer_id, now + self._lease, now):
                    previous = f" (lease of {row.assigned_to} had expired)" if row.status == "claimed" else ""
                    repo.record(row.task_id, me.reviewer_id, "claimed",
                                f"leased until {(now + self._lease).isoformat(timespec='seconds')}{previous}", now)
                    uow.commit()
                    claimed = repo.task(row.task_id)
                    assert claimed is not None
                    return self._view(repo, claimed, me)
            raise NotFound("no open task you are eligible for")

    def release(self, principal: str, task_id: str, note: str) -> TaskView:
        now = self._now()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            row = self._task(repo, task_id)
            if row.status != wf.TaskStatus.CLAIMED.value:
                raise FailedPrecondition(f"task is {row.status}; only a claimed task can be released")
            if row.assigned_to != me.reviewer_id and me.role is not wf.Role.SUPERVISOR:
                raise PermissionDenied("only the holder or a supervisor may release a task")
            self._cas(repo, row, status=wf.TaskStatus.OPEN.value, assigned_to=None, lease_expires_at=None,
                      updated_at=now)
            repo.record(task_id, me.reviewer_id, "released", note or f"released by {me.reviewer_id}", now)
            uow.commit()
            return self._view(repo, self._task(repo, task_id), me)

    def reassign(self, principal: str, task_id: str, reviewer_id: str, note: str) -> TaskView:
        now = self._now()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            if me.role is not wf.Role.SUPERVISOR:
                raise PermissionDenied("only a supervisor reassigns tasks")
            row = self._task(repo, task_id)
            if row.status not in (wf.TaskStatus.OPEN.value, wf.TaskStatus.CLAIMED.value):
                raise FailedPrecondition(f"task is {row.status}; only open or claimed tasks can be reassigned")
            target = repo.reviewer(reviewer_id)
            if target is None:
                raise ValidationFailed([FieldViolation("reviewer_id", f"{reviewer_id!r} is not in the directory")])
            ok, reasons = wf.eligibility(target, task_facts(row))
            if not ok:
                raise FailedPrecondition(f"{reviewer_id} may not take this task: {reasons[0]}")
            self._cas(repo, row, status=wf.TaskStatus.CLAIMED.value, assigned_to=reviewer_id,
                      lease_expires_at=now + self._lease, updated_at=now)
            repo.record(task_id, me.reviewer_id, "reassigned",
                        f"to {reviewer_id}" + (f" (from {row.assigned_to})" if row.assigned_to else "")
                        + (f": {note}" if note else ""), now)
            uow.commit()
            return self._view(repo, self._task(repo, task_id), target)

    def record_peer_to_peer(self, principal: str, task_id: str, kind: str, at: dt.datetime | None,
                            contact: str, note: str) -> TaskView:
        if kind not in ("offered", "held", "declined"):
            raise ValidationFailed([FieldViolation("kind", "offered, held or declined")])
        now = self._now()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            if me.role is not wf.Role.PHYSICIAN:
                raise PermissionDenied("peer-to-peer conversations are a physician's")
            row = self._task(repo, task_id)
            when = (at or now).isoformat(timespec="minutes")
            repo.record(task_id, me.reviewer_id, f"peer_to_peer_{kind}",
                        f"{when}" + (f" with {contact}" if contact else "") + (f": {note}" if note else ""), now)
            uow.commit()
            return self._view(repo, row, me)

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, principal: str, task_id: str, d: DecisionInput) -> tuple[TaskView, types_pb2.Determination]:
        now = self._now()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            row = self._task(repo, task_id)
            # Permission before state: a nurse learns she may not deny whatever the task's state.
            try:
                wf.check_decision(me, d.decision, reason=d.reason, criterion=d.criterion,
                                  approved_units=d.approved_units, requested_units=row.units, facts=d.facts)
            except wf.NotPermitted as exc:
                logger.warning("refused %s by %s (%s) on task %s", d.decision.value, me.reviewer_id, me.role.value,
                               task_id)
                raise PermissionDenied(str(exc)) from exc
            except wf.BadDecision as exc:
                raise ValidationFailed([FieldViolation(exc.field, exc.problem)]) from exc
            try:
                wf.check_can_act(me, wf.TaskStatus(row.status), row.assigned_to,
                                 ensure_utc(row.lease_expires_at) if row.lease_expires_at else None, now)
            except wf.Conflict as exc:
                raise FailedPrecondition(str(exc)) from exc
            case_row = repo.case(row.request_id, for_update=True)
            if case_row is None:
                raise NotFound(f"task {task_id} refers to a missing case")
            request = events_pb2.RequestSubmitted.FromString(case_row.request)
            service_line = next(s for s in request.service_lines if s.line_number == row.line_number)
            determination = types_pb2.Determination.FromString(case_row.determination)
            stored_line = next(ln for ln in determination.lines if ln.line_number == row.line_number)
            line = self._decided_line(stored_line, service_line, me, d, now, case_row)
            task_values = self._task_after(d, now, case_row)
            self._cas(repo, row, **task_values)
            repo.record(task_id, me.reviewer_id, d.decision.value, _detail(d), now)
            if d.decision in (wf.Decision.APPROVE, *wf.ADVERSE):
                # The gold-card record counts a person's final word; only approval in full is approval.
                uow.provider_outcomes.update_outcome(row.request_id, row.line_number,
                                                     approved=d.decision is wf.Decision.APPROVE,
                                                     decided_by=me.reviewer_id, decided_at=now)
            if d.decision is wf.Decision.REQUEST_INFORMATION:
                clock = self._clock_of(case_row)
                if clock is not None and clock.paused_at is None:
                    self._set_clock(repo, case_row, determination, self._clocks.pend(clock, now), now)
            out = self._publish_line(uow, repo, case_row, request, determination, line, now)
            uow.commit()
            view = self._view(repo, self._task(repo, task_id), me)
        logger.info("task %s: %s by %s (%s)", task_id, d.decision.value, me.reviewer_id, me.role.value)
        return view, out

    def _decided_line(self, stored: types_pb2.LineDetermination, service_line: types_pb2.ServiceLine,
                      me: wf.Reviewer, d: DecisionInput, now: dt.datetime,
                      case_row: Row[Any]) -> types_pb2.LineDetermination:
        line = types_pb2.LineDetermination()
        line.CopyFrom(stored)
        for name in ("approved_units", "approved_start", "approved_end", "next_review_date", "criterion",
                     "requested_facts", "information_due"):
            line.ClearField(name)  # type: ignore[arg-type]
        del line.reasons[:]
        line.action_code = to_number(ACTION, wf.ACTION_OF[d.decision])  # type: ignore[assignment]
        line.decided_by.CopyFrom(_decider(me))
        line.decided_at.FromDatetime(now)
        line.queued_for_review = d.decision in (wf.Decision.REQUEST_INFORMATION, wf.Decision.REFER_TO_PHYSICIAN)
        who = f"{me.name} ({me.describe()})"
        if d.decision is wf.Decision.APPROVE:
            line.approved_units = service_line.units
            line.approved_start.CopyFrom(service_line.start_date)
            line.approved_end.CopyFrom(service_line.end_date if service_line.HasField("end_date")
                                       else service_line.start_date)
            line.reasons.append(f"approved by {who}" + (f": {d.note}" if d.note else ""))
        elif d.decision is wf.Decision.REQUEST_INFORMATION:
            due = d.needed_by or (ensure_utc(case_row.due_at).date())
            line.requested_facts.extend(f.strip() for f in d.facts if f.strip())
            line.information_due.CopyFrom(to_proto_date(due))
            line.reasons.append(f"information requested by {who}: {', '.join(line.requested_facts)}, "
                                f"needed by {due.isoformat()}" + (f" ({d.note})" if d.note else ""))
        elif d.decision is wf.Decision.REFER_TO_PHYSICIAN:
            line.reasons.append(f"referred to physician review by {who}" + (f": {d.note}" if d.note else ""))
        else:
            if d.decision is not wf.Decision.DENY:
                assert d.approved_units is not None
                line.approved_units = d.approved_units
                start = d.approved_start or proto_date(service_line.start_date)
                end = d.approved_end or proto_date(service_line.end_date) or start
                if start is not None and end is not None:
                    line.approved_start.CopyFrom(to_proto_date(start))
                    line.approved_end.CopyFrom(to_proto_date(max(start, end)))
            line.criterion = d.criterion
            verb = {wf.Decision.DENY: "denied", wf.Decision.APPROVE_PARTIAL: "approved in part",
                    wf.Decision.MODIFY: "modified"}[d.decision]
            line.reasons.append(f"{verb} by {who}: {d.reason}")
            line.reasons.append(f"criterion: {d.criterion}")
        return line

    def _task_after(self, d: DecisionInput, now: dt.datetime, case_row: Row[Any]) -> dict[str, Any]:
        if d.decision is wf.Decision.REQUEST_INFORMATION:
            due = d.needed_by or ensure_utc(case_row.due_at).date()
            return {"status": wf.TaskStatus.PENDED_INFORMATION.value, "assigned_to": None, "lease_expires_at": None,
                    "requested_facts": json.dumps([f.strip() for f in d.facts if f.strip()]),
                    "information_due": due, "updated_at": now}
        if d.decision is wf.Decision.REFER_TO_PHYSICIAN:
            return {"status": wf.TaskStatus.OPEN.value, "required_role": wf.Role.PHYSICIAN.value,
                    "assigned_to": None, "lease_expires_at": None, "updated_at": now}
        return {"status": wf.TaskStatus.DECIDED.value, "lease_expires_at": None, "updated_at": now}

    def _publish_line(self, uow: ReviewUnitOfWork, repo: WorkflowRepository, case_row: Row[Any],
                      request: events_pb2.RequestSubmitted, stored: types_pb2.Determination,
                      line: types_pb2.LineDetermination, now: dt.datetime) -> types_pb2.Determination:
        """Replace the line in the case's stored determination and announce a determination of that line."""
        for i, existing in enumerate(stored.lines):
            if existing.line_number == line.line_number:
                stored.lines[i].CopyFrom(line)
        stored.decided_by.CopyFrom(line.decided_by)
        stored.decided_at.CopyFrom(line.decided_at)
        repo.save_case(case_row.request_id, determination=stored.SerializeToString())
        out = types_pb2.Determination(request_id=case_row.request_id, determination_id=str(uuid.uuid4()),
                                      decided_by=line.decided_by, clock=stored.clock)
        out.decided_at.FromDatetime(now)
        out.lines.add().CopyFrom(line)
        uow.publish(OutgoingEvent(topic=self._topics.determination_made, key=case_row.request_id,
                                  message=events_pb2.DeterminationMade(determination=out, member_id=request.member_id,
                                                                       coverage=request.coverage)))
        return out

    # -- additional information ----------------------------------------------------------------
    def handle_information(self, events: Sequence[IncomingEvent]) -> None:
        """Merge the new facts into the case, re-run the criteria on every line still waiting for a
        person, approve what now meets them, and reopen the rest with the new evaluation."""
        now = self._now()
        evaluator = self._evaluator()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            for event in fresh:
                message = event.message
                if not isinstance(message, events_pb2.AdditionalInformationReceived):
                    raise PoisonMessage(f"review does not take {event.event_type} as information")
                self._apply_information(uow, repo, evaluator, message, now)
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()

    def _apply_information(self, uow: ReviewUnitOfWork, repo: WorkflowRepository, evaluator: Any,
                           message: events_pb2.AdditionalInformationReceived, now: dt.datetime) -> None:
        case_row = repo.case(message.request_id, for_update=True)
        if case_row is None:
            # The request's own event has not been applied yet (another topic); try again shortly.
            raise TransientError(f"additional information for request {message.request_id} arrived before it")
        request = events_pb2.RequestSubmitted.FromString(case_row.request)
        names = {f.name for f in message.clinical_facts}
        kept = [f for f in request.clinical_facts if f.name not in names]
        del request.clinical_facts[:]
        request.clinical_facts.extend([*kept, *message.clinical_facts])
        repo.save_case(case_row.request_id, request=request.SerializeToString())
        stored = types_pb2.Determination.FromString(case_row.determination)
        clock = self._clock_of(case_row)
        if clock is not None and clock.paused_at is not None:
            self._set_clock(repo, case_row, stored, self._clocks.information_received(clock, now), now)
        facts = _facts(request)
        for row in repo.tasks_of_request(message.request_id):
            if row.status not in (wf.TaskStatus.OPEN.value, wf.TaskStatus.CLAIMED.value,
                                  wf.TaskStatus.PENDED_INFORMATION.value):
                continue
            service_line = next(s for s in request.service_lines if s.line_number == row.line_number)
            evaluation = evaluator.evaluate(line_facts(request, service_line, row.line_of_business, facts))
            decision = decide_line(evaluation, service_line.procedure_code, row.line_of_business, [])
            previous = next(ln for ln in stored.lines if ln.line_number == row.line_number)
            line = types_pb2.LineDetermination(
                line_number=row.line_number, procedure_code=service_line.procedure_code,
                outcome=to_number(OUTCOME, decision.outcome.value),  # type: ignore[arg-type]
                action_code=to_number(ACTION, decision.action),  # type: ignore[arg-type]
                reasons=["re-evaluated with the additional information received", *decision.reasons,
                         *[f for f in previous.explanation.flags]],
                queued_for_review=decision.queued_for_review, explanation=_explanation(evaluation, decision),
                decided_by=types_pb2.DeciderRef(id="system:rules-engine", role="software"))
            line.decided_at.FromDatetime(now)
            flagged = bool(previous.explanation.flags)
            if decision.action == "certified_in_total" and not flagged and row.required_role == wf.Role.NURSE.value:
                _certify(line, service_line, evaluation)
                self._cas(repo, row, status=wf.TaskStatus.DECIDED.value, assigned_to=None, lease_expires_at=None,
                          updated_at=now)
                repo.record(row.task_id, SYSTEM, "information_received",
                            "criteria now met: approved by the rules engine", now)
                uow.provider_outcomes.update_outcome(row.request_id, row.line_number, approved=True,
                                                     decided_by="system:rules-engine", decided_at=now)
            else:
                if decision.action == "certified_in_total":
                    # Meets criteria now, but a physician was asked or a duplicate is suspected: a person decides.
                    line.action_code = to_number(ACTION, "pended")  # type: ignore[assignment]
                    line.queued_for_review = True
                outcome = (decision.outcome if decision.outcome not in (Outcome.MEETS_CRITERIA,
                                                                         Outcome.MEETS_CRITERIA_URGENT)
                           else Outcome.REFER_TO_NURSE)
                self._cas(repo, row, status=wf.TaskStatus.OPEN.value, assigned_to=None, lease_expires_at=None,
                          outcome=outcome.value, reasons=json.dumps(list(line.reasons)), updated_at=now)
                repo.record(row.task_id, SYSTEM, "information_received",
                            f"reopened: {decision.reasons[0] if decision.reasons else 're-evaluated'}", now)
            self._publish_line(uow, repo, case_row, request, stored, line, now)

    # -- the clock -----------------------------------------------------------------------------
    @staticmethod
    def _clock_of(case_row: Row[Any]) -> ClockState | None:
        return ClockState.from_dict(json.loads(case_row.clock_state)) if case_row.clock_state else None

    def _set_clock(self, repo: WorkflowRepository, case_row: Row[Any], determination: types_pb2.Determination,
                   clock: ClockState, now: dt.datetime) -> None:
        """Store the case's new clock and carry its deadline to the case, its open tasks and the
        determination's clock reference. A tolled clock keeps the last due time, marked paused."""
        due = clock.due_at
        values: dict[str, Any] = {"clock_state": json.dumps(clock.to_dict())}
        if due is not None:
            values["due_at"] = due
        repo.save_case(case_row.request_id, **values)
        determination.clock.rule = clock.rule
        if due is not None:
            determination.clock.due_at.FromDatetime(due)
        for task in repo.tasks_of_request(case_row.request_id):
            if task.status in (wf.TaskStatus.DECIDED.value, wf.TaskStatus.CANCELLED.value):
                continue
            at_risk_at = ClockEngine.at_risk_from(clock, self._at_risk)
            task_values: dict[str, Any] = {"clock_rule": clock.rule, "clock_paused": clock.tolled,
                                           "at_risk_at": at_risk_at, "updated_at": now}
            if due is not None and due != ensure_utc(task.due_at):
                task_values.update(due_at=due, escalated_at=None)
            repo.set_task(task.task_id, task.version, **task_values)

    def extend_deadline(self, principal: str, task_id: str, ground: str, notice_sent: bool) -> TaskView:
        """Extend the request's decision deadline where its regime allows it (see ClockEngine.extend)."""
        now = self._now()
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            me = self._me(repo, principal)
            if me.role not in (wf.Role.PHYSICIAN, wf.Role.SUPERVISOR, wf.Role.NURSE):
                raise PermissionDenied(f"a {me.role.value} may not extend a deadline")
            row = self._task(repo, task_id)
            case_row = repo.case(row.request_id, for_update=True)
            clock = self._clock_of(case_row) if case_row is not None else None
            if case_row is None or clock is None:
                raise FailedPrecondition("this case has no regulatory clock to extend")
            try:
                extended = self._clocks.extend(clock, now, ground, notice_sent)
            except ExtensionRefused as exc:
                raise FailedPrecondition(f"extension refused: {exc}") from exc
            except ClockError as exc:
                raise FailedPrecondition(str(exc)) from exc
            determination = types_pb2.Determination.FromString(case_row.determination)
            self._set_clock(repo, case_row, determination, extended, now)
            repo.save_case(case_row.request_id, determination=determination.SerializeToString())
            repo.record(task_id, me.reviewer_id, "deadline_extended", extended.rule, now)
            uow.commit()
            return self._view(repo, self._task(repo, task_id), me)

    # -- the monitor ---------------------------------------------------------------------------
    def monitor(self) -> dict[str, int]:
        """One pass: expire leases, escalate tasks at risk, raise alerts, record missed deadlines.
        Each alert is raised once (the task remembers it) in the same transaction as its event."""
        now = self._now()
        counts = {"leases_expired": 0, "escalated": 0, "unassigned_alerts": 0, "missed": 0}
        with self._uow() as uow:
            repo = WorkflowRepository(uow.conn)
            for row in repo.expired_leases(now):
                if repo.set_task(row.task_id, row.version, status=wf.TaskStatus.OPEN.value, assigned_to=None,
                                   lease_expires_at=None, updated_at=now):
                    repo.record(row.task_id, SYSTEM, "lease_expired", f"{row.assigned_to}'s lease ran out", now)
                    counts["leases_expired"] += 1
            for row in repo.needing_attention(now):
                if row.clock_paused:
                    continue  # the regime stops the clock while information is awaited
                due = ensure_utc(row.due_at)
                if due <= now and row.missed_at is None:
                    deemed = row.line_of_business == "medicaid"
                    if repo.set_task(row.task_id, row.version, missed_at=now, deemed_denial=deemed, updated_at=now):
                        detail = "deadline passed without a decision" + (
                            "; under 42 CFR 438.404(c)(5) this counts as an adverse decision (deemed denial), "
                            "which the member may appeal" if deemed else "")
                        repo.record(row.task_id, SYSTEM, "deadline_missed", detail, now)
                        self._alert(uow, row, events_pb2.ReviewAlert.KIND_DEADLINE_MISSED, deemed, detail, now)
                        counts["missed"] += 1
                    continue
                # Measured over the regulatory clock (receipt to deadline, less tolled time), never
                # from when the task happened to be created: a late task is escalated on time.
                at_risk = row.at_risk_at is not None and now >= ensure_utc(row.at_risk_at)
                if at_risk and row.escalated_at is None and row.status != wf.TaskStatus.PENDED_INFORMATION.value:
                    held = (row.status == wf.TaskStatus.CLAIMED.value and row.lease_expires_at is not None
                            and ensure_utc(row.lease_expires_at) > now)
                    if repo.set_task(row.task_id, row.version, escalated_at=now, updated_at=now):
                        left = due - now
                        hours = left.total_seconds() / 3600
                        if held:
                            detail = f"at risk: {hours:.1f} h left, held by {row.assigned_to}"
                            kind = events_pb2.ReviewAlert.KIND_AT_RISK
                        else:
                            detail = f"at risk and unassigned: {hours:.1f} h left, no reviewer holds it"
                            kind = events_pb2.ReviewAlert.KIND_UNASSIGNED_NEAR_DEADLINE
                            counts["unassigned_alerts"] += 1
                        repo.record(row.task_id, SYSTEM, "escalated", detail, now)
                        self._alert(uow, row, kind, False, detail, now)
                        counts["escalated"] += 1
            uow.commit()
        if any(counts.values()):
            logger.info("monitor: %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
        return counts

    def _alert(self, uow: ReviewUnitOfWork, row: Row[Any], kind: int, deemed: bool, detail: str,
               now: dt.datetime) -> None:
        alert = events_pb2.ReviewAlert(alert_id=str(uuid.uuid4()), kind=kind,  # type: ignore[arg-type]
                                       request_id=row.request_id, line_number=row.line_number, task_id=row.task_id,
                                       assigned_to=row.assigned_to or "", deemed_denial=deemed, message=detail)
        alert.raised_at.FromDatetime(now)
        alert.clock.regime = row.regime
        alert.clock.rule = row.clock_rule
        alert.clock.due_at.FromDatetime(ensure_utc(row.due_at))
        uow.publish(OutgoingEvent(topic=self._topics.review_alerts, key=row.request_id, message=alert))

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _task(repo: WorkflowRepository, task_id: str) -> Row[Any]:
        row = repo.task(task_id)
        if row is None:
            raise NotFound(f"no task {task_id!r}")
        return row

    @staticmethod
    def _cas(repo: WorkflowRepository, row: Row[Any], **values: Any) -> None:
        if not repo.set_task(row.task_id, row.version, **values):
            raise FailedPrecondition("the task changed while you were acting on it; look again")


def _roles_for(me: wf.Reviewer) -> list[str]:
    if me.role is wf.Role.ADJUSTER:
        return [wf.Role.NURSE.value]
    return [me.role.value]


def _decider(me: wf.Reviewer) -> types_pb2.DeciderRef:
    return types_pb2.DeciderRef(id=me.reviewer_id, role=me.role.value, credential=me.describe(), name=me.name)


def _detail(d: DecisionInput) -> str:
    parts = [p for p in (d.note, d.reason, f"criterion {d.criterion}" if d.criterion else "",
                         f"{d.approved_units} unit(s)" if d.approved_units else "",
                         f"facts: {', '.join(d.facts)}" if d.facts else "") if p]
    return "; ".join(parts)


def validate_reviewer(r: wf.Reviewer) -> None:
    problems = []
    if not r.reviewer_id.strip() or len(r.reviewer_id) > 64:
        problems.append(FieldViolation("reviewer.reviewer_id", "1 to 64 characters"))
    if not r.name.strip():
        problems.append(FieldViolation("reviewer.name", "required"))
    if r.role is not wf.Role.SUPERVISOR:
        if not r.lines_of_business:
            problems.append(FieldViolation("reviewer.lines_of_business", "at least one"))
        unknown = sorted(s for s in r.specialties if s not in CATEGORIES and s != wf.GENERAL)
        if unknown or not r.specialties:
            problems.append(FieldViolation("reviewer.specialties",
                                           f"at least one of: general, {', '.join(sorted(CATEGORIES))}"
                                           + (f" (unknown: {', '.join(unknown)})" if unknown else "")))
        if not 1 <= r.capacity <= 500:
            problems.append(FieldViolation("reviewer.capacity", "between 1 and 500"))
        if not r.credential.strip():
            problems.append(FieldViolation("reviewer.credential", "required, e.g. RN or MD"))
    bad_states = sorted(s for s in r.licence_states if len(s) != 2 or not s.isalpha() or not s.isupper())
    if bad_states:
        problems.append(FieldViolation("reviewer.licence_states", f"two-letter USPS codes (not {bad_states})"))
    bad_lobs = sorted(lob for lob in r.lines_of_business
                      if lob not in ("medicare_advantage", "medicaid", "commercial", "workers_comp"))
    if bad_lobs:
        problems.append(FieldViolation("reviewer.lines_of_business", f"unknown: {bad_lobs}"))
    if problems:
        raise ValidationFailed(problems)



class ReviewEvents:
    """The review consumer's handler: new requests to the criteria, additional information to the
    workflow. Each kind is applied in its own idempotent transaction, requests first."""

    def __init__(self, handlers: Any, workflow: ReviewWorkflow) -> None:
        self._handlers = handlers
        self._workflow = workflow

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        information = [e for e in events if isinstance(e.message, events_pb2.AdditionalInformationReceived)]
        requests = [e for e in events if not isinstance(e.message, events_pb2.AdditionalInformationReceived)]
        if requests:
            self._handlers.handle_batch(requests)
        if information:
            self._workflow.handle_information(information)
