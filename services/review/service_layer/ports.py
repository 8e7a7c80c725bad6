"""What review's use cases need from the world, as abstract classes: the unit of work and its
repositories (they take and return domain objects), the criteria evaluator, the duplicate check and
the clock. Adapters implement them (adapters/repository.py on SQLAlchemy, adapters/criteria_evaluator.py,
adapters/authorization_client.py); tests/fakes/review.py implements them in memory, and
tests/contract/test_review_ports.py holds every implementation to the same contract.

Storage errors do not cross this seam: an adapter translates a unique-key violation into
:class:`~services.common.errors.DuplicateKey` and a lost compare-and-set into
:class:`~services.review.domain.workflow.StaleTask`.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from services.common.audit.chain import AuditRecord
from services.common.clock import Clock
from services.common.events import OutgoingEvent
from services.review.domain.appeals import Appeal
from services.review.domain.case import Case
from services.review.domain.criteria import LineEvaluation, LineFacts
from services.review.domain.notes import CaseNote
from services.review.domain.notices import Notice
from services.review.domain.policy import LineOutcome, ProviderRecord
from services.review.domain.task import AuditEntry, Task
from services.review.domain.workflow import Reviewer, Role

__all__ = [
    "AppealRepository",
    "CaseNoteRepository",
    "CaseRepository",
    "Clock",
    "DecisionMetrics",
    "DuplicateChecker",
    "Evaluator",
    "LineDecided",
    "LineQuery",
    "NoticeRenderer",
    "NoticeRepository",
    "ProviderOutcomeRepository",
    "QueueDepth",
    "ReviewerRepository",
    "TaskRepository",
    "UnitOfWork",
]


class CaseRepository(abc.ABC):
    @abc.abstractmethod
    def existing(self, request_ids: Sequence[str]) -> set[str]:
        """The ids among ``request_ids`` that already have a case."""

    @abc.abstractmethod
    def add_many(self, cases: Sequence[Case]) -> None:
        """Store new cases; DuplicateKey if one already exists."""

    @abc.abstractmethod
    def get(self, request_id: str, *, for_update: bool = False) -> Case | None:
        """The case, or None. ``for_update`` serializes the writers of one case until the unit of
        work ends (PostgreSQL row lock)."""

    @abc.abstractmethod
    def save(self, case: Case) -> None:
        """Store what may change on a case: its request (merged facts), determination, clock, due time
        and urgency (the urgency its clock runs on, which a person may change)."""

    @abc.abstractmethod
    def request_ids_of_member(self, member_id: str) -> list[str]:
        """The ids of the member's cases, oldest received first (then by id)."""


@dataclass(frozen=True)
class QueueDepth:
    """How many undecided tasks share a category, urgency, line of business, required role and
    status; of those, how many are at risk and how many are past their deadline (as
    :meth:`TaskRepository.at_risk` and :meth:`TaskRepository.missed` count them)."""

    category: str
    urgency: str
    line_of_business: str
    required_role: Role
    status: str
    count: int
    at_risk: int
    missed: int


