"""What an approved line turns into, and the authorizations on file. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields

CERTIFIED_ACTIONS = frozenset({"certified_in_total", "certified_partial", "modified"})


@dataclass(frozen=True)
class DecidedLine:
    line_number: int
    procedure_code: str
    action: str  # X12 meaning in lowercase, e.g. "certified_in_total", "pended"
    approved_units: int
    approved_start: dt.date | None
    approved_end: dt.date | None


@dataclass(frozen=True)
class AuthorizationDraft:
    line_number: int
    procedure_code: str
    units: int
    valid_from: dt.date
    valid_to: dt.date


def plan_authorizations(lines: Sequence[DecidedLine], decided_on: dt.date,
                        default_validity_days: int) -> list[AuthorizationDraft]:
    """One authorization per certified line; other lines get none (pended lines are
    authorized later, when a person approves them)."""
    drafts = []
    for line in lines:
        if line.action not in CERTIFIED_ACTIONS or line.approved_units <= 0:
            continue
        start = line.approved_start or decided_on
        end = line.approved_end or start + dt.timedelta(days=default_validity_days - 1)
        end = max(end, start)
        drafts.append(AuthorizationDraft(line.line_number, line.procedure_code, line.approved_units, start, end))
    return drafts


@dataclass(frozen=True)
class AuthorizationToIssue:
    """An authorization about to be stored; storing it gives it its number."""

    request_id: str
    line_number: int
    determination_id: str
    member_id: str
    procedure_code: str
    units: int
    valid_from: dt.date
    valid_to: dt.date
    status: str  # "active", "expired" or "cancelled"
    issued_at: dt.datetime  # its year is the number's (UR26-...)


@dataclass(frozen=True)
class IssuedAuthorization(AuthorizationToIssue):
    """An authorization on file, with the number a provider quotes on the claim."""

    authorization_number: str

    @classmethod
    def numbered(cls, draft: AuthorizationToIssue, number: str) -> IssuedAuthorization:
        return cls(**{f.name: getattr(draft, f.name) for f in fields(AuthorizationToIssue)},
                   authorization_number=number)
