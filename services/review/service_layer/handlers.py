"""Review's use cases: evaluate each submitted request line by line, approve
what clearly meets criteria, queue the rest for people, and announce the
determination; answer queries about determinations and the queue."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit.chain import AuditRecord
from services.common.audit.recording import record_views
from services.common.clock import Clock
from services.common.errors import FieldViolation, NotFound, PoisonMessage, ValidationFailed
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.proto_enums import to_name
from services.common.topics import Topics
from services.review.domain.case import Case
from services.review.domain.criteria import LineEvaluation, Outcome
from services.review.domain.deadlines import ClockEngine, ClockError
from services.review.domain.decisions import ACTION_CERTIFIED, decide_with_policy
from services.review.domain.notices import Notice
from services.review.domain.policy import GoldCard, LineOutcome, NoPriorAuthEntry, Policies
from services.review.domain.task import Task
from services.review.domain.urgency import UrgentLine, route
from services.review.service_layer.auditing import add_tasks, line_decided, tasks_viewed
from services.review.service_layer.determinations import (
    SYSTEM_DECIDER,
    certify,
    determination_made,
    request_decider,
    rules_line,
)
from services.review.service_layer.lines import line_facts
from services.review.service_layer.notices import NoticeWriter
from services.review.service_layer.ports import (
    DecisionMetrics,
    DuplicateChecker,
    Evaluator,
    LineDecided,
    LineQuery,
    UnitOfWork,
)
from services.review.service_layer.submitted import clock_request, date_of, facts_of

logger = logging.getLogger(__name__)

CONSUMER_NAME = "review"
LOB = types_pb2.LineOfBusiness
URGENCY = types_pb2.Urgency
REVIEW_TYPE = types_pb2.ReviewType
ACTION = types_pb2.ActionCode


@dataclass(frozen=True)
class _Decided:
    event_id: str
    case: Case
    tasks: list[Task]
    outcomes: list[LineOutcome]
    event: events_pb2.DeterminationMade
    request: events_pb2.RequestSubmitted


@dataclass(frozen=True)
class _Line:
    """One service line before its decision: what the no-PA list and criteria say about it."""

    line: types_pb2.ServiceLine
    no_prior_auth: NoPriorAuthEntry | None
    evaluation: LineEvaluation | None


@dataclass(frozen=True)
class _Assessed:
    event: IncomingEvent
    message: events_pb2.RequestSubmitted
    lob: str
    urgency: str
    review_type: str
    lines: list[_Line]

    @property
    def npi(self) -> str:
        return str(self.message.requesting_provider.npi)

    def urgent_lines(self) -> list[UrgentLine]:
        """The lines their criteria call urgent (a met urgent rule, or a red flag while a fact is
        missing), with why; lines on the no-prior-authorization list need no review at all."""
        return [UrgentLine(a.line.line_number, a.evaluation.urgency.reason()) for a in self.lines
                if a.no_prior_auth is None and a.evaluation is not None and a.evaluation.urgency is not None]

    def gold_card_candidates(self) -> set[tuple[str, str]]:
        """(npi, category) of the lines an exemption could still change: covered by criteria that
        did not approve them."""
        if not self.npi:
            return set()
        return {(self.npi, a.evaluation.category) for a in self.lines
                if a.no_prior_auth is None and a.evaluation is not None
                and a.evaluation.outcome not in (Outcome.MEETS_CRITERIA, Outcome.MEETS_CRITERIA_URGENT)}


class ReviewHandlers:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], topics: Topics, evaluator: Evaluator,
                 duplicates: DuplicateChecker, clocks: ClockEngine, *, clock: Clock,
                 policies: Policies | None = None, current_evaluator: Callable[[], Evaluator] | None = None,
                 at_risk_fraction: float = 0.2, notices: NoticeWriter | None = None,
                 metrics: DecisionMetrics | None = None) -> None:
        """``current_evaluator``, when given, is asked once per batch for the evaluator to use (the
        criteria library may be reloaded while the service runs); otherwise ``evaluator`` is.
        ``at_risk_fraction``: a task is at risk once less than this share of its clock is left;
        ``metrics`` counts the lines decided."""
        self._clocks = clocks
        self._now = clock
        self._at_risk = at_risk_fraction
        self._uow = uow_factory
        self._topics = topics
        self._current_evaluator = current_evaluator or (lambda: evaluator)
        self._duplicates = duplicates
        self._policies = policies or Policies()
        self._notices = notices
        self._metrics = metrics

    # -- events --------------------------------------------------------------------------------
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Decide every new request once. Evaluation, the duplicate check and the providers'
        records run before the transaction opens; the write is one transaction.

        Per line: a code on the no-prior-authorization list → no action required; otherwise the
        criteria set covering it is applied (one library version for the whole batch, so a batch
        in flight finishes on the version it started with); a possible duplicate goes to a nurse;
        a line criteria do not approve is approved when the requesting provider is gold-carded for
        the set's category; the rest is decided by criteria."""
        evaluator = self._current_evaluator()
        with self._uow().read_only() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            decided_before = uow.cases.existing([_request_id(e) for e in fresh])
        todo: dict[str, IncomingEvent] = {}
        for event in fresh:
            request_id = _request_id(event)
            if request_id not in decided_before:
                todo.setdefault(request_id, event)
        pending = list(todo.values())
        overlaps = self._duplicates.overlapping([_line_queries(e) for e in pending])
        assessed = [self._assess(e, evaluator) for e in pending]
        cards = self._gold_cards(assessed)
        decided = [self._decide(a, o, cards) for a, o in zip(assessed, overlaps, strict=True)]
        with self._uow() as uow:
            # A second look inside the transaction; the primary key on cases is the final guard.
            still_new = set(todo) - uow.cases.existing(list(todo))
            decided = [d for d in decided if d.case.request_id in still_new]
            uow.cases.add_many([d.case for d in decided])
            uow.provider_outcomes.add_many([o for d in decided for o in d.outcomes])
            now = self._now()
            notices: list[Notice] = []  # the batch's, stored together
            for d in decided:
                outgoing = OutgoingEvent(topic=self._topics.determination_made, key=d.case.request_id,
                                         message=d.event)
                uow.publish(outgoing)
                uow.audit(_received(d), *[
                    line_decided(d.case.request_id, d.case.member_id, d.case.determination_id, ln,
                                 event_id=d.event_id, emitted=outgoing.event_id)
                    for ln in d.event.determination.lines])
                if self._notices is not None:
                    # Software's approvals are decisions too: the member and the provider hear of them.
                    self._notices.for_lines(uow, d.case, d.request, d.case.determination_id,
                                            [ln for ln in d.event.determination.lines if not ln.queued_for_review],
                                            now, unstored=notices)
            uow.notices.add_many(notices)
            add_tasks(uow, [t for d in decided for t in d.tasks], event_of={d.case.request_id: d.event_id
                                                                            for d in decided})
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()
        if decided:
            queued = sum(len(d.tasks) for d in decided)
            logger.info("decided %d requests (%d lines queued for review)", len(decided), queued)
            if self._metrics is not None:
                self._metrics.decided([
                    LineDecided("software", to_name(ACTION, line.action_code) or "unspecified", d.case.regime,
                                d.case.urgency, d.case.received_at, d.case.created_at)
                    for d in decided for line in d.event.determination.lines])

    def _assess(self, event: IncomingEvent, evaluator: Evaluator) -> _Assessed:
        """The no-PA list and criteria applied to each line of a request (no I/O)."""
        message = _submitted(event)
        lob = to_name(LOB, message.coverage.line_of_business)
        urgency = to_name(URGENCY, message.urgency) or "standard"
        review_type = to_name(REVIEW_TYPE, message.review_type) or "prospective"
        if lob is None or not message.service_lines or not message.member_id:
            raise PoisonMessage(f"request {message.request_id} lacks line of business, member or service lines")
        facts = facts_of(message)
        lines = []
        for line in message.service_lines:
            listed = self._policies.no_prior_auth.lookup(lob, line.procedure_code)
            evaluation = None if listed is not None else evaluator.evaluate(line_facts(message, line, lob, facts))
            lines.append(_Line(line, listed, evaluation))
        return _Assessed(event, message, lob, urgency, review_type, lines)

    def _gold_cards(self, assessed: Sequence[_Assessed]) -> dict[tuple[str, str], GoldCard]:
        """The exemptions of the batch's providers, from one aggregate query over their records."""
        pairs = set().union(*(a.gold_card_candidates() for a in assessed)) if assessed else set()
        if not pairs:
            return {}
        policy = self._policies.gold_card
        with self._uow().read_only() as uow:
            records = uow.provider_outcomes.records(pairs, policy.window_start(self._now()))
        return policy.exemptions(records)

    def _decide(self, assessed: _Assessed, overlaps: dict[int, list[str]],
                cards: dict[tuple[str, str], GoldCard]) -> _Decided:
        event, message, lob = assessed.event, assessed.message, assessed.lob
        urgency, review_type = assessed.urgency, assessed.review_type
        request_id = message.request_id
        state = message.coverage.member_state
        received_at = message.received_at.ToDatetime(tzinfo=dt.UTC)
        try:
            deadline = self._clocks.start(clock_request(message, lob, urgency, review_type))
            routing = route(urgency, review_type, deadline.regime, assessed.urgent_lines())
            if routing.clock_urgency != urgency:
                deadline = self._clocks.start(clock_request(message, lob, routing.clock_urgency, review_type,
                                                            routing.clock_reason))
        except ClockError as exc:  # e.g. a year the holiday calendars do not cover: refuse, never guess
            raise PoisonMessage(f"request {request_id}: no regulatory clock: {exc}") from exc
        if deadline.due_at is None:
            raise PoisonMessage(f"request {request_id}: the regulatory clock started without a due time")
        now = self._now()
        determination = types_pb2.Determination(
            request_id=request_id, determination_id=str(uuid.uuid4()), decided_by=SYSTEM_DECIDER,
            certification_type=message.certification_type,
            related_authorization_number=message.related_authorization_number)
        determination.decided_at.FromDatetime(now)
        determination.clock.regime = deadline.regime
        determination.clock.rule = deadline.rule
        determination.clock.due_at.FromDatetime(deadline.due_at)
        tasks: list[Task] = []
        outcomes: list[LineOutcome] = []
        for assessed_line in assessed.lines:
            line, evaluation = assessed_line.line, assessed_line.evaluation
            card = cards.get((assessed.npi, evaluation.category)) if evaluation is not None else None
            decision = decide_with_policy(evaluation, line.procedure_code, lob, overlaps.get(line.line_number, []),
                                          no_prior_auth=assessed_line.no_prior_auth,
                                          no_prior_auth_list=self._policies.no_prior_auth.name, gold_card=card)
            out = rules_line(line, decision, evaluation, now=now)
            if decision.action == ACTION_CERTIFIED:
                certify(out, line, evaluation)
            task_urgency, urgency_reason = routing.for_line(line.line_number)
            if decision.queued_for_review and urgency_reason:
                out.reasons.append(f"{task_urgency} review: {urgency_reason}")
            determination.lines.add().CopyFrom(out)
            category = evaluation.category if evaluation is not None else "general"
            if decision.queued_for_review:
                tasks.append(Task.open_for_review(
                    task_id=str(uuid.uuid4()), request_id=request_id, line_number=line.line_number,
                    procedure_code=line.procedure_code, line_of_business=lob, member_state=state,
                    urgency=task_urgency, outcome=decision.outcome, reasons=(*decision.reasons, *decision.flags),
                    clock=deadline, category=category, units=line.units, now=now, at_risk_fraction=self._at_risk,
                    urgency_reason=urgency_reason))
            if decision.counts_for_gold_card and evaluation is not None and assessed.npi:
                outcomes.append(LineOutcome(request_id, line.line_number, assessed.npi, category, now,
                                            decision.approved, SYSTEM_DECIDER.id))
        case = Case(request_id=request_id, determination_id=determination.determination_id,
                    member_id=message.member_id, line_of_business=lob, member_state=state,
                    urgency=routing.clock_urgency,
                    review_type=review_type, requesting_npi=message.requesting_provider.npi,
                    received_at=received_at, due_at=deadline.due_at, regime=deadline.regime,
                    request=message.SerializeToString(), determination=determination.SerializeToString(),
                    created_at=now, clock=deadline)
        determination.decided_by.CopyFrom(request_decider(determination))
        outgoing = determination_made(determination, message)
        return _Decided(event.event_id, case, tasks, outcomes, outgoing, message)

    # -- queries -------------------------------------------------------------------------------
    def determination(self, request_id: str) -> types_pb2.Determination:
        with self._uow().read_only() as uow:
            case = uow.cases.get(request_id)
        if case is None:
            raise NotFound(f"no determination for request {request_id!r} (unknown, or not evaluated yet)")
        record_views(self._uow, [AuditRecord("determination.viewed", case.request_id, {
            "determination_id": case.determination_id}, member_id=case.member_id)])
        return types_pb2.Determination.FromString(case.determination)

    def queue(self, page_size: int, page_token: str) -> tuple[list[Task], str, int]:
        """A page of the open tasks, most urgent first, the next page's token and how many are open."""
        if not 0 <= page_size <= 500:
            raise ValidationFailed([FieldViolation("page_size", "between 1 and 500 (0 means 50)")])
        # The tokens issued are offsets; int() alone would take '-5', a full-width digit or a hundred digits.
        if page_token and not re.fullmatch(r"[0-9]{1,9}", page_token):
            raise ValidationFailed([FieldViolation("page_token", "not a token this service issued")])
        offset = int(page_token) if page_token else 0
        size = page_size or 50
        with self._uow().read_only() as uow:
            tasks, total = uow.tasks.open_tasks(size, offset)
        record_views(self._uow, tasks_viewed(tasks, "", "queue"))
        next_token = str(offset + size) if offset + size < total else ""
        return tasks, next_token, total


