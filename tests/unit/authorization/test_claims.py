"""Claim matching and drawing units (fakes): which record covers a claim line, why none does, and
units drawn once per claim line id, never past the authorization's."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.authorization.domain.claims import ClaimLine, Match, match_claim
from services.authorization.domain.model import IssuedAuthorization
from services.authorization.service_layer.handlers import AuthorizationHandlers
from services.common.errors import FailedPrecondition, IdempotencyConflict, ValidationFailed
from services.common.events import IncomingEvent
from services.common.topics import Topics
from tests.fakes.authorization import AuthorizationStore

NOW = dt.datetime(2027, 3, 1, 15, 0, tzinfo=dt.UTC)
NPI, OTHER_NPI = "1234567893", "1679576722"
MARCH = (dt.date(2027, 3, 1), dt.date(2027, 3, 31))


@pytest.fixture
def store() -> AuthorizationStore:
    return AuthorizationStore()


@pytest.fixture
def handlers(store: AuthorizationStore) -> AuthorizationHandlers:
    return AuthorizationHandlers(store.unit_of_work, Topics("t"), validity_days=90, clock=lambda: NOW)


def determine(handlers: AuthorizationHandlers, request_id: str, action: types_pb2.ActionCode.ValueType, units: int,
              *, code: str = "97110", npi: str = NPI, member: str = "M-1",
              dates: tuple[dt.date, dt.date] = MARCH) -> None:
    det = types_pb2.Determination(request_id=request_id, determination_id=str(uuid.uuid4()))
    line = det.lines.add(line_number=1, procedure_code=code, action_code=action, approved_units=units, unit="visits")
    line.approved_start.CopyFrom(types_pb2.Date(year=dates[0].year, month=dates[0].month, day=dates[0].day))
    line.approved_end.CopyFrom(types_pb2.Date(year=dates[1].year, month=dates[1].month, day=dates[1].day))
    message = events_pb2.DeterminationMade(determination=det, member_id=member,
                                           servicing_provider=types_pb2.Provider(npi=npi, name="Bay PT"))
    handlers.handle_batch([IncomingEvent(str(uuid.uuid4()), message.DESCRIPTOR.full_name, "1", request_id, message,
                                         "t", 0, 0)])


def claim(units: int = 1, *, day: dt.date = dt.date(2027, 3, 10), code: str = "97110", npi: str = NPI,
          member: str = "M-1", number: str = "") -> ClaimLine:
    return ClaimLine(member_id=member, servicing_npi=npi, procedure_code=code, date_of_service=day, units=units,
                     authorization_number=number)


def number_of(store: AuthorizationStore, request_id: str) -> str:
    return next(a.authorization_number for a in store.authorizations.values() if a.request_id == request_id)


def test_a_claim_line_within_an_authorization_is_covered_and_draws_its_units(
        store: AuthorizationStore, handlers: AuthorizationHandlers) -> None:
    determine(handlers, "r1", types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 12)
    decision = handlers.check_claim(claim(3))
    assert decision.match is Match.COVERED
    assert decision.units_remaining == 12
    drawn = handlers.consume("clm-1/1", claim(3))
    assert (drawn.units_consumed, drawn.authorization.remaining, drawn.replayed) == (3, 9, False)
    assert handlers.check_claim(claim(9)).units_remaining == 9  # partial use leaves the rest


def test_units_run_out_and_the_refusal_says_how_many_remain(store: AuthorizationStore,
                                                             handlers: AuthorizationHandlers) -> None:
    determine(handlers, "r1", types_pb2.ACTION_CODE_CERTIFIED_PARTIAL, 4)
    handlers.consume("clm-1/1", claim(3))
    decision = handlers.check_claim(claim(2))
    assert (decision.match, decision.units_remaining) == (Match.EXHAUSTED, 1)
    with pytest.raises(FailedPrecondition, match=r"units exhausted: .* has 1 of 4 visits left; the claim line bills 2"):
        handlers.consume("clm-2/1", claim(2))
    handlers.consume("clm-3/1", claim(1))
    with pytest.raises(FailedPrecondition, match="has 0 of 4 visits left"):
        handlers.consume("clm-4/1", claim(1))


def test_a_retried_draw_answers_as_the_first_and_draws_nothing_more(store: AuthorizationStore,
                                                                    handlers: AuthorizationHandlers) -> None:
    determine(handlers, "r1", types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 5)
    first = handlers.consume("clm-1/1", claim(2))
    again = handlers.consume("clm-1/1", claim(2))
    assert again.replayed
    assert (again.units_consumed, again.authorization.authorization_number) == (
        2, first.authorization.authorization_number)
    assert handlers.check_claim(claim(1)).units_remaining == 3
    with pytest.raises(IdempotencyConflict, match="clm-1/1 already drew 2"):
        handlers.consume("clm-1/1", claim(1))


@pytest.mark.parametrize(("line", "match", "words"), [
    (claim(day=dt.date(2027, 4, 2)), Match.EXPIRED, "valid 2027-03-01 to 2027-03-31 \\(ended\\)"),
    (claim(day=dt.date(2027, 2, 27)), Match.EXPIRED, "starts later"),
    (claim(npi=OTHER_NPI), Match.OTHER_PROVIDER, f"authorized at servicing provider {NPI}, not {OTHER_NPI}"),
    (claim(code="97140"), Match.OTHER_CODE, "no authorization for 97140; .* for 97110"),
    (claim(member="M-2"), Match.NEVER_AUTHORIZED, "member M-2 has no authorization"),
    (claim(number="UR27-0000-0000"), Match.NEVER_AUTHORIZED, "no authorization UR27-0000-0000"),
])
def test_why_no_authorization_covers_a_claim_line(handlers: AuthorizationHandlers, line: ClaimLine, match: Match,
                                                   words: str) -> None:
    determine(handlers, "r1", types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 12)
    decision = handlers.check_claim(line)
    assert decision.match is match
    assert decision.units_remaining == (12 if match is Match.EXPIRED else 0)
    with pytest.raises(FailedPrecondition, match=words):
        handlers.consume(f"clm-{uuid.uuid4()}", line)


@pytest.mark.parametrize(("action", "match"), [(types_pb2.ACTION_CODE_NOT_CERTIFIED, Match.DENIED),
                                               (types_pb2.ACTION_CODE_PENDED, Match.PENDED)])
def test_a_denied_or_pended_line_covers_nothing(handlers: AuthorizationHandlers,
                                                action: types_pb2.ActionCode.ValueType, match: Match) -> None:
    determine(handlers, "r1", action, 0)
    assert handlers.check_claim(claim()).match is match


def test_a_claim_quoting_a_number_draws_on_that_authorization_only(store: AuthorizationStore,
                                                                   handlers: AuthorizationHandlers) -> None:
    determine(handlers, "r1", types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 2)
    determine(handlers, "r2", types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, 2, dates=(dt.date(2027, 3, 1),
                                                                                 dt.date(2027, 6, 30)))
    later = number_of(store, "r2")
    # Unquoted: the one that ends first is drawn on first.
    assert handlers.consume("c1", claim(1)).authorization.authorization_number == number_of(store, "r1")
    assert handlers.consume("c2", claim(1, number=later)).authorization.authorization_number == later


def test_a_malformed_claim_line_is_refused_field_by_field(handlers: AuthorizationHandlers) -> None:
    with pytest.raises(ValidationFailed) as caught:
        handlers.check_claim(ClaimLine("", "12", "", dt.date(2027, 3, 1), 0))
    assert [v.field for v in caught.value.violations] == [
        "claim.member_id", "claim.servicing_npi", "claim.procedure_code", "claim.units"]
    with pytest.raises(ValidationFailed):
        handlers.consume(" ", claim())


def test_the_first_to_end_covers_and_units_decide_between_the_rest() -> None:
    def record(number: str, end: dt.date, units: int, used: int = 0) -> IssuedAuthorization:
        return IssuedAuthorization(request_id=number, line_number=1, determination_id="d", member_id="M-1",
                                   procedure_code="97110", units=units, valid_from=dt.date(2027, 3, 1), valid_to=end,
                                   status="approved", issued_at=NOW, servicing_npi=NPI, units_used=used,
                                   authorization_number=number)

    soon, late = record("A", dt.date(2027, 3, 20), 2), record("B", dt.date(2027, 4, 30), 10)
    assert match_claim(claim(2), [late, soon]).authorization == soon
    assert match_claim(claim(3), [late, soon]).authorization == late
    used_up = record("A", dt.date(2027, 3, 20), 2, used=2)
    assert match_claim(claim(1), [used_up, late]).authorization == late
    decision = match_claim(claim(11), [used_up, late])
    assert (decision.match, decision.authorization, decision.units_remaining) == (Match.EXHAUSTED, late, 10)
