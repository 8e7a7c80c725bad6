"""Claim matching: which authorization covers a claim line, and why none does. Pure: no I/O.

A claim line (member, servicing provider NPI, procedure code, date of service, units; optionally
the authorization number the claim quotes in the 837's REF*G1) is covered by a usable record
(approved, partially approved or modified) of the same member, code and servicing provider that is
valid on the date of service and has at least the line's units left. Of several, the one that
ends first is drawn on (its units would otherwise lapse first), then the older.

When none covers it, the answer names the nearest miss, most specific first: units exhausted on a
record that is otherwise right; valid on other dates (expired, or not yet valid); cancelled,
denied or still pended; another servicing provider; another code; never authorized.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from services.authorization.domain.model import CANCELLED, DENIED, PENDED, IssuedAuthorization


class Match(enum.StrEnum):
    COVERED = "covered"
    EXPIRED = "expired"
    OTHER_PROVIDER = "other_provider"
    OTHER_CODE = "other_code"
    EXHAUSTED = "exhausted"
    NEVER_AUTHORIZED = "never_authorized"
    DENIED = "denied"
    CANCELLED = "cancelled"
    PENDED = "pended"


_NOT_USABLE = {CANCELLED: Match.CANCELLED, DENIED: Match.DENIED, PENDED: Match.PENDED}


@dataclass(frozen=True)
class ClaimLine:
    member_id: str
    servicing_npi: str
    procedure_code: str
    date_of_service: dt.date
    units: int
    authorization_number: str = ""

    def fingerprint(self) -> str:
        """Identity of the line, to tell a retried draw from a different one under the same claim line id."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True)
class ClaimDecision:
    match: Match
    authorization: IssuedAuthorization | None  # the covering record, or the nearest miss
    units_remaining: int
    explanation: str

    @property
    def covered(self) -> bool:
        return self.match is Match.COVERED


def _newest(records: Sequence[IssuedAuthorization]) -> IssuedAuthorization:
    return max(records, key=lambda a: (a.updated_at or a.issued_at, a.issued_at, a.authorization_number))


def _period(a: IssuedAuthorization) -> str:
    return f"{a.valid_from.isoformat()} to {a.valid_to.isoformat()}"


def match_claim(claim: ClaimLine, records: Sequence[IssuedAuthorization]) -> ClaimDecision:
    """The answer for ``claim`` among the member's ``records`` (see the module docstring)."""
    candidates = [r for r in records if r.member_id == claim.member_id]
    if claim.authorization_number:
        candidates = [r for r in candidates if r.authorization_number == claim.authorization_number]
        if not candidates:
            return ClaimDecision(Match.NEVER_AUTHORIZED, None, 0,
                                 f"no authorization {claim.authorization_number} for member {claim.member_id}")
    if not candidates:
        return ClaimDecision(Match.NEVER_AUTHORIZED, None, 0, f"member {claim.member_id} has no authorization")
    same_code = [r for r in candidates if r.procedure_code == claim.procedure_code]
    if not same_code:
        nearest = _newest(candidates)
        return ClaimDecision(Match.OTHER_CODE, nearest, 0,
                             f"no authorization for {claim.procedure_code}; the member's authorizations are for "
                             f"{', '.join(sorted({r.procedure_code for r in candidates}))}")
    same_provider = [r for r in same_code if r.servicing_npi == claim.servicing_npi]
    if not same_provider:
        nearest = _newest(same_code)
        return ClaimDecision(Match.OTHER_PROVIDER, nearest, 0,
                             f"{claim.procedure_code} is authorized at servicing provider {nearest.servicing_npi}, "
                             f"not {claim.servicing_npi}")
    usable = [r for r in same_provider if r.usable]
    if not usable:
        nearest = _newest(same_provider)
        return ClaimDecision(_NOT_USABLE.get(nearest.status, Match.NEVER_AUTHORIZED), nearest, 0,
                             f"authorization {nearest.authorization_number} for {claim.procedure_code} is "
                             f"{nearest.status.replace('_', ' ')}")
    return _within(claim, usable)


def _within(claim: ClaimLine, usable: Sequence[IssuedAuthorization]) -> ClaimDecision:
    """Among usable records of the right code and provider: the date, then the units."""
    day = claim.date_of_service
    in_period = [r for r in usable if r.valid_on(day)]
    if not in_period:
        nearest = min(usable, key=lambda r: (min(abs((r.valid_from - day).days), abs((r.valid_to - day).days)),
                                             r.authorization_number))
        when = "ended" if day > nearest.valid_to else "starts later"
        return ClaimDecision(Match.EXPIRED, nearest, nearest.remaining,
                             f"authorization {nearest.authorization_number} is valid {_period(nearest)} ({when}); "
                             f"the service was on {day.isoformat()}")
    enough = [r for r in in_period if r.remaining >= claim.units]
    if enough:
        chosen = min(enough, key=lambda r: (r.valid_to, r.issued_at, r.authorization_number))
        return ClaimDecision(Match.COVERED, chosen, chosen.remaining,
                             f"covered by {chosen.authorization_number}: {chosen.remaining} of {chosen.units} "
                             f"{chosen.unit} remain")
    most = max(in_period, key=lambda r: (r.remaining, r.authorization_number))
    return ClaimDecision(Match.EXHAUSTED, most, most.remaining,
                         f"authorization {most.authorization_number} has {most.remaining} of {most.units} "
                         f"{most.unit} left; the claim line bills {claim.units}")


@dataclass(frozen=True)
class UnitDraw:
    """Units a claim line drew from an authorization, once: the claim line id is its key."""

    claim_line_id: str
    authorization_number: str
    units: int
    fingerprint: str  # ClaimLine.fingerprint() of the line that drew them
    drawn_at: dt.datetime
