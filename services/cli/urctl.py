"""urctl: talk to a running UR platform over gRPC.

    urctl submit request.yaml [--wait-ms 15000] [--json]
    urctl request show REQUEST_ID [--json]
    urctl authorization show UR26-8K3F-Q9ZD [--json]
    urctl authorization list --member MA100001 [--code 72148] [--json]
    urctl queue list [--limit 50] [--json]
    urctl notice list|show|pdf ...       notices of determinations
    urctl request cancel|revise|appeal   what a submitter may do after submitting
    urctl claim check|consume ...        claim lines against authorizations
    urctl x12 submit FILE                a 278 interchange through intake; prints the 278 response
    urctl authorization metrics
    urctl audit verify|trail ...         the services' tamper-evident audit logs
    urctl report cms-0057f --year YYYY   the CMS-0057-F public prior-authorization report
    urctl credentials scopes|salt|token|hash|check
    urctl settings [--markdown]

Where the services are comes from UR_INTAKE_TARGET, UR_REVIEW_TARGET and UR_AUTHORIZATION_TARGET
(see services/common/settings.py), or --intake/--review/--authorization HOST:PORT; who urctl is to
them from UR_INTAKE_TOKEN (a submitter), UR_REVIEWER_TOKEN (a reviewer; review commands also take
--token) and UR_AUTHORIZATION_TOKEN.

Exit status: 0 done; 1 a service answered with an error or could not be reached; 2 bad usage or an
input file that cannot be read or is not a SubmitRequestRequest. Expected errors are reported in one
or a few lines on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from services.cli import (
    audit_commands,
    credentials_commands,
    lifecycle_commands,
    report_commands,
    reviewer,
    service_commands,
    x12_commands,
)
from services.cli.base import (
    DEFAULT_TIMEOUT_S,
    EXIT_OK,
    EXIT_SERVICE_ERROR,
    EXIT_USAGE,
    CliError,
    Parsers,
    RequestFileError,
    targets_from,
)
from services.cli.criteria import commands as criteria_commands
from services.cli.render import decision_latency_ms
from services.cli.request_files import load_request_file

# The names other code imports from here (services/cli/workload.py, the tests); they live in base,
# render and request_files, which import no command module.
__all__ = ["EXIT_OK", "EXIT_SERVICE_ERROR", "EXIT_USAGE", "CliError", "RequestFileError", "build_parser",
           "decision_latency_ms", "load_request_file", "main"]

#: Every command module, in the order of urctl's help. Each adds its commands to the parser; this
#: module imports them, never the other way round (tests/unit/cli/test_no_import_cycles.py).
COMMANDS: tuple[Callable[[Parsers], None], ...] = (
    service_commands.add_commands,  # submit, request show, authorization, queue
    reviewer.add_commands,  # request add-info, review ...
    criteria_commands.add_commands,  # criteria validate|test|explain|replay
    lifecycle_commands.add_commands,  # notice, request cancel|revise|appeal, claim, authorization metrics
    x12_commands.add_commands,  # x12 submit
    audit_commands.add_commands,  # audit verify|trail
    report_commands.add_commands,  # report cms-0057f
    credentials_commands.add_commands,  # credentials scopes|salt|token|hash|check
    service_commands.add_settings_command,
)


def build_parser() -> argparse.ArgumentParser:
    """urctl's whole command line: the shared options and every module's commands."""
    # Connection options are accepted before or after the subcommand; SUPPRESS keeps a subcommand's
    # absent option from overwriting one given before it.
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--intake", metavar="HOST:PORT", default=argparse.SUPPRESS,
                            help="intake service (default: UR_INTAKE_TARGET)")
    connection.add_argument("--review", metavar="HOST:PORT", default=argparse.SUPPRESS,
                            help="review service (default: UR_REVIEW_TARGET)")
    connection.add_argument("--authorization", metavar="HOST:PORT", default=argparse.SUPPRESS,
                            help="authorization service (default: UR_AUTHORIZATION_TARGET)")
    connection.add_argument("--timeout", metavar="SECONDS", type=float, default=argparse.SUPPRESS,
                            help=f"deadline of each call (default {DEFAULT_TIMEOUT_S:g}; submit adds --wait-ms)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print protobuf JSON instead of tables")

    parser = argparse.ArgumentParser(prog="urctl", description=__doc__, parents=[connection],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parsers = Parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), connection, output)
    for add_commands in COMMANDS:
        add_commands(parsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run urctl with ``argv`` (default: sys.argv[1:]); returns the exit status (see the module doc)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help already
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not hasattr(args, "timeout"):
        args.timeout = DEFAULT_TIMEOUT_S
    console = Console(highlight=False)
    try:
        return int(args.handler(args, targets_from(args), console))
    except CliError as exc:
        print(f"urctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("urctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
