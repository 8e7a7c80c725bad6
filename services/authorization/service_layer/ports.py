"""What authorization's use cases need from the world, as abstract classes: a unit of work with
its repositories (domain values in, domain values out), and the clock.

Implementations: ``adapters/repository.py`` (SQL), ``tests/fakes/authorization.py`` (in memory);
the contract suite ``tests/contract/test_authorization_ports.py`` holds both to the docstrings below.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence

from services.authorization.domain.claims import UnitDraw
from services.authorization.domain.model import AuthorizationToIssue, IssuedAuthorization, Metrics
from services.common.clock import Clock
from services.common.ports import UnitOfWork

__all__ = ["AuthorizationRepository", "AuthorizationUnitOfWork", "Clock", "UnitDrawRepository"]


class AuthorizationRepository(abc.ABC):
    @abc.abstractmethod
    def of_lines(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], IssuedAuthorization]:
        """The records of these (request id, line number) pairs that exist."""

    @abc.abstractmethod
    def add_many(self, authorizations: Sequence[AuthorizationToIssue]) -> list[IssuedAuthorization]:
        """Store and number the records; returns them in input order. Numbers are unique for good
        (see ``domain/numbers.py``), their year is the year of ``issued_at``. Raises ``DuplicateKey``
        if a line already has one (one record per request line, ever); the unit of work must then
        be abandoned (rolled back)."""

    @abc.abstractmethod
    def update_many(self, authorizations: Sequence[IssuedAuthorization]) -> None:
        """Store what a newer decision, an extension or an appeal changed on records on file (found
        by number): everything but the number, the line, the issue time and ``units_used`` (which
        only :meth:`draw` changes); extensions not stored yet are added."""

    @abc.abstractmethod
    def by_number(self, number: str) -> IssuedAuthorization | None:
        """The record with this (canonical) number, with its extensions in the order applied."""

    @abc.abstractmethod
    def for_member(self, member_id: str, procedure_code: str = "", overlaps_from: dt.date | None = None,
                   overlaps_to: dt.date | None = None, active_only: bool = False,
                   limit: int = 100) -> list[IssuedAuthorization]:
        """The member's records, newest first (then the later stored first), at most ``limit``:
        only for ``procedure_code`` if given; only those valid on some day of
        [``overlaps_from``, ``overlaps_to``] (either end open when None; both inclusive); only usable
        ones (approved, partially approved, modified) if ``active_only``."""

    def usable_overlapping(self, queries: Sequence[tuple[str, dt.date, dt.date]],
                           limit: int = 100) -> list[list[IssuedAuthorization]]:
        """For each (member, from, to): ``for_member(member, "", from, to, active_only=True, limit)``.
        Stores override it to answer a batch in one read."""
        return [self.for_member(member_id, "", start, end, True, limit) for member_id, start, end in queries]

    @abc.abstractmethod
    def draw(self, number: str, units: int) -> bool:
        """Add ``units`` to the record's units used if that leaves it within its units, atomically
        (two concurrent draws never both take the last unit); whether it did."""

    @abc.abstractmethod
    def metrics(self, issued_from: dt.date | None = None, issued_to: dt.date | None = None) -> Metrics:
        """Records counted by status, and those approved after appeal, over records issued on days
        in [``issued_from``, ``issued_to``] (either end open when None)."""


class UnitDrawRepository(abc.ABC):
    """The units claim lines drew, one entry per claim line id, for good."""

    @abc.abstractmethod
    def get(self, claim_line_id: str) -> UnitDraw | None: ...

    @abc.abstractmethod
    def add(self, draw: UnitDraw) -> None:
        """Store a draw; ``DuplicateKey`` if its claim line id already drew (the unit of work must
        then be abandoned)."""


class AuthorizationUnitOfWork(UnitOfWork):
    """Authorization's transaction (see :class:`services.common.ports.UnitOfWork`); the repositories
    are usable inside the ``with`` block."""

    authorizations: AuthorizationRepository
    draws: UnitDrawRepository
