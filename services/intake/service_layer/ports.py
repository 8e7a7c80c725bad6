"""What intake's use cases need from the world, as abstract classes: a unit of work with its
repositories (domain values in, domain values out), and the clock.

Implementations: ``adapters/repository.py`` (SQL), ``tests/fakes/intake.py`` (in memory); the
contract suite ``tests/contract/test_intake_ports.py`` holds both to the docstrings below.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence

from services.common.clock import Clock
from services.common.ports import UnitOfWork
from services.intake.domain.model import Member
from services.intake.domain.records import (
    AppealDecided,
    AppealRecord,
    InformationRecord,
    RequestChanges,
    RequestRecord,
    RevisionRecord,
)

__all__ = ["AppealRepository", "Clock", "InformationRepository", "IntakeUnitOfWork", "MemberRepository",
           "RequestRepository", "RevisionRepository"]


class RequestRepository(abc.ABC):
    def add(self, record: RequestRecord) -> None:
        """Store a new request with its lines. Raises ``DuplicateKey`` if its submitter's idempotency
        key (or the request id) is taken; the unit of work must then be abandoned (rolled back)."""
        self.add_many([record])

    @abc.abstractmethod
    def add_many(self, records: Sequence[RequestRecord]) -> None:
        """Store new requests with their lines (a group commit's, in as few statements as the store
        allows). ``DuplicateKey`` if any key or id is taken, by the store or by another of ``records``;
        the unit of work must then be abandoned (rolled back)."""

    @abc.abstractmethod
    def get(self, request_id: str, *, for_update: bool = False) -> RequestRecord | None:
        """The request, lines in line-number order; times in UTC. ``for_update`` locks it until the
        transaction ends where the store supports row locks (concurrent writers queue)."""

    @abc.abstractmethod
    def by_key(self, submitter: str, idempotency_key: str) -> RequestRecord | None:
        """The request ``submitter`` submitted under this idempotency key (keys are per submitter)."""

    @abc.abstractmethod
    def get_many(self, request_ids: Sequence[str]) -> dict[str, RequestRecord]:
        """Request id → request, for those of ``request_ids`` that exist."""

    @abc.abstractmethod
    def of_member(self, member_id: str, limit: int, submitter: str | None = None) -> list[RequestRecord]:
        """The member's requests, newest first (then by request id), at most ``limit``; only those
        ``submitter`` submitted unless it is None."""

    @abc.abstractmethod
    def of_claim(self, claim_number: str, limit: int, submitter: str | None = None) -> list[RequestRecord]:
        """The requests under this workers' comp claim (their ``claim_number``), newest first (then by
        request id), at most ``limit``; only those ``submitter`` submitted unless it is None."""

    @abc.abstractmethod
    def apply(self, changes: RequestChanges) -> None:
        """Apply a batch of changes to existing requests and lines (one statement per kind of
        change on a database, whatever the batch size); a later change to the same row wins.
        ``appeals_decided`` are the appeal repository's (:meth:`AppealRepository.decide`)."""

    @abc.abstractmethod
    def cancel(self, request_id: str, reason: str, at: dt.datetime) -> None:
        """The request is cancelled (status and reason)."""

    @abc.abstractmethod
    def revise(self, request_id: str, payload: bytes, procedure_codes: Sequence[tuple[int, str]],
               at: dt.datetime) -> None:
        """The request's submission as revised (its payload) and its lines' codes ((line number, code))."""


class RevisionRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, record: RevisionRecord) -> None:
        """Store a revision; ``DuplicateKey`` if its idempotency key (or id) is taken."""

    @abc.abstractmethod
    def by_key(self, idempotency_key: str) -> RevisionRecord | None: ...


class AppealRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, record: AppealRecord) -> None:
        """Store an appeal; ``DuplicateKey`` if its idempotency key, its id or its line (one appeal
        per request line) is taken."""

    @abc.abstractmethod
    def by_key(self, idempotency_key: str) -> AppealRecord | None: ...

    @abc.abstractmethod
    def of_request(self, request_id: str) -> list[AppealRecord]:
        """The request's appeals, oldest first (then by id); times in UTC."""

    @abc.abstractmethod
    def decide(self, decided: Sequence[AppealDecided]) -> None:
        """Record outcomes (status decided) of appeals on file; unknown ones change nothing."""


class InformationRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, record: InformationRecord) -> None:
        """Store additional information. Raises ``DuplicateKey`` if its submitter's idempotency key (or
        its id) is taken; the unit of work must then be abandoned (rolled back)."""

    @abc.abstractmethod
    def by_key(self, submitter: str, idempotency_key: str) -> InformationRecord | None:
        """The information ``submitter`` sent under this idempotency key; times in UTC."""

    @abc.abstractmethod
    def of_request(self, request_id: str) -> list[InformationRecord]:
        """The information received for a request, oldest first (then by id); times in UTC."""


class MemberRepository(abc.ABC):
    def get(self, member_id: str) -> Member | None:
        """The member with their coverages (in the order saved), or None if not on file."""
        return self.get_many([member_id]).get(member_id)

    @abc.abstractmethod
    def get_many(self, member_ids: Sequence[str]) -> dict[str, Member]:
        """The members on file among ``member_ids``, by id, each with their coverages in the order saved."""

    @abc.abstractmethod
    def save(self, member: Member) -> None:
        """Insert or replace the member: afterwards they have exactly these coverages."""


class IntakeUnitOfWork(UnitOfWork):
    """Intake's transaction (see :class:`services.common.ports.UnitOfWork`); the repositories are
    usable inside the ``with`` block."""

    requests: RequestRepository
    information: InformationRepository
    members: MemberRepository
    revisions: RevisionRepository
    appeals: AppealRepository
