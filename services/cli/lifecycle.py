"""What follows the decisions in ``make run``/``make demo``, over the same gRPC APIs a payer's systems
would use: a deadline extension (with its notice), an appeal of a denial filed through intake and
decided by a physician other than the one who denied it (the server refuses to hand it to the
denier), the authorization that results, the approved-after-appeal count, and a sample notice of
each kind written to disk as PDF and text.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from rich import box
from rich.console import Console
from rich.table import Table
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.scripted_review import PHYSICIAN, ShiftReport
from services.common.tls import TransportSecurity, open_channel

T = TypeVar("T")
SUPERVISOR = ("sup-kim", "dev-only-token-sup-kim")
APPEAL_REVIEWER = ("md-osei", "dev-only-token-md-osei")
APPELLANT = {types_pb2.LINE_OF_BUSINESS_WORKERS_COMP: intake_pb2.APPELLANT_INJURED_WORKER}


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _until(what: str, attempt: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    """Retry ``attempt`` (None: not yet) until it answers; the platform is asynchronous (Kafka)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = attempt()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.3)


@dataclass
class LifecycleReport:
    lines: list[tuple[str, str]] = field(default_factory=list)  # (step, what happened)
    notices: list[tuple[str, str, Path]] = field(default_factory=list)  # (kind, recipient, pdf path)


