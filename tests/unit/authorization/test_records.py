"""What later determinations do to a record (fakes): an extension of a stay adds its days to the
authorization it names, an appeal that overturns a denial approves the record after appeal, a
cancellation leaves nothing to draw on; each line keeps its own decider; the metrics count them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.domain.claims import ClaimLine, Match
from services.authorization.domain.model import IssuedAuthorization
from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common.events import IncomingEvent
from services.common.topics import Topics
from tests.fakes.authorization import AuthorizationStore

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
NPI = "1234567893"
ISSUED_TOPIC = "t.authorization.authorizations-issued.v1"


@pytest.fixture
def store() -> AuthorizationStore:
    return AuthorizationStore()


@pytest.fixture
def handlers(store: AuthorizationStore) -> AuthorizationHandlers:
    return AuthorizationHandlers(store.unit_of_work, Topics("t"), validity_days=90, clock=lambda: NOW)


def pdate(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def line_of(action: types_pb2.ActionCode.ValueType, units: int, start: dt.date | None = None,
            end: dt.date | None = None, *, code: str = "99232", decider: str = "md-patel",
            role: str = "physician", at: dt.datetime = NOW) -> types_pb2.LineDetermination:
    line = types_pb2.LineDetermination(line_number=1, procedure_code=code, action_code=action, approved_units=units,
                                       unit="days", decided_by=types_pb2.DeciderRef(id=decider, role=role))
    line.decided_at.FromDatetime(at)
    if start is not None:
        line.approved_start.CopyFrom(pdate(start))
        line.approved_end.CopyFrom(pdate(end or start))
    return line


def send(handlers: AuthorizationHandlers, request_id: str, *lines: types_pb2.LineDetermination,
         certification: types_pb2.CertificationType.ValueType = types_pb2.CERTIFICATION_TYPE_INITIAL,
         extends: str = "", member: str = "M-1") -> None:
    det = types_pb2.Determination(request_id=request_id, determination_id=str(uuid.uuid4()),
                                  certification_type=certification, related_authorization_number=extends)
    det.lines.extend(lines)
    message = events_pb2.DeterminationMade(determination=det, member_id=member,
                                           servicing_provider=types_pb2.Provider(npi=NPI, name="General Hospital"))
    handlers.handle_batch([IncomingEvent(str(uuid.uuid4()), message.DESCRIPTOR.full_name, "1", request_id, message,
                                         "t", 0, 0)])


def record(store: AuthorizationStore, request_id: str) -> IssuedAuthorization:
    return next(a for a in store.authorizations.values() if a.request_id == request_id)


def test_an_extension_adds_its_days_to_the_stay_it_continues(store: AuthorizationStore,
                                                            handlers: AuthorizationHandlers) -> None:
    first_day = dt.date(2027, 3, 1)
    initial = line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 3, first_day, dt.date(2027, 3, 3))
    initial.next_review_date.CopyFrom(pdate(dt.date(2027, 3, 4)))
    send(handlers, "stay", initial)
    [original] = store.authorizations.values()
    assert (original.units, original.unit, original.next_review_date) == (3, "days", dt.date(2027, 3, 4))

    more = line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 3, dt.date(2027, 3, 4), dt.date(2027, 3, 6),
                   at=NOW + dt.timedelta(days=3))
    more.next_review_date.CopyFrom(pdate(dt.date(2027, 3, 7)))
    for _ in range(2):  # delivered twice: extended once
        send(handlers, "ext-1", more, certification=types_pb2.CERTIFICATION_TYPE_EXTENSION,
             extends=original.authorization_number.lower())
    [extended] = store.authorizations.values()  # no record of its own
    assert extended.authorization_number == original.authorization_number
    assert (extended.units, extended.valid_from, extended.valid_to) == (6, first_day, dt.date(2027, 3, 6))
    assert extended.next_review_date == dt.date(2027, 3, 7)
    assert [(e.request_id, e.units_added) for e in extended.extensions] == [("ext-1", 3)]
    day_five = ClaimLine("M-1", NPI, "99232", dt.date(2027, 3, 5), 1)
    assert handlers.check_claim(day_five).match is Match.COVERED

    # Both requests hear of it: the extension's (its line is now authorized) and the stay's own.
    told = [(e.key, e.message.authorizations[0].authorization_number)
            for e in store.outbox if isinstance(e.message, events_pb2.AuthorizationsIssued)]
    assert told[1:] == [("ext-1", original.authorization_number), ("stay", original.authorization_number)]


def test_a_denied_extension_gets_its_own_reference_and_the_stay_is_unchanged(store: AuthorizationStore,
                                                                             handlers: AuthorizationHandlers) -> None:
    send(handlers, "stay", line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 3, dt.date(2027, 3, 1),
                                   dt.date(2027, 3, 3)))
    [original] = store.authorizations.values()
    send(handlers, "ext-1", line_of(types_pb2.ACTION_CODE_PENDED, 0),
         certification=types_pb2.CERTIFICATION_TYPE_RENEWAL, extends=original.authorization_number)
    assert len(store.authorizations) == 1  # waiting: nothing yet
    send(handlers, "ext-1", line_of(types_pb2.ACTION_CODE_NOT_CERTIFIED, 0, at=NOW + dt.timedelta(hours=1)),
         certification=types_pb2.CERTIFICATION_TYPE_RENEWAL, extends=original.authorization_number)
    denial = record(store, "ext-1")
    assert denial.status == "denied"
    assert record(store, "stay") == original


def test_an_overturned_denial_is_approved_after_appeal_and_counted(store: AuthorizationStore,
                                                                   handlers: AuthorizationHandlers) -> None:
    send(handlers, "r1", line_of(types_pb2.ACTION_CODE_NOT_CERTIFIED, 0, code="72148"))
    denied = record(store, "r1")
    overturn = line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 1, dt.date(2027, 3, 20), code="72148",
                       decider="md-osei", role="appeal_reviewer", at=NOW + dt.timedelta(days=5))
    overturn.appeal.CopyFrom(types_pb2.AppealOutcome(appeal_id="ap-1", outcome="overturned"))
    send(handlers, "r1", overturn)
    after = record(store, "r1")
    assert after.authorization_number == denied.authorization_number
    assert (after.status, after.approved_after_appeal, after.appeal_id) == ("approved", True, "ap-1")
    assert after.decided_by is not None
    assert after.decided_by.role == "appeal_reviewer"
    send(handlers, "r2", line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 1, dt.date(2027, 3, 20)))
    send(handlers, "r3", line_of(types_pb2.ACTION_CODE_NOT_CERTIFIED, 0))
    metrics = handlers.metrics(None, None)
    assert (metrics.decided, metrics.approved, metrics.denied, metrics.approved_after_appeal) == (3, 2, 1, 1)
    assert handlers.metrics(dt.date(2027, 3, 2), None).decided == 0


def test_an_upheld_denial_stays_denied(store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    send(handlers, "r1", line_of(types_pb2.ACTION_CODE_NOT_CERTIFIED, 0))
    upheld = line_of(types_pb2.ACTION_CODE_NOT_CERTIFIED, 0, role="appeal_reviewer", at=NOW + dt.timedelta(days=1))
    upheld.appeal.CopyFrom(types_pb2.AppealOutcome(appeal_id="ap-1", outcome="upheld", forwarded=True))
    send(handlers, "r1", upheld)
    after = record(store, "r1")
    assert (after.status, after.approved_after_appeal) == ("denied", False)


def test_a_cancelled_line_keeps_its_number_and_covers_no_claim(store: AuthorizationStore,
                                                               handlers: AuthorizationHandlers) -> None:
    send(handlers, "r1", line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 2, dt.date(2027, 3, 1)))
    send(handlers, "r1", line_of(types_pb2.ACTION_CODE_CANCELLED, 0, at=NOW + dt.timedelta(minutes=5)))
    cancelled = record(store, "r1")
    assert (cancelled.status, cancelled.units) == ("cancelled", 2)
    decision = handlers.check_claim(ClaimLine("M-1", NPI, "99232", dt.date(2027, 3, 1), 1))
    assert decision.match is Match.CANCELLED


def test_each_line_keeps_its_own_decider(store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    software = line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 1, dt.date(2027, 3, 1), code="72148",
                       decider="system:rules-engine", role="software")
    software.decided_by.criteria = "imaging-mri-lumbar-spine@2026.1"
    nurse = line_of(types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 1, dt.date(2027, 3, 1), code="97110",
                    decider="rn-alvarez", role="nurse")
    nurse.line_number = 2
    send(handlers, "r1", software, nurse)
    deciders = {a.line_number: a.decided_by for a in store.authorizations.values()}
    assert deciders[1] is not None
    assert (deciders[1].role, deciders[1].criteria) == ("software", "imaging-mri-lumbar-spine@2026.1")
    assert deciders[2] is not None
    assert (deciders[2].id, deciders[2].role) == ("rn-alvarez", "nurse")
