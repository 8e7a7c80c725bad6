"""urctl's commands for what follows a determination:

    urctl notice list --request ID | --member ID      the notices issued
    urctl notice show NOTICE_ID                       one notice's letter, as text
    urctl notice pdf NOTICE_ID [-o FILE]              the letter as PDF
    urctl request cancel REQUEST_ID --npi NPI [--reason TEXT]
    urctl request revise REQUEST_ID FILE --npi NPI    the request as it should now read
    urctl request appeal REQUEST_ID --line N --appellant member|provider_on_behalf|injured_worker|representative
                         [--expedited] [--reason TEXT] [--key KEY]
    urctl claim check --member ID --npi NPI --code CPT --date YYYY-MM-DD [--units N] [--number AUTH]
    urctl claim consume CLAIM_LINE_ID --member ... (as check)
    urctl authorization metrics [--from DATE] [--to DATE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.base import EXIT_OK, Parsers, Targets, UsageError, call, emit
from services.cli.render import format_request
from services.cli.request_files import load_request_file

APPELLANTS = {"member": intake_pb2.APPELLANT_MEMBER, "provider_on_behalf": intake_pb2.APPELLANT_PROVIDER_ON_BEHALF,
              "injured_worker": intake_pb2.APPELLANT_INJURED_WORKER,
              "representative": intake_pb2.APPELLANT_REPRESENTATIVE}


def _kind(notice: review_pb2.Notice) -> str:
    return review_pb2.NoticeKind.Name(notice.kind).removeprefix("NOTICE_KIND_").lower().replace("_", " ")


def cmd_notice_list(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = review_pb2.ListNoticesRequest(request_id=args.request or "", member_id=args.member or "")
    response = call("review", targets.review, args.timeout, "the listing", lambda channel: review_pb2_grpc.
                    ReviewServiceStub(channel).ListNotices(request, timeout=args.timeout))

    def table() -> Table | Text:
        if not response.notices:
            return Text("no notices", style="dim")
        out = Table(title="Notices")
        for column in ("notice", "issued", "kind", "to", "lines", "subject"):
            out.add_column(column)
        for n in response.notices:
            out.add_row(n.notice_id, n.issued_at.ToDatetime(tzinfo=dt.UTC).strftime("%Y-%m-%d %H:%M"), _kind(n),
                        f"{n.recipient_role.replace('_', ' ')}: {n.recipient.name}",
                        ", ".join(str(x) for x in n.line_numbers), n.subject)
        return out

    emit(console, args, response, table)
    return EXIT_OK


def _notice(args: argparse.Namespace, targets: Targets, include_pdf: bool) -> review_pb2.GetNoticeResponse:
    request = review_pb2.GetNoticeRequest(notice_id=args.notice_id, include_pdf=include_pdf)
    response: review_pb2.GetNoticeResponse = call(
        "review", targets.review, args.timeout, "the lookup",
        lambda channel: review_pb2_grpc.ReviewServiceStub(channel).GetNotice(request, timeout=args.timeout))
    return response


def cmd_notice_show(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = _notice(args, targets, include_pdf=False)
    emit(console, args, response, lambda: Text(response.notice.text))
    return EXIT_OK


def cmd_notice_pdf(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    response = _notice(args, targets, include_pdf=True)
    path = Path(args.output or f"notice-{response.notice.notice_id}.pdf")
    try:
        path.write_bytes(response.pdf)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    console.print(f"{_kind(response.notice)} notice to the {response.notice.recipient_role.replace('_', ' ')} "
                  f"written to {path} ({len(response.pdf)} bytes)")
    return EXIT_OK


def cmd_request_cancel(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = intake_pb2.CancelRequestRequest(request_id=args.request_id, requesting_npi=args.npi,
                                              reason=args.reason or "")
    response = call("intake", targets.intake, args.timeout, "the cancellation", lambda channel: intake_pb2_grpc.
                    IntakeServiceStub(channel).CancelRequest(request, timeout=args.timeout))
    emit(console, args, response, lambda: format_request(response.request))
    return EXIT_OK


def cmd_request_revise(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    revision = load_request_file(args.file)
    revision.wait_ms = 0
    request = intake_pb2.ReviseRequestRequest(request_id=args.request_id, requesting_npi=args.npi, revision=revision)
    response = call("intake", targets.intake, args.timeout, str(args.file), lambda channel: intake_pb2_grpc.
                    IntakeServiceStub(channel).ReviseRequest(request, timeout=args.timeout))
    emit(console, args, response, lambda: format_request(response.request, replayed=response.replayed))
    return EXIT_OK


def cmd_request_appeal(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = intake_pb2.FileAppealRequest(
        idempotency_key=args.key or f"appeal-{uuid.uuid4()}", request_id=args.request_id, line_number=args.line,
        urgency=types_pb2.URGENCY_EXPEDITED if args.expedited else types_pb2.URGENCY_STANDARD,
        appellant=APPELLANTS[args.appellant], appellant_name=args.name or "", reason=args.reason or "")
    response = call("intake", targets.intake, args.timeout, "the appeal", lambda channel: intake_pb2_grpc.
                    IntakeServiceStub(channel).FileAppeal(request, timeout=args.timeout))
    a = response.appeal
    emit(console, args, response, lambda: Text(
        f"appeal {a.appeal_id} of request {a.request_id} line {a.line_number}: {a.status}"
        + (" (replayed)" if response.replayed else "")))
    return EXIT_OK


def _date(text: str) -> types_pb2.Date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a date (YYYY-MM-DD)") from exc
    return types_pb2.Date(year=day.year, month=day.month, day=day.day)


def _claim(args: argparse.Namespace) -> authorization_pb2.ClaimLine:
    return authorization_pb2.ClaimLine(member_id=args.member, servicing_npi=args.npi, procedure_code=args.code,
                                       date_of_service=_date(args.date), units=args.units,
                                       authorization_number=args.number or "")


def _match(value: int) -> str:
    return authorization_pb2.ClaimMatch.Name(value).removeprefix("CLAIM_MATCH_").lower()  # type: ignore[arg-type]


def cmd_claim_check(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.CheckClaimRequest(claim=_claim(args))
    response = call("authorization", targets.authorization, args.timeout, "the claim line",
                    lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                    .CheckClaim(request, timeout=args.timeout))
    emit(console, args, response, lambda: Text(
        f"{_match(response.match)}: {response.explanation}"
        + (f" [{response.authorization.authorization_number}]" if response.authorization.authorization_number
           else "")))
    return EXIT_OK


def cmd_claim_consume(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.ConsumeUnitsRequest(claim_line_id=args.claim_line_id, claim=_claim(args))
    response = call("authorization", targets.authorization, args.timeout, "the claim line",
                    lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                    .ConsumeUnits(request, timeout=args.timeout))
    emit(console, args, response, lambda: Text(
        f"drew {response.units_consumed} from {response.authorization.authorization_number}: "
        f"{response.units_remaining} left" + (" (replayed)" if response.replayed else "")))
    return EXIT_OK


def cmd_authorization_metrics(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    request = authorization_pb2.GetAuthorizationMetricsRequest()
    if args.since:
        getattr(request, "from").CopyFrom(_date(args.since))
    if args.until:
        request.to.CopyFrom(_date(args.until))
    response = call("authorization", targets.authorization, args.timeout, "the metrics",
                    lambda channel: authorization_pb2_grpc.AuthorizationServiceStub(channel)
                    .GetAuthorizationMetrics(request, timeout=args.timeout))
    emit(console, args, response, lambda: Text(
        f"{response.decided} decided: {response.approved} approved, {response.partially_approved} in part, "
        f"{response.modified} modified, {response.denied} denied, {response.cancelled} cancelled; "
        f"{response.approved_after_appeal} approved after appeal"))
    return EXIT_OK


def add_commands(parsers: Parsers) -> None:
    connection, output = parsers.connection, parsers.output
    notice = parsers.group("notice", "notices of determinations")
    listing = notice.add_parser("list", parents=[connection, output], help="a request's or a member's notices")
    which = listing.add_mutually_exclusive_group(required=True)
    which.add_argument("--request", metavar="ID")
    which.add_argument("--member", metavar="ID")
    listing.set_defaults(handler=cmd_notice_list)
    show = notice.add_parser("show", parents=[connection, output], help="a notice's letter as text")
    show.add_argument("notice_id", metavar="NOTICE_ID")
    show.set_defaults(handler=cmd_notice_show)
    pdf = notice.add_parser("pdf", parents=[connection], help="a notice's letter as PDF")
    pdf.add_argument("notice_id", metavar="NOTICE_ID")
    pdf.add_argument("-o", "--output", metavar="FILE", help="where to write it (default notice-<id>.pdf)")
    pdf.set_defaults(handler=cmd_notice_pdf, json=False)

    request = parsers.group("request", "requests")
    cancel = request.add_parser("cancel", parents=[connection, output], help="withdraw a request under review")
    cancel.add_argument("request_id", metavar="REQUEST_ID")
    cancel.add_argument("--npi", required=True, help="the requesting provider's NPI (the submitter)")
    cancel.add_argument("--reason", help="why, in a few words")
    cancel.set_defaults(handler=cmd_request_cancel)
    revise = request.add_parser("revise", parents=[connection, output], help="revise a request under review")
    revise.add_argument("request_id", metavar="REQUEST_ID")
    revise.add_argument("file", type=Path, metavar="FILE", help="the request as it should now read (its key is the "
                                                                  "revision's)")
    revise.add_argument("--npi", required=True, help="the requesting provider's NPI (the submitter)")
    revise.set_defaults(handler=cmd_request_revise)
    appeal = request.add_parser("appeal", parents=[connection, output], help="appeal an adverse line")
    appeal.add_argument("request_id", metavar="REQUEST_ID")
    appeal.add_argument("--line", type=int, required=True, metavar="N")
    appeal.add_argument("--appellant", required=True, choices=sorted(APPELLANTS))
    appeal.add_argument("--name", help="the appellant's name")
    appeal.add_argument("--expedited", action="store_true", help="ask for an expedited appeal")
    appeal.add_argument("--reason", help="why the decision should change")
    appeal.add_argument("--key", help="idempotency key (default: a new one)")
    appeal.set_defaults(handler=cmd_request_appeal)

    claim = parsers.group("claim", "claim lines against authorizations")
    for name, handler, text in (("check", cmd_claim_check, "which authorization covers a claim line"),
                                ("consume", cmd_claim_consume, "draw a claim line's units, once per claim line id")):
        sub = claim.add_parser(name, parents=[connection, output], help=text)
        if name == "consume":
            sub.add_argument("claim_line_id", metavar="CLAIM_LINE_ID")
        sub.add_argument("--member", required=True)
        sub.add_argument("--npi", required=True, help="the servicing provider's NPI")
        sub.add_argument("--code", required=True)
        sub.add_argument("--date", required=True, help="date of service (YYYY-MM-DD)")
        sub.add_argument("--units", type=int, default=1)
        sub.add_argument("--number", help="the authorization number the claim quotes")
        sub.set_defaults(handler=handler)

    metrics = parsers.group("authorization", "authorizations").add_parser(
        "metrics", parents=[connection, output], help="decided lines by outcome, approved after appeal")
    metrics.add_argument("--from", dest="since", metavar="DATE")
    metrics.add_argument("--to", dest="until", metavar="DATE")
    metrics.set_defaults(handler=cmd_authorization_metrics)