def _received(d: _Decided) -> AuditRecord:
    """The audit record of a request review took up: its clock and how many lines wait for people."""
    return AuditRecord("request.received", d.case.request_id, {
        "determination_id": d.case.determination_id, "regime": d.case.regime, "urgency": d.case.urgency,
        "lines": len(d.event.determination.lines), "count": len(d.tasks)}, event_id=d.event_id,
        member_id=d.case.member_id)


def _line_queries(event: IncomingEvent) -> tuple[str, list[LineQuery]]:
    message = _submitted(event)
    queries = []
    for line in message.service_lines:
        start = date_of(line.start_date)
        if start is None:
            raise PoisonMessage(f"request {message.request_id} line {line.line_number} has no start date")
        queries.append(LineQuery(line.line_number, line.procedure_code, start, date_of(line.end_date) or start))
    return message.member_id, queries


def _submitted(event: IncomingEvent) -> events_pb2.RequestSubmitted:
    message = event.message
    if not isinstance(message, events_pb2.RequestSubmitted):
        raise PoisonMessage(f"review does not consume {event.event_type}")
    return message


def _request_id(event: IncomingEvent) -> str:
    message = _submitted(event)
    if not message.request_id:
        raise PoisonMessage("RequestSubmitted without request_id")
    return str(message.request_id)
