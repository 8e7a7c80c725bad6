"""In-memory implementations of review's ports (services/review/service_layer/ports.py), for unit
tests. tests/contract/test_review_ports.py runs the same contract against these and the SQL
adapters, so what passes here behaves like the database.

The store (:class:`ReviewStore`) is the committed state; each :class:`FakeUnitOfWork` writes to
its own pending layer and reads through it (read committed, as PostgreSQL does by default), and
commit applies the layer. Objects go in and out as copies, so a change is stored only by a save.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

from services.common.audit.chain import AuditRecord
from services.common.audit.store import prepare
from services.common.errors import DuplicateKey
from services.common.events import OutgoingEvent
from services.review.domain.appeals import Appeal
from services.review.domain.case import Case
from services.review.domain.criteria import LineEvaluation, LineFacts, Outcome
from services.review.domain.notes import CaseNote
from services.review.domain.notices import Notice
from services.review.domain.policy import LineOutcome, ProviderRecord
from services.review.domain.task import UNDECIDED, AuditEntry, Task
from services.review.domain.workflow import Reviewer, Role, StaleTask, TaskStatus, priority
from services.review.service_layer import ports
from tests.fakes.common import FAKE_AUDIT_KEY


@dataclass
class ReviewStore:
    """The committed state of a fake review database."""

    cases: dict[str, Case] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    history: list[tuple[int, str, AuditEntry]] = field(default_factory=list)  # (sequence, task id, entry)
    reviewers: dict[str, Reviewer] = field(default_factory=dict)
    outcomes: dict[tuple[str, int], LineOutcome] = field(default_factory=dict)
    notes: dict[str, CaseNote] = field(default_factory=dict)
    notices: dict[str, Notice] = field(default_factory=dict)
    appeals: dict[str, Appeal] = field(default_factory=dict)
    outbox: list[OutgoingEvent] = field(default_factory=list)
    processed: set[tuple[str, str]] = field(default_factory=set)
    #: What the units of work recorded and committed, in order (actors filled in, members as references).
    audit: list[AuditRecord] = field(default_factory=list)
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    before_task_save: list[Callable[[Task], object]] = field(default_factory=list)
    """Each is run once, just before the next task save of any unit of work: how a test lets
    another writer in between a use case's read and its write."""

    def events(self, message_type: type | None = None) -> list[object]:
        """The committed outbox's messages, of one type when given."""
        return [e.message for e in self.outbox if message_type is None or isinstance(e.message, message_type)]


K = TypeVar("K")
V = TypeVar("V")


class _Layer(Generic[K, V]):
    """Pending writes over a committed dict: reads see both, commit applies the writes."""

    def __init__(self, committed: dict[K, V]) -> None:
        self.committed = committed
        self.pending: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self.pending.get(key, self.committed.get(key))
        return copy.deepcopy(value)

    def values(self) -> list[V]:
        merged = {**self.committed, **self.pending}
        return [copy.deepcopy(v) for v in merged.values()]

    def __contains__(self, key: K) -> bool:
        return key in self.pending or key in self.committed

    def put(self, key: K, value: V) -> None:
        self.pending[key] = copy.deepcopy(value)

    def commit(self) -> None:
        self.committed.update(self.pending)
        self.pending.clear()


def _urgent_first(t: Task) -> tuple[int, dt.datetime, str]:
    return priority(t.facts())


class FakeCaseRepository(ports.CaseRepository):
    def __init__(self, layer: _Layer[str, Case]) -> None:
        self._cases = layer

    def existing(self, request_ids: Sequence[str]) -> set[str]:
        return {r for r in request_ids if r in self._cases}

    def add_many(self, cases: Sequence[Case]) -> None:
        ids = [c.request_id for c in cases]
        if len(set(ids)) != len(ids) or self.existing(ids):
            raise DuplicateKey("a case for one of these requests is already stored")
        for c in cases:
            self._cases.put(c.request_id, c)

    def get(self, request_id: str, *, for_update: bool = False) -> Case | None:
        return self._cases.get(request_id)

    def save(self, case: Case) -> None:
        stored = self._cases.get(case.request_id)
        if stored is None:
            return  # an UPDATE of no row
        stored.request, stored.determination = case.request, case.determination
        stored.due_at, stored.clock, stored.urgency = case.due_at, case.clock, case.urgency
        self._cases.put(case.request_id, stored)

    def request_ids_of_member(self, member_id: str) -> list[str]:
        mine = sorted((c for c in self._cases.values() if c.member_id == member_id),
                      key=lambda c: (c.received_at, c.request_id))
        return [c.request_id for c in mine]


