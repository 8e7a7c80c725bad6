"""Intake's ports (``services/intake/service_layer/ports.py``): one contract, run against the fake
(``tests/fakes/intake.py``), SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from services.common.errors import DuplicateKey
from services.intake.adapters import tables
from services.intake.adapters.repository import SqlIntakeUnitOfWork
from services.intake.domain.model import Coverage, Member, RequestStatus
from services.intake.domain.records import (
    AppealDecided,
    AppealRecord,
    DeterminationRecorded,
    InformationRecord,
    LineAuthorized,
    LineDecided,
    LineRecord,
    RequestChanges,
    RequestRecord,
    RevisionRecord,
    StatusChanged,
)
from tests.contract.unit_of_work import AuditedUnitOfWorkContract, Backend, FakeBackend, SqlBackend
from tests.fakes.intake import IntakeStore

RECEIVED = dt.datetime(2027, 3, 1, 14, 30, 5, 123456, tzinfo=dt.UTC)


CLINIC = "acme-clinic"


def request(n: int = 1, *, key: str | None = None, lines: int = 2, status: RequestStatus = RequestStatus.IN_REVIEW,
            submitter: str = CLINIC) -> RequestRecord:
    return RequestRecord(
        request_id=f"00000000-0000-4000-8000-{n:012d}", submitter=submitter, idempotency_key=key or f"key-{n}",
        fingerprint="f" * 64,
        member_id="T-MA-0001", line_of_business="medicare_advantage", member_state="CA", urgency="standard",
        review_type="prospective", status=status, status_reason="", received_at=RECEIVED + dt.timedelta(seconds=n),
        payload=b"\x0a\x05key-1\x00\xff", lines=tuple(LineRecord(i, f"7214{i}") for i in range(lines, 0, -1)))


def information(n: int, request_id: str, key: str | None = None, submitter: str = CLINIC) -> InformationRecord:
    return InformationRecord(information_id=f"10000000-0000-4000-8000-{n:012d}", request_id=request_id,
                             submitter=submitter, idempotency_key=key or f"info-{n}", fingerprint="e" * 64,
                             payload=b"\x01\x02",
                             received_at=RECEIVED + dt.timedelta(hours=n))


def member(member_id: str = "T-MA-0001", *coverages: Coverage) -> Member:
    return Member(member_id, dt.date(1950, 2, 1), coverages)


def coverage(member_id: str = "T-MA-0001", lob: str = "medicare_advantage", state: str = "CA",
             termination: dt.date | None = None) -> Coverage:
    return Coverage(member_id, lob, "H0001-001", state, dt.date(2026, 1, 1), termination)


def in_order(record: RequestRecord) -> RequestRecord:
    return replace(record, lines=tuple(sorted(record.lines, key=lambda ln: ln.line_number)))


class IntakePortsContract(AuditedUnitOfWorkContract):
    # -- requests ------------------------------------------------------------------------------
    def test_a_request_round_trips_with_its_lines_in_order(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.requests.add(request(2, lines=1, status=RequestStatus.INELIGIBLE))
            uow.commit()
        with backend.uow().read_only() as uow:
            got = uow.requests.get(request(1).request_id)
            assert got == in_order(request(1))
            assert got is not None
            assert [ln.line_number for ln in got.lines] == [1, 2]
            assert got.received_at.utcoffset() == dt.timedelta(0)
            assert uow.requests.get(request(1).request_id, for_update=True) == got
            assert uow.requests.by_key(CLINIC, "key-2") == request(2, lines=1, status=RequestStatus.INELIGIBLE)
            assert uow.requests.get(request(3).request_id) is None
            assert uow.requests.by_key(CLINIC, "key-3") is None
            assert uow.requests.by_key("someone-else", "key-2") is None

    def test_get_many_returns_those_that_exist(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.requests.add(request(2))
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.requests.get_many([request(2).request_id, request(3).request_id, request(1).request_id]) == {
                request(1).request_id: in_order(request(1)), request(2).request_id: in_order(request(2))}
            assert uow.requests.get_many([]) == {}

    def test_requests_added_together_round_trip_and_a_duplicate_among_them_stores_none(self,
                                                                                       backend: Backend) -> None:
        with backend.uow() as uow:
            uow.requests.add_many([request(1), request(2, lines=1), request(3, lines=0)])
            uow.requests.add_many([])
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.requests.get_many([request(n).request_id for n in (1, 2, 3)]) == {
                request(n).request_id: in_order(request(n, lines=lines)) for n, lines in ((1, 2), (2, 1), (3, 0))}
        for batch in ([request(4), request(5, key="key-1")], [request(6), request(7, key="key-6")]):
            with pytest.raises(DuplicateKey), backend.uow() as uow:
                uow.requests.add_many(batch)
        with backend.uow().read_only() as uow:
            assert uow.requests.get_many([request(n).request_id for n in (4, 5, 6, 7)]) == {}

    def test_a_taken_idempotency_key_or_id_is_a_duplicate_key(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.commit()
        for duplicate in (request(2, key="key-1"), replace(request(1), idempotency_key="fresh")):
            with pytest.raises(DuplicateKey), backend.uow() as uow:
                uow.requests.add(duplicate)
        with backend.uow().read_only() as uow:
            assert uow.requests.by_key(CLINIC, "key-1") == in_order(request(1))
            assert uow.requests.by_key(CLINIC, "fresh") is None
            assert uow.requests.get(request(2).request_id) is None

    def test_idempotency_keys_are_unique_per_submitter(self, backend: Backend) -> None:
        theirs = request(2, key="key-1", submitter="other")
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.requests.add(theirs)
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.requests.by_key(CLINIC, "key-1") == in_order(request(1))
            assert uow.requests.by_key("other", "key-1") == in_order(theirs)
            assert [r.request_id for r in uow.requests.of_member("T-MA-0001", 10, "other")] == [theirs.request_id]
            assert len(uow.requests.of_member("T-MA-0001", 10)) == 2

    def test_a_request_added_without_commit_is_not_stored(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.information.add(information(1, request(1).request_id))
            uow.members.save(member("T-NEW-0001"))
            assert uow.requests.get(request(1).request_id) is not None  # the transaction sees its own work
        with backend.uow().read_only() as uow:
            assert uow.requests.get(request(1).request_id) is None
            assert uow.information.by_key(CLINIC, "info-1") is None
            assert uow.members.get("T-NEW-0001") is None

    def test_changes_apply_to_requests_and_lines(self, backend: Backend) -> None:
        decided_at = dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)
        one, two = request(1), request(2)
        with backend.uow() as uow:
            uow.requests.add(one)
            uow.requests.add(two)
            uow.commit()
        changes = RequestChanges(
            determinations=[DeterminationRecorded(one.request_id, "d1", decided_at, "rules", b"\x01"),
                            DeterminationRecorded(one.request_id, "d2", decided_at + dt.timedelta(1), "nurse-7",
                                                  b"\x02")],
            statuses=[StatusChanged(one.request_id, RequestStatus.PENDED, decided_at),
                      StatusChanged(one.request_id, RequestStatus.DECIDED, decided_at),
                      StatusChanged(two.request_id, RequestStatus.PENDED, decided_at)],
            lines_decided=[LineDecided(one.request_id, 1, "LINE_OUTCOME_REFER_TO_NURSE", True, False, b"\x03"),
                           LineDecided(one.request_id, 1, "LINE_OUTCOME_MEETS_CRITERIA", False, True, b"\x04"),
                           LineDecided(one.request_id, 2, "LINE_OUTCOME_REFER_TO_NURSE", True, False, b"\x05")],
            lines_authorized=[LineAuthorized(one.request_id, 1, b"\x06", "UR27-AAAA-BBBB")])
        with backend.uow() as uow:
            uow.requests.apply(changes)
            uow.requests.apply(RequestChanges())
            uow.commit()
        with backend.uow().read_only() as uow:
            got = uow.requests.get_many([one.request_id, two.request_id])
        assert got[one.request_id] == replace(
            one, status=RequestStatus.DECIDED, determination_id="d2", decided_at=decided_at + dt.timedelta(1),
            decided_by="nurse-7", determination_header=b"\x02", lines=(
                LineRecord(1, "72141", "LINE_OUTCOME_MEETS_CRITERIA", False, True, b"\x04", b"\x06"),
                LineRecord(2, "72142", "LINE_OUTCOME_REFER_TO_NURSE", True, False, b"\x05", None)))
        assert got[two.request_id] == in_order(replace(two, status=RequestStatus.PENDED))

    # -- additional information ----------------------------------------------------------------
    def test_information_round_trips_and_its_key_is_unique(self, backend: Backend) -> None:
        rid = request(1).request_id
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.information.add(information(1, rid))
            uow.commit()
        with backend.uow().read_only() as uow:
            got = uow.information.by_key(CLINIC, "info-1")
            assert got == information(1, rid)
            assert got.received_at.utcoffset() == dt.timedelta(0)
            assert uow.information.by_key(CLINIC, "info-2") is None
            assert uow.information.by_key("other", "info-1") is None
        for duplicate in (information(2, rid, key="info-1"), replace(information(1, rid), idempotency_key="new")):
            with pytest.raises(DuplicateKey), backend.uow() as uow:
                uow.information.add(duplicate)
        with backend.uow().read_only() as uow:
            assert uow.information.by_key(CLINIC, "info-1") == information(1, rid)
            assert uow.information.by_key(CLINIC, "new") is None
        with backend.uow() as uow:  # another submitter's key of the same text is another key
            uow.information.add(information(3, rid, key="info-1", submitter="other"))
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.information.by_key("other", "info-1") == information(3, rid, key="info-1", submitter="other")

    def test_information_of_a_request_comes_oldest_first(self, backend: Backend) -> None:
        first, other = request(1).request_id, request(2).request_id
        with backend.uow() as uow:
            uow.requests.add(request(1))
            uow.requests.add(request(2))
            for record in (information(3, first), information(1, first), information(2, other)):
                uow.information.add(record)
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.information.of_request(first) == [information(1, first), information(3, first)]
            assert uow.information.of_request("00000000-0000-4000-8000-000000000099") == []

    def test_a_members_requests_come_newest_first_up_to_the_limit(self, backend: Backend) -> None:
        with backend.uow() as uow:
            for n in (1, 3, 2):
                uow.requests.add(request(n))
            uow.requests.add(replace(request(4), member_id="T-MA-0002"))
            uow.commit()
        with backend.uow().read_only() as uow:
            assert [r.request_id for r in uow.requests.of_member("T-MA-0001", 10)] == [
                request(n).request_id for n in (3, 2, 1)]
            assert uow.requests.of_member("T-MA-0001", 2) == [in_order(request(3)), in_order(request(2))]
            assert uow.requests.of_member("nobody", 10) == []

    def test_a_claims_requests_come_newest_first_up_to_the_limit_and_only_the_submitters(
            self, backend: Backend) -> None:
        claim = "WC-2027-000123"
        with backend.uow() as uow:
            for n in (1, 3, 2):
                uow.requests.add(replace(request(n, submitter="other" if n == 2 else CLINIC), claim_number=claim))
            uow.requests.add(replace(request(4), claim_number="WC-2027-000999"))
            uow.requests.add(request(5))  # no claim: not a workers' comp request
            uow.commit()
        with backend.uow().read_only() as uow:
            assert [r.request_id for r in uow.requests.of_claim(claim, 10)] == [
                request(n).request_id for n in (3, 2, 1)]
            assert uow.requests.of_claim(claim, 1) == [in_order(replace(request(3), claim_number=claim))]
            assert [r.request_id for r in uow.requests.of_claim(claim, 10, CLINIC)] == [
                request(n).request_id for n in (3, 1)]
            stored = uow.requests.get_many([request(4).request_id, request(5).request_id])
            assert [stored[request(n).request_id].claim_number for n in (4, 5)] == ["WC-2027-000999", None]
            assert uow.requests.of_claim("WC-NONE", 10) == []

    # -- members -------------------------------------------------------------------------------
    def test_a_member_round_trips_with_coverages_in_the_order_saved(self, backend: Backend) -> None:
        covered = member("T-MA-0001", coverage(state="NV", termination=dt.date(2026, 6, 30)), coverage(),
                         coverage(lob="commercial"))
        bare = Member("T-NONE-0002", None, ())
        with backend.uow() as uow:
            uow.members.save(covered)
            uow.members.save(bare)
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.members.get("T-MA-0001") == covered
            assert uow.members.get("T-NONE-0002") == bare
            assert uow.members.get("T-NOBODY-3") is None
            assert uow.members.get_many(["T-NOBODY-3", "T-NONE-0002", "T-MA-0001", "T-MA-0001"]) == {
                "T-MA-0001": covered, "T-NONE-0002": bare}
            assert uow.members.get_many([]) == {}

    def test_saving_a_member_again_replaces_birth_date_and_coverages(self, backend: Backend) -> None:
        with backend.uow() as uow:
            uow.members.save(member("T-MA-0001", coverage(), coverage(lob="commercial")))
            uow.commit()
        again = Member("T-MA-0001", None, (coverage(lob="medicaid", state="TX"),))
        with backend.uow() as uow:
            uow.members.save(again)
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.members.get("T-MA-0001") == again


# -- the implementations -----------------------------------------------------------------------

    def test_a_request_is_cancelled_or_revised(self, backend: Backend) -> None:
        first, second = request(1), request(2)
        with backend.uow() as uow:
            uow.requests.add(first)
            uow.requests.add(second)
            uow.requests.cancel(first.request_id, "withdrawn by its submitter: moved", RECEIVED)
            uow.requests.revise(second.request_id, b"revised", [(1, "72149"), (2, "72158")], RECEIVED)
            uow.commit()
        with backend.uow().read_only() as uow:
            cancelled, revised = uow.requests.get(first.request_id), uow.requests.get(second.request_id)
        assert cancelled is not None
        assert (cancelled.status, cancelled.status_reason) == (RequestStatus.CANCELLED,
                                                               "withdrawn by its submitter: moved")
        assert revised is not None
        assert revised.payload == b"revised"
        assert [ln.procedure_code for ln in revised.lines] == ["72149", "72158"]

    def test_a_revision_key_is_taken_once(self, backend: Backend) -> None:
        record = request(1)
        revision = RevisionRecord("r-1", record.request_id, "rev-key", "f" * 64, b"\x01", RECEIVED)
        with backend.uow() as uow:
            uow.requests.add(record)
            uow.revisions.add(revision)
            uow.commit()
        with pytest.raises(DuplicateKey), backend.uow() as uow:
            uow.revisions.add(replace(revision, revision_id="r-2"))
        with backend.uow().read_only() as uow:
            assert uow.revisions.by_key("rev-key") == revision
            assert uow.revisions.by_key("other") is None

    def test_a_line_is_appealed_once_and_its_outcome_recorded(self, backend: Backend) -> None:
        record = request(1)
        appeal = AppealRecord("a-1", record.request_id, 1, "ap-key", "f" * 64, "expedited", "member", "Maria Lopez",
                              "notes attached", RECEIVED, b"\x02")
        later = replace(appeal, appeal_id="a-2", line_number=2, idempotency_key="ap-2",
                        filed_at=RECEIVED + dt.timedelta(hours=1))
        with backend.uow() as uow:
            uow.requests.add(record)
            uow.appeals.add(later)
            uow.appeals.add(appeal)
            uow.commit()
        for taken in (replace(appeal, appeal_id="a-3", idempotency_key="ap-3"), replace(appeal, appeal_id="a-4",
                                                                                        line_number=2)):
            with pytest.raises(DuplicateKey), backend.uow() as uow:
                uow.appeals.add(taken)
        decided_at = RECEIVED + dt.timedelta(days=2)
        with backend.uow() as uow:
            uow.appeals.decide([AppealDecided(record.request_id, 1, "a-1", "upheld", decided_at, "the IRE"),
                                AppealDecided(record.request_id, 9, "nope", "upheld", decided_at, "")])
            uow.appeals.decide([])
            uow.commit()
        with backend.uow().read_only() as uow:
            assert uow.appeals.by_key("ap-key") == replace(appeal, status="decided", outcome="upheld",
                                                          decided_at=decided_at, forwarded_to="the IRE")
            assert [a.appeal_id for a in uow.appeals.of_request(record.request_id)] == ["a-1", "a-2"]


class TestFakeIntake(IntakePortsContract):
    @pytest.fixture
    def backend(self) -> Backend:
        store = IntakeStore()
        return FakeBackend(store, store.unit_of_work)


@pytest.fixture(scope="module")
def sqlite_intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlBackend]:
    path = tmp_path_factory.mktemp("intake") / "intake.db"
    backend = SqlBackend("intake", f"sqlite:///{path}", tables.metadata, SqlIntakeUnitOfWork)
    yield backend
    backend.engine.dispose()


@pytest.fixture(scope="module")
def postgres_intake(make_database: Callable[[str], str]) -> Iterator[SqlBackend]:
    backend = SqlBackend("intake", make_database("intake_ports"), tables.metadata, SqlIntakeUnitOfWork)
    yield backend
    backend.engine.dispose()


class TestSqliteIntake(IntakePortsContract):
    @pytest.fixture
    def backend(self, sqlite_intake: SqlBackend) -> Backend:
        sqlite_intake.clear()
        return sqlite_intake


@pytest.mark.integration
class TestPostgresIntake(IntakePortsContract):
    @pytest.fixture
    def backend(self, postgres_intake: SqlBackend) -> Backend:
        postgres_intake.clear()
        return postgres_intake
