"""``urctl criteria explain REQUEST_FILE|REQUEST_ID``: why each line of a request gets its outcome
(the criteria set and version, each condition met/unmet/missing with what was observed, missing facts,
the facts derived from the request's codes and words and what each was derived from, stated facts
kept against its codes, why the line is urgent, flags). A request file is evaluated locally against a
criteria library and its vocabulary; a request id is answered by the review service's
GetDetermination (its stored determination, including a person's later decision)."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text
from ur.common.v1 import types_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.base import EXIT_OK, RequestFileError, Targets, call, to_json
from services.cli.criteria.library import current_library, default_criteria_dir, explanation_of, request_lines
from services.cli.criteria.words import ACTION_WORDS, OUTCOME, OUTCOME_LABEL, OUTCOME_STYLE
from services.cli.render import conditions_table, format_action, indent, kv_grid, plain
from services.cli.request_files import load_request_file
from services.common.proto_enums import to_name, to_number
from services.review.adapters.criteria_loader import CriteriaLibrary
from services.review.adapters.rules_engine import DurableRulesMatcher
from services.review.domain.criteria import ConditionMatcher, evaluate

LOB = types_pb2.LineOfBusiness


def explain_file(path: Path, library: CriteriaLibrary, matcher: ConditionMatcher) -> Any:
    """Evaluate every line of a request file locally; a Determination without an id."""
    submitted = load_request_file(path)
    if to_name(LOB, submitted.coverage.line_of_business) is None:
        raise RequestFileError(f"{path}: coverage.line_of_business is not set; the criteria that apply "
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
        evaluation = evaluate(criteria, facts, matcher, library.derivations(criteria))
        out.outcome = to_number(OUTCOME, evaluation.outcome.value)
        out.explanation.CopyFrom(explanation_of(evaluation))
    return determination


def format_explanation(determination: Any, title: str) -> RenderableType:
    """A Determination line by line: criteria, outcome, who decided (a person), summary, missing
    facts, flags and the conditions."""
    parts: list[RenderableType] = [Text(title, style="bold")]
    for line in determination.lines:
        e = line.explanation
        rows: list[tuple[str, RenderableType]] = []
        if e.criteria_id:
            criteria = plain(f"{e.criteria_id} version {e.criteria_version or '?'}", "bold")
            criteria.append(f"  sha256 {e.criteria_hash[:12] or '?'}", style="dim")
            rows.append(("criteria", criteria))
        else:
            rows.append(("criteria", plain("no criteria set applies", "dim")))
        outcome = to_name(OUTCOME, line.outcome) or "unspecified"
        rows.append(("outcome", plain(OUTCOME_LABEL.get(outcome, outcome), OUTCOME_STYLE.get(outcome, ""))))
        if line.decided_by.role and line.decided_by.role != "software":
            words = ACTION_WORDS.get(line.action_code, format_action(line.action_code))
            rows.append(("decided", plain(f"{words} by {line.decided_by.name or line.decided_by.id} "
                                          f"({line.decided_by.role})")))
        if e.summary:
            rows.append(("summary", plain(e.summary)))
        if e.missing_facts:
            rows.append(("missing facts", plain(", ".join(e.missing_facts), "yellow")))
        rows += _vocabulary_rows(e)
        if e.flags:
            rows.append(("flags", Group(*(plain(f"• {f}", "yellow") for f in e.flags))))
        if e.conditions:
            rows.append(("conditions", conditions_table(e)))
        parts += [Text.assemble((f"Line {line.line_number}: ", "bold"), (line.procedure_code, "bold cyan")),
                  indent(kv_grid(rows), bottom=1)]
    return Group(*parts)


def _vocabulary_rows(e: Any) -> list[tuple[str, RenderableType]]:
    """What the vocabulary derived and what it did not replace, and why the line is urgent."""
    rows: list[tuple[str, RenderableType]] = []
    if e.derived:
        rows.append(("derived facts", Group(*(
            plain(f"• {d.name} = {d.value}: derived from {d.derived_from} ({d.mapping})", "cyan")
            for d in e.derived))))
    if e.contradictions:
        rows.append(("kept as stated", Group(*(plain(f"• {c}", "yellow") for c in e.contradictions))))
    if e.urgency:
        rows.append(("urgent", plain(e.urgency, "bold magenta")))
    return rows


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def cmd_explain(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    subject = args.request
    if not Path(subject).exists() and _is_uuid(subject):
        response = call("review", targets.review, args.timeout, "the lookup", lambda channel: review_pb2_grpc
                        .ReviewServiceStub(channel).GetDetermination(
                            review_pb2.GetDeterminationRequest(request_id=subject), timeout=args.timeout))
        determination = response.determination
        title = f"Request {subject}: the stored determination (review service at {targets.review})"
    else:
        directory = Path(args.criteria) if args.criteria else default_criteria_dir()
        determination = explain_file(Path(subject), current_library(directory), DurableRulesMatcher())
        title = f"{subject}: evaluated locally against the criteria in {directory}"
    if args.json:
        print(to_json(determination))
    else:
        console.print(format_explanation(determination, title))
    return EXIT_OK