class Lifecycle:
    def __init__(self, intake: grpc.Channel, review: grpc.Channel, authorization: grpc.Channel) -> None:
        self.intake = intake_pb2_grpc.IntakeServiceStub(intake)
        self.review = review_pb2_grpc.ReviewServiceStub(review)
        self.authorization = authorization_pb2_grpc.AuthorizationServiceStub(authorization)
        self.report = LifecycleReport()

    def extend_one(self) -> str | None:
        """A supervisor extends a Medicare Advantage task's deadline on the enrollee's request: the
        written notice of the extension goes out. Returns the request id."""
        queue = self.review.ListReviewQueue(review_pb2.ListReviewQueueRequest(page_size=500), timeout=10)
        task = next((t for t in queue.tasks if t.line_of_business == types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE),
                    None)
        if task is None:
            return None
        view = self.review.ExtendDeadline(review_pb2.ExtendDeadlineRequest(
            task_id=task.task_id, ground="enrollee_request", notice_sent=True), metadata=_md(SUPERVISOR[1]),
            timeout=10)
        self.report.lines.append(("extension", f"task {task.task_id[:8]} ({task.procedure_code}): "
                                               f"{view.task.clock.rule}"))
        return task.request_id

    def appeal_denial(self, task_id: str, request_id: str, line_number: int) -> None:
        """Appeal a denial through intake; the denier is refused the appeal, another physician
        overturns it, and the authorization is issued (approved after appeal)."""
        request = self.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request
        appellant = APPELLANT.get(request.line_of_business, intake_pb2.APPELLANT_PROVIDER_ON_BEHALF)
        filing = intake_pb2.FileAppealRequest(
            idempotency_key=f"appeal-{uuid.uuid4()}", request_id=request_id, line_number=line_number,
            urgency=types_pb2.URGENCY_EXPEDITED, appellant=appellant, appellant_name=request.requesting_provider.name,
            reason="The physical therapy notes attached document the conservative therapy the reviewer asked for.",
            clinical_facts=[types_pb2.ClinicalFact(name="conservative_therapy_weeks", number_value=7, unit="weeks")])

        def file() -> intake_pb2.FileAppealResponse | None:
            try:
                return self.intake.FileAppeal(filing, timeout=10)
            except grpc.RpcError as exc:  # the denial reaches intake through Kafka
                if exc.code() is grpc.StatusCode.FAILED_PRECONDITION and "nothing to appeal" in (exc.details() or ""):
                    return None
                raise

        appeal = _until("intake accepting the appeal", file).appeal
        self.report.lines.append(("appeal filed", f"appeal {appeal.appeal_id[:8]} of request {request_id[:8]} line "
                                                  f"{line_number}, expedited, by the {_appellant(appellant)}"))

        def opened() -> review_pb2.Appeal | None:
            try:
                return self.review.GetAppeal(review_pb2.GetAppealRequest(appeal_id=appeal.appeal_id), timeout=10)
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        held = _until("review opening the appeal", opened)
        self.report.lines.append(("appeal clock", f"{held.clock.regime}: {held.clock.rule}"))
        try:
            self.review.ReassignTask(review_pb2.ReassignTaskRequest(task_id=held.task_id, reviewer_id=PHYSICIAN[0]),
                                     metadata=_md(SUPERVISOR[1]), timeout=10)
            self.report.lines.append(("refused?", "the denier was given the appeal: this should not happen"))
        except grpc.RpcError as exc:
            self.report.lines.append(("denier refused", f"{SUPERVISOR[0]} assigning it to {PHYSICIAN[0]}: "
                                                        f"{exc.code().name} ({exc.details()})"))
        mine = self.review.ListMyTasks(review_pb2.ListMyTasksRequest(limit=200, summary=True),
                                       metadata=_md(PHYSICIAN[1]), timeout=10)
        offered = any(v.task.task_id == held.task_id for v in (*mine.held, *mine.available))
        self.report.lines.append(("denier's queue", f"the appeal is {'OFFERED (wrong)' if offered else 'not'} among "
                                                    f"{PHYSICIAN[0]}'s tasks"))
        self.review.ReassignTask(review_pb2.ReassignTaskRequest(task_id=held.task_id, reviewer_id=APPEAL_REVIEWER[0],
                                                                note="appeal: a physician other than the denier"),
                                 metadata=_md(SUPERVISOR[1]), timeout=10)
        self.review.DecideTask(review_pb2.DecideTaskRequest(
            task_id=held.task_id, approve=review_pb2.DecideTaskRequest.Approve(
                note="overturned: the therapy notes document seven weeks of conservative therapy")),
            metadata=_md(APPEAL_REVIEWER[1]), timeout=10)
        self.report.lines.append(("appeal decided", f"{APPEAL_REVIEWER[0]} overturned it (task {held.task_id[:8]}, "
                                                    f"originally denied by {held.original_decider})"))

        def issued() -> types_pb2.Authorization | None:
            view = self.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request
            line = next(ln for ln in view.lines if ln.line.line_number == line_number)
            auth = line.authorization
            return auth if auth.approved_after_appeal else None

        auth = _until("the authorization after appeal", issued)
        self.report.lines.append(("authorization", f"{auth.authorization_number}: "
                                                   f"{types_pb2.AuthorizationStatus.Name(auth.status)}, approved after "
                                                   f"appeal; {auth.unit} left to draw on: {auth.units_remaining}"))

    def metrics(self) -> None:
        m = self.authorization.GetAuthorizationMetrics(authorization_pb2.GetAuthorizationMetricsRequest(), timeout=10)
        self.report.lines.append(("metrics", f"{m.decided} lines decided: {m.approved} approved, "
                                             f"{m.partially_approved} in part, {m.modified} modified, "
                                             f"{m.denied} denied; {m.approved_after_appeal} approved after appeal"))

    def write_notices(self, request_ids: list[str], directory: Path) -> None:
        """One notice of each kind among these requests' (the member's letter, and the provider's of a
        denial), as PDF and text."""
        directory.mkdir(parents=True, exist_ok=True)
        wanted: dict[str, review_pb2.Notice] = {}
        for request_id in dict.fromkeys(request_ids):
            for n in self.review.ListNotices(review_pb2.ListNoticesRequest(request_id=request_id), timeout=10).notices:
                kind = review_pb2.NoticeKind.Name(n.kind).removeprefix("NOTICE_KIND_").lower()
                plain = n.recipient_role in ("member", "injured_worker")
                key = kind if plain else f"{kind}-provider" if kind == "denial" else ""
                if key and key not in wanted:
                    wanted[key] = n
        for key, n in sorted(wanted.items()):
            response = self.review.GetNotice(review_pb2.GetNoticeRequest(notice_id=n.notice_id, include_pdf=True),
                                             timeout=30)
            pdf = directory / f"{key}.pdf"
            pdf.write_bytes(response.pdf)
            pdf.with_suffix(".txt").write_text(response.notice.text, encoding="utf-8")
            self.report.notices.append((key, n.recipient_role.replace("_", " "), pdf))


def _appellant(value: int) -> str:
    return intake_pb2.Appellant.Name(value).removeprefix("APPELLANT_").lower().replace("_", " ")  # type: ignore[arg-type]


