"""Additional information from the provider (AdditionalInformationReceived, through intake): the
new facts join the case, the clock resumes where the regime stopped it, and the criteria run again
on every line still waiting for a person. What now meets them at nurse level is approved by the
rules engine; the rest goes back to the queue with the new evaluation, expedited in the queue when
the new facts make it urgent (or raise a red flag) under its criteria."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit.chain import AuditRecord
from services.common.clock import Clock
from services.common.errors import PoisonMessage, TransientError
from services.common.events import IncomingEvent
from services.common.proto_enums import to_name
from services.common.topics import Topics
from services.review.domain.criteria import Outcome
from services.review.domain.deadlines import ClockEngine
from services.review.domain.decisions import ACTION_CERTIFIED, decide_line
from services.review.service_layer.auditing import save_task
from services.review.service_layer.clocks import follow_clock
from services.review.service_layer.determinations import (
    SYSTEM_DECIDER,
    announce_line,
    certify,
    hold_for_person,
    line_of,
    reevaluated_line,
)
from services.review.service_layer.lines import line_facts
from services.review.service_layer.notices import NoticeWriter
from services.review.service_layer.ports import (
    DecisionMetrics,
    Evaluator,
    LineDecided,
    UnitOfWork,
)
from services.review.service_layer.preamble import use_case
from services.review.service_layer.submitted import facts_of, service_line

CONSUMER_NAME = "review-information"
MEETS = (Outcome.MEETS_CRITERIA, Outcome.MEETS_CRITERIA_URGENT)


class Information:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, evaluator: Callable[[], Evaluator],
                 clocks: ClockEngine, *, clock: Clock, at_risk_fraction: float = 0.2,
                 notices: NoticeWriter | None = None,
                 metrics: DecisionMetrics | None = None) -> None:
        """``evaluator`` is asked once per batch for the evaluator to use (the criteria library may
        be reloaded while the service runs); ``metrics`` counts the lines re-decided."""
        self._uow = uow_factory
        self._topics = topics
        self._evaluator = evaluator
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction
        self._notices = notices
        self._metrics = metrics

    @use_case
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Apply each new event once, all in one transaction with the record of having done so."""
        now = self._now()
        evaluator = self._evaluator()
        decided: list[LineDecided] = []
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            for event in fresh:
                message = event.message
                if not isinstance(message, events_pb2.AdditionalInformationReceived):
                    raise PoisonMessage(f"review does not take {event.event_type} as information")
                decided += self._apply(uow, evaluator, message, now, event.event_id)
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()
        if self._metrics is not None:
            self._metrics.decided(decided)

    def _apply(self, uow: UnitOfWork, evaluator: Evaluator, message: events_pb2.AdditionalInformationReceived,
               now: dt.datetime, event_id: str) -> list[LineDecided]:
        """Apply one event (``event_id``); returns the lines it decided again (by software)."""
        case = uow.cases.get(message.request_id, for_update=True)
        if case is None:
            # The request's own event has not been applied yet (another topic); try again shortly.
            raise TransientError(f"additional information for request {message.request_id} arrived before it")
        request = events_pb2.RequestSubmitted.FromString(case.request)
        names = {f.name for f in message.clinical_facts}
        kept = [f for f in request.clinical_facts if f.name not in names]
        del request.clinical_facts[:]
        request.clinical_facts.extend([*kept, *message.clinical_facts])
        case.request = request.SerializeToString()
        uow.cases.save(case)
        uow.audit(AuditRecord("information.applied", case.request_id, {
            "information_id": message.information_id, "count": len(message.clinical_facts)}, event_id=event_id,
            member_id=case.member_id))
        stored = types_pb2.Determination.FromString(case.determination)
        if case.clock is not None and case.clock.paused_at is not None:
            follow_clock(uow, case, stored, self._clocks.information_received(case.clock, now), self._at_risk, now,
                         event_id=event_id)
        facts = facts_of(request)
        decided: list[LineDecided] = []
        for task in uow.tasks.of_request(message.request_id):
            if not task.undecided or task.is_appeal:
                continue
            line = service_line(request, task.line_number)
            evaluation = evaluator.evaluate(line_facts(request, line, task.line_of_business, facts))
            decision = decide_line(evaluation, line.procedure_code, task.line_of_business, [])
            previous = line_of(stored, task.line_number)
            if previous is None:
                raise PoisonMessage(f"the determination of request {task.request_id} has no line {task.line_number}")
            determined = reevaluated_line(line, decision, evaluation, previous, now)
            flagged = bool(previous.explanation.flags)
            approved = decision.action == ACTION_CERTIFIED and not flagged and task.approvable_on_criteria
            if approved:
                certify(determined, line, evaluation)
                task.approve_on_criteria(now)
                save_task(uow, task, event_id=event_id)
                uow.provider_outcomes.update_outcome(task.request_id, task.line_number, approved=True,
                                                     decided_by=SYSTEM_DECIDER.id, decided_at=now)
            else:
                if decision.action == ACTION_CERTIFIED:
                    hold_for_person(determined)
                outcome = decision.outcome if decision.outcome not in MEETS else Outcome.REFER_TO_NURSE
                task.reopen_with(outcome, tuple(determined.reasons),
                                 decision.reasons[0] if decision.reasons else "re-evaluated", now)
                if evaluation is not None and evaluation.urgency is not None:
                    # The queue order follows at once; the clock keeps the course it took when it was pended.
                    task.follow_urgency("expedited", f"after the information received, {evaluation.urgency.reason()}",
                                        now)
                save_task(uow, task, event_id=event_id)
            out = announce_line(uow, self._topics.determination_made, case, request, stored, determined, now,
                                event_id=event_id)
            if approved and self._notices is not None:
                self._notices.for_lines(uow, case, request, out.determination_id, [determined], now)
            action = to_name(types_pb2.ActionCode, determined.action_code) or "unspecified"
            decided.append(LineDecided("software", action, case.regime, case.urgency, case.received_at, now))
        return decided
