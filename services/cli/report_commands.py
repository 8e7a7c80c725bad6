"""``urctl report cms-0057f``: the prior authorization metrics CMS-0057-F makes Medicare Advantage and
Medicaid plans post every year, computed from what the review service stored (read only).

    urctl report cms-0057f --year 2026 [--contract H4827] [--format markdown|csv|html] [--output DIR]

Without ``--output`` the report is printed (Markdown by default); with it, the Markdown, CSV and HTML
files are written there (``cms-0057f-2026[-H4827].md|csv|html``) and their paths printed. The HTML
page is self-contained: its charts are SVG drawn by matplotlib, inline. What is counted and why is
in the report's notes (and services/review/domain/public_report.py).

Exit status: 0 written; 1 the review database cannot be read; 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from rich.console import Console

from services.cli.base import EXIT_OK, CliError, Parsers, Targets, UsageError
from services.cli.cms_report import Report, extension, render
from services.cli.criteria.library import default_criteria_dir
from services.cli.databases import database_url
from services.common import settings
from services.common.errors import ConfigurationError, NotFound, Unavailable
from services.review.adapters.criteria_loader import CriteriaLibraryError, load_library
from services.review.adapters.policy_loader import DEFAULT_NO_PA_LIST, load_no_prior_auth
from services.review.adapters.report_queries import open_report_reader
from services.review.domain.public_report import (
    ReportRequest,
    RequiredService,
    decided_in,
    figures,
    services_requiring_authorization,
)

#: Requests decided in a year were received at most this long before it (the longest clock with its
#: extension is 44 days; appeals do not move the year).
LOOKBACK = dt.timedelta(days=120)
FORMATS = ("markdown", "csv", "html")


def _services(args: argparse.Namespace, decided: list[ReportRequest]) -> list[RequiredService]:
    try:
        library = load_library(Path(args.criteria) if args.criteria else default_criteria_dir())
        no_pa_file = args.no_pa_list or settings.get("UR_REVIEW_NO_PA_LIST") or DEFAULT_NO_PA_LIST
        no_pa = load_no_prior_auth(Path(no_pa_file))
    except (CriteriaLibraryError, ConfigurationError, OSError) as exc:
        raise UsageError(f"cannot read the criteria library or the no-prior-authorization list: {exc}") from exc
    covered = [RequiredService(code, s.title, s.key, tuple(sorted(s.lines_of_business)))
               for s in library.all() for code in sorted(s.service_codes)]
    requested = [(ln.procedure_code, r.line_of_business) for r in decided for ln in r.prior_authorization_lines]
    exempt = [(e.code, e.line_of_business) for e in no_pa.entries]
    return services_requiring_authorization(covered, requested, exempt)


def build_report(args: argparse.Namespace, now: dt.datetime) -> Report:
    """The year's report from the review database the arguments name."""
    start = dt.datetime(args.year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(args.year + 1, 1, 1, tzinfo=dt.UTC)
    try:
        with open_report_reader(database_url("review", args.review_database_url)) as reader:
            requests = reader.requests(start - LOOKBACK, end)
            location = reader.location
    except (NotFound, ConfigurationError) as exc:
        raise CliError(f"{exc} (run `make run` or `make demo` first, or give --review-database-url)") from exc
    except Unavailable as exc:
        raise CliError(str(exc)) from exc
    contract = args.contract.strip().upper() if args.contract else None
    year_figures = figures(requests, args.year, contract)
    services = _services(args, decided_in(requests, args.year, contract))
    return Report(year_figures, services, now, location)


def cmd_cms_0057f(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    if not 2000 <= args.year <= 2199:
        raise UsageError("--year: a year such as 2026")
    report = build_report(args, dt.datetime.now(dt.UTC))
    if args.output is None:
        print(render(report, args.format), end="")
        return EXIT_OK
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"cms-0057f-{args.year}" + (f"-{report.figures.contract}" if report.figures.contract else "")
    for kind in FORMATS:
        path = out / f"{stem}.{extension(kind)}"
        path.write_text(render(report, kind), encoding="utf-8")
        console.print(f"wrote {path}")
    return EXIT_OK


def add_commands(parsers: Parsers) -> None:
    """``urctl report cms-0057f``."""
    group = parsers.group("report", "public reports computed from stored data", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    cms = group.add_parser("cms-0057f", help="the yearly prior authorization metrics CMS-0057-F requires")
    cms.add_argument("--year", type=int, required=True, metavar="YYYY", help="the calendar year reported")
    cms.add_argument("--contract", default=None, metavar="ID",
                     help="one contract only: a Medicare Advantage contract (H4827) or a plan id")
    cms.add_argument("--format", choices=FORMATS, default="markdown", help="what to print (default markdown)")
    cms.add_argument("--output", default=None, metavar="DIR",
                     help="write the Markdown, CSV and HTML files into DIR instead of printing")
    cms.add_argument("--review-database-url", default=None, metavar="URL",
                     help="review's database (default: UR_REVIEW_DATABASE_URL, else the SQLite file `make run` "
                          "leaves in var/run/)")
    cms.add_argument("--criteria", default=None, metavar="DIR",
                     help="the criteria library (default: UR_REVIEW_CRITERIA_DIR, else services/review/criteria)")
    cms.add_argument("--no-pa-list", default=None, metavar="FILE",
                     help="the no-prior-authorization list (default: UR_REVIEW_NO_PA_LIST, else the shipped one)")
    cms.set_defaults(handler=cmd_cms_0057f)