def write_composed_sample(directory: Path, kind: str, request_id: str, member_id: str) -> Path:
    """A sample of a notice ``kind`` the run did not produce, composed here with the platform's own
    notice code (and the shipped appeal rights): a deemed denial needs a Medicaid deadline missed,
    which a run of minutes never reaches; an approval in part needs a physician cutting a line of
    several units, which the sample shift may not meet."""
    from services.review.adapters.appeal_rights_loader import load_appeal_rights
    from services.review.adapters.notice_pdf import render_pdf
    from services.review.domain.notices import (
        NoticeFacts,
        NoticeKind,
        Party,
        ServiceAction,
        ServiceDecision,
        compose,
    )

    now = dt.datetime.now(dt.UTC)
    if kind == NoticeKind.DEEMED_DENIAL:
        lob, state, missed = "medicaid", "TX", now - dt.timedelta(hours=1)
        service = ServiceDecision(1, "72148", "lumbar spine MRI", ServiceAction.PENDED, 1)
    elif kind == NoticeKind.PARTIAL_APPROVAL:
        lob, state, missed = "medicare_advantage", "CA", None
        service = ServiceDecision(1, "97110", "physical therapy visits", ServiceAction.APPROVED_IN_PART, 12,
                                  approved_units=6, unit="visits",
                                  reviewer_reason="Six visits are approved now; progress notes after them will "
                                                  "show whether more are needed.")
    else:
        raise ValueError(f"no composed sample of {kind!r}")
    facts = NoticeFacts(kind=NoticeKind(kind), request_id=request_id, determination_id="(sample)", member_id=member_id,
                        member=Party(f"Member {member_id}"), line_of_business=lob, member_state=state,
                        requesting_provider=Party("Requesting provider"), issued_on=now.date(), services=(service,),
                        rights=load_appeal_rights().for_line(lob, state), missed_due=missed)
    notice = compose(facts, "member", facts.member, f"sample-{kind}", now)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}.pdf"
    path.write_bytes(render_pdf(notice))
    path.with_suffix(".txt").write_text(notice.text, encoding="utf-8")
    return path


def run_lifecycle(targets: dict[str, str], shift: ShiftReport, console: Console, notices_dir: Path, *,
                  security: TransportSecurity | None = None, tokens: Mapping[str, str] | None = None
                  ) -> LifecycleReport:
    """Extension, appeal, metrics and the notices on disk (see the module docstring). ``tokens``: per
    service, what calls made on no reviewer's behalf send (intake: the submitter of the requests, who
    alone may appeal them; review and authorization: a reader of notices, appeals and metrics)."""
    tokens = tokens or {}
    with open_channel(targets["intake"], security, token=tokens.get("intake")) as i, \
            open_channel(targets["review"], security, token=tokens.get("review")) as r, \
            open_channel(targets["authorization"], security, token=tokens.get("authorization")) as a:
        life = Lifecycle(i, r, a)
        requests = list(shift.decided_requests)
        extended = life.extend_one()
        if extended is not None:
            requests.append(extended)
        denials = shift.adverse.get("denied", [])
        if denials:
            life.appeal_denial(*denials[0])
        life.metrics()
        life.write_notices(requests, notices_dir)
        if requests:
            first = life.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=requests[0]), timeout=10).request
            written = {kind for kind, _to, _path in life.report.notices}
            for kind in ("partial_approval", "deemed_denial"):
                if kind not in written:
                    path = write_composed_sample(notices_dir, kind, first.request_id, first.member_id)
                    life.report.notices.append((f"{kind} (composed locally)", "member", path))
    render(life.report, console, notices_dir)
    return life.report


def render(report: LifecycleReport, console: Console, notices_dir: Path) -> None:
    table = Table(title="After the decisions: extension, appeal, authorization", box=box.SIMPLE_HEAVY)
    table.add_column("step")
    table.add_column("what happened")
    for step, what in report.lines:
        table.add_row(step, what)
    console.print(table)
    notices = Table(title=f"Sample notices, one of each kind, in {notices_dir}/", box=box.SIMPLE)
    for column in ("kind", "to", "file"):
        notices.add_column(column)
    for kind, recipient, path in report.notices:
        notices.add_row(kind, recipient, path.name)
    console.print(notices)
    console.print(f"Read one: [bold]xdg-open {notices_dir}/denial.pdf[/bold] or [bold]cat {notices_dir}/denial.txt"
                  "[/bold]; list a request's: [bold].venv/bin/urctl notice list --request <id>[/bold].")
