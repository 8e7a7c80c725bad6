"""urctl criteria: check, test, explain and replay the clinical criteria the review service applies.

    urctl criteria validate [PATH ...] [--json]
    urctl criteria test [PATH ...] [--json]
    urctl criteria explain REQUEST_FILE|REQUEST_ID [--criteria DIR] [--review HOST:PORT] [--json]
    urctl criteria replay DRAFT.yaml --since YYYY-MM-DD [--until YYYY-MM-DD] [--database-url URL]
                                     [--criteria DIR] [--sample N] [--json]
    urctl criteria catalog [--criteria DIR] [--write | --check] [--output FILE]

The criteria directory's ``vocabulary/`` folder holds the vocabulary: cited mappings from diagnosis
and procedure codes and from providers' own fact names to the facts the criteria read. ``validate``
and ``test`` cover it with the criteria; ``explain`` shows what was derived from what. ``catalog``
writes the fact catalog intake reads (each fact's type and unit) from the library.

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
import datetime as dt

from services.cli.base import Parsers
from services.cli.criteria.catalog import cmd_catalog
from services.cli.criteria.examples import cmd_test
from services.cli.criteria.explain import cmd_explain
from services.cli.criteria.replay import cmd_replay
from services.cli.criteria.validate import cmd_validate


def _parse_day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes a date as YYYY-MM-DD, not {text!r}") from None


def add_commands(parsers: Parsers) -> None:
    """``urctl criteria validate|test|explain|replay|catalog``."""
    connection, output = parsers.connection, parsers.output
    group = parsers.group("criteria", "validate, test, explain and replay clinical criteria",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    paths_help = ("criteria files or directories (default: UR_REVIEW_CRITERIA_DIR, else "
                  "services/review/criteria)")
    validate = group.add_parser("validate", parents=[output], help="check criteria files; name every problem")
    validate.add_argument("paths", nargs="*", metavar="PATH", help=paths_help)
    validate.set_defaults(handler=cmd_validate)
    test = group.add_parser("test", parents=[output],
                            help="run every example case through durable-rules and the reference matcher")
    test.add_argument("paths", nargs="*", metavar="PATH", help=paths_help)
    test.set_defaults(handler=cmd_test)
    criteria_dir = argparse.ArgumentParser(add_help=False)
    criteria_dir.add_argument("--criteria", metavar="DIR", default=None,
                              help="the current criteria library (default: UR_REVIEW_CRITERIA_DIR, else "
                                   "services/review/criteria)")
    explain = group.add_parser("explain", parents=[connection, output, criteria_dir],
                               help="why a request's lines get their outcome: criteria, conditions, facts")
    explain.add_argument("request", metavar="REQUEST_FILE|REQUEST_ID",
                         help="a request file (as for `urctl submit`), evaluated locally; or a request id, whose "
                              "stored determination the review service explains")
    explain.set_defaults(handler=cmd_explain)
    replay = group.add_parser("replay", parents=[output, criteria_dir],
                              help="what-if: how a draft criteria set would change past outcomes (reads only)")
    replay.add_argument("draft", metavar="DRAFT", help="the draft criteria file")
    replay.add_argument("--since", required=True, metavar="YYYY-MM-DD",
                        type=lambda s: _parse_day(s, "--since"), help="requests received on or after this day")
    replay.add_argument("--until", default=None, metavar="YYYY-MM-DD",
                        type=lambda s: _parse_day(s, "--until"), help="and on or before this day (UTC)")
    replay.add_argument("--database-url", default=None, metavar="URL",
                        help="review's database (default: UR_REVIEW_DATABASE_URL, else the SQLite file "
                             "the review service or `make run` uses)")
    replay.add_argument("--sample", type=int, default=10, metavar="N", help="changed lines to show (default 10)")
    replay.set_defaults(handler=cmd_replay)
    catalog = group.add_parser("catalog", parents=[criteria_dir],
                               help="the clinical-fact catalog intake reads (types and units), from the library")
    mode = catalog.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write it to the file intake reads")
    mode.add_argument("--check", action="store_true", help="exit 1 when that file differs from the library")
    catalog.add_argument("--output", metavar="FILE", default=None,
                         help="the catalog file (default: services/common/clinical-facts.yaml)")
    catalog.set_defaults(handler=cmd_catalog)
