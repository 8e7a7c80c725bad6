"""Building determinations: the ``ur.common.v1`` LineDetermination of each line software or a
person decided, the case's stored Determination, and the DeterminationMade event announcing a line.

Software's lines carry the criteria explanation; a person's line names its decider and, for an
adverse decision, the reason and criterion. Certified units and dates follow the criteria's
approval cap (:func:`certify`).
"""

from __future__ import annotations

import datetime as dt
import uuid

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.events import OutgoingEvent
from services.common.proto_enums import to_number
from services.review.domain import workflow as wf
from services.review.domain.case import Case
from services.review.domain.criteria import LineEvaluation
from services.review.domain.deadlines import ClockState
from services.review.domain.decisions import DecidedBy, LineDecision
from services.review.domain.task import DecisionInput, Task
from services.review.service_layer.auditing import line_decided
from services.review.service_layer.lines import explanation_proto, proto_date, to_proto_date
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.submitted import date_of

SYSTEM_DECIDER = types_pb2.DeciderRef(id="system:rules-engine", role="software")
OUTCOME = types_pb2.LineOutcome
ACTION = types_pb2.ActionCode
VERB = {wf.Decision.DENY: "denied", wf.Decision.APPROVE_PARTIAL: "approved in part", wf.Decision.MODIFY: "modified"}


# -- software's lines ----------------------------------------------------------------------------

def explanation(evaluation: LineEvaluation | None, decision: LineDecision) -> types_pb2.Explanation:
    if evaluation is None:
        return types_pb2.Explanation(flags=list(decision.flags), summary=decision.reasons[0])
    explained = explanation_proto(evaluation)
    explained.flags.extend(decision.flags)
    if decision.decided_by is DecidedBy.GOLD_CARD:
        # The exemption decided; the criteria's findings stay visible, but nothing is asked for.
        explained.summary = "; ".join(decision.reasons)
        del explained.missing_facts[:]
    return explained


def software_decider(decision: LineDecision, evaluation: LineEvaluation | None) -> types_pb2.DeciderRef:
    """Software as the decider of a line, naming what it applied: the criteria set and version, the
    no-prior-authorization list, or the gold-card exemption."""
    decider = types_pb2.DeciderRef()
    decider.CopyFrom(SYSTEM_DECIDER)
    if decision.decided_by is DecidedBy.NO_PRIOR_AUTH_LIST:
        decider.criteria = "no-prior-authorization list"
    elif decision.decided_by is DecidedBy.GOLD_CARD:
        decider.criteria = "gold-card exemption"
    elif evaluation is not None:
        decider.criteria = f"{evaluation.criteria_id}@{evaluation.criteria_version}"
    return decider


def rules_line(service_line: types_pb2.ServiceLine, decision: LineDecision, evaluation: LineEvaluation | None,
               reasons: list[str] | None = None, now: dt.datetime | None = None) -> types_pb2.LineDetermination:
    """Software's determination of a line (units and dates of an approval: :func:`certify`); every
    line names its own decider, software with what it applied, and when (``now``)."""
    line = types_pb2.LineDetermination(
        line_number=service_line.line_number, procedure_code=service_line.procedure_code,
        outcome=to_number(OUTCOME, decision.outcome.value),
        action_code=to_number(ACTION, decision.action),
        reasons=list(decision.reasons) if reasons is None else reasons,
        queued_for_review=decision.queued_for_review, explanation=explanation(evaluation, decision),
        decided_by=software_decider(decision, evaluation))
    if now is not None:
        line.decided_at.FromDatetime(now)
    return line


def reevaluated_line(service_line: types_pb2.ServiceLine, decision: LineDecision,
                     evaluation: LineEvaluation | None, previous: types_pb2.LineDetermination,
                     now: dt.datetime) -> types_pb2.LineDetermination:
    """Software's new determination of a line once the provider sent more information; the
    previous line's flags (a possible duplicate, a gold card) stay among the reasons."""
    return rules_line(service_line, decision, evaluation,
                      ["re-evaluated with the additional information received", *decision.reasons,
                       *previous.explanation.flags], now)


def hold_for_person(line: types_pb2.LineDetermination) -> None:
    """Criteria are met, but a person decides (a physician was asked, or a duplicate is suspected)."""
    line.action_code = to_number(ACTION, "pended")
    line.queued_for_review = True


def certify(out: types_pb2.LineDetermination, line: types_pb2.ServiceLine,
            evaluation: LineEvaluation | None) -> None:
    """Approved units and dates. A criteria set with an approval cap certifies at most that many
    units per period; the rest is not refused but reviewed again (concurrent review), so the
    line says when."""
    out.approved_units = line.units
    out.approved_start.CopyFrom(line.start_date)
    out.approved_end.CopyFrom(line.end_date if line.HasField("end_date") else line.start_date)
    cap = evaluation.approval if evaluation is not None else None
    if cap is not None:
        out.unit = cap.unit
    if cap is None or line.units <= cap.max_units:
        return
    out.approved_units = cap.max_units
    start = date_of(line.start_date)
    if cap.unit == "days" and start is not None:
        last = start + dt.timedelta(days=cap.max_units - 1)
        following = last + dt.timedelta(days=1)
        out.approved_end.CopyFrom(to_proto_date(last))
        out.next_review_date.CopyFrom(to_proto_date(following))
        out.reasons.append(f"certified {cap.max_units} of {line.units} requested days; next concurrent review on "
                           f"{following.isoformat()} decides further days (nothing is refused)")
    else:
        out.reasons.append(f"certified {cap.max_units} of {line.units} requested {cap.unit} (the criteria's "
                           f"period); further {cap.unit} need a new request (nothing is refused)")


