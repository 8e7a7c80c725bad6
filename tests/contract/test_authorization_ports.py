"""Authorization's ports (``services/authorization/service_layer/ports.py``): one contract, run
against the fake (``tests/fakes/authorization.py``), SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from services.authorization.adapters import tables
from services.authorization.adapters.repository import SqlAuthorizationUnitOfWork
from services.authorization.domain import numbers
from services.authorization.domain.model import AuthorizationToIssue, IssuedAuthorization
from services.common.errors import DuplicateKey
from tests.contract.unit_of_work import Backend, FakeBackend, SqlBackend, UnitOfWorkContract
from tests.fakes.authorization import AuthorizationStore

ISSUED = dt.datetime(2027, 3, 1, 14, 30, 5, 123456, tzinfo=dt.UTC)


def draft(request: str, line: int = 1, *, member: str = "T-MA-0001", code: str = "72148",
          valid: tuple[dt.date, dt.date] = (dt.date(2027, 3, 1), dt.date(2027, 5, 29)), status: str = "active",
          issued_at: dt.datetime = ISSUED) -> AuthorizationToIssue:
    return AuthorizationToIssue(request_id=request, line_number=line, determination_id=f"det-{request}",
                                member_id=member, procedure_code=code, units=line * 2, valid_from=valid[0],
                                valid_to=valid[1], status=status, issued_at=issued_at)


def numbered(d: AuthorizationToIssue, issued: IssuedAuthorization) -> IssuedAuthorization:
    return IssuedAuthorization.numbered(d, issued.authorization_number)


class AuthorizationPortsContract(UnitOfWorkContract):
    def add(self, backend: Backend, *drafts: AuthorizationToIssue) -> list[IssuedAuthorization]:
        with backend.uow() as uow:
            issued: list[IssuedAuthorization] = uow.authorizations.add_many(list(drafts))
            uow.commit()
        return issued

    def test_authorizations_are_numbered_uniquely_and_returned_in_input_order(self, backend: Backend) -> None:
        first = [draft("r1", 1), draft("r1", 2), draft("r2", 1, issued_at=dt.datetime(2028, 1, 1, tzinfo=dt.UTC))]
        issued = self.add(backend, *first) + self.add(backend, draft("r3", 4))
        assert [numbered(d, i) for d, i in zip([*first, draft("r3", 4)], issued, strict=True)] == issued
        found = [i.authorization_number for i in issued]
        assert len(set(found)) == 4
        assert all(numbers.is_well_formed(n) for n in found)
        assert [n[:4] for n in found] == ["UR27", "UR27", "UR28", "UR27"]  # the year of issue
        with backend.uow().read_only() as uow:
            for i in issued:
                got = uow.authorizations.by_number(i.authorization_number)
                assert got == i
                assert got.issued_at.utcoffset() == dt.timedelta(0)
            assert uow.authorizations.by_number("UR27-0000-0000") is None

    def test_nothing_to_add_adds_nothing(self, backend: Backend) -> None:
        assert self.add(backend) == []
        with backend.uow().read_only() as uow:
            assert uow.authorizations.for_member("T-MA-0001") == []

    def test_lines_already_authorized_are_those_of_the_named_requests(self, backend: Backend) -> None:
        self.add(backend, draft("r1", 1), draft("r1", 3), draft("r2", 1))
        with backend.uow().read_only() as uow:
            assert uow.authorizations.lines_already_authorized(["r1", "r9"]) == {("r1", 1), ("r1", 3)}
            assert uow.authorizations.lines_already_authorized([]) == set()

    def test_a_line_has_one_authorization_ever(self, backend: Backend) -> None:
        [kept] = self.add(backend, draft("r1", 1))
        for batch in ([draft("r1", 1, code="99999")], [draft("r2", 1), draft("r2", 1)]):
            with pytest.raises(DuplicateKey), backend.uow() as uow:
                uow.authorizations.add_many(batch)
        with backend.uow().read_only() as uow:
            assert uow.authorizations.lines_already_authorized(["r1", "r2"]) == {("r1", 1)}
            assert uow.authorizations.for_member("T-MA-0001") == [kept]

    def test_authorizations_added_without_commit_are_not_stored(self, backend: Backend) -> None:
        with backend.uow() as uow:
            [issued] = uow.authorizations.add_many([draft("r1")])
            assert uow.authorizations.by_number(issued.authorization_number) == issued
        with backend.uow().read_only() as uow:
            assert uow.authorizations.by_number(issued.authorization_number) is None
            assert uow.authorizations.lines_already_authorized(["r1"]) == set()

    def test_a_members_authorizations_newest_first_then_latest_stored_first(self, backend: Backend) -> None:
        older = dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
        a, b = self.add(backend, draft("r1", 1, issued_at=older), draft("r2", 1))
        c, d = self.add(backend, draft("r3", 1), draft("r4", 1, member="T-OTHER-1"))
        with backend.uow().read_only() as uow:
            assert uow.authorizations.for_member("T-MA-0001") == [c, b, a]
            assert uow.authorizations.for_member("T-MA-0001", limit=2) == [c, b]
            assert uow.authorizations.for_member("T-OTHER-1") == [d]
            assert uow.authorizations.for_member("T-NOBODY") == []

    def test_filters_by_code_status_and_overlap_with_both_ends_inclusive(self, backend: Backend) -> None:
        march, april_ = (dt.date(2027, 3, 1), dt.date(2027, 3, 31)), (dt.date(2027, 4, 1), dt.date(2027, 4, 30))
        mri, knee, gone, april = self.add(
            backend, draft("r1", valid=march), draft("r2", code="27447", valid=march),
            draft("r3", valid=march, status="cancelled"), draft("r4", valid=april_))
        with backend.uow().read_only() as uow:
            def listed(**kw: object) -> set[str]:
                return {a.request_id for a in uow.authorizations.for_member("T-MA-0001", **kw)}

            assert listed() == {"r1", "r2", "r3", "r4"}
            assert listed(procedure_code="27447") == {"r2"}
            assert listed(active_only=True) == {"r1", "r2", "r4"}
            assert listed(procedure_code="72148", active_only=True) == {"r1", "r4"}
            assert listed(overlaps_from=dt.date(2027, 3, 31)) == {"r1", "r2", "r3", "r4"}
            assert listed(overlaps_from=dt.date(2027, 4, 1)) == {"r4"}
            assert listed(overlaps_to=dt.date(2027, 3, 31)) == {"r1", "r2", "r3"}
            assert listed(overlaps_to=dt.date(2027, 2, 28)) == set()
            assert listed(overlaps_from=dt.date(2027, 3, 15), overlaps_to=dt.date(2027, 4, 1)) == {
                "r1", "r2", "r3", "r4"}
            assert listed(overlaps_from=dt.date(2027, 4, 30), overlaps_to=dt.date(2027, 5, 1)) == {"r4"}
        assert (mri.status, knee.procedure_code, gone.status, april.valid_to) == (
            "active", "27447", "cancelled", dt.date(2027, 4, 30))


# -- the implementations -----------------------------------------------------------------------

class TestFakeAuthorization(AuthorizationPortsContract):
    @pytest.fixture
    def backend(self) -> Backend:
        store = AuthorizationStore()
        return FakeBackend(store, store.unit_of_work)


@pytest.fixture(scope="module")
def sqlite_authorization(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlBackend]:
    path = tmp_path_factory.mktemp("authorization") / "authorization.db"
    backend = SqlBackend("authorization", f"sqlite:///{path}", tables.metadata, SqlAuthorizationUnitOfWork)
    yield backend
    backend.engine.dispose()


@pytest.fixture(scope="module")
def postgres_authorization(make_database: Callable[[str], str]) -> Iterator[SqlBackend]:
    backend = SqlBackend("authorization", make_database("authorization_ports"), tables.metadata,
                         SqlAuthorizationUnitOfWork)
    yield backend
    backend.engine.dispose()


class TestSqliteAuthorization(AuthorizationPortsContract):
    @pytest.fixture
    def backend(self, sqlite_authorization: SqlBackend) -> Backend:
        sqlite_authorization.clear()
        return sqlite_authorization


@pytest.mark.integration
class TestPostgresAuthorization(AuthorizationPortsContract):
    @pytest.fixture
    def backend(self, postgres_authorization: SqlBackend) -> Backend:
        postgres_authorization.clear()
        return postgres_authorization
