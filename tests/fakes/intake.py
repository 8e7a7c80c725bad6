"""Intake's ports in memory (``services/intake/service_layer/ports.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from services.common.errors import DuplicateKey
from services.intake.domain.model import Member, RequestStatus
from services.intake.domain.records import (
    AppealDecided,
    AppealRecord,
    InformationRecord,
    RequestChanges,
    RequestRecord,
    RevisionRecord,
)
from services.intake.service_layer import ports
from tests.fakes.common import FakeStore, FakeUnitOfWork

R = TypeVar("R", RequestRecord, InformationRecord)


def _with_key(records: Iterable[R], submitter: str, idempotency_key: str) -> R | None:
    return next((r for r in records if r.submitter == submitter and r.idempotency_key == idempotency_key), None)


def _newest(records: list[RequestRecord], limit: int, submitter: str | None) -> list[RequestRecord]:
    """As the repository orders them: newest first, then by request id; only ``submitter``'s unless None."""
    mine = sorted((r for r in records if submitter is None or r.submitter == submitter), key=lambda r: r.request_id)
    mine.sort(key=lambda r: r.received_at, reverse=True)
    return mine[:limit]


class IntakeStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[str, RequestRecord] = {}
        self.information: dict[str, InformationRecord] = {}
        self.members: dict[str, Member] = {}
        self.revisions: dict[str, RevisionRecord] = {}
        self.appeals: dict[str, AppealRecord] = {}

    def unit_of_work(self) -> FakeIntakeUnitOfWork:
        """The handlers' ``uow_factory``: a new unit of work on this store."""
        return FakeIntakeUnitOfWork(self)


class FakeRequestRepository(ports.RequestRepository):
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    def add_many(self, records: Sequence[RequestRecord]) -> None:
        for record in records:
            if record.request_id in self.store.requests or _with_key(self.store.requests.values(), record.submitter,
                                                                      record.idempotency_key):
                raise DuplicateKey(f"request {record.request_id} (idempotency key {record.idempotency_key!r})")
            self.store.requests[record.request_id] = replace(
                record, lines=tuple(sorted(record.lines, key=lambda ln: ln.line_number)))

    def get(self, request_id: str, *, for_update: bool = False) -> RequestRecord | None:
        return self.store.requests.get(request_id)

    def by_key(self, submitter: str, idempotency_key: str) -> RequestRecord | None:
        return _with_key(self.store.requests.values(), submitter, idempotency_key)

    def get_many(self, request_ids: Sequence[str]) -> dict[str, RequestRecord]:
        return {rid: self.store.requests[rid] for rid in request_ids if rid in self.store.requests}

    def of_member(self, member_id: str, limit: int, submitter: str | None = None) -> list[RequestRecord]:
        return _newest([r for r in self.store.requests.values() if r.member_id == member_id], limit, submitter)

    def of_claim(self, claim_number: str, limit: int, submitter: str | None = None) -> list[RequestRecord]:
        return _newest([r for r in self.store.requests.values() if r.claim_number == claim_number], limit, submitter)

    def _change(self, request_id: str, **values: object) -> None:
        record = self.store.requests.get(request_id)
        if record is not None:  # like an UPDATE that matches no row
            self.store.requests[request_id] = replace(record, **values)  # type: ignore[arg-type]

    def _change_line(self, request_id: str, line_number: int, **values: object) -> None:
        record = self.store.requests.get(request_id)
        if record is None:
            return
        lines = tuple(replace(ln, **values) if ln.line_number == line_number else ln  # type: ignore[arg-type]
                      for ln in record.lines)
        self.store.requests[request_id] = replace(record, lines=lines)

    def apply(self, changes: RequestChanges) -> None:
        for d in changes.determinations:
            self._change(d.request_id, determination_id=d.determination_id, decided_at=d.decided_at,
                         decided_by=d.decided_by, determination_header=d.header)
        for s in changes.statuses:
            self._change(s.request_id, status=s.status)
        for ln in changes.lines_decided:
            self._change_line(ln.request_id, ln.line_number, outcome=ln.outcome, queued=ln.queued,
                              certified=ln.certified, determination=ln.determination)
        for a in changes.lines_authorized:
            self._change_line(a.request_id, a.line_number, authorization=a.authorization)

    def cancel(self, request_id: str, reason: str, at: dt.datetime) -> None:
        self._change(request_id, status=RequestStatus.CANCELLED, status_reason=reason[:300])

    def revise(self, request_id: str, payload: bytes, procedure_codes: Sequence[tuple[int, str]],
               at: dt.datetime) -> None:
        self._change(request_id, payload=payload)
        for number, code in procedure_codes:
            self._change_line(request_id, number, procedure_code=code)