class FakeTaskRepository(ports.TaskRepository):
    def __init__(self, store: ReviewStore, layer: _Layer[str, Task],
                 history: list[tuple[int, str, AuditEntry]]) -> None:
        self._store = store
        self._tasks = layer
        self._history = history  # this unit of work's pending entries

    def _all(self) -> list[Task]:
        return self._tasks.values()

    def add_many(self, tasks: Sequence[Task]) -> None:
        ids = [t.task_id for t in tasks]
        lines = [(t.request_id, t.line_number, t.appeal_id) for t in tasks]
        taken = {(t.request_id, t.line_number, t.appeal_id) for t in self._all()}
        if len(set(ids)) != len(ids) or len(set(lines)) != len(lines) or any(i in self._tasks for i in ids) \
                or taken & set(lines):
            raise DuplicateKey("a task for one of these lines is already stored")
        for t in tasks:
            self._append(t)
            self._tasks.put(t.task_id, t)

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def save(self, task: Task) -> None:
        if self._store.before_task_save:
            self._store.before_task_save.pop(0)(task)
        stored = self._tasks.get(task.task_id)
        if stored is None or stored.version != task.version:
            raise StaleTask(task.task_id)
        task.version += 1
        self._append(task)
        self._tasks.put(task.task_id, task)

    def _append(self, task: Task) -> None:
        self._history.extend((next(self._store.sequence), task.task_id, e) for e in task.new_entries)
        task.new_entries.clear()

    def of_request(self, request_id: str) -> list[Task]:
        return sorted((t for t in self._all() if t.request_id == request_id), key=lambda t: t.line_number)

    def held_by(self, reviewer_id: str, now: dt.datetime) -> list[Task]:
        return sorted((t for t in self._all() if t.assigned_to == reviewer_id and t.held(now)), key=_urgent_first)

    def count_held(self, reviewer_id: str, now: dt.datetime) -> int:
        return sum(1 for t in self._all() if t.assigned_to == reviewer_id and t.held(now))

    def claimable(self, roles: Sequence[Role], lines_of_business: Iterable[str], categories: Iterable[str],
                  now: dt.datetime, limit: int) -> list[Task]:
        lobs, cats = set(lines_of_business), set(categories)
        found = [t for t in self._all() if t.claimable(now) and t.required_role in roles
                 and t.line_of_business in lobs and t.category in cats]
        return sorted(found, key=_urgent_first)[:limit]

    def expired_leases(self, now: dt.datetime) -> list[Task]:
        return sorted((t for t in self._all() if t.lease_expired(now)), key=lambda t: t.task_id)

    def needing_attention(self, now: dt.datetime, limit: int = 1000) -> list[Task]:
        found = [t for t in self._all() if t.status in UNDECIDED and (
            (t.missed_at is None and t.due_at <= now)
            or (t.escalated_at is None and t.at_risk_at is not None and t.at_risk_at <= now))]
        return sorted(found, key=lambda t: (t.due_at, t.task_id))[:limit]

    def open_tasks(self, limit: int, offset: int) -> tuple[list[Task], int]:
        found = sorted((t for t in self._all() if t.status is TaskStatus.OPEN),
                       key=lambda t: (0 if t.urgency == "expedited" else 1, t.due_at, t.created_at, t.task_id))
        return found[offset:offset + limit], len(found)

    def history(self, task_id: str) -> list[AuditEntry]:
        entries = [(e.at, seq, e) for seq, tid, e in [*self._store.history, *self._history] if tid == task_id]
        return [e for _, _, e in sorted(entries, key=lambda x: (x[0], x[1]))]

    @staticmethod
    def _at_risk(t: Task, now: dt.datetime) -> bool:
        return (t.status in UNDECIDED and not t.clock_paused and t.at_risk_at is not None and t.at_risk_at <= now
                and t.due_at > now)

    @staticmethod
    def _missed(t: Task, now: dt.datetime) -> bool:
        return t.status in UNDECIDED and not t.clock_paused and t.due_at <= now

    def depth(self, now: dt.datetime) -> list[ports.QueueDepth]:
        counts: dict[tuple[str, str, str, str, str], list[int]] = {}
        for t in self._all():
            if t.status in UNDECIDED:
                key = (t.category, t.urgency, t.line_of_business, t.required_role.value, t.status.value)
                seen = counts.setdefault(key, [0, 0, 0])
                seen[0] += 1
                seen[1] += self._at_risk(t, now)
                seen[2] += self._missed(t, now)
        return [ports.QueueDepth(category=k[0], urgency=k[1], line_of_business=k[2], required_role=Role(k[3]),
                                 status=k[4], count=c[0], at_risk=c[1], missed=c[2])
                for k, c in sorted(counts.items())]

    def at_risk(self, now: dt.datetime, limit: int) -> list[Task]:
        return sorted((t for t in self._all() if self._at_risk(t, now)), key=lambda t: (t.due_at, t.task_id))[:limit]

    def missed(self, now: dt.datetime, limit: int) -> list[Task]:
        return sorted((t for t in self._all() if self._missed(t, now)), key=lambda t: (t.due_at, t.task_id))[:limit]

    def all_held(self, now: dt.datetime, limit: int) -> list[Task]:
        held = [t for t in self._all() if t.held(now)]
        return sorted(held, key=lambda t: (t.assigned_to or "", *_urgent_first(t)))[:limit]


