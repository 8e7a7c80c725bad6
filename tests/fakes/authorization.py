"""Authorization's ports in memory (``services/authorization/service_layer/ports.py``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from services.authorization.domain.claims import UnitDraw
from services.authorization.domain.model import (
    USABLE,
    AuthorizationToIssue,
    IssuedAuthorization,
    Metrics,
)
from services.authorization.domain.numbers import authorization_number
from services.authorization.service_layer import ports
from services.common.errors import DuplicateKey
from tests.fakes.common import FakeStore, FakeUnitOfWork

_KEPT = ("authorization_number", "request_id", "line_number", "member_id", "issued_at", "units_used")


class AuthorizationStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        # Row id → authorization; the id orders ties and feeds the number, as in the database.
        self.authorizations: dict[int, IssuedAuthorization] = {}
        self.draws: dict[str, UnitDraw] = {}

    def unit_of_work(self) -> FakeAuthorizationUnitOfWork:
        """The handlers' ``uow_factory``: a new unit of work on this store."""
        return FakeAuthorizationUnitOfWork(self)


class FakeAuthorizationRepository(ports.AuthorizationRepository):
    def __init__(self, store: AuthorizationStore) -> None:
        self.store = store

    def _row_of(self, number: str) -> int | None:
        return next((row_id for row_id, a in self.store.authorizations.items() if a.authorization_number == number),
                    None)

    def of_lines(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], IssuedAuthorization]:
        wanted = set(keys)
        return {(a.request_id, a.line_number): a for a in self.store.authorizations.values()
                if (a.request_id, a.line_number) in wanted}

    def add_many(self, authorizations: Sequence[AuthorizationToIssue]) -> list[IssuedAuthorization]:
        taken = {(a.request_id, a.line_number) for a in self.store.authorizations.values()}
        extended = {(e.request_id, e.line_number) for a in self.store.authorizations.values() for e in a.extensions}
        issued = []
        for draft in authorizations:
            if (draft.request_id, draft.line_number) in taken:
                raise DuplicateKey("an authorization for one of these request lines already exists")
            if any((e.request_id, e.line_number) in extended for e in draft.extensions):
                raise DuplicateKey("an extension by one of these request lines already exists")
            taken.add((draft.request_id, draft.line_number))
            row_id = max(self.store.authorizations, default=0) + 1
            auth = IssuedAuthorization.numbered(draft, authorization_number(row_id, draft.issued_at.year))
            self.store.authorizations[row_id] = auth
            issued.append(auth)
        return issued

    def update_many(self, authorizations: Sequence[IssuedAuthorization]) -> None:
        for changed in authorizations:
            row_id = self._row_of(changed.authorization_number)
            if row_id is None:
                continue
            stored = self.store.authorizations[row_id]
            self.store.authorizations[row_id] = dataclasses.replace(
                changed, **{name: getattr(stored, name) for name in _KEPT})

    def by_number(self, number: str) -> IssuedAuthorization | None:
        row_id = self._row_of(number)
        return None if row_id is None else self.store.authorizations[row_id]

    def for_member(self, member_id: str, procedure_code: str = "", overlaps_from: dt.date | None = None,
                   overlaps_to: dt.date | None = None, active_only: bool = False,
                   limit: int = 100) -> list[IssuedAuthorization]:
        found = [(row_id, a) for row_id, a in self.store.authorizations.items()
                 if a.member_id == member_id
                 and (not procedure_code or a.procedure_code == procedure_code)
                 and (overlaps_from is None or a.valid_to >= overlaps_from)
                 and (overlaps_to is None or a.valid_from <= overlaps_to)
                 and (not active_only or a.status in USABLE)]
        found.sort(key=lambda item: (item[1].issued_at, item[0]), reverse=True)
        return [a for _, a in found[:limit]]

    def draw(self, number: str, units: int) -> bool:
        row_id = self._row_of(number)
        if row_id is None:
            return False
        stored = self.store.authorizations[row_id]
        if stored.status not in USABLE or stored.units_used + units > stored.units:
            return False
        self.store.authorizations[row_id] = dataclasses.replace(stored, units_used=stored.units_used + units)
        return True

    def metrics(self, issued_from: dt.date | None = None, issued_to: dt.date | None = None) -> Metrics:
        chosen = [a for a in self.store.authorizations.values()
                  if (issued_from is None or a.issued_at.date() >= issued_from)
                  and (issued_to is None or a.issued_at.date() <= issued_to)]

        def count(status: str) -> int:
            return sum(1 for a in chosen if a.status == status)

        return Metrics(approved=count("approved"), partially_approved=count("partially_approved"),
                       modified=count("modified"), denied=count("denied"), cancelled=count("cancelled"),
                       approved_after_appeal=sum(1 for a in chosen if a.approved_after_appeal and a.status in USABLE))


class FakeUnitDrawRepository(ports.UnitDrawRepository):
    def __init__(self, store: AuthorizationStore) -> None:
        self.store = store

    def get(self, claim_line_id: str) -> UnitDraw | None:
        return self.store.draws.get(claim_line_id)

    def add(self, draw: UnitDraw) -> None:
        if draw.claim_line_id in self.store.draws:
            raise DuplicateKey(f"a draw for claim line {draw.claim_line_id!r} already exists")
        self.store.draws[draw.claim_line_id] = draw


class FakeAuthorizationUnitOfWork(FakeUnitOfWork[AuthorizationStore], ports.AuthorizationUnitOfWork):
    service = "authorization"

    def _open(self, working: AuthorizationStore) -> None:
        self.authorizations = FakeAuthorizationRepository(working)
        self.draws = FakeUnitDrawRepository(working)
