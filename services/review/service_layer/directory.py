"""The reviewer directory: who may act, in which role, on which lines. Loaded from configuration
at start (:meth:`Directory.seed`) and managed by supervisors."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from services.common.audit import actor as actors
from services.common.audit.chain import AuditRecord
from services.common.clock import Clock
from services.common.errors import FieldViolation, ValidationFailed
from services.review.domain import workflow as wf
from services.review.domain.criteria import CATEGORIES, LINES_OF_BUSINESS
from services.review.service_layer.ports import UnitOfWork
from services.review.service_layer.preamble import identify, use_case

logger = logging.getLogger(__name__)

# Directory entries are stored in columns of these widths (adapters/tables.py); ids are ASCII.
_REVIEWER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_TEXT = 200


class Directory:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], *, clock: Clock) -> None:
        self._uow = uow_factory
        self._now = clock

    @use_case
    def whoami(self, principal: str) -> wf.Reviewer:
        with self._uow().read_only() as uow:
            return identify(uow, principal)

    @use_case
    def list_reviewers(self, principal: str) -> list[wf.Reviewer]:
        with self._uow().read_only() as uow:
            identify(uow, principal)
            return uow.reviewers.all()

    @use_case
    def put_reviewer(self, principal: str, reviewer: wf.Reviewer) -> wf.Reviewer:
        validate_reviewer(reviewer)
        with self._uow() as uow:
            identify(uow, principal, may=wf.Action.MANAGE_DIRECTORY)
            uow.reviewers.put(reviewer, self._now())
            uow.audit(_put(reviewer, actors.reviewer(principal)))
            uow.commit()
        logger.info("reviewer %s (%s) updated by %s", reviewer.reviewer_id, reviewer.role.value, principal)
        return reviewer

    def seed(self, reviewers: Sequence[wf.Reviewer]) -> None:
        """Load the directory from configuration at start (insert or update each)."""
        for r in reviewers:
            validate_reviewer(r)
        with self._uow() as uow:
            for r in reviewers:
                uow.reviewers.put(r, self._now())
            uow.audit(*[_put(r, actors.service("review")) for r in reviewers])
            uow.commit()


def _put(r: wf.Reviewer, actor: str) -> AuditRecord:
    return AuditRecord("reviewer.put", refs={"reviewer_id": r.reviewer_id, "kind": r.role.value,
                                             "status": "active" if r.active else "inactive"}, actor=actor)


def _identity_problems(r: wf.Reviewer) -> list[FieldViolation]:
    """Id, name and credential: the shapes and widths of their columns."""
    problems = []
    if not _REVIEWER_ID.fullmatch(r.reviewer_id):
        problems.append(FieldViolation("reviewer.reviewer_id", "1 to 64 ASCII letters, digits, '.', '_', '@' or "
                                                               "'-', starting with a letter or digit"))
    if not r.name.strip():
        problems.append(FieldViolation("reviewer.name", "required"))
    for field, text in (("name", r.name), ("credential", r.credential)):
        if len(text) > MAX_TEXT:
            problems.append(FieldViolation(f"reviewer.{field}", f"at most {MAX_TEXT} characters"))
    return problems


def validate_reviewer(r: wf.Reviewer) -> None:
    """Raise ValidationFailed naming every field of a directory entry that is wrong."""
    problems = _identity_problems(r)
    if r.role not in wf.NON_REVIEWING:
        if not r.lines_of_business:
            problems.append(FieldViolation("reviewer.lines_of_business", "at least one"))
        unknown = sorted(s for s in r.specialties if s not in CATEGORIES and s != wf.GENERAL)
        if unknown or not r.specialties:
            problems.append(FieldViolation("reviewer.specialties",
                                           f"at least one of: general, {', '.join(sorted(CATEGORIES))}"
                                           + (f" (unknown: {', '.join(unknown)})" if unknown else "")))
        if not 1 <= r.capacity <= 500:
            problems.append(FieldViolation("reviewer.capacity", "between 1 and 500"))
        if not r.credential.strip():
            problems.append(FieldViolation("reviewer.credential", "required, e.g. RN or MD"))
    bad_states = sorted(s for s in r.licence_states if not re.fullmatch(r"[A-Z]{2}", s))
    if bad_states:
        problems.append(FieldViolation("reviewer.licence_states", f"two-letter USPS codes (not {bad_states})"))
    bad_lobs = sorted(lob for lob in r.lines_of_business if lob not in LINES_OF_BUSINESS)
    if bad_lobs:
        problems.append(FieldViolation("reviewer.lines_of_business", f"unknown: {bad_lobs}"))
    if problems:
        raise ValidationFailed(problems)