# -- a person's lines ----------------------------------------------------------------------------

def decider(me: wf.Reviewer) -> types_pb2.DeciderRef:
    return types_pb2.DeciderRef(id=me.reviewer_id, role=me.role.value, credential=me.describe(), name=me.name)


def decided_line(stored: types_pb2.LineDetermination, service_line: types_pb2.ServiceLine, me: wf.Reviewer,
                 d: DecisionInput, task: Task, now: dt.datetime) -> types_pb2.LineDetermination:
    """The line as ``me`` decided it, from its stored determination (the criteria explanation
    travels on); ``task`` is the task after the decision."""
    line = types_pb2.LineDetermination()
    line.CopyFrom(stored)
    for name in ("approved_units", "approved_start", "approved_end", "next_review_date", "criterion",
                 "requested_facts", "information_due", "appeal_rights", "appeal"):
        line.ClearField(name)
    del line.reasons[:]
    line.action_code = to_number(ACTION, wf.ACTION_OF[d.decision])
    line.decided_by.CopyFrom(decider(me))
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
        due = task.information_due or task.due_at.date()
        line.requested_facts.extend(task.requested_facts)
        line.information_due.CopyFrom(to_proto_date(due))
        line.reasons.append(f"information requested by {who}: {', '.join(line.requested_facts)}, "
                            f"needed by {due.isoformat()}" + (f" ({d.note})" if d.note else ""))
    elif d.decision is wf.Decision.REFER_TO_PHYSICIAN:
        line.reasons.append(f"referred to physician review by {who}" + (f": {d.note}" if d.note else ""))
    else:
        if d.decision is not wf.Decision.DENY:
            if d.approved_units is None:  # check_decision requires them; never trust that from here
                raise wf.BadDecision("approved_units", "at least 1")
            line.approved_units = d.approved_units
            start = d.approved_start or proto_date(service_line.start_date)
            end = d.approved_end or proto_date(service_line.end_date) or start
            if start is not None and end is not None:
                line.approved_start.CopyFrom(to_proto_date(start))
                line.approved_end.CopyFrom(to_proto_date(max(start, end)))
        line.criterion = d.criterion
        line.reasons.append(f"{VERB[d.decision]} by {who}: {d.reason}")
        line.reasons.append(f"criterion: {d.criterion}")
    return line


# -- the case's determination --------------------------------------------------------------------

def line_of(determination: types_pb2.Determination, line_number: int) -> types_pb2.LineDetermination | None:
    return next((ln for ln in determination.lines if ln.line_number == line_number), None)


def set_clock(determination: types_pb2.Determination, clock: ClockState) -> None:
    """The determination's reference to the regulatory clock; a tolled clock keeps the last due time."""
    determination.clock.rule = clock.rule
    if clock.due_at is not None:
        determination.clock.due_at.FromDatetime(clock.due_at)


def announce_line(uow: UnitOfWork, topic: str, case: Case, request: events_pb2.RequestSubmitted,
                  stored: types_pb2.Determination, line: types_pb2.LineDetermination,
                  now: dt.datetime, *, event_id: str = "") -> types_pb2.Determination:
    """Replace the line in the case's stored determination and announce a determination of that
    line (DeterminationMade, through the unit of work's outbox), recorded in the audit log (as
    coming from ``event_id`` when a consumed event brought it). Returns the announced one."""
    for i, existing in enumerate(stored.lines):
        if existing.line_number == line.line_number:
            stored.lines[i].CopyFrom(line)
    # Each line names its decider; the request's is theirs only when they are one and the same, so
    # a software approval never reads as a physician's decision on another line.
    stored.decided_by.CopyFrom(request_decider(stored))
    stored.decided_at.CopyFrom(line.decided_at)
    case.determination = stored.SerializeToString()
    uow.cases.save(case)
    out = types_pb2.Determination(request_id=case.request_id, determination_id=str(uuid.uuid4()),
                                  decided_by=line.decided_by, clock=stored.clock,
                                  certification_type=stored.certification_type,
                                  related_authorization_number=stored.related_authorization_number)
    out.decided_at.FromDatetime(now)
    out.lines.add().CopyFrom(line)
    outgoing = OutgoingEvent(topic=topic, key=case.request_id, message=determination_made(out, request))
    uow.publish(outgoing)
    uow.audit(line_decided(case.request_id, case.member_id, out.determination_id, line,
                           event_id=event_id or outgoing.event_id, emitted=outgoing.event_id if event_id else ""))
    return out


#: The request-level decider when its lines were decided by different deciders (each line names its own).
SEVERAL_DECIDERS = types_pb2.DeciderRef(id="several", role="several", name="each line names its decider")


def request_decider(determination: types_pb2.Determination) -> types_pb2.DeciderRef:
    """The decider of every decided line when it is one and the same; otherwise :data:`SEVERAL_DECIDERS`."""
    ids = {ln.decided_by.id for ln in determination.lines if ln.decided_by.id}
    if len(ids) == 1:
        return next(ln.decided_by for ln in determination.lines if ln.decided_by.id)
    return SEVERAL_DECIDERS if ids else determination.decided_by


def determination_made(determination: types_pb2.Determination,
                       request: events_pb2.RequestSubmitted) -> events_pb2.DeterminationMade:
    """The event announcing ``determination``, with what authorization records need of the request."""
    return events_pb2.DeterminationMade(determination=determination, member_id=request.member_id,
                                        coverage=request.coverage, servicing_provider=request.servicing_provider,
                                        requesting_provider=request.requesting_provider)
