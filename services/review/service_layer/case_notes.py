"""Case notes on members: written by case managers, nurses and adjusters, read by any reviewer.
Append only (domain/notes.py): there is no use case that changes or removes a note."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord
from services.common.audit.recording import record_views
from services.common.clock import Clock
from services.common.errors import FieldViolation, ValidationFailed
from services.review.domain.notes import CaseNote, write_note
from services.review.service_layer.auditing import note_added
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import identify, use_case

logger = logging.getLogger(__name__)


class CaseNotes:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, clock: Clock) -> None:
        self._uow = uow_factory
        self._now = clock

    @use_case
    def add(self, principal: str, member_id: str, text: str, amends: str) -> CaseNote:
        """A new note about ``member_id`` by the caller; ``amends`` names the note it amends ("" for none)."""
        with self._uow() as uow:
            me = identify(uow, principal)
            amended = uow.case_notes.get(amends.strip()) if amends.strip() else None
            note = write_note(me, note_id=str(uuid.uuid4()), member_id=member_id, text=text,
                              amends=amends.strip() or None, amended=amended, now=self._now())
            uow.case_notes.add(note)
            uow.audit(note_added(note))
            uow.commit()
        # The note's id, not its member: a log line carries no patient data (services/common/logs.py).
        logger.info("case note %s by %s%s", note.note_id, note.author_id,
                    f" (amends {note.amends})" if note.amends else "")
        return note

    @use_case
    def of_member(self, principal: str, member_id: str) -> list[CaseNote]:
        """The member's notes, oldest first (any active reviewer)."""
        if not member_id.strip():
            raise ValidationFailed([FieldViolation("member_id", "required")])
        with self._uow().read_only() as uow:
            me = identify(uow, principal)
            notes = uow.case_notes.of_member(member_id.strip())
        record_views(self._uow, [AuditRecord("case_notes.viewed", refs={"count": len(notes)},
                                             member_id=member_id.strip(), actor=actors.reviewer(me.reviewer_id))])
        return notes
