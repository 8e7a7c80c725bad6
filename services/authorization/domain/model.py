"""What an approved line turns into, and the authorizations on file. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

from services.common.errors import FieldViolation

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


# -- queries ------------------------------------------------------------------------------------

MAX_LIST = 1000
# The shapes intake accepts (ASCII, matched whole): anything else can match no authorization, and
# some strings (a NUL) the database refuses outright.
_MEMBER = re.compile(r"[A-Za-z0-9-]{1,40}")
_PROCEDURE = re.compile(r"[0-9]{4}[0-9FTU]|[A-Z][0-9]{4}")


def member_query_problems(member_id: str, procedure_code: str, limit: int) -> list[FieldViolation]:
    """What is wrong with a query of a member's authorizations (proto field names), if anything."""
    problems = []
    if not member_id:
        problems.append(FieldViolation("member_id", "required"))
    elif not _MEMBER.fullmatch(member_id):
        problems.append(FieldViolation("member_id", "1-40 ASCII letters, digits or '-'"))
    if procedure_code and not _PROCEDURE.fullmatch(procedure_code):
        problems.append(FieldViolation("procedure_code", "a CPT (5 characters) or HCPCS Level II code, or empty"))
    if not 0 <= limit <= MAX_LIST:
        problems.append(FieldViolation("limit", f"between 1 and {MAX_LIST} (0 means 100)"))
    return problems
