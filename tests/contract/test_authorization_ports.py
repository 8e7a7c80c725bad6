"""Authorization's ports (``services/authorization/service_layer/ports.py``): one contract, run
against the fake (``tests/fakes/authorization.py``), SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from services.authorization.adapters import tables
from services.authorization.adapters.repository import SqlAuthorizationUnitOfWork
from services.authorization.domain import numbers
from services.authorization.domain.claims import UnitDraw
from services.authorization.domain.model import AuthorizationToIssue, Decider, Extension, IssuedAuthorization, Metrics
from services.common.errors import DuplicateKey
from tests.contract.unit_of_work import AuditedUnitOfWorkContract, Backend, FakeBackend, SqlBackend
from tests.fakes.authorization import AuthorizationStore

ISSUED = dt.datetime(2027, 3, 1, 14, 30, 5, 123456, tzinfo=dt.UTC)


def draft(request: str, line: int = 1, *, member: str = "T-MA-0001", code: str = "72148",
          valid: tuple[dt.date, dt.date] = (dt.date(2027, 3, 1), dt.date(2027, 5, 29)), status: str = "approved",
          issued_at: dt.datetime = ISSUED) -> AuthorizationToIssue:
    return AuthorizationToIssue(request_id=request, line_number=line, determination_id=f"det-{request}",
                                member_id=member, procedure_code=code, units=line * 2, valid_from=valid[0],
                                valid_to=valid[1], status=status, issued_at=issued_at)


def numbered(d: AuthorizationToIssue, issued: IssuedAuthorization) -> IssuedAuthorization:
    return IssuedAuthorization.numbered(d, issued.authorization_number)


class AuthorizationPortsContract(AuditedUnitOfWorkContract):
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

    def test_records_of_lines_are_those_of_the_named_lines(self, backend: Backend) -> None:
        a, _, c = self.add(backend, draft("r1", 1), draft("r1", 3), draft("r2", 1))
        with backend.uow().read_only() as uow:
            assert uow.authorizations.of_lines([("r1", 1), ("r2", 1), ("r9", 1)]) == {("r1", 1): a, ("r2", 1): c}
            assert uow.authorizations.of_lines([]) == {}

    def test_a_line_has_one_authorization_ever(self, backend: Backend) -> None:
        [kept] = self.add(backend, draft("r1", 1))
        for batch in ([draft("r1", 1, code="99999")], [draft("r2", 1), draft("r2", 1)]):
            with pytest.raises(DuplicateKey), backend.uow() as uow:
                uow.authorizations.add_many(batch)
        with backend.uow().read_only() as uow:
            assert set(uow.authorizations.of_lines([("r1", 1), ("r2", 1)])) == {("r1", 1)}
            assert uow.authorizations.for_member("T-MA-0001") == [kept]

    def test_authorizations_added_without_commit_are_not_stored(self, backend: Backend) -> None:
        with backend.uow() as uow:
            [issued] = uow.authorizations.add_many([draft("r1")])
            assert uow.authorizations.by_number(issued.authorization_number) == issued
        with backend.uow().read_only() as uow:
            assert uow.authorizations.by_number(issued.authorization_number) is None
            assert uow.authorizations.of_lines([("r1", 1)]) == {}

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
            assert listed(active_only=True) == {"r1", "r2", "r4"}  # usable: approved, in part, modified
            assert listed(procedure_code="72148", active_only=True) == {"r1", "r4"}
            assert listed(overlaps_from=dt.date(2027, 3, 31)) == {"r1", "r2", "r3", "r4"}
            assert listed(overlaps_from=dt.date(2027, 4, 1)) == {"r4"}
            assert listed(overlaps_to=dt.date(2027, 3, 31)) == {"r1", "r2", "r3"}
            assert listed(overlaps_to=dt.date(2027, 2, 28)) == set()
            assert listed(overlaps_from=dt.date(2027, 3, 15), overlaps_to=dt.date(2027, 4, 1)) == {
                "r1", "r2", "r3", "r4"}
            assert listed(overlaps_from=dt.date(2027, 4, 30), overlaps_to=dt.date(2027, 5, 1)) == {"r4"}
        assert (mri.status, knee.procedure_code, gone.status, april.valid_to) == (
            "approved", "27447", "cancelled", dt.date(2027, 4, 30))

    def test_a_batch_of_overlap_queries_answers_each_as_its_own_usable_listing(self, backend: Backend) -> None:
        march, april_ = (dt.date(2027, 3, 1), dt.date(2027, 3, 31)), (dt.date(2027, 4, 1), dt.date(2027, 4, 30))
        older = dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
        self.add(backend, draft("r1", valid=march, issued_at=older), draft("r2", code="27447", valid=march),
                 draft("r3", valid=march, status="cancelled"), draft("r4", valid=april_),
                 draft("r5", valid=march, member="T-OTHER-1"))
        queries = [("T-MA-0001", dt.date(2027, 3, 31), dt.date(2027, 4, 1)), ("T-MA-0001", dt.date(2027, 4, 2),
                                                                              dt.date(2027, 6, 1)),
                   ("T-OTHER-1", dt.date(2027, 1, 1), dt.date(2027, 2, 28)), ("T-OTHER-1", dt.date(2027, 3, 1),
                                                                              dt.date(2027, 3, 1)),
                   ("T-NOBODY", dt.date(2027, 1, 1), dt.date(2027, 12, 31))]
        with backend.uow().read_only() as uow:
            answers = uow.authorizations.usable_overlapping(queries, 100)
            assert answers == [uow.authorizations.for_member(m, "", start, end, True, 100) for m, start, end in queries]
            assert [[a.request_id for a in answer] for answer in answers] == [
                ["r4", "r2", "r1"], ["r4"], [], ["r5"], []]
            assert [[a.request_id for a in answer] for answer in uow.authorizations.usable_overlapping(
                queries[:1], 2)] == [["r4", "r2"]]
            assert uow.authorizations.usable_overlapping([], 100) == []

    def test_a_record_follows_its_line_and_keeps_its_number_issue_time_and_units_used(self, backend: Backend) -> None:
        [issued] = self.add(backend, draft("r1", 1, status="pended"))
        later = ISSUED + dt.timedelta(hours=2)
        decider = Decider("md-patel", "physician", "MD, licensed in CA", "Dr. Anil Patel")
        changed = dataclasses.replace(
            issued, status="partially_approved", units=5, determination_id="det-2", servicing_npi="1234567893",
            servicing_name="Bay Imaging", unit="visits", criteria=("pt-ot-visits@2026.1",), decided_by=decider,
            next_review_date=dt.date(2027, 3, 10), reason="six of twelve visits", action="certified_partial",
            approved_after_appeal=True, appeal_id="ap-1", updated_at=later, units_used=99,
            issued_at=later, extensions=(Extension("r9", 1, "det-9", 2, dt.date(2027, 6, 1), later),))
        with backend.uow() as uow:
            uow.authorizations.update_many([changed])
            uow.authorizations.update_many([])
            uow.commit()
        with backend.uow().read_only() as uow:
            found = uow.authorizations.by_number(issued.authorization_number)
        assert found == dataclasses.replace(changed, units_used=0, issued_at=ISSUED)
        assert found is not None
        assert found.updated_at is not None
        assert found.updated_at.utcoffset() == dt.timedelta(0)
        again = dataclasses.replace(changed, extensions=(*changed.extensions,
                                                        Extension("r9", 2, "det-9", 1, dt.date(2027, 6, 9), later)))
        with backend.uow() as uow:
            uow.authorizations.update_many([again])  # the first extension is stored already
            uow.commit()
        with backend.uow().read_only() as uow:
            found = uow.authorizations.by_number(issued.authorization_number)
        assert found is not None
        assert [(e.request_id, e.line_number) for e in found.extensions] == [("r9", 1), ("r9", 2)]

    def test_draws_stop_at_the_units_and_only_on_usable_records(self, backend: Backend) -> None:
        usable, denied = self.add(backend, draft("r1", 2), draft("r2", 1, status="denied"))  # 4 units, 2 units
        with backend.uow() as uow:
            assert uow.authorizations.draw(usable.authorization_number, 3)
            assert not uow.authorizations.draw(usable.authorization_number, 2)
            assert uow.authorizations.draw(usable.authorization_number, 1)
            assert not uow.authorizations.draw(usable.authorization_number, 1)
            assert not uow.authorizations.draw(denied.authorization_number, 1)
            assert not uow.authorizations.draw("UR27-0000-0000", 1)
            uow.commit()
        with backend.uow().read_only() as uow:
            found = uow.authorizations.by_number(usable.authorization_number)
        assert found is not None
        assert (found.units_used, found.remaining) == (4, 0)

    def test_a_claim_line_draws_once(self, backend: Backend) -> None:
        draw = UnitDraw("clm-1/1", "UR27-AAAA-AAAA", 2, "f" * 64, ISSUED)
        with backend.uow() as uow:
            uow.draws.add(draw)
            uow.commit()
        with pytest.raises(DuplicateKey), backend.uow() as uow:
            uow.draws.add(dataclasses.replace(draw, units=1))
        with backend.uow().read_only() as uow:
            assert uow.draws.get("clm-1/1") == draw
            assert uow.draws.get("clm-2/1") is None

    def test_metrics_count_records_by_status_over_their_issue_days(self, backend: Backend) -> None:
        march_2, march_3 = ISSUED + dt.timedelta(days=1), ISSUED + dt.timedelta(days=2)
        self.add(backend, draft("r1"), draft("r2", status="denied"), draft("r3", status="pended"),
                 draft("r4", status="partially_approved", issued_at=march_2),
                 draft("r5", status="cancelled", issued_at=march_3))
        [appealed] = self.add(backend, draft("r6", status="denied", issued_at=march_3))
        with backend.uow() as uow:
            uow.authorizations.update_many([dataclasses.replace(appealed, status="approved",
                                                                approved_after_appeal=True)])
            uow.commit()
        with backend.uow().read_only() as uow:
            every = uow.authorizations.metrics()
            later = uow.authorizations.metrics(dt.date(2027, 3, 2), None)
            one_day = uow.authorizations.metrics(dt.date(2027, 3, 2), dt.date(2027, 3, 2))
        assert every == Metrics(approved=2, partially_approved=1, denied=1, cancelled=1, approved_after_appeal=1)
        assert later == Metrics(approved=1, partially_approved=1, cancelled=1, approved_after_appeal=1)
        assert one_day == Metrics(partially_approved=1)


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
