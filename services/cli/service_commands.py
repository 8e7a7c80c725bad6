"""urctl's commands over the services' gRPC APIs: ``submit``, ``request show``, ``authorization
show|list`` and ``queue list``; and ``settings``, the environment variables the platform reads (their
usage is in urctl's help)."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from rich import box
from rich.console import Console
from rich.table import Table
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.base import EXIT_OK, CliError, Parsers, Targets, call, emit
from services.cli.render import format_authorization, format_authorizations, format_queue, format_request, plain
from services.cli.request_files import load_request_file
from services.common import settings

QUEUE_PAGE_MAX = 500  # ListReviewQueue's page size limit


def cmd_submit(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = load_request_file(args.file)
    if args.wait_ms is not None:
        request.wait_ms = args.wait_ms
    timeout = args.timeout + request.wait_ms / 1000
    response = call("intake", targets.intake, timeout, str(args.file), lambda channel: intake_pb2_grpc.
                    IntakeServiceStub(channel).SubmitRequest(request, timeout=timeout))
    emit(console, args, response, lambda: format_request(response.request, replayed=response.replayed))
    return EXIT_OK


def cmd_request_show(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = call("intake", targets.intake, args.timeout, "the lookup", lambda channel: intake_pb2_grpc.
                    IntakeServiceStub(channel).GetRequest(intake_pb2.GetRequestRequest(request_id=args.request_id),
                                                          timeout=args.timeout))
    emit(console, args, response, lambda: format_request(response.request))
    return EXIT_OK


def cmd_authorization_show(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.GetAuthorizationRequest(authorization_number=args.number)
    response = call("authorization", targets.authorization, args.timeout, "the lookup",
                    lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                    .GetAuthorization(request, timeout=args.timeout))
    emit(console, args, response, lambda: format_authorization(response.authorization))
    return EXIT_OK


def cmd_authorization_list(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.ListMemberAuthorizationsRequest(member_id=args.member, procedure_code=args.code or "")
    response = call("authorization", targets.authorization, args.timeout, "the lookup",
                    lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                    .ListMemberAuthorizations(request, timeout=args.timeout))
    title = f"Authorizations of {args.member}" + (f" for {args.code}" if args.code else "")
    emit(console, args, response, lambda: format_authorizations(response.authorizations, title))
    return EXIT_OK


def cmd_queue_list(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")

    def fetch(channel: grpc.Channel) -> review_pb2.ListReviewQueueResponse:
        stub = review_pb2_grpc.ReviewServiceStub(channel)
        merged = review_pb2.ListReviewQueueResponse()
        token = ""
        while len(merged.tasks) < args.limit:
            page = stub.ListReviewQueue(review_pb2.ListReviewQueueRequest(
                page_size=min(args.limit - len(merged.tasks), QUEUE_PAGE_MAX), page_token=token),
                timeout=args.timeout)
            merged.tasks.extend(page.tasks)
            merged.total = page.total
            token = merged.next_page_token = page.next_page_token
            if not token or not page.tasks:
                break
        return merged

    response = call("review", targets.review, args.timeout, "the listing", fetch)
    emit(console, args, response, lambda: format_queue(response.tasks, response.total))
    return EXIT_OK


def _used_by(setting: settings.Setting) -> str:
    return "all services" if setting.used_by == ("*",) else ", ".join(setting.used_by)


def cmd_settings(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    """The declared settings; ``--markdown`` prints the README's configuration table."""
    if args.markdown:
        print(settings.markdown_table())
        return EXIT_OK
    table = Table(title="Settings (environment variables)", box=box.SIMPLE_HEAVY)
    for column in ("variable", "value", "default", "used by", "meaning"):
        table.add_column(column)
    for s in settings.SETTINGS:
        table.add_row(plain(s.name, "bold"), plain(settings.get(s.name)), plain(s.default), plain(_used_by(s)),
                      plain(s.help))
    console.print(table)
    return EXIT_OK


def add_commands(parsers: Parsers) -> None:
    """``submit``, ``request show``, ``authorization show|list`` and ``queue list``."""
    connection, output = parsers.connection, parsers.output
    submit = parsers.commands.add_parser("submit", parents=[connection, output],
                                         help="submit one request from a JSON or YAML file")
    submit.add_argument("file", type=Path, metavar="FILE", help="one SubmitRequestRequest (protobuf JSON form)")
    submit.add_argument("--wait-ms", type=int, metavar="N", default=None,
                        help="wait up to N ms for the determination (default: the file's wait_ms, else 0)")
    submit.set_defaults(handler=cmd_submit)

    show = parsers.group("request", "requests").add_parser("show", parents=[connection, output],
                                                           help="a request's status, lines and decisions")
    show.add_argument("request_id", metavar="REQUEST_ID")
    show.set_defaults(handler=cmd_request_show)

    authorization = parsers.group("authorization", "authorizations")
    auth_show = authorization.add_parser("show", parents=[connection, output], help="one authorization")
    auth_show.add_argument("number", metavar="NUMBER")
    auth_show.set_defaults(handler=cmd_authorization_show)
    auth_list = authorization.add_parser("list", parents=[connection, output], help="a member's authorizations")
    auth_list.add_argument("--member", required=True, metavar="ID")
    auth_list.add_argument("--code", metavar="CPT", help="only this procedure code")
    auth_list.set_defaults(handler=cmd_authorization_list)

    queue_list = parsers.group("queue", "the review queue").add_parser(
        "list", parents=[connection, output], help="lines waiting for a person")
    queue_list.add_argument("--limit", type=int, default=50, metavar="N", help="at most N tasks (default 50)")
    queue_list.set_defaults(handler=cmd_queue_list)


def add_settings_command(parsers: Parsers) -> None:
    """``settings`` (listed last in urctl's help)."""
    settings_cmd = parsers.commands.add_parser("settings", help="the environment variables the platform reads")
    settings_cmd.add_argument("--markdown", action="store_true", help="as a Markdown table (for the README)")
    settings_cmd.set_defaults(handler=cmd_settings, json=False)