class FakeReviewerRepository(ports.ReviewerRepository):
    def __init__(self, layer: _Layer[str, Reviewer]) -> None:
        self._reviewers = layer

    def get(self, reviewer_id: str) -> Reviewer | None:
        return self._reviewers.get(reviewer_id)

    def all(self) -> list[Reviewer]:
        return sorted(self._reviewers.values(), key=lambda r: r.reviewer_id)

    def put(self, reviewer: Reviewer, now: dt.datetime) -> None:
        self._reviewers.put(reviewer.reviewer_id, reviewer)


class FakeProviderOutcomeRepository(ports.ProviderOutcomeRepository):
    def __init__(self, layer: _Layer[tuple[str, int], LineOutcome]) -> None:
        self._outcomes = layer

    def add_many(self, outcomes: Sequence[LineOutcome]) -> None:
        keys = [(o.request_id, o.line_number) for o in outcomes]
        if len(set(keys)) != len(keys) or any(k in self._outcomes for k in keys):
            raise DuplicateKey("an outcome of one of these lines is already stored")
        for o in outcomes:
            self._outcomes.put((o.request_id, o.line_number), o)

    def update_outcome(self, request_id: str, line_number: int, *, approved: bool, decided_by: str,
                       decided_at: dt.datetime) -> bool:
        stored = self._outcomes.get((request_id, line_number))
        if stored is None:
            return False
        self._outcomes.put((request_id, line_number), LineOutcome(
            request_id, line_number, stored.requesting_npi, stored.category, decided_at, approved, decided_by))
        return True

    def records(self, pairs: Iterable[tuple[str, str]], since: dt.datetime) -> list[ProviderRecord]:
        wanted = set(pairs)
        counts: dict[tuple[str, str], list[int]] = {}
        for o in self._outcomes.values():
            key = (o.requesting_npi, o.category)
            if key in wanted and o.decided_at >= since:
                approved_total = counts.setdefault(key, [0, 0])
                approved_total[0] += int(o.approved)
                approved_total[1] += 1
        return [ProviderRecord(npi, category, approved, total, since.date())
                for (npi, category), (approved, total) in sorted(counts.items())]


class FakeCaseNoteRepository(ports.CaseNoteRepository):
    def __init__(self, layer: _Layer[str, CaseNote]) -> None:
        self._notes = layer

    def add(self, note: CaseNote) -> None:
        if note.note_id in self._notes:
            raise DuplicateKey("this case note is already stored")
        self._notes.put(note.note_id, note)

    def get(self, note_id: str) -> CaseNote | None:
        return self._notes.get(note_id)

    def of_member(self, member_id: str) -> list[CaseNote]:
        return sorted((n for n in self._notes.values() if n.member_id == member_id),
                      key=lambda n: (n.written_at, n.note_id))