class TaskRepository(abc.ABC):
    """Review tasks and their audit trail. "Most urgent first" is expedited before standard, then
    the earliest due time, then the task id."""

    @abc.abstractmethod
    def add_many(self, tasks: Sequence[Task]) -> None:
        """Store new tasks (and any audit entries they carry); DuplicateKey if a task id or a
        (request, line) already has one."""

    @abc.abstractmethod
    def get(self, task_id: str) -> Task | None: ...

    @abc.abstractmethod
    def save(self, task: Task) -> None:
        """Compare-and-set: store the task if its stored version is still ``task.version``, then
        bump the version (stored and on ``task``) and append ``task.new_entries`` to its audit trail
        (emptying the list). Raises StaleTask, storing nothing, when another writer changed it."""

    @abc.abstractmethod
    def of_request(self, request_id: str) -> list[Task]:
        """The request's tasks by line number."""

    @abc.abstractmethod
    def held_by(self, reviewer_id: str, now: dt.datetime) -> list[Task]:
        """Tasks the reviewer holds under a live lease, most urgent first."""

    @abc.abstractmethod
    def count_held(self, reviewer_id: str, now: dt.datetime) -> int:
        """How many tasks the reviewer holds under a live lease (``len(held_by(...))``, without
        reading them: a claim checks capacity with it)."""

    @abc.abstractmethod
    def claimable(self, roles: Sequence[Role], lines_of_business: Iterable[str], categories: Iterable[str],
                  now: dt.datetime, limit: int) -> list[Task]:
        """Open tasks (or claimed ones whose lease ran out) needing one of ``roles`` on one of the
        lines of business and categories, most urgent first, at most ``limit``. Licences are the
        caller's to check (:func:`~services.review.domain.workflow.eligibility`)."""

    @abc.abstractmethod
    def expired_leases(self, now: dt.datetime) -> list[Task]:
        """Claimed tasks whose lease ran out at or before ``now``."""

    @abc.abstractmethod
    def needing_attention(self, now: dt.datetime, limit: int = 1000) -> list[Task]:
        """Undecided tasks whose deadline passed unrecorded or that reached their at-risk time
        unescalated, earliest deadline first, at most ``limit``."""

    @abc.abstractmethod
    def open_tasks(self, limit: int, offset: int) -> tuple[list[Task], int]:
        """A page of the open tasks (expedited first, then earliest due, then oldest, then id) and
        how many are open in all."""

    @abc.abstractmethod
    def history(self, task_id: str) -> list[AuditEntry]:
        """The task's audit trail, oldest first (entries of one instant in the order written)."""

    # -- the supervisor's overview ------------------------------------------------------------
    @abc.abstractmethod
    def depth(self, now: dt.datetime) -> list[QueueDepth]:
        """Undecided tasks counted by (category, urgency, line of business, required role, status),
        in that order of keys."""

    @abc.abstractmethod
    def at_risk(self, now: dt.datetime, limit: int) -> list[Task]:
        """Undecided tasks on a running clock whose at-risk time has come and whose deadline has
        not passed, earliest due first (then id), at most ``limit``."""

    @abc.abstractmethod
    def missed(self, now: dt.datetime, limit: int) -> list[Task]:
        """Undecided tasks on a running clock whose deadline passed (recorded by the monitor or
        not yet), earliest due first (then id), at most ``limit``."""

    @abc.abstractmethod
    def all_held(self, now: dt.datetime, limit: int) -> list[Task]:
        """Tasks held under a live lease, by holder, then most urgent first, at most ``limit``."""


class ReviewerRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, reviewer_id: str) -> Reviewer | None: ...

    @abc.abstractmethod
    def all(self) -> list[Reviewer]:
        """Every reviewer, active or not, by id."""

    @abc.abstractmethod
    def put(self, reviewer: Reviewer, now: dt.datetime) -> None:
        """Insert or replace the reviewer's entry."""


class ProviderOutcomeRepository(abc.ABC):
    """The gold-card record: one entry per line decided by criteria or by a person."""

    @abc.abstractmethod
    def add_many(self, outcomes: Sequence[LineOutcome]) -> None:
        """Record lines decided in this unit of work; DuplicateKey if a line is already recorded."""

    @abc.abstractmethod
    def update_outcome(self, request_id: str, line_number: int, *, approved: bool, decided_by: str,
                       decided_at: dt.datetime) -> bool:
        """A person's decision on a recorded line; False when the line was never recorded (it was
        answered from the no-PA list or under a gold card, and does not count)."""

    @abc.abstractmethod
    def records(self, pairs: Iterable[tuple[str, str]], since: dt.datetime) -> list[ProviderRecord]:
        """Approved and total counts of each (npi, category) pair decided at or after ``since``.
        Pairs without any decision are absent."""


class CaseNoteRepository(abc.ABC):
    """Case notes, append only: there is no way to change or remove a stored note."""

    @abc.abstractmethod
    def add(self, note: CaseNote) -> None:
        """Store a new note; DuplicateKey if its id is taken."""

    @abc.abstractmethod
    def get(self, note_id: str) -> CaseNote | None: ...

    @abc.abstractmethod
    def of_member(self, member_id: str) -> list[CaseNote]:
        """The member's notes, oldest first (then by id)."""


class NoticeRepository(abc.ABC):
    """Notices as issued, never changed."""

    @abc.abstractmethod
    def add_many(self, notices: Sequence[Notice]) -> None:
        """Store new notices; DuplicateKey if an id is taken."""

    @abc.abstractmethod
    def get(self, notice_id: str) -> Notice | None: ...

    @abc.abstractmethod
    def of_request(self, request_id: str) -> list[Notice]:
        """The request's notices, oldest first (then by id)."""

    @abc.abstractmethod
    def of_member(self, member_id: str) -> list[Notice]:
        """The member's notices, oldest first (then by id)."""