class FakeRevisionRepository(ports.RevisionRepository):
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    def add(self, record: RevisionRecord) -> None:
        if record.revision_id in self.store.revisions or any(
                r.idempotency_key == record.idempotency_key for r in self.store.revisions.values()):
            raise DuplicateKey(f"revision with idempotency key {record.idempotency_key!r}")
        self.store.revisions[record.revision_id] = record

    def by_key(self, idempotency_key: str) -> RevisionRecord | None:
        return next((r for r in self.store.revisions.values() if r.idempotency_key == idempotency_key), None)


class FakeAppealRepository(ports.AppealRepository):
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    def add(self, record: AppealRecord) -> None:
        if record.appeal_id in self.store.appeals or any(
                a.idempotency_key == record.idempotency_key or (a.request_id, a.line_number) == (
                    record.request_id, record.line_number) for a in self.store.appeals.values()):
            raise DuplicateKey(f"an appeal of request {record.request_id} line {record.line_number}")
        self.store.appeals[record.appeal_id] = record

    def by_key(self, idempotency_key: str) -> AppealRecord | None:
        return next((a for a in self.store.appeals.values() if a.idempotency_key == idempotency_key), None)

    def of_request(self, request_id: str) -> list[AppealRecord]:
        return sorted((a for a in self.store.appeals.values() if a.request_id == request_id),
                      key=lambda a: (a.filed_at, a.appeal_id))

    def decide(self, decided: Sequence[AppealDecided]) -> None:
        for d in decided:
            found = self.store.appeals.get(d.appeal_id)
            if found is not None:
                self.store.appeals[d.appeal_id] = replace(found, status="decided", outcome=d.outcome,
                                                          decided_at=d.decided_at, forwarded_to=d.forwarded_to)


class FakeInformationRepository(ports.InformationRepository):
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    def add(self, record: InformationRecord) -> None:
        if record.information_id in self.store.information or _with_key(self.store.information.values(),
                                                                         record.submitter, record.idempotency_key):
            raise DuplicateKey(f"information with idempotency key {record.idempotency_key!r}")
        self.store.information[record.information_id] = record

    def by_key(self, submitter: str, idempotency_key: str) -> InformationRecord | None:
        return _with_key(self.store.information.values(), submitter, idempotency_key)

    def of_request(self, request_id: str) -> list[InformationRecord]:
        return sorted((r for r in self.store.information.values() if r.request_id == request_id),
                      key=lambda r: (r.received_at, r.information_id))


class FakeMemberRepository(ports.MemberRepository):
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    def get_many(self, member_ids: Sequence[str]) -> dict[str, Member]:
        return {m: self.store.members[m] for m in member_ids if m in self.store.members}

    def save(self, member: Member) -> None:
        self.store.members[member.member_id] = member


class FakeIntakeUnitOfWork(FakeUnitOfWork[IntakeStore], ports.IntakeUnitOfWork):
    service = "intake"

    def _open(self, working: IntakeStore) -> None:
        self.requests = FakeRequestRepository(working)
        self.information = FakeInformationRepository(working)
        self.members = FakeMemberRepository(working)
        self.revisions = FakeRevisionRepository(working)
        self.appeals = FakeAppealRepository(working)

