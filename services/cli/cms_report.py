"""The CMS-0057-F public report as Markdown, CSV and a self-contained HTML page whose charts
matplotlib draws as inline SVG (text as paths: no font, script or file outside the page).
The figures are computed by services/review/domain/public_report.py; this only presents them."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.figure import Figure

from services.review.domain.public_report import IMPACTED, Figures, RequiredService, UrgencyFigures

LOB_WORDS = {"medicare_advantage": "Medicare Advantage", "medicaid": "Medicaid"}
COLOURS = {"approved": "#2e7d32", "approved in part": "#f9a825", "denied": "#c62828"}


@dataclass(frozen=True)
class Report:
    """What the report shows: the year's figures, the list of services, and where they came from."""

    figures: Figures
    services: list[RequiredService]
    generated_at: dt.datetime
    source: str  # the review database, as shown to people

    @property
    def scope(self) -> str:
        if self.figures.contract is not None:
            return f"contract {self.figures.contract}"
        return "all " + " and ".join(LOB_WORDS[lob] for lob in sorted(IMPACTED)) + " plans"


def percent(part: int, pct: float | None) -> str:
    return "n/a (no requests)" if pct is None else f"{pct:.1f} % ({part})"


def hours(value: float | None) -> str:
    """A time to decision in the unit that shows it: hours, or minutes and seconds when short."""
    if value is None:
        return "n/a (no requests)"
    if value >= 1:
        return f"{value:.1f} hours"
    if value * 60 >= 1:
        return f"{value * 60:.1f} minutes"
    return f"{value * 3600:.1f} seconds"


def rows(f: Figures) -> list[tuple[str, str, str]]:
    """(metric, standard, expedited) as the report's table reads."""
    s, e = f.standard, f.expedited
    return [
        ("Requests decided", str(s.decided), str(e.decided)),
        ("Approved", percent(s.approved, s.approved_pct), percent(e.approved, e.approved_pct)),
        ("Approved in part", percent(s.approved_in_part, s.approved_in_part_pct),
         percent(e.approved_in_part, e.approved_in_part_pct)),
        ("Denied", percent(s.denied, s.denied_pct), percent(e.denied, e.denied_pct)),
        ("Approved after appeal", percent(s.approved_after_appeal, s.approved_after_appeal_pct), "not required"),
        ("Average time from submission to decision", hours(s.mean_hours), hours(e.mean_hours)),
        ("Median time from submission to decision", hours(s.median_hours), hours(e.median_hours)),
    ]


def extended_sentence(f: Figures) -> str:
    pct = f.extended_then_approved_pct
    if pct is None:
        return "No request was decided, so none was extended."
    return (f"{pct:.1f} % of the requests decided ({f.extended_then_approved} of {f.decided}) had their review "
            f"timeframe extended and were then approved ({f.extended} extended in all).")


def notes(report: Report) -> list[str]:
    f = report.figures
    return [
        "Source of every figure: the review service's database (" + report.source + "), where decisions are "
        "made: each request as received (line of business, plan, time of submission), each line's determination, "
        "the regulatory clock (urgency; whether the timeframe was extended), the appeals and their outcomes, and "
        "each review task's trail (a line's first decision, when an appeal has replaced it since). The "
        "authorization service's records follow those determinations and are not counted again; their "
        "\"extensions\" are extensions of a stay's authorization (concurrent review), not extensions of the "
        "review timeframe.",
        "Requests of Medicare Advantage and Medicaid plans, the lines of business CMS-0057-F covers here "
        "(42 CFR 422.122(c), 438.210(f)); commercial and workers' compensation requests are not counted. "
        "A contract is the Medicare Advantage contract number (H1234 of plan H1234-002), or the plan id.",
        f"A request counts in the year its determination was made ({f.year}, UTC): the last of its lines' first "
        "decisions. Lines needing no prior authorization are left out, and a request made only of them is not a "
        "prior authorization request.",
        "Approved: every line approved as requested. Denied: every line denied (a Medicaid deadline missed counts "
        "as a denial, 42 CFR 438.404(c)(5)). Approved in part: the rest (a line approved in part or modified, or "
        "lines decided differently). The three add up to the requests decided.",
        "Approved after appeal: standard requests with a line whose appeal overturned the decision, as known when "
        "this report was made, as a share of the standard requests decided.",
        "Extended and then approved: requests whose review timeframe was extended (42 CFR 422.568(b), 422.572(b)) "
        "and that were approved, as a share of all requests decided, standard and expedited.",
        "Expedited: the request's clock ran as expedited (72 hours), at the provider's request or on the plan's "
        "own determination. Time to decision runs from the submission to the determination.",
        f"Not counted: {f.pending} request(s) received in {f.year} still waiting for a decision when this report "
        f"was made, and {f.withdrawn} withdrawn by the submitter before a decision.",
        "Items and services: every code a criteria set covers for these lines of business, and any other code "
        f"requested and reviewed in {f.year}; codes on the no-prior-authorization list are not on it.",
    ]