class NoticeRenderer(abc.ABC):
    """A notice as the PDF letter that is mailed (adapters/notice_pdf.py)."""

    @abc.abstractmethod
    def pdf(self, notice: Notice) -> bytes:
        """The letter as PDF bytes, showing every section of ``notice`` (its text can be read back out)."""


class AppealRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, appeal: Appeal) -> None:
        """Store a new appeal; DuplicateKey if its id (or its task) is taken."""

    @abc.abstractmethod
    def get(self, appeal_id: str) -> Appeal | None: ...

    @abc.abstractmethod
    def save(self, appeal: Appeal) -> None:
        """Store what a decision changes: status, outcome, decider, time and where it was forwarded."""

    @abc.abstractmethod
    def of_line(self, request_id: str, line_number: int) -> list[Appeal]:
        """The line's appeals, oldest first."""


class UnitOfWork(abc.ABC):
    """One transaction over review's store, used as a context manager: it rolls back unless
    :meth:`commit` is called. Events handed to :meth:`publish` are stored with the changes (the
    outbox) and leave only once committed; consumers record what they processed in the same
    transaction (:meth:`mark_processed`), which makes them idempotent. What it records with
    :meth:`audit` joins the audit log in the same transaction."""

    cases: CaseRepository
    tasks: TaskRepository
    reviewers: ReviewerRepository
    provider_outcomes: ProviderOutcomeRepository
    case_notes: CaseNoteRepository
    notices: NoticeRepository
    appeals: AppealRepository

    @abc.abstractmethod
    def read_only(self) -> Self:
        """Queries only (commit() is refused); call before entering."""

    @abc.abstractmethod
    def __enter__(self) -> Self: ...

    @abc.abstractmethod
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Roll back whatever was not committed."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def publish(self, event: OutgoingEvent) -> None:
        """Stage an event; it is stored in the outbox by :meth:`commit`, dropped by a rollback."""

    @abc.abstractmethod
    def audit(self, *records: AuditRecord) -> None:
        """Stage audit records; :meth:`commit` appends them to review's audit log with the changes
        (services/common/ports.py states the contract), a rollback drops them."""

    @abc.abstractmethod
    def already_processed(self, consumer: str, event_ids: list[str]) -> set[str]:
        """Which of ``event_ids`` ``consumer`` already applied."""

    @abc.abstractmethod
    def mark_processed(self, consumer: str, event_ids: list[str]) -> None:
        """Record that ``consumer`` applied ``event_ids`` (with this unit of work's changes)."""


class Evaluator(abc.ABC):
    """The criteria library applied to a line (adapters/criteria_evaluator.py)."""

    @abc.abstractmethod
    def evaluate(self, line: LineFacts) -> LineEvaluation | None:
        """The criteria evaluation of a line, or None when no criteria set applies."""


@dataclass(frozen=True)
class LineQuery:
    """A service line as the duplicate check sees it."""

    line_number: int
    procedure_code: str
    start: dt.date
    end: dt.date


class DuplicateChecker(abc.ABC):
    """Does the member already hold an authorization for the same code over overlapping dates?
    (adapters/authorization_client.py asks the authorization service.)"""

    @abc.abstractmethod
    def overlapping(self, requests: Sequence[tuple[str, Sequence[LineQuery]]]) -> list[dict[int, list[str]]]:
        """For each (member id, lines), in order: line number -> numbers of the member's active
        authorizations for the line's code whose validity overlaps the line's dates. Lines without
        any are absent. Raises TransientError when the answer cannot be had now."""


@dataclass(frozen=True)
class LineDecided:
    """A line's determination, as committed and announced: who decided it (``software``, or the
    reviewer's role: ``nurse``, ``physician``, ``adjuster``), its action (``certified_in_total``,
    ``pended``, ``not_certified``... the ActionCode's name), the request's regulatory regime and
    urgency, and when the request was received and the line decided. No identifiers."""

    decider: str
    outcome: str
    regime: str
    urgency: str
    received_at: dt.datetime
    decided_at: dt.datetime


class DecisionMetrics(abc.ABC):
    """Where decisions are counted (adapters/metrics.py: Prometheus)."""

    @abc.abstractmethod
    def decided(self, lines: Sequence[LineDecided]) -> None:
        """Count lines whose determination has just been committed (called after the commit, so a
        rolled-back decision is never counted)."""
