"""Updates of a request still under review, through intake (topic request-updated):

* **cancelled** (RequestCancelled): the submitter withdrew it. Undecided tasks are withdrawn, the
  clock stops, and every line is answered cancelled (X12 ``C``) in one DeterminationMade, so that
  nothing is authorized (authorization marks any record of the request cancelled);
* **revised** (RequestRevised): the request as it now reads replaces the case's; every line still
  waiting for a person is evaluated again, like additional information: what now meets the criteria
  at nurse level is approved by the rules engine, the rest goes back to the queue with the new
  evaluation (and the line's code, units and urgency as revised). A line already decided is not
  edited: the revision does not touch it (intake refuses revisions of decided requests).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit.chain import AuditRecord
from services.common.clock import Clock
from services.common.errors import PoisonMessage, TransientError
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.proto_enums import to_name, to_number
from services.common.topics import Topics
from services.review.domain.case import Case
from services.review.domain.criteria import Outcome
from services.review.domain.deadlines import ClockEngine
from services.review.domain.decisions import ACTION_CERTIFIED, decide_line
from services.review.service_layer.auditing import line_decided, save_task
from services.review.service_layer.determinations import (
    SYSTEM_DECIDER,
    announce_line,
    certify,
    determination_made,
    hold_for_person,
    line_of,
    reevaluated_line,
    request_decider,
)
from services.review.service_layer.lines import line_facts
from services.review.service_layer.notices import NoticeWriter
from services.review.service_layer.ports import Evaluator, UnitOfWork
from services.review.service_layer.preamble import use_case
from services.review.service_layer.submitted import facts_of, service_line

logger = logging.getLogger(__name__)

CONSUMER_NAME = "review-updates"
ACTION = types_pb2.ActionCode
URGENCY = types_pb2.Urgency
MEETS = (Outcome.MEETS_CRITERIA, Outcome.MEETS_CRITERIA_URGENT)


class Updates:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, evaluator: Callable[[], Evaluator],
                 clocks: ClockEngine, *, clock: Clock, at_risk_fraction: float = 0.2,
                 notices: NoticeWriter | None = None) -> None:
        self._uow = uow_factory
        self._topics = topics
        self._evaluator = evaluator
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction
        self._notices = notices

    @use_case
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        now = self._now()
        evaluator = self._evaluator()
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            for event in fresh:
                message = event.message
                if isinstance(message, events_pb2.RequestCancelled):
                    self._cancel(uow, message, now, event.event_id)
                elif isinstance(message, events_pb2.RequestRevised):
                    self._revise(uow, evaluator, message, now, event.event_id)
                else:
                    raise PoisonMessage(f"review does not take {event.event_type} as a request update")
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()

    @staticmethod
    def _case(uow: UnitOfWork, request_id: str, what: str) -> Case:
        case = uow.cases.get(request_id, for_update=True)
        if case is None:
            # The request's own event has not been applied yet (another topic); try again shortly.
            raise TransientError(f"{what} of request {request_id} arrived before the request")
        return case

    def _cancel(self, uow: UnitOfWork, message: events_pb2.RequestCancelled, now: dt.datetime, event_id: str) -> None:
        case = self._case(uow, message.request_id, "a cancellation")
        stored = types_pb2.Determination.FromString(case.determination)
        if all(to_name(ACTION, ln.action_code) == "cancelled" for ln in stored.lines):
            return  # already cancelled (a redelivered cancellation under a new event id)
        why = "request withdrawn by its submitter" + (f": {message.reason}" if message.reason else "")
        for task in uow.tasks.of_request(case.request_id):
            if task.undecided and not task.is_appeal:
                task.withdraw(why, now)
                save_task(uow, task, event_id=event_id)
        if case.clock is not None:
            case.follow_clock(self._clocks.stop(case.clock, now, why))
        request = events_pb2.RequestSubmitted.FromString(case.request)
        out = types_pb2.Determination(request_id=case.request_id, determination_id=str(uuid.uuid4()),
                                      clock=stored.clock, certification_type=stored.certification_type,
                                      related_authorization_number=stored.related_authorization_number)
        out.decided_at.FromDatetime(now)
        for line in stored.lines:
            line.action_code = to_number(ACTION, "cancelled")
            line.queued_for_review = False
            line.decided_by.CopyFrom(SYSTEM_DECIDER)
            line.decided_by.criteria = "cancelled by the submitter"
            line.decided_at.FromDatetime(now)
            del line.reasons[:]
            line.reasons.append(why)
            out.lines.add().CopyFrom(line)
        stored.decided_by.CopyFrom(request_decider(stored))
        out.decided_by.CopyFrom(stored.decided_by)
        case.determination = stored.SerializeToString()
        uow.cases.save(case)
        outgoing = OutgoingEvent(topic=self._topics.determination_made, key=case.request_id,
                                 message=determination_made(out, request))
        uow.publish(outgoing)
        uow.audit(AuditRecord("request.cancelled", case.request_id, {"determination_id": out.determination_id},
                              event_id=event_id, member_id=case.member_id),
                  *[line_decided(case.request_id, case.member_id, out.determination_id, ln, event_id=event_id,
                                 emitted=outgoing.event_id) for ln in out.lines])
        logger.info("request %s cancelled: %d lines answered C", case.request_id, len(out.lines))

    def _revise(self, uow: UnitOfWork, evaluator: Evaluator, message: events_pb2.RequestRevised,
                now: dt.datetime, event_id: str) -> None:
        revised = message.request
        case = self._case(uow, revised.request_id, "a revision")
        uow.audit(AuditRecord("request.revised", case.request_id, {"revision_id": message.revision_id},
                              event_id=event_id, member_id=case.member_id))
        previous = events_pb2.RequestSubmitted.FromString(case.request)
        revised.received_at.CopyFrom(previous.received_at)  # the clock runs from the first receipt
        case.request = revised.SerializeToString()
        uow.cases.save(case)
        stored = types_pb2.Determination.FromString(case.determination)
        facts = facts_of(revised)
        urgency = to_name(URGENCY, revised.urgency) or case.urgency
        approved = []
        for task in uow.tasks.of_request(case.request_id):
            if not task.undecided or task.is_appeal:
                continue
            line = service_line(revised, task.line_number)
            task.revise(line.procedure_code, line.units, urgency, now)
            evaluation = evaluator.evaluate(line_facts(revised, line, task.line_of_business, facts))
            decision = decide_line(evaluation, line.procedure_code, task.line_of_business, [])
            before = line_of(stored, task.line_number)
            if before is None:
                raise PoisonMessage(f"the determination of request {task.request_id} has no line {task.line_number}")
            determined = reevaluated_line(line, decision, evaluation, before, now)
            determined.reasons.insert(0, f"revised by the submitter ({message.revision_id})")
            if decision.action == ACTION_CERTIFIED and not before.explanation.flags and task.approvable_on_criteria:
                certify(determined, line, evaluation)
                task.approve_on_criteria(now)
                approved.append(determined)
                uow.provider_outcomes.update_outcome(task.request_id, task.line_number, approved=True,
                                                     decided_by=SYSTEM_DECIDER.id, decided_at=now)
            else:
                if decision.action == ACTION_CERTIFIED:
                    hold_for_person(determined)
                outcome = decision.outcome if decision.outcome not in MEETS else Outcome.REFER_TO_NURSE
                task.reopen_with(outcome, tuple(determined.reasons),
                                 decision.reasons[0] if decision.reasons else "re-evaluated after the revision", now)
            save_task(uow, task, event_id=event_id)
            out = announce_line(uow, self._topics.determination_made, case, revised, stored, determined, now,
                                event_id=event_id)
            if self._notices is not None and determined in approved:
                self._notices.for_lines(uow, case, revised, out.determination_id, [determined], now)
        logger.info("request %s revised (%s)", case.request_id, message.revision_id)