# -- Markdown ---------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(report: Report) -> str:
    f = report.figures
    out = [f"# Prior authorization metrics {f.year} (CMS-0057-F)", "",
           f"Scope: {report.scope}. Generated {report.generated_at:%Y-%m-%d %H:%M} UTC.", "",
           f"## Decisions in {f.year}", "", "| | standard | expedited |", "|---|---:|---:|"]
    out += [f"| {m} | {s} | {e} |" for m, s, e in rows(f)]
    out += ["", extended_sentence(f), "", "## Items and services that require prior authorization", "",
            "| code | item or service | criteria | lines of business |", "|---|---|---|---|"]
    out += [f"| {s.code} | {_md_cell(s.description)} | {s.criteria or '—'} | "
            f"{', '.join(LOB_WORDS.get(lob, lob) for lob in s.lines_of_business)} |" for s in report.services]
    out += ["", "## Notes", ""]
    out += [f"{i}. {n}" for i, n in enumerate(notes(report), 1)]
    return "\n".join(out) + "\n"


# -- CSV --------------------------------------------------------------------------------------------

def _metric_rows(f: Figures) -> list[list[str]]:
    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    def num(value: float | None) -> str:
        return "" if value is None else f"{value:.6f}"

    found: list[list[str]] = []
    for urgency, u in (("standard", f.standard), ("expedited", f.expedited)):
        found += [["metrics", "requests_decided", urgency, str(u.decided), str(u.decided), str(u.decided), "requests"],
                  ["metrics", "approved", urgency, pct(u.approved_pct), str(u.approved), str(u.decided), "percent"],
                  ["metrics", "approved_in_part", urgency, pct(u.approved_in_part_pct), str(u.approved_in_part),
                   str(u.decided), "percent"],
                  ["metrics", "denied", urgency, pct(u.denied_pct), str(u.denied), str(u.decided), "percent"],
                  ["metrics", "mean_time_to_decision", urgency, num(u.mean_hours), "", str(u.decided), "hours"],
                  ["metrics", "median_time_to_decision", urgency, num(u.median_hours), "", str(u.decided), "hours"]]
    found.insert(6, ["metrics", "approved_after_appeal", "standard", pct(f.standard.approved_after_appeal_pct),
                     str(f.standard.approved_after_appeal), str(f.standard.decided), "percent"])
    found.append(["metrics", "extended_then_approved", "all", pct(f.extended_then_approved_pct),
                  str(f.extended_then_approved), str(f.decided), "percent"])
    return found


def csv_text(report: Report) -> str:
    """One table: the metrics (value, numerator, denominator, unit), then the list of services."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    f = report.figures
    writer.writerow(["section", "name", "urgency", "value", "numerator", "denominator", "unit", "year", "scope"])
    for row in _metric_rows(f):
        writer.writerow([*row, str(f.year), report.scope])
    for s in report.services:
        writer.writerow(["requires_prior_authorization", s.code, "", s.description, s.criteria,
                         " ".join(s.lines_of_business), "service", str(f.year), report.scope])
    return buffer.getvalue()


# -- HTML -------------------------------------------------------------------------------------------

def _svg(draw: Callable[[Figure], None], width: float, height: float) -> str:
    figure = Figure(figsize=(width, height), layout="constrained")
    draw(figure)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # the XML prologue and DOCTYPE cannot stand inside HTML


def _outcomes_chart(f: Figures) -> Callable[[Figure], None]:
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        groups = [("Standard", f.standard), ("Expedited", f.expedited)]
        left = [0.0, 0.0]
        shares: list[tuple[str, Callable[[UrgencyFigures], float | None]]] = [
            ("approved", lambda u: u.approved_pct), ("approved in part", lambda u: u.approved_in_part_pct),
            ("denied", lambda u: u.denied_pct)]
        for label, pick in shares:
            values = [pick(u) or 0.0 for _, u in groups]
            bars = ax.barh([g for g, _ in groups], values, left=left, color=COLOURS[label], label=label)
            ax.bar_label(bars, labels=[f"{v:.0f} %" if v >= 6 else "" for v in values], label_type="center",
                         color="white", fontsize=10)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the requests decided (%)")
        ax.invert_yaxis()
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    return draw


def _times_chart(f: Figures) -> Callable[[Figure], None]:
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        groups = ["Standard", "Expedited"]
        x = [0.0, 1.0]
        width = 0.36
        longest = max([v for u in (f.standard, f.expedited) for v in (u.mean_hours, u.median_hours) if v] or [0.0])
        unit, scale = ("hours", 1.0) if longest >= 1 else ("minutes", 60.0) if longest * 60 >= 1 else \
            ("seconds", 3600.0)
        series: list[tuple[float, str, str, Callable[[UrgencyFigures], float | None]]] = [
            (-width / 2, "average", "#1565c0", lambda u: u.mean_hours),
            (width / 2, "median", "#90caf9", lambda u: u.median_hours)]
        for offset, label, colour, pick in series:
            values = [pick(u) or 0.0 for u in (f.standard, f.expedited)]
            bars = ax.bar([p + offset for p in x], [v * scale for v in values], width, label=label, color=colour)
            ax.bar_label(bars, labels=[hours(v) if v else "" for v in values], fontsize=9)
        ax.set_xticks(x, groups)
        ax.set_ylabel(f"{unit} from submission to decision")
        ax.margins(y=0.15)
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    return draw


def _shares_chart(f: Figures) -> Callable[[Figure], None]:
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        labels = ["Standard requests\napproved after appeal", "Requests extended,\nthen approved"]
        values = [f.standard.approved_after_appeal_pct or 0.0, f.extended_then_approved_pct or 0.0]
        bars = ax.barh(labels, values, color=["#6a1b9a", "#00838f"])
        ax.bar_label(bars, labels=[f"{v:.1f} %" for v in values], padding=4, fontsize=10)
        ax.set_xlim(0, max(10.0, max(values) * 1.3))
        ax.set_xlabel("share of the requests decided (%)")
        ax.invert_yaxis()
        ax.spines[["top", "right"]].set_visible(False)
    return draw


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; margin: 0;
       background: #f6f7f9; line-height: 1.5; }
main { max-width: 60rem; margin: 0 auto; padding: 2rem 1.5rem 3rem; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #dde1e6; padding-bottom: .3rem; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; font-size: .95rem; }
th, td { border-bottom: 1px solid #e3e6ea; padding: .45rem .6rem; text-align: left; vertical-align: top; }
thead th { background: #f0f2f5; }
tbody th { font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(24rem, 1fr)); gap: 1.5rem;
          align-items: start; margin: 1.5rem 0; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; }
figcaption { font-size: .9rem; color: #444; }
.callout { background: #eef6f7; border-left: 4px solid #00838f; padding: .7rem 1rem; }
ol.notes { font-size: .9rem; color: #333; }
code { font-size: .9em; }
"""