class FakeNoticeRepository(ports.NoticeRepository):
    def __init__(self, layer: _Layer[str, Notice]) -> None:
        self._notices = layer

    def add_many(self, notices: Sequence[Notice]) -> None:
        ids = [n.notice_id for n in notices]
        if len(set(ids)) != len(ids) or any(i in self._notices for i in ids):
            raise DuplicateKey("one of these notices is already stored")
        for n in notices:
            self._notices.put(n.notice_id, n)

    def get(self, notice_id: str) -> Notice | None:
        return self._notices.get(notice_id)

    def of_request(self, request_id: str) -> list[Notice]:
        return sorted((n for n in self._notices.values() if n.request_id == request_id),
                      key=lambda n: (n.issued_at, n.notice_id))

    def of_member(self, member_id: str) -> list[Notice]:
        return sorted((n for n in self._notices.values() if n.member_id == member_id),
                      key=lambda n: (n.issued_at, n.notice_id))


class FakeAppealRepository(ports.AppealRepository):
    def __init__(self, layer: _Layer[str, Appeal]) -> None:
        self._appeals = layer

    def add(self, appeal: Appeal) -> None:
        if appeal.appeal_id in self._appeals or any(a.task_id == appeal.task_id for a in self._appeals.values()):
            raise DuplicateKey(f"appeal {appeal.appeal_id} is already stored")
        self._appeals.put(appeal.appeal_id, appeal)

    def get(self, appeal_id: str) -> Appeal | None:
        return self._appeals.get(appeal_id)

    def save(self, appeal: Appeal) -> None:
        if appeal.appeal_id in self._appeals:
            self._appeals.put(appeal.appeal_id, appeal)

    def of_line(self, request_id: str, line_number: int) -> list[Appeal]:
        return sorted((a for a in self._appeals.values() if (a.request_id, a.line_number) == (request_id, line_number)),
                      key=lambda a: (a.filed_at, a.appeal_id))


class FakeUnitOfWork(ports.UnitOfWork):
    """A unit of work over a :class:`ReviewStore`; a fresh one per use, like the SQL one."""

    cases: FakeCaseRepository
    tasks: FakeTaskRepository
    reviewers: FakeReviewerRepository
    provider_outcomes: FakeProviderOutcomeRepository
    case_notes: FakeCaseNoteRepository
    notices: FakeNoticeRepository
    appeals: FakeAppealRepository

    def __init__(self, store: ReviewStore) -> None:
        self.store = store
        self._read_only = False
        self._active = False
        self.committed = False

    def read_only(self) -> Self:
        self._read_only = True
        return self

    def __enter__(self) -> Self:
        s = self.store
        self._layers = (_Layer(s.cases), _Layer(s.tasks), _Layer(s.reviewers), _Layer(s.outcomes), _Layer(s.notes),
                        _Layer(s.notices), _Layer(s.appeals))
        self._history: list[tuple[int, str, AuditEntry]] = []
        self._events: list[OutgoingEvent] = []
        self._records: list[AuditRecord] = []
        self._processed: set[tuple[str, str]] = set()
        self.cases = FakeCaseRepository(self._layers[0])
        self.tasks = FakeTaskRepository(s, self._layers[1], self._history)
        self.reviewers = FakeReviewerRepository(self._layers[2])
        self.provider_outcomes = FakeProviderOutcomeRepository(self._layers[3])
        self.case_notes = FakeCaseNoteRepository(self._layers[4])
        self.notices = FakeNoticeRepository(self._layers[5])
        self.appeals = FakeAppealRepository(self._layers[6])
        self._active = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.rollback()
        self._active = False

    def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        if not self._active:
            raise RuntimeError("unit of work used outside its 'with' block")
        for layer in self._layers:
            layer.commit()
        self.store.history.extend(self._history)
        self.store.outbox.extend(self._events)
        self.store.audit.extend(self._records)
        self.store.processed |= self._processed
        self._history.clear()
        self._events = []
        self._records = []
        self._processed = set()
        self.committed = True

    def rollback(self) -> None:
        for layer in self._layers:
            layer.pending.clear()
        self._history.clear()
        self._events = []
        self._records = []
        self._processed = set()

    def publish(self, event: OutgoingEvent) -> None:
        self._events.append(event)

    def audit(self, *records: AuditRecord) -> None:
        if not self._active:
            raise RuntimeError("unit of work used outside its 'with' block")
        self._records.extend(prepare(records, service="review", key=FAKE_AUDIT_KEY))

    def already_processed(self, consumer: str, event_ids: list[str]) -> set[str]:
        return {e for e in event_ids if (consumer, e) in self.store.processed | self._processed}

    def mark_processed(self, consumer: str, event_ids: list[str]) -> None:
        self._processed |= {(consumer, e) for e in event_ids}


