"""Authorization's use cases: issue authorizations for certified lines, look them up."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.domain import numbers
from services.authorization.domain.model import (
    AuthorizationToIssue,
    DecidedLine,
    IssuedAuthorization,
    plan_authorizations,
)
from services.authorization.service_layer.ports import AuthorizationUnitOfWork, Clock
from services.common.errors import FieldViolation, NotFound, PoisonMessage, ValidationFailed
from services.common.events import IncomingEvent, OutgoingEvent
from services.common.proto_enums import to_name
from services.common.topics import Topics

logger = logging.getLogger(__name__)

CONSUMER_NAME = "authorization"
ACTION = types_pb2.ActionCode


def _date(d: types_pb2.Date) -> dt.date | None:
    if d.year == 0:
        return None
    try:
        return dt.date(d.year, d.month, d.day)
    except ValueError as exc:
        raise PoisonMessage(f"invalid date {d.year}-{d.month}-{d.day}") from exc


_STATUS = {"active": types_pb2.AUTHORIZATION_STATUS_APPROVED, "expired": types_pb2.AUTHORIZATION_STATUS_EXPIRED,
           "cancelled": types_pb2.AUTHORIZATION_STATUS_CANCELLED}


def to_proto(issued: IssuedAuthorization) -> types_pb2.Authorization:
    status = _STATUS.get(issued.status, types_pb2.AUTHORIZATION_STATUS_UNSPECIFIED)
    auth = types_pb2.Authorization(
        authorization_number=issued.authorization_number, request_id=issued.request_id,
        line_number=issued.line_number, member_id=issued.member_id, procedure_code=issued.procedure_code,
        units=issued.units, status=status, determination_id=issued.determination_id,
        valid_from=types_pb2.Date(year=issued.valid_from.year, month=issued.valid_from.month,
                                  day=issued.valid_from.day),
        valid_to=types_pb2.Date(year=issued.valid_to.year, month=issued.valid_to.month, day=issued.valid_to.day))
    auth.issued_at.FromDatetime(issued.issued_at)
    return auth


class AuthorizationHandlers:
    def __init__(self, uow_factory: Callable[[], AuthorizationUnitOfWork], topics: Topics,
                 validity_days: int = 90, *, clock: Clock) -> None:
        self._uow = uow_factory
        self._now = clock
        self._topics = topics
        self._validity_days = validity_days

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Issue authorizations for every certified line of every new determination, once."""
        now = self._now()
        with self._uow() as uow:
            done = uow.already_processed(CONSUMER_NAME, [e.event_id for e in events])
            fresh = [e for e in events if e.event_id not in done]
            messages: list[events_pb2.DeterminationMade] = []
            for event in fresh:
                if not isinstance(event.message, events_pb2.DeterminationMade):
                    raise PoisonMessage(f"authorization does not consume {type(event.message).__name__}")
                messages.append(event.message)
            existing = uow.authorizations.lines_already_authorized(
                [m.determination.request_id for m in messages])
            drafts: list[AuthorizationToIssue] = []
            for message in messages:
                drafts.extend(self._drafts(message, now, existing))
            stored = uow.authorizations.add_many(drafts)
            by_request: dict[str, list[IssuedAuthorization]] = {}
            for auth in stored:
                by_request.setdefault(auth.request_id, []).append(auth)
            for message in messages:
                issued = by_request.get(message.determination.request_id)
                if not issued:
                    continue
                uow.publish(OutgoingEvent(
                    topic=self._topics.authorizations_issued, key=message.determination.request_id,
                    message=events_pb2.AuthorizationsIssued(
                        request_id=message.determination.request_id,
                        determination_id=message.determination.determination_id,
                        authorizations=[to_proto(r) for r in issued])))
            uow.mark_processed(CONSUMER_NAME, [e.event_id for e in fresh])
            uow.commit()
        if stored:
            logger.info("issued %d authorizations for %d determinations", len(stored), len(messages))

    def _drafts(self, message: events_pb2.DeterminationMade, now: dt.datetime,
                existing: set[tuple[str, int]]) -> list[AuthorizationToIssue]:
        det = message.determination
        if not det.request_id or not det.determination_id:
            raise PoisonMessage("determination without request id or determination id")
        if not message.member_id:
            raise PoisonMessage(f"determination {det.determination_id} carries no member id")
        lines = [DecidedLine(line_number=ln.line_number, procedure_code=ln.procedure_code,
                             action=to_name(ACTION, ln.action_code) or "", approved_units=ln.approved_units,
                             approved_start=_date(ln.approved_start), approved_end=_date(ln.approved_end))
                 for ln in det.lines]
        drafts = plan_authorizations(lines, now.date(), self._validity_days)
        return [AuthorizationToIssue(
                    request_id=det.request_id, line_number=d.line_number, determination_id=det.determination_id,
                    member_id=message.member_id, procedure_code=d.procedure_code, units=d.units,
                    valid_from=d.valid_from, valid_to=d.valid_to, status="active", issued_at=now)
                for d in drafts if (det.request_id, d.line_number) not in existing]

    # -- queries -------------------------------------------------------------------------------
    def get(self, number: str) -> types_pb2.Authorization:
        canonical = numbers.normalize(number)
        if not numbers.is_well_formed(canonical):
            raise ValidationFailed([FieldViolation(
                "authorization_number", f"{number!r} is not an authorization number (like UR26-8K3F-Q9ZD)")])
        with self._uow().read_only() as uow:
            found = uow.authorizations.by_number(canonical)
        if found is None:
            raise NotFound(f"no authorization {canonical}")
        return to_proto(found)

    def for_member(self, member_id: str, procedure_code: str, overlaps_from: dt.date | None,
                   overlaps_to: dt.date | None, active_only: bool, limit: int) -> list[types_pb2.Authorization]:
        if not member_id:
            raise ValidationFailed([FieldViolation("member_id", "required")])
        if not 0 <= limit <= 1000:
            raise ValidationFailed([FieldViolation("limit", "between 1 and 1000 (0 means 100)")])
        with self._uow().read_only() as uow:
            found = uow.authorizations.for_member(member_id, procedure_code, overlaps_from, overlaps_to,
                                                  active_only, limit or 100)
        return [to_proto(a) for a in found]
