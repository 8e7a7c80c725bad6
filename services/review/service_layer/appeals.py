"""Appeals filed through intake (AppealFiled): each becomes an appeal on its regime's own clock and
a task for a physician of the line's specialty other than the one who made the decision appealed.
The decision on that task is the appeal's (services/review/service_layer/decisions.py)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit.recording import record_views
from services.common.clock import Clock
from services.common.errors import NotFound, PoisonMessage, TransientError
from services.common.events import IncomingEvent
from services.common.proto_enums import to_name
from services.review.domain.appeals import Appeal, AppealRights
from services.review.domain.deadlines import ClockEngine, ClockError, ClockRequest
from services.review.domain.task import Task
from services.review.service_layer.auditing import add_tasks, appeal_record
from services.review.service_layer.determinations import line_of
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import use_case
from services.review.service_layer.submitted import service_line

logger = logging.getLogger(__name__)

CONSUMER_NAME = "review-appeals"
URGENCY = types_pb2.Urgency
#: Deciders whose decision an appeal may not return to: people (software never denies).
PEOPLE = frozenset({"nurse", "physician", "adjuster", "appeal_reviewer"})


class Appeals:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clocks: ClockEngine, rights: AppealRights, *,
                 clock: Clock, at_risk_fraction: float = 0.2) -> None:
        self._uow = uow_factory
        self._clocks = clocks
        self._rights = rights
        self._now = clock
        self._at_risk = at_risk_fraction

    @use_case
    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Open each new appeal once, with its task, in one transaction with the record of having done so."""
        now = self._now()
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            for event in fresh:
                if not isinstance(event.message, events_pb2.AppealFiled):
                    raise PoisonMessage(f"review does not take {event.event_type} as an appeal")
                self._open(uow, event.message, now, event.event_id)
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()

    def _open(self, uow: UnitOfWork, filed: events_pb2.AppealFiled, now: dt.datetime, event_id: str) -> None:
        if not filed.appeal_id or not filed.request_id:
            raise PoisonMessage("an appeal without its id or request id")
        if uow.appeals.get(filed.appeal_id) is not None:
            return
        case = uow.cases.get(filed.request_id, for_update=True)
        if case is None:
            raise TransientError(f"appeal {filed.appeal_id} of request {filed.request_id} arrived before the request")
        determination = types_pb2.Determination.FromString(case.determination)
        line = line_of(determination, filed.line_number)
        if line is None:
            raise PoisonMessage(f"appeal {filed.appeal_id}: request {filed.request_id} has no line {filed.line_number}")
        request = events_pb2.RequestSubmitted.FromString(case.request)
        if filed.clinical_facts:
            # New evidence joins the case: the appeal's reviewer sees it with the request's facts.
            names = {f.name for f in filed.clinical_facts}
            kept = [f for f in request.clinical_facts if f.name not in names]
            del request.clinical_facts[:]
            request.clinical_facts.extend([*kept, *filed.clinical_facts])
            case.request = request.SerializeToString()
            uow.cases.save(case)
        urgency = to_name(URGENCY, filed.urgency) or "standard"
        right = self._rights.for_line(case.line_of_business, case.member_state)
        filed_at = filed.filed_at.ToDatetime(tzinfo=dt.UTC) if filed.HasField("filed_at") else now
        inpatient = service_line(request, filed.line_number).place_of_service == \
            types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL
        try:
            clock = self._clocks.start_appeal(right.regime, ClockRequest(
                case.line_of_business, case.member_state, urgency, case.review_type, filed_at,
                "inpatient" if inpatient else ""))
        except ClockError as exc:
            raise PoisonMessage(f"appeal {filed.appeal_id}: no appeal clock: {exc}") from exc
        first = [t for t in uow.tasks.of_request(case.request_id) if t.line_number == filed.line_number]
        decider = line.decided_by.id if line.decided_by.role in PEOPLE else ""
        excluded = tuple(dict.fromkeys(x for x in (decider, *(t.assigned_to for t in first if t.assigned_to)) if x))
        category = first[0].category if first else "general"
        task = Task.open_for_appeal(
            task_id=str(uuid.uuid4()), appeal_id=filed.appeal_id, request_id=case.request_id,
            line_number=filed.line_number, procedure_code=line.procedure_code, line_of_business=case.line_of_business,
            member_state=case.member_state, urgency=urgency,
            reasons=(f"{right.level} filed by the {filed.appellant.replace('_', ' ')}"
                     + (f": {filed.reason}" if filed.reason else ""), *line.reasons),
            clock=clock, category=category, units=service_line(request, filed.line_number).units,
            excluded=excluded, now=now, at_risk_fraction=self._at_risk)
        add_tasks(uow, [task], event_id=event_id)
        appeal = Appeal(
            appeal_id=filed.appeal_id, request_id=case.request_id, line_number=filed.line_number,
            member_id=case.member_id, urgency=urgency, appellant=filed.appellant, appellant_name=filed.appellant_name,
            filed_at=filed_at, reason=filed.reason, regime=right.regime, clock=clock,
            original_decider=excluded[0] if excluded else "", task_id=task.task_id)
        uow.appeals.add(appeal)
        uow.audit(appeal_record("appeal.opened", appeal, event_id=event_id))
        logger.info("appeal %s of request %s line %d: %s, due %s, not for %s", filed.appeal_id, case.request_id,
                    filed.line_number, right.regime, clock.due_at, ", ".join(excluded) or "anyone in particular")

    def get(self, appeal_id: str) -> Appeal:
        with self._uow().read_only() as uow:
            found = uow.appeals.get(appeal_id.strip())
        if found is None:
            raise NotFound(f"no appeal {appeal_id!r}")
        record_views(self._uow, [appeal_record("appeal.viewed", found)])
        return found