class FixedClock:
    """A clock that stands still until a test moves it (services/common/clock.Clock)."""

    def __init__(self, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a clock tells aware UTC time")
        self.now = now.astimezone(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, by: dt.timedelta) -> dt.datetime:
        self.now += by
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now.astimezone(dt.UTC)


# The lumbar MRI criteria, reduced to what the tests need: met after six weeks of symptoms and six of
# conservative therapy (tests/factories.lumbar_mri sends 8 and 7 weeks, or 2 and 1 with meets=False).
LUMBAR_MRI = "72148"


def lumbar_rule(line: LineFacts) -> Outcome:
    facts = line.facts
    weeks = facts.get("symptom_duration_weeks")
    therapy = facts.get("conservative_therapy_weeks")
    if weeks is None or therapy is None:
        return Outcome.PEND_MISSING_INFORMATION
    if isinstance(weeks, int | float) and isinstance(therapy, int | float) and weeks >= 6 and therapy >= 6:
        return Outcome.MEETS_CRITERIA
    return Outcome.REFER_TO_NURSE


class FakeEvaluator(ports.Evaluator):
    """Criteria by procedure code: ``rules`` maps a code to a function from the line to an outcome
    (default: the lumbar MRI, advanced imaging); other codes have no criteria (None)."""

    def __init__(self, rules: dict[str, Callable[[LineFacts], Outcome]] | None = None,
                 category: str = "advanced_imaging") -> None:
        self.rules = rules if rules is not None else {LUMBAR_MRI: lumbar_rule}
        self.category = category
        self.evaluated: list[LineFacts] = []

    def evaluate(self, line: LineFacts) -> LineEvaluation | None:
        self.evaluated.append(line)
        rule = self.rules.get(line.procedure_code)
        if rule is None:
            return None
        outcome = rule(line)
        missing = ("conservative_therapy_weeks",) if outcome is Outcome.PEND_MISSING_INFORMATION else ()
        return LineEvaluation(outcome, f"fake-{line.procedure_code}", "1", "fake-hash", (), missing,
                              f"fake criteria: {outcome.value}", None, self.category)


@dataclass(frozen=True)
class Authorization:
    member_id: str
    number: str
    procedure_code: str
    valid_from: dt.date
    valid_to: dt.date
    active: bool = True


class FakeDuplicateChecker(ports.DuplicateChecker):
    """The member's active authorizations, held in memory (none unless given)."""

    def __init__(self, authorizations: Iterable[Authorization] = ()) -> None:
        self.authorizations = list(authorizations)

    def overlapping(self, requests: Sequence[tuple[str, Sequence[ports.LineQuery]]]) -> list[dict[int, list[str]]]:
        results: list[dict[int, list[str]]] = []
        for member_id, lines in requests:
            found: dict[int, list[str]] = {}
            for q in lines:
                for a in self.authorizations:
                    if a.member_id == member_id and a.active and a.procedure_code == q.procedure_code \
                            and a.valid_from <= q.end and q.start <= a.valid_to:
                        found.setdefault(q.line_number, []).append(a.number)
            results.append(found)
        return results


NoDuplicates = FakeDuplicateChecker
"""Review's duplicate check when nothing overlaps."""


class RecordingDecisionMetrics(ports.DecisionMetrics):
    """Keeps every line it is told about, in order."""

    def __init__(self) -> None:
        self.lines: list[ports.LineDecided] = []

    def decided(self, lines: Sequence[ports.LineDecided]) -> None:
        self.lines.extend(lines)
