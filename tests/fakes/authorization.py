"""Authorization's ports in memory (``services/authorization/service_layer/ports.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from services.authorization.domain.model import AuthorizationToIssue, IssuedAuthorization
from services.authorization.domain.numbers import authorization_number
from services.authorization.service_layer import ports
from services.common.errors import DuplicateKey
from tests.fakes.common import FakeStore, FakeUnitOfWork


class AuthorizationStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        # Row id → authorization; the id orders ties and feeds the number, as in the database.
        self.authorizations: dict[int, IssuedAuthorization] = {}

    def unit_of_work(self) -> FakeAuthorizationUnitOfWork:
        """The handlers' ``uow_factory``: a new unit of work on this store."""
        return FakeAuthorizationUnitOfWork(self)


class FakeAuthorizationRepository(ports.AuthorizationRepository):
    def __init__(self, store: AuthorizationStore) -> None:
        self.store = store

    def lines_already_authorized(self, request_ids: Sequence[str]) -> set[tuple[str, int]]:
        wanted = set(request_ids)
        return {(a.request_id, a.line_number) for a in self.store.authorizations.values() if a.request_id in wanted}

    def add_many(self, authorizations: Sequence[AuthorizationToIssue]) -> list[IssuedAuthorization]:
        taken = {(a.request_id, a.line_number) for a in self.store.authorizations.values()}
        issued = []
        for draft in authorizations:
            if (draft.request_id, draft.line_number) in taken:
                raise DuplicateKey("an authorization for one of these request lines already exists")
            taken.add((draft.request_id, draft.line_number))
            row_id = max(self.store.authorizations, default=0) + 1
            auth = IssuedAuthorization.numbered(draft, authorization_number(row_id, draft.issued_at.year))
            self.store.authorizations[row_id] = auth
            issued.append(auth)
        return issued

    def by_number(self, number: str) -> IssuedAuthorization | None:
        return next((a for a in self.store.authorizations.values() if a.authorization_number == number), None)

    def for_member(self, member_id: str, procedure_code: str = "", overlaps_from: dt.date | None = None,
                   overlaps_to: dt.date | None = None, active_only: bool = False,
                   limit: int = 100) -> list[IssuedAuthorization]:
        found = [(row_id, a) for row_id, a in self.store.authorizations.items()
                 if a.member_id == member_id
                 and (not procedure_code or a.procedure_code == procedure_code)
                 and (overlaps_from is None or a.valid_to >= overlaps_from)
                 and (overlaps_to is None or a.valid_from <= overlaps_to)
                 and (not active_only or a.status == "active")]
        found.sort(key=lambda item: (item[1].issued_at, item[0]), reverse=True)
        return [a for _, a in found[:limit]]


class FakeAuthorizationUnitOfWork(FakeUnitOfWork[AuthorizationStore], ports.AuthorizationUnitOfWork):
    def _open(self, working: AuthorizationStore) -> None:
        self.authorizations = FakeAuthorizationRepository(working)
