"""What authorization's use cases need from the world, as abstract classes: a unit of work with
its repository (domain values in, domain values out), and the clock.

Implementations: ``adapters/repository.py`` (SQL), ``tests/fakes/authorization.py`` (in memory);
the contract suite ``tests/contract/test_authorization_ports.py`` holds both to the docstrings below.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence

from services.authorization.domain.model import AuthorizationToIssue, IssuedAuthorization
from services.common.clock import Clock
from services.common.ports import UnitOfWork

__all__ = ["AuthorizationRepository", "AuthorizationUnitOfWork", "Clock"]


class AuthorizationRepository(abc.ABC):
    @abc.abstractmethod
    def lines_already_authorized(self, request_ids: Sequence[str]) -> set[tuple[str, int]]:
        """(request id, line number) of every authorization on file for these requests."""

    @abc.abstractmethod
    def add_many(self, authorizations: Sequence[AuthorizationToIssue]) -> list[IssuedAuthorization]:
        """Store and number the authorizations; returns them in input order. Numbers are unique for
        good (see ``domain/numbers.py``), their year is the year of ``issued_at``. Raises
        ``DuplicateKey`` if a line already has one (one authorization per request line, ever); the
        unit of work must then be abandoned (rolled back)."""

    @abc.abstractmethod
    def by_number(self, number: str) -> IssuedAuthorization | None:
        """The authorization with this (canonical) number."""

    @abc.abstractmethod
    def for_member(self, member_id: str, procedure_code: str = "", overlaps_from: dt.date | None = None,
                   overlaps_to: dt.date | None = None, active_only: bool = False,
                   limit: int = 100) -> list[IssuedAuthorization]:
        """The member's authorizations, newest first (then the later stored first), at most ``limit``:
        only for ``procedure_code`` if given; only those valid on some day of
        [``overlaps_from``, ``overlaps_to``] (either end open when None; both inclusive); only active
        ones if ``active_only``."""


class AuthorizationUnitOfWork(UnitOfWork):
    """Authorization's transaction (see :class:`services.common.ports.UnitOfWork`); the repository
    is usable inside the ``with`` block."""

    authorizations: AuthorizationRepository