def html_page(report: Report) -> str:
    f = report.figures
    esc = html.escape
    table = "".join(f"<tr><th scope=\"row\">{esc(m)}</th><td class=\"num\">{esc(s)}</td>"
                    f"<td class=\"num\">{esc(e)}</td></tr>" for m, s, e in rows(f))
    services = "".join(f"<tr><td><code>{esc(s.code)}</code></td><td>{esc(s.description)}</td>"
                       f"<td>{esc(s.criteria or '—')}</td>"
                       f"<td>{esc(', '.join(LOB_WORDS.get(lob, lob) for lob in s.lines_of_business))}</td></tr>"
                       for s in report.services)
    charts = [
        (_outcomes_chart(f), 6.4, 3.0, "Outcomes of the requests decided, standard and expedited"),
        (_times_chart(f), 6.4, 3.0, "Time from submission to decision: average and median"),
        (_shares_chart(f), 6.4, 3.0, "Approved after appeal (standard) and extended then approved (all)"),
    ]
    figures = "".join(f"<figure role=\"img\" aria-label=\"{esc(caption)}\">{_svg(draw, w, h)}"
                      f"<figcaption>{esc(caption)}</figcaption></figure>" for draw, w, h, caption in charts)
    note_items = "".join(f"<li>{esc(n)}</li>" for n in notes(report))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Prior authorization metrics {f.year} (CMS-0057-F)</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>Prior authorization metrics {f.year}</h1>
<p class="meta">Published under CMS-0057-F. Scope: {esc(report.scope)}. Generated
{report.generated_at:%Y-%m-%d %H:%M} UTC.</p>
<h2>Decisions in {f.year}</h2>
<table>
<thead><tr><th></th><th class="num">Standard</th><th class="num">Expedited</th></tr></thead>
<tbody>{table}</tbody>
</table>
<p class="callout">{esc(extended_sentence(f))}</p>
<div class="charts">{figures}</div>
<h2>Items and services that require prior authorization</h2>
<table>
<thead><tr><th>Code</th><th>Item or service</th><th>Criteria</th><th>Lines of business</th></tr></thead>
<tbody>{services}</tbody>
</table>
<h2>Notes</h2>
<ol class="notes">{note_items}</ol>
</main>
</body>
</html>
"""


def render(report: Report, kind: str) -> str:
    """The report as ``markdown``, ``csv`` or ``html``."""
    return {"markdown": markdown, "csv": csv_text, "html": html_page}[kind](report)


def extension(kind: str) -> str:
    return {"markdown": "md", "csv": "csv", "html": "html"}[kind]


__all__ = ["Report", "csv_text", "extension", "html_page", "markdown", "render"]
