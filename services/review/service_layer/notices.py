"""Issuing notices: from a determination's lines (as stored and announced) to the letters of
``domain/notices.py``, stored through the unit of work with the determination and announced by a
``NoticeIssued`` event each, in the same transaction as the decision they tell of."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.common.audit.chain import AuditRecord, identifier
from services.common.audit.recording import record_views
from services.common.errors import FieldViolation, NotFound, ValidationFailed
from services.common.events import OutgoingEvent
from services.common.proto_enums import to_name
from services.common.topics import Topics
from services.review.domain.appeals import AppealRight, AppealRights
from services.review.domain.case import Case
from services.review.domain.notices import (
    AppealDecision,
    Criterion,
    Notice,
    NoticeFacts,
    NoticeKind,
    Party,
    ServiceAction,
    ServiceDecision,
    Shortfall,
    SpecificReason,
    compose,
    recipients,
)
from services.review.service_layer.auditing import notices_issued, notices_viewed
from services.review.service_layer.lines import proto_date, to_proto_date
from services.review.service_layer.ports import UnitOfWork

ACTION = types_pb2.ActionCode
_SERVICE_ACTION = {"certified_in_total": ServiceAction.APPROVED, "certified_partial": ServiceAction.APPROVED_IN_PART,
                   "modified": ServiceAction.MODIFIED, "not_certified": ServiceAction.DENIED}
# The most adverse line sets the notice's kind.
_KIND_ORDER = ((ServiceAction.DENIED, NoticeKind.DENIAL), (ServiceAction.MODIFIED, NoticeKind.MODIFICATION),
               (ServiceAction.APPROVED_IN_PART, NoticeKind.PARTIAL_APPROVAL),
               (ServiceAction.APPROVED, NoticeKind.APPROVAL),
               (ServiceAction.INFORMATION_REQUESTED, NoticeKind.REQUEST_FOR_INFORMATION))


def appeal_rights_proto(right: AppealRight, notice_date: dt.date) -> types_pb2.AppealRights:
    """The appeal rights an adverse line carries (intake enforces ``file_by``)."""
    return types_pb2.AppealRights(regime=right.regime, level=right.level, filing_window_days=right.filing_window_days,
                                  file_by=to_proto_date(right.file_by(notice_date)),
                                  who_may_file=list(right.who_may_file), decision_time=right.decision_time,
                                  next_level=right.next_level, citation=right.citation, file_with=right.file_with)


def _stated(observed: Sequence[str]) -> str:
    """``conservative_therapy_weeks=2 weeks`` as a reader says it: ``2 weeks``."""
    return ", ".join(o.split("=", 1)[1] if "=" in o else o for o in observed)


def specific_reason(explanation: types_pb2.Explanation) -> SpecificReason | None:
    n = explanation.nearest
    if not (n.summary or n.unmet or n.missing or n.not_applicable):
        return None
    return SpecificReason(met=tuple(c.description for c in n.met),
                          unmet=tuple(Shortfall(c.description, _stated(c.observed)) for c in n.unmet),
                          missing=tuple(c.description for c in n.missing), not_applicable=tuple(n.not_applicable),
                          summary=n.summary)


def criterion_of(line: types_pb2.LineDetermination) -> Criterion | None:
    """The criterion a line rests on: the one its decider cited ("id@version: condition"), else the
    criteria set that evaluated it."""
    e = line.explanation
    cited_id, cited_version, condition = e.criteria_id, e.criteria_version, ""
    if line.criterion:
        head, _, tail = line.criterion.partition(":")
        if "@" in head:
            cited_id, _, cited_version = head.strip().partition("@")
        condition_id = tail.strip()
        condition = next((c.description for c in e.conditions if c.condition_id == condition_id), condition_id)
    if not cited_id:
        return None
    same = cited_id == e.criteria_id
    return Criterion(id=cited_id, version=cited_version, title=e.criteria_title if same else cited_id,
                     sources=tuple(e.criteria_sources) if same else (), condition=condition)


def service_decision(line: types_pb2.LineDetermination, service_line: types_pb2.ServiceLine | None) -> ServiceDecision:
    action_name = to_name(ACTION, line.action_code) or ""
    action = _SERVICE_ACTION.get(action_name, ServiceAction.INFORMATION_REQUESTED if line.requested_facts
                                 else ServiceAction.PENDED)
    code = line.procedure_code
    adverse = action in (ServiceAction.DENIED, ServiceAction.APPROVED_IN_PART, ServiceAction.MODIFIED)
    reviewer_reason = ""
    if adverse:
        prefix = next((r for r in line.reasons if ": " in r and " by " in r.split(": ", 1)[0]), "")
        reviewer_reason = prefix.split(": ", 1)[1] if prefix else ""
    return ServiceDecision(
        line_number=line.line_number, procedure_code=code,
        service=line.explanation.criteria_title or f"the service with code {code}", action=action,
        requested_units=service_line.units if service_line is not None else line.approved_units,
        approved_units=line.approved_units, unit=line.unit or "units", start=proto_date(line.approved_start),
        end=proto_date(line.approved_end), reviewer_reason=reviewer_reason,
        specific=specific_reason(line.explanation) if adverse else None,
        criterion=criterion_of(line) if adverse else None, decider_name=line.decided_by.name,
        decider_credential=line.decided_by.credential, decider_role=line.decided_by.role,
        next_review_date=proto_date(line.next_review_date), requested_facts=tuple(line.requested_facts),
        information_due=proto_date(line.information_due))


def kind_of(services: Sequence[ServiceDecision]) -> NoticeKind | None:
    """The notice a determination's lines call for (the most adverse sets it); None when nothing was
    decided (lines only queued for a person)."""
    actions = {s.action for s in services}
    return next((kind for action, kind in _KIND_ORDER if action in actions), None)


def _party(contact: types_pb2.Contact, fallback: str) -> Party:
    return Party(contact.name or fallback, tuple(contact.address_lines))


class NoticeWriter:
    """Writes, stores and announces the notices of a determination."""

    def __init__(self, rights: AppealRights, topics: Topics) -> None:
        self.rights = rights
        self._topics = topics

    def right_for(self, case: Case) -> AppealRight:
        return self.rights.for_line(case.line_of_business, case.member_state)

    def facts(self, kind: NoticeKind, case: Case, request: events_pb2.RequestSubmitted, determination_id: str,
              services: Sequence[ServiceDecision], now: dt.datetime, *, new_due: dt.datetime | None = None,
              extension_ground: str = "", missed_due: dt.datetime | None = None,
              appeal: AppealDecision | None = None) -> NoticeFacts:
        wc = request.workers_comp
        return NoticeFacts(
            kind=kind, request_id=case.request_id, determination_id=determination_id, member_id=case.member_id,
            member=_party(request.member_contact, f"Member {case.member_id}"),
            line_of_business=case.line_of_business, member_state=case.member_state,
            requesting_provider=Party(request.requesting_provider.name or f"Provider {request.requesting_provider.npi}",
                                      npi=request.requesting_provider.npi),
            issued_on=now.date(), services=tuple(services),
            rights=self.right_for(case) if kind in _WITH_RIGHTS else None,
            claim_number=wc.claim_number or (request.coverage.plan_id if case.line_of_business == "workers_comp"
                                             else ""),
            new_due=new_due, extension_ground=extension_ground, missed_due=missed_due, appeal=appeal)

    def issue(self, uow: UnitOfWork, facts: NoticeFacts, request: events_pb2.RequestSubmitted,
              now: dt.datetime, *, unstored: list[Notice] | None = None) -> list[Notice]:
        """Compose the notice for every recipient, store them and announce each (NoticeIssued).
        With ``unstored``, the notices are added to it instead, for the caller to store with others
        of the same transaction in one statement."""
        wc = request.workers_comp
        adjuster = _party(wc.adjuster, "Claims adjuster") if wc.HasField("adjuster") else None
        attorney = _party(wc.attorney, "Attorney") if wc.HasField("attorney") and wc.attorney.name else None
        notices = [compose(facts, role, party, str(uuid.uuid4()), now)
                   for role, party in recipients(facts, adjuster, attorney)]
        if unstored is None:
            uow.notices.add_many(notices)
        else:
            unstored.extend(notices)
        emitted: dict[str, str] = {}
        for n in notices:
            event = events_pb2.NoticeIssued(notice_id=n.notice_id, request_id=n.request_id,
                                            determination_id=n.determination_id, kind=n.kind.value,
                                            recipient_role=n.recipient_role, recipient_name=n.recipient.name,
                                            line_numbers=list(n.line_numbers), member_id=n.member_id)
            event.issued_at.FromDatetime(now)
            outgoing = OutgoingEvent(topic=self._topics.notice_issued, key=n.request_id, message=event)
            uow.publish(outgoing)
            emitted[n.notice_id] = outgoing.event_id
        uow.audit(*notices_issued(notices, emitted))
        return notices

    def for_lines(self, uow: UnitOfWork, case: Case, request: events_pb2.RequestSubmitted, determination_id: str,
                  lines: Sequence[types_pb2.LineDetermination], now: dt.datetime, *,
                  appeal: AppealDecision | None = None, unstored: list[Notice] | None = None) -> list[Notice]:
        """The notices of decided ``lines`` (none when every line only waits for a person); ``unstored``
        as for :meth:`issue`."""
        by_number = {sl.line_number: sl for sl in request.service_lines}
        services = [service_decision(ln, by_number.get(ln.line_number)) for ln in lines]
        services = [s for s in services if s.action is not ServiceAction.PENDED]
        kind = NoticeKind.APPEAL_DECISION if appeal is not None else kind_of(services)
        if kind is None or not services:
            return []
        return self.issue(uow, self.facts(kind, case, request, determination_id, services, now, appeal=appeal),
                          request, now, unstored=unstored)


_WITH_RIGHTS = frozenset({NoticeKind.DENIAL, NoticeKind.PARTIAL_APPROVAL, NoticeKind.MODIFICATION,
                          NoticeKind.DEEMED_DENIAL, NoticeKind.APPEAL_DECISION})


# -- queries -------------------------------------------------------------------------------------

class NoticeQueries:
    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self._uow = uow_factory

    def get(self, notice_id: str) -> Notice:
        with self._uow().read_only() as uow:
            found = uow.notices.get(notice_id.strip())
        if found is None:
            raise NotFound(f"no notice {notice_id!r}")
        record_views(self._uow, notices_viewed([found]))
        return found

    def listed(self, request_id: str, member_id: str) -> list[Notice]:
        if bool(request_id.strip()) == bool(member_id.strip()):
            raise ValidationFailed([FieldViolation("request_id", "give a request id or a member id (one of them)")])
        with self._uow().read_only() as uow:
            if request_id.strip():
                found = list(uow.notices.of_request(request_id.strip()))
            else:
                found = list(uow.notices.of_member(member_id.strip()))
        # One entry per notice shown; a search that found none still tells what it was about.
        record_views(self._uow, notices_viewed(found) or [AuditRecord(
            "notice.listed", identifier(request_id.strip()) if request_id.strip() else "", {"count": 0},
            member_id=member_id.strip())])
        return found
