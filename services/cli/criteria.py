"""urctl criteria: check, test, explain and replay the clinical criteria the review service applies.

    urctl criteria validate [PATH ...] [--json]
    urctl criteria test [PATH ...] [--json]
    urctl criteria explain REQUEST_FILE|REQUEST_ID [--criteria DIR] [--review HOST:PORT] [--json]
    urctl criteria replay DRAFT.yaml --since YYYY-MM-DD [--until YYYY-MM-DD] [--database-url URL]
                                     [--criteria DIR] [--sample N] [--json]

PATH is a criteria file or a directory of them (a directory is validated as a library, so the same
id and version twice is caught); the default is the review service's criteria directory
(UR_REVIEW_CRITERIA_DIR, else the library shipped in services/review/criteria).

``replay`` is the what-if a medical director runs before a criteria change goes live: it re-reads
the requests the review service stored (read only: SQLite is opened with ``mode=ro``, PostgreSQL in
a read-only transaction), applies the draft to every line it would govern, and reports how the
outcomes would change and which conditions flipped. It never writes anything anywhere.

Exit status: 0 done (every file valid, every example passing); 1 a problem was found (an invalid
file, a failing example, a missing database or an empty window, a service error); 2 bad usage or a
draft or request file that cannot be used.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import sqlite3
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli import urctl
from services.common import settings
from services.common.proto_enums import to_name, to_number
from services.review.adapters.criteria_loader import (
    CriteriaError,
    CriteriaLibrary,
    CriteriaLibraryError,
    load_criteria,
    load_library,
)
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.adapters.tables import cases
from services.review.domain.criteria import (
    ConditionMatcher,
    CriteriaSet,
    LineEvaluation,
    LineFacts,
    Outcome,
    PythonMatcher,
    evaluate,
    example_line,
    version_key,
)
from services.review.service_layer import lines

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CRITERIA_DIR = REPO / "services" / "review" / "criteria"
PROGRESS_MIN_SETS = 8  # below this many sets, `test` needs no progress bar

LOB = types_pb2.LineOfBusiness.DESCRIPTOR
URGENCY = types_pb2.Urgency.DESCRIPTOR
REVIEW_TYPE = types_pb2.ReviewType.DESCRIPTOR
OUTCOME = types_pb2.LineOutcome.DESCRIPTOR
CONDITION = types_pb2.ConditionStatus.DESCRIPTOR

# Plain words for each outcome: what a line "was", and what it "would now be".
OUTCOME_ORDER = ("meets_criteria", "meets_criteria_urgent", "no_action_required", "refer_to_nurse",
                 "pend_missing_information")
OUTCOME_LABEL = {
    "meets_criteria": "approved (meets criteria)",
    "meets_criteria_urgent": "approved as urgent",
    "no_action_required": "no authorization needed",
    "refer_to_nurse": "referred to a nurse",
    "pend_missing_information": "pended for missing information",
}
_WAS = {"meets_criteria": "was approved", "meets_criteria_urgent": "was approved as urgent",
        "no_action_required": "needed no authorization", "refer_to_nurse": "was referred to a nurse",
        "pend_missing_information": "was pended"}
_WOULD = {"meets_criteria": "would now be approved", "meets_criteria_urgent": "would now be approved as urgent",
          "no_action_required": "would now need no authorization",
          "refer_to_nurse": "would now be referred to a nurse",
          "pend_missing_information": "would now be pended"}
_OUTCOME_STYLE = {"meets_criteria": "green", "meets_criteria_urgent": "green", "no_action_required": "green",
                  "refer_to_nurse": "yellow", "pend_missing_information": "yellow"}
_STATUS_STYLE = {"met": "green", "unmet": "red", "missing": "yellow"}
_ACTION_WORDS = {
    types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL: "approved",
    types_pb2.ACTION_CODE_CERTIFIED_PARTIAL: "approved in part",
    types_pb2.ACTION_CODE_NOT_CERTIFIED: "denied",
    types_pb2.ACTION_CODE_PENDED: "pended",
    types_pb2.ACTION_CODE_MODIFIED: "modified",
    types_pb2.ACTION_CODE_CANCELLED: "cancelled",
}


class CriteriaInputError(urctl.CliError):
    """A criteria, draft or request file that cannot be used (exit 2)."""

    exit_code = urctl.EXIT_USAGE


def default_criteria_dir() -> Path:
    """The directory the review service loads: UR_REVIEW_CRITERIA_DIR, else the shipped library."""
    configured = settings.get("UR_REVIEW_CRITERIA_DIR")
    return Path(configured) if configured else SHIPPED_CRITERIA_DIR


def _t(value: object, style: str = "") -> Text:
    return Text(str(value), style=style)


# -- loading and validation ------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedSet:
    path: Path
    criteria: CriteriaSet


@dataclass
class Validation:
    """Every valid set of the given paths, and every problem (one per file, plus duplicates)."""

    sets: list[LoadedSet] = field(default_factory=list)
    problems: list[CriteriaError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _criteria_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _engine_problem(loaded: LoadedSet) -> CriteriaError | None:
    """Whether durable-rules compiles the set, as the review service does at start."""
    try:
        DurableRulesMatcher().compile(loaded.criteria)
    except Exception as exc:  # the engine's own error type is an implementation detail
        return CriteriaError(loaded.path, "conditions", f"the rules engine refuses this set: {exc}")
    return None


def validate_paths(paths: Sequence[Path]) -> Validation:
    """Load every file, and every directory as a library; collect every problem."""
    result = Validation()
    failed: set[Path] = set()
    for path in paths:
        if path.is_dir():
            try:
                load_library(path)
            except CriteriaLibraryError as exc:
                result.problems.extend(exc.errors)
                failed.update(e.path.resolve() for e in exc.errors)
            candidates = [p for p in _criteria_files(path) if p.resolve() not in failed] if path.exists() else []
        elif path.exists():
            candidates = [path]
        else:
            result.problems.append(CriteriaError(path, "", "no such file or directory"))
            continue
        for file in candidates:
            try:
                result.sets.append(LoadedSet(file, load_criteria(file)))
            except CriteriaError as exc:
                result.problems.append(exc)
    # The same id and version in two of the given paths (a directory catches its own).
    first: dict[str, LoadedSet] = {}
    unique: list[LoadedSet] = []
    for loaded in result.sets:
        other = first.get(loaded.criteria.key)
        if other is not None and other.path.resolve() != loaded.path.resolve():
            c = loaded.criteria
            result.problems.append(CriteriaError(loaded.path, "version", f"{c.id} version {c.version} is also "
                                                 f"defined in {other.path.name}; give changed criteria a new version"))
            continue
        if other is None:
            first[loaded.criteria.key] = loaded
            unique.append(loaded)
    result.sets = []
    for loaded in unique:
        problem = _engine_problem(loaded)
        if problem is not None:
            result.problems.append(problem)
        else:
            result.sets.append(loaded)
    return result


def _paths(args: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in args.paths] or [default_criteria_dir()]


def _problem_json(e: CriteriaError) -> dict[str, str]:
    return {"file": str(e.path), "field": e.field, "problem": e.problem}


def _print_problems(console: Console, problems: Sequence[CriteriaError]) -> None:
    for e in problems:  # one whole line each, never wrapped: "file: field: problem"
        console.print(_t(str(e), "red"), soft_wrap=True)


def cmd_validate(args: argparse.Namespace, targets: urctl.Targets, console: Console) -> int:
    result = validate_paths(_paths(args))
    if args.json:
        print(json.dumps({
            "valid": [{"file": str(s.path), "id": s.criteria.id, "version": s.criteria.version,
                       "category": s.criteria.category, "sha256": s.criteria.content_hash,
                       "service_codes": len(s.criteria.service_codes), "examples": len(s.criteria.examples)}
                      for s in result.sets],
            "problems": [_problem_json(e) for e in result.problems]}, indent=2))
        return urctl.EXIT_OK if result.ok else urctl.EXIT_SERVICE_ERROR
    if result.sets:
        table = Table(title=f"{len(result.sets)} valid criteria set(s)", box=box.SIMPLE_HEAD, pad_edge=False,
                      show_edge=False, collapse_padding=True)
        for column in ("id", "version", "category", "codes", "examples", "sha256"):
            table.add_column(column, no_wrap=column != "category", overflow="fold",
                             min_width=14 if column == "category" else None,
                             justify="right" if column in ("codes", "examples") else "left")
        for s in sorted(result.sets, key=lambda s: (s.criteria.id, version_key(s.criteria.version))):
            c = s.criteria
            table.add_row(_t(c.id, "bold"), _t(c.version), _t(c.category.replace("_", " ")), _t(len(c.service_codes)),
                          _t(len(c.examples)), _t(c.content_hash[:10], "dim"))
        console.print(table)
    if result.problems:
        _print_problems(console, result.problems)
        files = len({e.path for e in result.problems})
        console.print(_t(f"{len(result.problems)} problem(s) in {files} file(s): "
                         "these criteria would not load", "bold red"))
        return urctl.EXIT_SERVICE_ERROR
    console.print(_t("every criteria file is valid", "green"))
    return urctl.EXIT_OK


# -- test: every example through both matchers -----------------------------------------------------

@dataclass(frozen=True)
class ExampleFailure:
    set_key: str
    example: str
    expected: str
    got: str
    summary: str


@dataclass(frozen=True)
class SetResult:
    loaded: LoadedSet
    passed: int
    failures: tuple[ExampleFailure, ...]


def _describe_result(evaluation: LineEvaluation) -> str:
    text = evaluation.outcome.value
    if evaluation.missing_facts:
        text += f" (missing: {', '.join(evaluation.missing_facts)})"
    return text


def run_examples(loaded: LoadedSet, matchers: Mapping[str, ConditionMatcher]) -> SetResult:
    """Every example of the set through every matcher: the expected outcome, the expected missing
    facts, and the same condition statuses from each matcher."""
    c = loaded.criteria
    passed = 0
    failures: list[ExampleFailure] = []
    for example in c.examples:
        line = example_line(c, example)
        expected = example.expect.value + (f" (missing: {', '.join(sorted(example.missing_facts))})"
                                           if example.missing_facts is not None else "")
        problems: list[str] = []
        summary = ""
        statuses: dict[str, tuple[str, ...]] = {}
        for name, matcher in matchers.items():
            try:
                got = evaluate(c, line, matcher)
            except Exception as exc:  # an engine failure is this example's failure, not the run's
                problems.append(f"{name}: error: {exc}")
                continue
            summary = summary or got.summary
            statuses[name] = tuple(f"{r.condition_id}={r.status.value}" for r in got.conditions)
            wrong_missing = (example.missing_facts is not None
                             and tuple(sorted(example.missing_facts)) != got.missing_facts)
            if got.outcome is not example.expect or wrong_missing:
                problems.append(f"{name}: {_describe_result(got)}")
                summary = got.summary
        if len(set(statuses.values())) > 1:
            problems += [f"{name} condition statuses: {', '.join(s)}" for name, s in statuses.items()]
        if problems:
            failures.append(ExampleFailure(c.key, example.name, expected, "; ".join(problems), summary))
        else:
            passed += 1
    return SetResult(loaded, passed, tuple(failures))


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not (enabled and console.is_terminal))


def cmd_test(args: argparse.Namespace, targets: urctl.Targets, console: Console) -> int:
    validation = validate_paths(_paths(args))
    matchers: dict[str, ConditionMatcher] = {"durable-rules": DurableRulesMatcher(), "python": PythonMatcher()}
    results: list[SetResult] = []
    sets = sorted(validation.sets, key=lambda s: (s.criteria.id, version_key(s.criteria.version)))
    with _progress(Console(stderr=True), not args.json and len(sets) >= PROGRESS_MIN_SETS) as progress:
        task = progress.add_task("running examples", total=len(sets))
        for loaded in sets:
            results.append(run_examples(loaded, matchers))
            progress.advance(task)
    failed = sum(len(r.failures) for r in results)
    examples = sum(r.passed + len(r.failures) for r in results)
    ok = failed == 0 and validation.ok
    if args.json:
        print(json.dumps({
            "sets": [{"file": str(r.loaded.path), "id": r.loaded.criteria.id, "version": r.loaded.criteria.version,
                      "passed": r.passed, "failed": len(r.failures),
                      "failures": [dataclasses.asdict(f) for f in r.failures]} for r in results],
            "problems": [_problem_json(e) for e in validation.problems],
            "examples": examples, "failed": failed}, indent=2))
        return urctl.EXIT_OK if ok else urctl.EXIT_SERVICE_ERROR
    table = Table(title=f"Examples of {len(results)} criteria set(s), through durable-rules and the reference "
                        "matcher", box=box.SIMPLE_HEAVY, pad_edge=False)
    table.add_column("criteria set", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("", no_wrap=True)
    for r in results:
        bad = len(r.failures)
        table.add_row(_t(r.loaded.criteria.id, "bold"), _t(r.loaded.criteria.version),
                      _t(f"{r.passed}/{r.passed + bad}"), _t(bad, "red" if bad else "dim"),
                      _t("FAIL", "bold red") if bad else _t("ok", "green"))
    if results:
        console.print(table)
    for r in results:
        for f in r.failures:
            console.print(Text.assemble((f"{f.set_key}: ", "bold"), (f"example {f.example!r} failed", "red")))
            console.print(urctl._indent(urctl._kv_grid([
                ("expected", _t(f.expected)), ("got", _t(f.got, "red")), ("summary", _t(f.summary or "—"))])))
    if validation.problems:
        _print_problems(console, validation.problems)
    verdict = (f"{examples - failed} of {examples} example(s) passed in {len(results)} set(s)"
               + (f"; {len(validation.problems)} file problem(s)" if validation.problems else ""))
    console.print(_t(verdict, "bold green" if ok else "bold red"))
    return urctl.EXIT_OK if ok else urctl.EXIT_SERVICE_ERROR


# -- from a request to its lines' facts: review's own translation (service_layer/lines.py) ---------

def request_lines(message: Any) -> list[tuple[Any, LineFacts]]:
    """(service line, LineFacts) as review builds them; an impossible date fact is left out (intake
    would refuse the request; explain still shows what the rest of it gives)."""
    return lines.request_lines(message, drop_impossible_dates=True)


explanation_of = lines.explanation_proto


# -- explain ---------------------------------------------------------------------------------------

def _load_library(directory: Path) -> CriteriaLibrary:
    try:
        return load_library(directory)
    except CriteriaLibraryError as exc:
        raise CriteriaInputError(f"the criteria library in {directory} does not load:\n"
                                 + "\n".join(f"  {e}" for e in exc.errors)) from exc


def explain_file(path: Path, library: CriteriaLibrary, matcher: ConditionMatcher) -> Any:
    """Evaluate every line of a request file locally; a Determination without an id."""
    submitted = urctl.load_request_file(path)
    if to_name(LOB, submitted.coverage.line_of_business) is None:
        raise urctl.RequestFileError(f"{path}: coverage.line_of_business is not set; the criteria that apply "
                                     "depend on it")
    determination = types_pb2.Determination(
        request_id="", decided_by=types_pb2.DeciderRef(id="urctl criteria explain (local)", role="software"))
    for line, facts in request_lines(submitted):
        criteria = library.select(facts)
        out = determination.lines.add(line_number=line.line_number, procedure_code=line.procedure_code)
        if criteria is None:
            out.outcome = types_pb2.LINE_OUTCOME_REFER_TO_NURSE
            lob = facts.line_of_business.replace("_", " ")
            out.explanation.summary = (f"no criteria set covers {line.procedure_code} for {lob} with diagnoses "
                                       f"{', '.join(facts.diagnoses) or '(none)'}; a nurse reviews it")
            continue
        evaluation = evaluate(criteria, facts, matcher)
        out.outcome = to_number(OUTCOME, evaluation.outcome.value)  # type: ignore[assignment]
        out.explanation.CopyFrom(explanation_of(evaluation))
    return determination


def format_explanation(determination: Any, title: str) -> RenderableType:
    parts: list[RenderableType] = [Text(title, style="bold")]
    for line in determination.lines:
        e = line.explanation
        rows: list[tuple[str, RenderableType]] = []
        if e.criteria_id:
            criteria = _t(f"{e.criteria_id} version {e.criteria_version or '?'}", "bold")
            criteria.append(f"  sha256 {e.criteria_hash[:12] or '?'}", style="dim")
            rows.append(("criteria", criteria))
        else:
            rows.append(("criteria", _t("no criteria set applies", "dim")))
        outcome = to_name(OUTCOME, line.outcome) or "unspecified"
        rows.append(("outcome", _t(OUTCOME_LABEL.get(outcome, outcome), _OUTCOME_STYLE.get(outcome, ""))))
        if line.decided_by.role and line.decided_by.role != "software":
            words = _ACTION_WORDS.get(line.action_code, urctl.format_action(line.action_code))
            rows.append(("decided", _t(f"{words} by {line.decided_by.name or line.decided_by.id} "
                                       f"({line.decided_by.role})")))
        if e.summary:
            rows.append(("summary", _t(e.summary)))
        if e.missing_facts:
            rows.append(("missing facts", _t(", ".join(e.missing_facts), "yellow")))
        if e.flags:
            rows.append(("flags", Group(*(_t(f"• {f}", "yellow") for f in e.flags))))
        if e.conditions:
            rows.append(("conditions", urctl._conditions_table(e)))
        parts += [Text.assemble((f"Line {line.line_number}: ", "bold"), (line.procedure_code, "bold cyan")),
                  urctl._indent(urctl._kv_grid(rows), bottom=1)]
    return Group(*parts)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def cmd_explain(args: argparse.Namespace, targets: urctl.Targets, console: Console) -> int:
    subject = args.request
    if not Path(subject).exists() and _is_uuid(subject):
        response = urctl._call("review", targets.review, args.timeout, "the lookup", lambda channel: review_pb2_grpc
                               .ReviewServiceStub(channel).GetDetermination(
                                   review_pb2.GetDeterminationRequest(request_id=subject), timeout=args.timeout))
        determination = response.determination
        title = f"Request {subject}: the stored determination (review service at {targets.review})"
    else:
        directory = Path(args.criteria) if args.criteria else default_criteria_dir()
        determination = explain_file(Path(subject), _load_library(directory), DurableRulesMatcher())
        title = f"{subject}: evaluated locally against the criteria in {directory}"
    if args.json:
        print(urctl.to_json(determination))
    else:
        console.print(format_explanation(determination, title))
    return urctl.EXIT_OK


# -- replay ----------------------------------------------------------------------------------------

def default_database_url() -> str:
    """Where the review service keeps its data: UR_REVIEW_DATABASE_URL, else its default SQLite file
    (under UR_VAR_DIR), else the one `make run` leaves in var/run/."""
    configured = settings.get("UR_REVIEW_DATABASE_URL")
    if configured:
        return configured
    service_default = settings.default_database_url("review")
    candidates = [service_default, f"sqlite:///{(REPO / 'var' / 'run' / 'review.db').resolve()}"]
    for url in candidates:
        database = make_url(url).database
        if database and Path(database).is_file():
            return url
    return service_default


def open_read_only(url: str) -> tuple[Engine, str]:
    """An engine that cannot write: SQLite opened read-only through its URI (``immutable`` when no
    writer is active, so not even a -wal or -shm file is created), PostgreSQL with read-only
    transactions. Returns the engine and the URL to show (without its password)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise urctl.CliError(f"--database-url {url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        path = Path(database)
        if not database or database == ":memory:" or not path.is_file():
            raise urctl.CliError(f"no review database at {database or url}: run `make run` (or `make demo`) first, "
                                 "or give --database-url / UR_REVIEW_DATABASE_URL")
        resolved = path.resolve()
        live = resolved.with_name(resolved.name + "-wal").exists()  # a service has it open
        uri = f"file:{quote(str(resolved))}?mode=ro" + ("" if live else "&immutable=1")
        engine = sa.create_engine("sqlite://", poolclass=NullPool,
                                  creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
        return engine, f"sqlite:///{resolved}"
    if backend == "postgresql":
        engine = sa.create_engine(parsed, poolclass=NullPool,
                                  connect_args={"options": "-c default_transaction_read_only=on"})
        return engine, parsed.render_as_string(hide_password=True)
    raise urctl.CliError(f"replay reads SQLite or PostgreSQL review databases, not {backend}")


def _begin_read_only(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True)
class Flip:
    condition_id: str
    description: str
    before: str  # met | unmet | missing | "not a condition"
    after: str
    observed: tuple[str, ...]
    before_description: str = ""  # what the condition said before, when the draft rewords it

    @property
    def described(self) -> str:
        text = self.description or self.condition_id
        if self.before_description and self.before_description != self.description:
            text += f" (was: {self.before_description})"
        return text


@dataclass(frozen=True)
class ChangedLine:
    request_id: str
    received_at: str
    line_number: int
    procedure_code: str
    before: str
    before_criteria: str
    before_detail: str
    after: str
    after_detail: str
    flips: tuple[Flip, ...]
    later_decision: str
    note: str

    @property
    def before_words(self) -> str:
        return _WAS.get(self.before, self.before) + (f" {self.before_detail}" if self.before_detail else "")

    @property
    def after_words(self) -> str:
        return _WOULD.get(self.after, self.after) + (f" {self.after_detail}" if self.after_detail else "")


@dataclass
class ReplayReport:
    draft: CriteriaSet
    draft_file: str
    replaces: str | None  # the version in the library the draft would replace
    database: str
    since: dt.date
    until: dt.date | None
    requests: int = 0
    lines: int = 0
    covered: int = 0
    governed_by_other_set: int = 0
    no_longer_covered: int = 0
    unreadable: int = 0
    before: collections.Counter[str] = field(default_factory=collections.Counter)
    after: collections.Counter[str] = field(default_factory=collections.Counter)
    transitions: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    sample: list[ChangedLine] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(self.transitions.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "draft": {"file": self.draft_file, "id": self.draft.id, "version": self.draft.version,
                      "sha256": self.draft.content_hash, "replaces_version": self.replaces},
            "database": self.database, "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "requests": self.requests, "lines": self.lines, "lines_covered": self.covered,
            "lines_governed_by_a_more_specific_set": self.governed_by_other_set,
            "lines_no_longer_covered": self.no_longer_covered, "unreadable_requests": self.unreadable,
            "outcomes": {o: {"before": self.before[o], "after": self.after[o], "delta": self.after[o] - self.before[o]}
                         for o in OUTCOME_ORDER},
            "changed_lines": self.changed,
            "transitions": [{"before": b, "after": a, "lines": n} for (b, a), n in self.transitions.most_common()],
            "sample": [{**dataclasses.asdict(c), "before_words": c.before_words, "after_words": c.after_words}
                       for c in self.sample],
        }


def load_draft(path: Path, library: CriteriaLibrary | None) -> tuple[CriteriaSet, str | None]:
    """The draft, valid and compilable; and the version of the same id it would replace."""
    try:
        draft = load_criteria(path)
    except CriteriaError as exc:
        raise CriteriaInputError(f"the draft does not validate: {exc}") from exc
    replaces = None
    if library is not None:
        same = library.get(draft.id, draft.version)
        if same is not None and same.content_hash != draft.content_hash:
            raise CriteriaInputError(
                f"the draft does not validate: {path.name}: version: {draft.id} version {draft.version} is already "
                "in the criteria library with different content; give the draft a new version")
        current = library.get(draft.id)
        replaces = current.version if current is not None else None
    problem = _engine_problem(LoadedSet(path, draft))
    if problem is not None:
        raise CriteriaInputError(f"the draft does not validate: {problem}")
    return draft, replaces


def _before_detail(line: Any, draft: CriteriaSet, flips: Sequence[Flip]) -> str:
    e = line.explanation
    outcome = to_name(OUTCOME, line.outcome)
    under = f" under {e.criteria_id} {e.criteria_version}" if e.criteria_id else ""
    if outcome == "pend_missing_information" and e.missing_facts:
        return f"{under} for: " + "; ".join(_fact_words(draft, n) for n in e.missing_facts)
    if outcome == "refer_to_nurse":
        if not e.criteria_id:
            return "(no criteria set covered it)"
        if e.flags:
            return f"{under} (possible duplicate of an existing authorization)"
        # Conditions that the draft now meets say why; absent red flags are "unmet" too.
        gained = [f.before_description or f.description for f in flips if f.before == "unmet"]
        unmet = gained or [c.description or c.condition_id for c in e.conditions
                           if c.status == types_pb2.CONDITION_STATUS_UNMET]
        return f"{under} because this was not met: {'; '.join(unmet)}" if unmet else under
    return under


def _fact_words(draft: CriteriaSet, name: str) -> str:
    return draft.fact(name).description if draft.declares(name) else name.replace("_", " ")


def _after_detail(evaluation: LineEvaluation, outcome: str, draft: CriteriaSet, flips: Sequence[Flip]) -> str:
    if outcome == "pend_missing_information":
        return "for: " + "; ".join(_fact_words(draft, n) for n in evaluation.missing_facts)
    if outcome == "refer_to_nurse" and evaluation.outcome is not Outcome.REFER_TO_NURSE:
        return "(it meets the criteria, but may duplicate an existing authorization)"
    if outcome == "refer_to_nurse":
        # The conditions that stopped being met say why; absent red flags are "unmet" too, so the
        # full list of unmet conditions is only the fallback.
        lost = [f.description for f in flips if f.after == "unmet"]
        if lost:
            return f"because this is not met: {'; '.join(lost)}"
        unmet = [c.description for c in evaluation.conditions if c.status.value == "unmet"]
        return f"(not met: {'; '.join(unmet)})" if unmet else ""
    return ""


def _flips(before: Any, evaluation: LineEvaluation, same_set: bool) -> tuple[Flip, ...]:
    old = {c.condition_id: c for c in before.conditions} if same_set else {}
    flips: list[Flip] = []
    for c in evaluation.conditions:
        previous = old.pop(c.condition_id, None)
        was = (to_name(CONDITION, previous.status) or "?") if previous is not None else "not a condition"
        if was != c.status.value:
            observed = c.observed or (tuple(previous.observed) if previous is not None else ())
            flips.append(Flip(c.condition_id, c.description, was, c.status.value, observed,
                              previous.description if previous is not None else ""))
    for previous in old.values():
        flips.append(Flip(previous.condition_id, previous.description, to_name(CONDITION, previous.status) or "?",
                          "no longer a condition", tuple(previous.observed), previous.description))
    return tuple(flips)


def _later_decision(line: Any) -> str:
    who = line.decided_by
    if not who.role or who.role == "software":
        return ""
    words = _ACTION_WORDS.get(line.action_code, urctl.format_action(line.action_code))
    return f"a {who.role} decided: {words}"


def replay(draft: CriteriaSet, draft_file: str, replaces: str | None, library: CriteriaLibrary | None,
           database: tuple[Engine, str], since: dt.date, until: dt.date | None, sample_size: int,
           progress: Progress | None = None) -> ReplayReport:
    """Re-evaluate the stored requests received in [since, until] against the draft. Reads only."""
    start = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
    window = cases.c.received_at >= start
    if until is not None:
        window = sa.and_(window, cases.c.received_at < dt.datetime.combine(until + dt.timedelta(days=1), dt.time(),
                                                                          tzinfo=dt.UTC))
    # The library as it would be with the draft in place of the current version of its id.
    with_draft = CriteriaLibrary((*(c for c in library.current() if c.id != draft.id), draft)) \
        if library is not None else None
    matcher = DurableRulesMatcher([draft])
    report = ReplayReport(draft=draft, draft_file=draft_file, replaces=replaces,
                          database=database[1], since=since, until=until)
    engine = database[0]
    by_transition: dict[tuple[str, str], list[ChangedLine]] = collections.defaultdict(list)
    try:
        with engine.connect() as conn:
            _begin_read_only(conn)
            total = conn.execute(sa.select(sa.func.count()).select_from(cases).where(window)).scalar_one()
            if total == 0:
                raise urctl.CliError(_empty_window(conn, since, until, report.database))
            task = progress.add_task("replaying stored requests", total=total) if progress is not None else None
            rows = conn.execution_options(stream_results=True, yield_per=200).execute(
                sa.select(cases.c.request_id, cases.c.received_at, cases.c.request, cases.c.determination)
                .where(window).order_by(cases.c.received_at, cases.c.request_id))
            for row in rows:
                _replay_case(row, draft, with_draft, matcher, report, by_transition, sample_size)
                if progress is not None and task is not None:
                    progress.advance(task)
            conn.rollback()
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise urctl.CliError(f"cannot read the review database {report.database}: {str(cause).strip()}") from exc
    finally:
        engine.dispose()
    report.sample = _round_robin(by_transition, sample_size)
    return report


def _empty_window(conn: sa.Connection, since: dt.date, until: dt.date | None, database: str) -> str:
    count, first, last = conn.execute(sa.select(sa.func.count(), sa.func.min(cases.c.received_at),
                                                sa.func.max(cases.c.received_at)).select_from(cases)).one()
    window = f"on or after {since}" + (f" and on or before {until}" if until else "")
    if not count:
        return f"no requests were received {window}: the review database {database} holds no requests yet"
    first_day, last_day = (_utc(first).date(), _utc(last).date()) if isinstance(first, dt.datetime) else (first, last)
    return (f"no requests were received {window}; the review database {database} holds {count} request(s) "
            f"received from {first_day} to {last_day}")


def _replay_case(row: Any, draft: CriteriaSet, with_draft: CriteriaLibrary | None, matcher: ConditionMatcher,
                 report: ReplayReport, by_transition: dict[tuple[str, str], list[ChangedLine]],
                 sample_size: int) -> None:
    try:
        request = events_pb2.RequestSubmitted.FromString(bytes(row.request))
        stored = types_pb2.Determination.FromString(bytes(row.determination))
    except Exception:  # a row this version cannot decode is counted, not fatal
        report.unreadable += 1
        return
    lines = request_lines(request)
    if not lines:
        report.unreadable += 1
        return
    report.requests += 1
    decided = {ln.line_number: ln for ln in stored.lines}
    for service_line, facts in lines:
        report.lines += 1
        before = decided.get(service_line.line_number)
        if before is None:
            continue
        if not draft.covers(facts):
            if before.explanation.criteria_id == draft.id:
                report.no_longer_covered += 1
            continue
        if with_draft is not None and with_draft.select(facts) is not draft:
            report.governed_by_other_set += 1
            continue
        report.covered += 1
        evaluation = evaluate(draft, facts, matcher)
        after = evaluation.outcome.value
        if after in ("meets_criteria", "meets_criteria_urgent") and before.explanation.flags:
            after = "refer_to_nurse"  # the review service refers possible duplicates, whatever the criteria say
        was = to_name(OUTCOME, before.outcome) or "unspecified"
        report.before[was] += 1
        report.after[after] += 1
        if was == after:
            continue
        report.transitions[(was, after)] += 1
        group = by_transition[(was, after)]
        if len(group) < sample_size:
            e = before.explanation
            flips = _flips(e, evaluation, same_set=e.criteria_id == draft.id)
            group.append(ChangedLine(
                request_id=row.request_id, received_at=_utc(row.received_at).strftime("%Y-%m-%d %H:%M"),
                line_number=service_line.line_number, procedure_code=service_line.procedure_code,
                before=was, before_criteria=f"{e.criteria_id} {e.criteria_version}" if e.criteria_id else "none",
                before_detail=_before_detail(before, draft, flips).strip(), after=after,
                after_detail=_after_detail(evaluation, after, draft, flips), flips=flips,
                later_decision=_later_decision(before),
                note="possible duplicate of an existing authorization" if before.explanation.flags else ""))


def _round_robin(groups: Mapping[tuple[str, str], list[ChangedLine]], size: int) -> list[ChangedLine]:
    """Up to ``size`` changed lines, taking from each kind of change in turn (largest kinds first)."""
    queues = [collections.deque(g) for _, g in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    picked: list[ChangedLine] = []
    while len(picked) < size and any(queues):
        for q in queues:
            if q and len(picked) < size:
                picked.append(q.popleft())
    return picked


def format_replay(report: ReplayReport, sample_size: int) -> RenderableType:
    d = report.draft
    window = f"received from {report.since}" + (f" to {report.until}" if report.until else " on")
    replacing = (f" (replacing version {report.replaces} in the current library)" if report.replaces
                 and report.replaces != d.version else " (a criteria set the library does not have yet)"
                 if report.replaces is None else " (the same version as the current library)")
    parts: list[RenderableType] = [
        Text.assemble(("What-if: ", "bold"), (f"{d.title}", "bold cyan"), f" — draft {d.id} version {d.version}",
                      (f"  sha256 {d.content_hash[:12]}", "dim"), replacing),
        _t(f"Stored requests {window}, from {report.database} (read only; nothing is changed)", "dim"),
        Text(""),
        urctl._kv_grid([
            ("requests examined", _t(report.requests)),
            ("service lines examined", _t(report.lines)),
            ("lines the draft governs", _t(report.covered, "bold")),
            ("lines whose outcome would change", _t(report.changed, "bold yellow" if report.changed else "bold")),
        ]),
    ]
    extras = []
    if report.governed_by_other_set:
        extras.append(f"{report.governed_by_other_set} line(s) the draft covers stay under a more specific criteria "
                      "set and are not counted")
    if report.no_longer_covered:
        extras.append(f"{report.no_longer_covered} line(s) decided under {d.id} are no longer covered by the draft "
                      "(their code, line of business or diagnosis was dropped): they would go to a nurse or another "
                      "criteria set")
    if report.unreadable:
        extras.append(f"{report.unreadable} stored request(s) could not be read and were skipped")
    parts += [_t(f"• {x}", "yellow") for x in extras]
    if not report.covered:
        codes, lobs = ", ".join(sorted(d.service_codes)), ", ".join(sorted(d.lines_of_business))
        parts.append(_t(f"\nNone of these requests has a line the draft would govern ({codes} for {lobs}).",
                        "yellow"))
        return Group(*parts)

    counts = Table(title="Outcomes of the lines the draft governs", box=box.SIMPLE_HEAVY, pad_edge=False,
                   title_justify="left")
    counts.add_column("outcome")
    counts.add_column("now", justify="right")
    counts.add_column("with the draft", justify="right")
    counts.add_column("change", justify="right")
    for o in OUTCOME_ORDER:
        b, a = report.before[o], report.after[o]
        if b or a:
            delta = a - b
            counts.add_row(_t(OUTCOME_LABEL[o], _OUTCOME_STYLE[o]), _t(b), _t(a),
                           _t(f"{delta:+d}" if delta else "0", "bold" if delta else "dim"))
    for other in sorted(set(report.before) - set(OUTCOME_ORDER)):
        counts.add_row(_t(other), _t(report.before[other]), _t(0), _t(f"{-report.before[other]:+d}"))
    counts.add_row(_t("total", "bold"), _t(sum(report.before.values())), _t(sum(report.after.values())), _t(""))
    parts += [Text(""), counts]

    if not report.changed:
        parts.append(_t("No line would get a different outcome under the draft.", "green"))
        return Group(*parts)
    moves = Table(title="How outcomes would move", box=box.SIMPLE_HEAVY, pad_edge=False, title_justify="left")
    moves.add_column("lines", justify="right")
    moves.add_column("change")
    for (was, now), n in report.transitions.most_common():
        moves.add_row(_t(n, "bold"), _t(f"{_WAS.get(was, was)} → {_WOULD.get(now, now)}"))
    parts += [moves]
    if not report.sample:
        return Group(*parts)
    parts.append(_t(f"Sample of changed lines ({len(report.sample)} of {report.changed}; --sample {sample_size})",
                    "bold"))
    for c in report.sample:
        heading = Text.assemble((f"Request {c.request_id}", "cyan"), f" line {c.line_number}, ",
                                (f"{c.procedure_code}", "bold"), f", received {c.received_at}: ",
                                (OUTCOME_LABEL.get(c.before, c.before), _OUTCOME_STYLE.get(c.before, "")), " → ",
                                (OUTCOME_LABEL.get(c.after, c.after), f"bold {_OUTCOME_STYLE.get(c.after, '')}"))
        rows: list[tuple[str, RenderableType]] = [
            ("before", _t(c.before_words)),
            ("with the draft", _t(c.after_words, "bold")),
        ]
        if c.flips:
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            table.add_column("condition that changed")
            table.add_column("before", no_wrap=True)
            table.add_column("with the draft", no_wrap=True)
            table.add_column("the request says", overflow="fold")
            for f in c.flips:
                table.add_row(_t(f.described), _t(f.before, _STATUS_STYLE.get(f.before, "dim")),
                              _t(f.after, _STATUS_STYLE.get(f.after, "dim")), _t(", ".join(f.observed) or "not stated"))
            rows.append(("why", table))
        if c.later_decision:
            rows.append(("since then", _t(c.later_decision, "magenta")))
        parts += [Text(""), heading, urctl._indent(urctl._kv_grid(rows))]
    return Group(*parts)


def _parse_day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes a date as YYYY-MM-DD, not {text!r}") from None


def cmd_replay(args: argparse.Namespace, targets: urctl.Targets, console: Console) -> int:
    if args.sample < 0:
        raise CriteriaInputError("--sample must be 0 or more")
    if args.until is not None and args.until < args.since:
        raise CriteriaInputError(f"--until {args.until} is before --since {args.since}")
    directory = Path(args.criteria) if args.criteria else default_criteria_dir()
    library: CriteriaLibrary | None
    try:
        library = load_library(directory)
    except CriteriaLibraryError as exc:
        library = None
        print(f"urctl: warning: the current criteria library ({directory}) does not load, so the draft is "
              f"compared without it:\n{exc}", file=sys.stderr)
    draft_path = Path(args.draft)
    draft, replaces = load_draft(draft_path, library)
    database = open_read_only(args.database_url or default_database_url())
    with _progress(Console(stderr=True), not args.json) as progress:
        report = replay(draft, str(draft_path), replaces, library, database, args.since, args.until, args.sample,
                        progress)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        console.print(format_replay(report, args.sample))
    return urctl.EXIT_OK


# -- wiring ----------------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace, urctl.Targets, Console], int]


def _guarded(handler: Handler) -> Handler:
    """Report expected failures here: under ``python -m services.cli.urctl`` urctl's main knows its
    own copy of CliError (``__main__.CliError``), not the one this module raises."""

    def run(args: argparse.Namespace, targets: urctl.Targets, console: Console) -> int:
        try:
            return handler(args, targets, console)
        except urctl.CliError as exc:
            print(f"urctl: {exc}", file=sys.stderr)
            return exc.exit_code

    return run


def add_criteria_commands(commands: Any, connection: argparse.ArgumentParser,
                          output: argparse.ArgumentParser) -> None:
    """``urctl criteria validate|test|explain|replay``; called from urctl's build_parser."""
    group = commands.add_parser("criteria", help="validate, test, explain and replay clinical criteria",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
                                ).add_subparsers(dest="action", required=True, metavar="ACTION")
    paths_help = ("criteria files or directories (default: UR_REVIEW_CRITERIA_DIR, else "
                  "services/review/criteria)")
    validate = group.add_parser("validate", parents=[output], help="check criteria files; name every problem")
    validate.add_argument("paths", nargs="*", metavar="PATH", help=paths_help)
    validate.set_defaults(handler=_guarded(cmd_validate))
    test = group.add_parser("test", parents=[output],
                            help="run every example case through durable-rules and the reference matcher")
    test.add_argument("paths", nargs="*", metavar="PATH", help=paths_help)
    test.set_defaults(handler=_guarded(cmd_test))
    criteria_dir = argparse.ArgumentParser(add_help=False)
    criteria_dir.add_argument("--criteria", metavar="DIR", default=None,
                              help="the current criteria library (default: UR_REVIEW_CRITERIA_DIR, else "
                                   "services/review/criteria)")
    explain = group.add_parser("explain", parents=[connection, output, criteria_dir],
                               help="why a request's lines get their outcome: criteria, conditions, facts")
    explain.add_argument("request", metavar="REQUEST_FILE|REQUEST_ID",
                         help="a request file (as for `urctl submit`), evaluated locally; or a request id, whose "
                              "stored determination the review service explains")
    explain.set_defaults(handler=_guarded(cmd_explain))
    replay_cmd = group.add_parser("replay", parents=[output, criteria_dir],
                                  help="what-if: how a draft criteria set would change past outcomes (reads only)")
    replay_cmd.add_argument("draft", metavar="DRAFT", help="the draft criteria file")
    replay_cmd.add_argument("--since", required=True, metavar="YYYY-MM-DD",
                            type=lambda s: _parse_day(s, "--since"), help="requests received on or after this day")
    replay_cmd.add_argument("--until", default=None, metavar="YYYY-MM-DD",
                            type=lambda s: _parse_day(s, "--until"), help="and on or before this day (UTC)")
    replay_cmd.add_argument("--database-url", default=None, metavar="URL",
                            help="review's database (default: UR_REVIEW_DATABASE_URL, else the SQLite file "
                                 "the review service or `make run` uses)")
    replay_cmd.add_argument("--sample", type=int, default=10, metavar="N", help="changed lines to show (default 10)")
    replay_cmd.set_defaults(handler=_guarded(cmd_replay))
