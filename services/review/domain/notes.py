"""Case notes: what a case manager (or a nurse or adjuster doing case management) writes about a
member while coordinating care (assess, plan, coordinate, monitor, document). Pure: no I/O.

A note is a record, not a document: once written it is never edited or removed. It carries the
time it was written and its author as the directory knew them then; a correction or a later
thought is a new note that names the one it amends, so the original wording stays readable
(the same rule as an amendment to a medical record, 45 CFR 164.526, which appends rather than
replaces).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from services.review.domain.workflow import Action, InvalidInput, Reviewer, Role, check_may

MAX_TEXT = 4000
MAX_MEMBER_ID = 40
#: A member id as intake accepts it: ASCII, matched whole (``\w`` and ``$`` would let in other scripts' letters
#: and a trailing newline).
_MEMBER_ID = re.compile(rf"[A-Za-z0-9-]{{1,{MAX_MEMBER_ID}}}")


@dataclass(frozen=True)
class CaseNote:
    note_id: str
    member_id: str
    author_id: str
    author_name: str
    author_role: Role
    written_at: dt.datetime  # aware, UTC
    text: str
    amends: str | None = None  # the note this one amends


def write_note(author: Reviewer, *, note_id: str, member_id: str, text: str, amends: str | None,
               amended: CaseNote | None, now: dt.datetime) -> CaseNote:
    """A new note by ``author``. ``amended`` is the stored note ``amends`` names (None when there
    is none); an amendment must name a note of the same member. Refuses a role that does not write
    notes (NotPermitted) and an empty, overlong or misdirected note (InvalidInput)."""
    check_may(author, Action.WRITE_CASE_NOTE)
    member = member_id.strip()
    if not _MEMBER_ID.fullmatch(member):
        raise InvalidInput("member_id", f"1 to {MAX_MEMBER_ID} ASCII letters, digits or '-'")
    body = text.strip()
    if not body:
        raise InvalidInput("text", "a note says something")
    if len(body) > MAX_TEXT:
        raise InvalidInput("text", f"at most {MAX_TEXT} characters (write a second note)")
    if amends and (amended is None or amended.member_id != member):
        raise InvalidInput("amends", f"no note {amends!r} about member {member}")
    return CaseNote(note_id=note_id, member_id=member, author_id=author.reviewer_id, author_name=author.name,
                    author_role=author.role, written_at=now, text=body, amends=amends or None)
