"""What intake's use cases need from the world, as abstract classes: a unit of work with its
repositories (domain values in, domain values out), and the clock.

Implementations: ``adapters/repository.py`` (SQL), ``tests/fakes/intake.py`` (in memory); the
contract suite ``tests/contract/test_intake_ports.py`` holds both to the docstrings below.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from services.common.clock import Clock
from services.common.ports import UnitOfWork
from services.intake.domain.model import Member
from services.intake.domain.records import InformationRecord, RequestChanges, RequestRecord

__all__ = ["Clock", "InformationRepository", "IntakeUnitOfWork", "MemberRepository", "RequestRepository"]


class RequestRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, record: RequestRecord) -> None:
        """Store a new request with its lines. Raises ``DuplicateKey`` if its submitter's idempotency
        key (or the request id) is taken; the unit of work must then be abandoned (rolled back)."""

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
    def apply(self, changes: RequestChanges) -> None:
        """Apply a batch of changes to existing requests and lines (one statement per kind of
        change on a database, whatever the batch size); a later change to the same row wins."""


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
    @abc.abstractmethod
    def get(self, member_id: str) -> Member | None:
        """The member with their coverages (in the order saved), or None if not on file."""

    @abc.abstractmethod
    def save(self, member: Member) -> None:
        """Insert or replace the member: afterwards they have exactly these coverages."""


class IntakeUnitOfWork(UnitOfWork):
    """Intake's transaction (see :class:`services.common.ports.UnitOfWork`); the repositories are
    usable inside the ``with`` block."""

    requests: RequestRepository
    information: InformationRepository
    members: MemberRepository
