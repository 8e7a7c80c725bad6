"""``urctl criteria replay DRAFT --since DAY``: the what-if a medical director runs before a criteria
change goes live. It re-reads the requests the review service stored (through review's read-only
queries, services/review/adapters/queries.py: SQLite opened with ``mode=ro``, PostgreSQL in a
read-only transaction), applies the draft to every line it would govern, and counts how outcomes would
change and which conditions flipped. It never writes anything anywhere."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from ur.common.v1 import types_pb2

from services.cli.base import EXIT_OK, CliError, Targets
from services.cli.criteria.library import (
    CriteriaInputError,
    LoadedSet,
    default_criteria_dir,
    engine_problem,
    request_lines,
)
from services.cli.criteria.replay_report import ChangedLine, Flip, ReplayReport, format_replay
from services.cli.criteria.words import ACTION_WORDS, CONDITION, OUTCOME
from services.cli.databases import database_url
from services.cli.render import format_action, progress_bar
from services.common.errors import ConfigurationError, NotFound, Unavailable
from services.common.proto_enums import to_name
from services.review.adapters.criteria_loader import (
    CriteriaError,
    CriteriaLibrary,
    CriteriaLibraryError,
    load_criteria,
    load_library,
)
from services.review.adapters.queries import CaseReader, CaseSnapshot, StoredCase, UnreadableCase, open_case_reader
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.criteria import ConditionMatcher, CriteriaSet, LineEvaluation, Outcome, evaluate


def default_database_url() -> str:
    """Where the review service keeps its data: UR_REVIEW_DATABASE_URL, else its default SQLite file
    (under UR_VAR_DIR), else the one `make run` leaves in var/run/."""
    return database_url("review")


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
    problem = engine_problem(LoadedSet(path, draft))
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


def _later_decision(line: types_pb2.LineDetermination) -> str:
    """What a person decided on a line since software did, in words."""
    words = ACTION_WORDS.get(line.action_code, format_action(line.action_code))
    return f"a {line.decided_by.role} decided: {words}"



def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def replay(draft: CriteriaSet, draft_file: str, replaces: str | None, library: CriteriaLibrary | None,
           reader: CaseReader, since: dt.date, until: dt.date | None, sample_size: int,
           progress: Progress | None = None) -> ReplayReport:
    """Re-evaluate the stored requests received from ``since`` through ``until`` (UTC days) against
    the draft. Reads only. Raises :class:`CliError` when no request was received in the window, and
    lets :class:`Unavailable` through when the database cannot be read."""
    received_from = _start_of(since)
    received_before = _start_of(until + dt.timedelta(days=1)) if until is not None else None
    # The library as it would be with the draft in place of the current version of its id.
    with_draft = CriteriaLibrary((*(c for c in library.current() if c.id != draft.id), draft), library.vocabularies) \
        if library is not None else None
    matcher = DurableRulesMatcher([draft])
    report = ReplayReport(draft=draft, draft_file=draft_file, replaces=replaces,
                          database=reader.location, since=since, until=until)
    by_transition: dict[tuple[str, str], list[ChangedLine]] = collections.defaultdict(list)
    with reader.snapshot() as stored:
        total = stored.count(received_from, received_before)
        if total == 0:
            raise CliError(_empty_window(stored, since, until, report.database))
        task = progress.add_task("replaying stored requests", total=total) if progress is not None else None
        for case in stored.received(received_from, received_before):
            _replay_case(case, draft, with_draft, matcher, report, by_transition, sample_size)
            if progress is not None and task is not None:
                progress.advance(task)
    report.sample = _round_robin(by_transition, sample_size)
    return report


def _empty_window(stored: CaseSnapshot, since: dt.date, until: dt.date | None, database: str) -> str:
    extent = stored.extent()
    window = f"on or after {since}" + (f" and on or before {until}" if until else "")
    if not extent.count or extent.first_received is None or extent.last_received is None:
        return f"no requests were received {window}: the review database {database} holds no requests yet"
    return (f"no requests were received {window}; the review database {database} holds {extent.count} "
            f"request(s) received from {extent.first_received.date()} to {extent.last_received.date()}")


def _replay_case(case: StoredCase | UnreadableCase, draft: CriteriaSet, with_draft: CriteriaLibrary | None,
                 matcher: ConditionMatcher, report: ReplayReport,
                 by_transition: dict[tuple[str, str], list[ChangedLine]], sample_size: int) -> None:
    if isinstance(case, UnreadableCase):  # a case this version cannot decode is counted, not fatal
        report.unreadable += 1
        return
    lines = request_lines(case.request)
    if not lines:
        report.unreadable += 1
        return
    report.requests += 1
    decided = {ln.line_number: ln for ln in case.determination.lines}
    by_person = case.decided_by_person()
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
        # With the vocabulary's derived facts, as the review service would evaluate the draft.
        evaluation = evaluate(draft, facts, matcher, with_draft.derivations(draft) if with_draft is not None else None)
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
            person = by_person.get(service_line.line_number)
            group.append(ChangedLine(
                request_id=case.request_id, received_at=case.received_at.strftime("%Y-%m-%d %H:%M"),
                line_number=service_line.line_number, procedure_code=service_line.procedure_code,
                before=was, before_criteria=f"{e.criteria_id} {e.criteria_version}" if e.criteria_id else "none",
                before_detail=_before_detail(before, draft, flips).strip(), after=after,
                after_detail=_after_detail(evaluation, after, draft, flips), flips=flips,
                later_decision=_later_decision(person) if person is not None else "",
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



def _open_reader(args: argparse.Namespace) -> CaseReader:
    source = "--database-url" if args.database_url else "UR_REVIEW_DATABASE_URL"
    try:
        return open_case_reader(args.database_url or default_database_url())
    except NotFound as exc:
        raise CliError(f"{exc}: run `make run` (or `make demo`) first, or give --database-url / "
                       "UR_REVIEW_DATABASE_URL") from exc
    except ConfigurationError as exc:
        raise CliError(f"{source}: {exc}") from exc


def cmd_replay(args: argparse.Namespace, targets: Targets, console: Console) -> int:
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
    with _open_reader(args) as reader, progress_bar(Console(stderr=True), not args.json) as progress:
        try:
            report = replay(draft, str(draft_path), replaces, library, reader, args.since, args.until, args.sample,
                            progress)
        except Unavailable as exc:
            raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        console.print(format_replay(report, args.sample))
    return EXIT_OK
