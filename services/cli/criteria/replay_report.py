"""What ``urctl criteria replay`` reports: the counts, how outcomes would move, and a sample of changed
lines with the conditions that flipped; as JSON (``--json``) and as a medical director reads it."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from services.cli.criteria.words import OUTCOME_LABEL, OUTCOME_ORDER, OUTCOME_STYLE, STATUS_STYLE, WAS, WOULD
from services.cli.render import indent, kv_grid, plain
from services.review.domain.criteria import CriteriaSet


@dataclass(frozen=True)
class Flip:
    """A condition whose status differs between the stored determination and the draft."""

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
    """A line whose outcome the draft would change: before, after, why, and what a person has since decided."""

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
        return WAS.get(self.before, self.before) + (f" {self.before_detail}" if self.before_detail else "")

    @property
    def after_words(self) -> str:
        return WOULD.get(self.after, self.after) + (f" {self.after_detail}" if self.after_detail else "")


@dataclass
class ReplayReport:
    """Everything a replay counted, and the sample of changed lines it keeps."""

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


def format_replay(report: ReplayReport, sample_size: int) -> RenderableType:
    """The report as a medical director reads it: the draft and the window, the counts, the outcome
    table, how outcomes would move, and the sample with the conditions that flipped."""
    d = report.draft
    window = f"received from {report.since}" + (f" to {report.until}" if report.until else " on")
    replacing = (f" (replacing version {report.replaces} in the current library)" if report.replaces
                 and report.replaces != d.version else " (a criteria set the library does not have yet)"
                 if report.replaces is None else " (the same version as the current library)")
    parts: list[RenderableType] = [
        Text.assemble(("What-if: ", "bold"), (f"{d.title}", "bold cyan"), f" — draft {d.id} version {d.version}",
                      (f"  sha256 {d.content_hash[:12]}", "dim"), replacing),
        plain(f"Stored requests {window}, from {report.database} (read only; nothing is changed)", "dim"),
        Text(""),
        kv_grid([
            ("requests examined", plain(report.requests)),
            ("service lines examined", plain(report.lines)),
            ("lines the draft governs", plain(report.covered, "bold")),
            ("lines whose outcome would change", plain(report.changed, "bold yellow" if report.changed else "bold")),
        ]),
    ]
    parts += [plain(f"• {x}", "yellow") for x in _notes(report)]
    if not report.covered:
        codes, lobs = ", ".join(sorted(d.service_codes)), ", ".join(sorted(d.lines_of_business))
        parts.append(plain(f"\nNone of these requests has a line the draft would govern ({codes} for {lobs}).",
                           "yellow"))
        return Group(*parts)

    parts += [Text(""), _counts_table(report)]

    if not report.changed:
        parts.append(plain("No line would get a different outcome under the draft.", "green"))
        return Group(*parts)
    moves = Table(title="How outcomes would move", box=box.SIMPLE_HEAVY, pad_edge=False, title_justify="left")
    moves.add_column("lines", justify="right")
    moves.add_column("change")
    for (was, now), n in report.transitions.most_common():
        moves.add_row(plain(n, "bold"), plain(f"{WAS.get(was, was)} → {WOULD.get(now, now)}"))
    parts += [moves]
    if not report.sample:
        return Group(*parts)
    parts.append(plain(f"Sample of changed lines ({len(report.sample)} of {report.changed}; --sample {sample_size})",
                       "bold"))
    for c in report.sample:
        parts += _sample_parts(c)
    return Group(*parts)


def _notes(report: ReplayReport) -> list[str]:
    """What the counts leave out: lines kept by another set, lines no longer covered, unreadable requests."""
    extras: list[str] = []
    if report.governed_by_other_set:
        extras.append(f"{report.governed_by_other_set} line(s) the draft covers stay under a more specific criteria "
                      "set and are not counted")
    if report.no_longer_covered:
        extras.append(f"{report.no_longer_covered} line(s) decided under {report.draft.id} are no longer covered by "
                      "the draft (their code, line of business or diagnosis was dropped): they would go to a nurse or "
                      "another criteria set")
    if report.unreadable:
        extras.append(f"{report.unreadable} stored request(s) could not be read and were skipped")
    return extras


def _counts_table(report: ReplayReport) -> Table:
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
            counts.add_row(plain(OUTCOME_LABEL[o], OUTCOME_STYLE[o]), plain(b), plain(a),
                           plain(f"{delta:+d}" if delta else "0", "bold" if delta else "dim"))
    for other in sorted(set(report.before) - set(OUTCOME_ORDER)):
        counts.add_row(plain(other), plain(report.before[other]), plain(0), plain(f"{-report.before[other]:+d}"))
    counts.add_row(plain("total", "bold"), plain(sum(report.before.values())), plain(sum(report.after.values())),
                   plain(""))
    return counts


def _sample_parts(c: ChangedLine) -> list[RenderableType]:
    heading = Text.assemble((f"Request {c.request_id}", "cyan"), f" line {c.line_number}, ",
                            (f"{c.procedure_code}", "bold"), f", received {c.received_at}: ",
                            (OUTCOME_LABEL.get(c.before, c.before), OUTCOME_STYLE.get(c.before, "")), " → ",
                            (OUTCOME_LABEL.get(c.after, c.after), f"bold {OUTCOME_STYLE.get(c.after, '')}"))
    rows: list[tuple[str, RenderableType]] = [
        ("before", plain(c.before_words)),
        ("with the draft", plain(c.after_words, "bold")),
    ]
    if c.flips:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("condition that changed")
        table.add_column("before", no_wrap=True)
        table.add_column("with the draft", no_wrap=True)
        table.add_column("the request says", overflow="fold")
        for f in c.flips:
            table.add_row(plain(f.described), plain(f.before, STATUS_STYLE.get(f.before, "dim")),
                          plain(f.after, STATUS_STYLE.get(f.after, "dim")),
                          plain(", ".join(f.observed) or "not stated"))
        rows.append(("why", table))
    if c.later_decision:
        rows.append(("since then", plain(c.later_decision, "magenta")))
    return [Text(""), heading, indent(kv_grid(rows))]
