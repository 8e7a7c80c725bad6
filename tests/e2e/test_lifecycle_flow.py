"""After the decision, end to end with the services as processes on PostgreSQL and Kafka: a concurrent
stay extended through intake (the authorization it continues grows, claims draw on it), a pending
request revised and re-reviewed, another cancelled (task withdrawn, lines answered C, nothing
authorized), and appeals: the original denier can neither claim nor be assigned the appeal, another
physician overturns it, the authorization is issued and counted as approved after appeal; an upheld
Medicare Advantage reconsideration is forwarded to the independent review entity."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
import pytest
from ur.authorization.v1 import authorization_pb2
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from tests.e2e.conftest import Clients, usable
from tests.factories import OTHER_NPI, VALID_NPI, fact, lumbar_mri
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

NURSE = (("authorization", "Bearer dev-only-token-rn-alvarez"),)
DENIER = (("authorization", "Bearer dev-only-token-md-patel"),)
APPEAL_REVIEWER = (("authorization", "Bearer dev-only-token-md-osei"),)
SUPERVISOR = (("authorization", "Bearer dev-only-token-sup-kim"),)
#: A claims system checks claim lines and draws units (authorizations:check, authorizations:consume).
CLAIMS = (("authorization", "Bearer dev-only-token-svc-claims"),)


def pdate(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def view_of(clients: Clients, request_id: str) -> intake_pb2.RequestView:
    return clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request


def claim(clients: Clients, who: tuple[tuple[str, str], ...], request_id: str,
          appeal: bool = False) -> review_pb2.TaskView:
    """Claim the task of ``request_id`` (its appeal's when ``appeal``), giving back any other."""
    def attempt() -> review_pb2.TaskView | None:
        try:
            view = clients.review.ClaimNextTask(review_pb2.ClaimNextTaskRequest(), metadata=who, timeout=10).task
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise
        if view.task.request_id != request_id or bool(view.task.appeal_id) != appeal:
            clients.review.ReleaseTask(review_pb2.ReleaseTaskRequest(task_id=view.task.task_id), metadata=who,
                                       timeout=10)
            return None
        return view

    found: review_pb2.TaskView | None = wait_until(attempt, 60, what=f"a task of request {request_id}",
                                                   until=lambda v: v is not None, interval_s=0.2)
    assert found is not None
    return found


def denied(clients: Clients, request: intake_pb2.SubmitRequestRequest) -> tuple[str, review_pb2.TaskView]:
    """Submit, have the nurse refer it and the physician deny it; the request id and the decided task."""
    request_id = clients.settle(clients.intake.SubmitRequest(request, timeout=10).request.request_id).request_id
    task = claim(clients, NURSE, request_id)
    clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task.task.task_id, refer_to_physician=review_pb2.DecideTaskRequest.ReferToPhysician(note="unclear")),
        metadata=NURSE, timeout=10)
    task = claim(clients, DENIER, request_id)
    shortfall = task.determination.explanation.nearest.unmet[0]
    decided = clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task.task.task_id, deny=review_pb2.DecideTaskRequest.Deny(
            reason=f"The request does not show {shortfall.description}",
            criterion=f"imaging-mri-lumbar-spine@2026.1: {shortfall.condition_id}")), metadata=DENIER, timeout=10)
    line = decided.determination.lines[0]
    assert line.decided_by.id == "md-patel"
    assert line.appeal_rights.regime == "ma-reconsideration"
    assert line.appeal_rights.filing_window_days == 65
    wait_until(lambda: view_of(clients, request_id), 60, what="intake to hear of the denial",
               until=lambda v: v.lines[0].determination.action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED)
    return str(request_id), decided.task


def file_appeal(clients: Clients, request_id: str) -> review_pb2.Appeal:
    filed = clients.intake.FileAppeal(intake_pb2.FileAppealRequest(
        idempotency_key=f"appeal-{uuid.uuid4()}", request_id=request_id, line_number=1,
        urgency=types_pb2.URGENCY_EXPEDITED, appellant=intake_pb2.APPELLANT_PROVIDER_ON_BEHALF,
        appellant_name="Valley Orthopedics", reason="therapy notes attached",
        clinical_facts=[fact("conservative_therapy_weeks", 7, "weeks")]), timeout=10).appeal
    assert filed.status == "filed"

    def opened() -> review_pb2.Appeal | None:
        try:
            return clients.review.GetAppeal(review_pb2.GetAppealRequest(appeal_id=filed.appeal_id), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise

    appeal = wait_until(opened, 60, what="review to open the appeal", until=lambda a: a is not None)
    assert appeal is not None
    assert appeal.original_decider == "md-patel"
    assert appeal.clock.regime == "ma-reconsideration"
    assert "72 hours" in appeal.clock.rule
    return appeal


def test_an_appeal_goes_to_another_physician_who_overturns_it_and_the_authorization_is_issued(
        clients: Clients) -> None:
    request_id, _ = denied(clients, lumbar_mri(meets=False))
    notices = clients.review.ListNotices(review_pb2.ListNoticesRequest(request_id=request_id), timeout=10).notices
    denial = [n for n in notices if n.kind == review_pb2.NOTICE_KIND_DENIAL]
    assert sorted(n.recipient_role for n in denial) == ["member", "requesting_provider"]
    assert "You can ask for a reconsideration by the plan" in denial[0].text + denial[1].text
    appeal = file_appeal(clients, request_id)

    # The denier: never offered it, never given it, refused if named.
    mine = clients.review.ListMyTasks(review_pb2.ListMyTasksRequest(limit=200), metadata=DENIER, timeout=10)
    assert appeal.task_id not in {v.task.task_id for v in (*mine.held, *mine.available)}
    with pytest.raises(grpc.RpcError) as caught:
        clients.review.ReassignTask(review_pb2.ReassignTaskRequest(task_id=appeal.task_id, reviewer_id="md-patel"),
                                    metadata=SUPERVISOR, timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "made the decision under appeal" in (caught.value.details() or "")
    with pytest.raises(grpc.RpcError) as refused:
        clients.review.ClaimNextTask(review_pb2.ClaimNextTaskRequest(), metadata=DENIER, timeout=10)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND  # nothing else waits for a physician here

    task = claim(clients, APPEAL_REVIEWER, request_id, appeal=True)
    assert task.task.task_id == appeal.task_id
    decided = clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=appeal.task_id, approve=review_pb2.DecideTaskRequest.Approve(note="therapy documented")),
        metadata=APPEAL_REVIEWER, timeout=10)
    line = decided.determination.lines[0]
    assert (line.decided_by.id, line.decided_by.role) == ("md-osei", "appeal_reviewer")
    assert (line.appeal.appeal_id, line.appeal.outcome) == (appeal.appeal_id, "overturned")

    def issued() -> intake_pb2.RequestView:
        return view_of(clients, request_id)

    view = wait_until(issued, 60, what="the authorization after appeal",
                      until=lambda v: v.lines[0].authorization.approved_after_appeal)
    auth = view.lines[0].authorization
    assert auth.status == types_pb2.AUTHORIZATION_STATUS_APPROVED
    assert auth.appeal_id == appeal.appeal_id
    assert [(a.appeal_id, a.status, a.outcome) for a in view.appeals] == [(appeal.appeal_id, "decided", "overturned")]
    metrics = clients.authorization.GetAuthorizationMetrics(authorization_pb2.GetAuthorizationMetricsRequest(),
                                                           timeout=10)
    assert metrics.approved_after_appeal >= 1
    after = clients.review.ListNotices(review_pb2.ListNoticesRequest(request_id=request_id), timeout=10).notices
    assert any(n.kind == review_pb2.NOTICE_KIND_APPEAL_DECISION and n.recipient_role == "member" for n in after)

    # One appeal a line: the next level is named in the decision, not filed here.
    with pytest.raises(grpc.RpcError) as again:
        clients.intake.FileAppeal(intake_pb2.FileAppealRequest(
            idempotency_key=f"appeal-{uuid.uuid4()}", request_id=request_id, line_number=1,
            urgency=types_pb2.URGENCY_STANDARD, appellant=intake_pb2.APPELLANT_MEMBER), timeout=10)
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_an_upheld_medicare_advantage_reconsideration_is_forwarded(clients: Clients) -> None:
    request_id, _ = denied(clients, lumbar_mri(meets=False))
    appeal = file_appeal(clients, request_id)
    claim(clients, APPEAL_REVIEWER, request_id, appeal=True)
    clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=appeal.task_id, deny=review_pb2.DecideTaskRequest.Deny(
            reason="Seven weeks are stated, without therapy notes", criterion="imaging-mri-lumbar-spine@2026.1: "
                                                                             "conservative_therapy_six_weeks")),
        metadata=APPEAL_REVIEWER, timeout=10)
    decided = clients.review.GetAppeal(review_pb2.GetAppealRequest(appeal_id=appeal.appeal_id), timeout=10)
    assert (decided.status, decided.outcome.outcome, decided.outcome.forwarded) == ("decided", "upheld", True)
    assert "Independent Review Entity" in decided.outcome.forwarded_to
    view = wait_until(lambda: view_of(clients, request_id), 60, what="intake to record the forwarding",
                      until=lambda v: bool(v.appeals) and v.appeals[0].forwarded)
    assert view.lines[0].authorization.status == types_pb2.AUTHORIZATION_STATUS_DENIED
    assert not view.lines[0].authorization.approved_after_appeal


def test_an_appeal_by_whom_the_regime_does_not_admit_or_of_an_approval_is_refused(clients: Clients) -> None:
    approved = clients.settle(clients.intake.SubmitRequest(lumbar_mri(), timeout=10).request.request_id)
    with pytest.raises(grpc.RpcError) as caught:
        clients.intake.FileAppeal(intake_pb2.FileAppealRequest(
            idempotency_key=f"appeal-{uuid.uuid4()}", request_id=approved.request_id, line_number=1,
            urgency=types_pb2.URGENCY_STANDARD, appellant=intake_pb2.APPELLANT_MEMBER), timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "nothing to appeal" in (caught.value.details() or "")
    request_id, _ = denied(clients, lumbar_mri(meets=False))
    with pytest.raises(grpc.RpcError) as caught:
        clients.intake.FileAppeal(intake_pb2.FileAppealRequest(
            idempotency_key=f"appeal-{uuid.uuid4()}", request_id=request_id, line_number=1,
            urgency=types_pb2.URGENCY_STANDARD, appellant=intake_pb2.APPELLANT_INJURED_WORKER), timeout=10)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def stay(days: int, start: dt.date, *, extends: str = "") -> intake_pb2.SubmitRequestRequest:
    """A concurrent review of an inpatient stay (subsequent hospital care, a unit a day)."""
    request = lumbar_mri(member_id="T-MA-0001")
    del request.service_lines[:]
    request.service_lines.add(line_number=1, procedure_code="99232", units=days, start_date=pdate(start),
                              end_date=pdate(start + dt.timedelta(days=days - 1)),
                              place_of_service=types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL)
    del request.diagnoses[:]
    request.diagnoses.add(code="J18.9", primary=True)
    request.review_type = types_pb2.REVIEW_TYPE_CONCURRENT
    del request.clinical_facts[:]
    request.clinical_facts.extend([fact("acute_illness_persists", True), fact("hospital_level_treatment", True),
                                   fact("care_continues_past_midnight", True)])
    if extends:
        request.certification_type = types_pb2.CERTIFICATION_TYPE_EXTENSION
        request.related_authorization_number = extends
    return request


def authorized(clients: Clients, request_id: str) -> intake_pb2.RequestView:
    """The request once decided and its first line's usable authorization record is known to intake
    (the determination and the record reach intake on topics of their own)."""
    view: intake_pb2.RequestView = wait_until(
        lambda: view_of(clients, request_id), 60, what=f"request {request_id} to be authorized",
        until=lambda v: v.status == intake_pb2.REQUEST_STATUS_COMPLETE and usable(v.lines[0].authorization))
    return view


def test_a_concurrent_stay_extension_extends_the_authorization_claims_draw_on(clients: Clients) -> None:
    first_day = dt.date(2029, 3, 5)
    initial = authorized(clients, clients.intake.SubmitRequest(stay(5, first_day), timeout=10).request.request_id)
    line = initial.lines[0]
    assert (line.determination.approved_units, line.determination.unit) == (3, "days")
    assert line.determination.next_review_date == pdate(first_day + dt.timedelta(days=3))
    number = line.authorization.authorization_number
    assert number
    assert line.authorization.units == 3

    extension = authorized(clients, clients.intake.SubmitRequest(
        stay(3, first_day + dt.timedelta(days=3), extends=number.lower()), timeout=10).request.request_id)
    assert extension.status == intake_pb2.REQUEST_STATUS_COMPLETE
    extended = extension.lines[0].authorization
    assert extended.authorization_number == number  # the stay's authorization, not another one
    assert (extended.units, extended.valid_to) == (6, pdate(first_day + dt.timedelta(days=5)))
    assert [e.request_id for e in extended.extensions] == [extension.request_id]

    fifth_day = authorization_pb2.ClaimLine(member_id="T-MA-0001", servicing_npi=OTHER_NPI, procedure_code="99232",
                                            date_of_service=pdate(first_day + dt.timedelta(days=4)), units=1)
    check = clients.authorization.CheckClaim(authorization_pb2.CheckClaimRequest(claim=fifth_day), metadata=CLAIMS,
                                             timeout=10)
    assert (check.match, check.authorization.authorization_number) == (authorization_pb2.CLAIM_MATCH_COVERED, number)
    drawn = clients.authorization.ConsumeUnits(authorization_pb2.ConsumeUnitsRequest(
        claim_line_id="clm-stay/5", claim=fifth_day), metadata=CLAIMS, timeout=10)
    assert (drawn.units_consumed, drawn.units_remaining, drawn.replayed) == (1, 5, False)
    assert clients.authorization.ConsumeUnits(authorization_pb2.ConsumeUnitsRequest(
        claim_line_id="clm-stay/5", claim=fifth_day), metadata=CLAIMS, timeout=10).replayed
    elsewhere = authorization_pb2.ClaimLine()
    elsewhere.CopyFrom(fifth_day)
    elsewhere.servicing_npi = VALID_NPI
    answer = clients.authorization.CheckClaim(authorization_pb2.CheckClaimRequest(claim=elsewhere), metadata=CLAIMS,
                                              timeout=10)
    assert answer.match == authorization_pb2.CLAIM_MATCH_OTHER_PROVIDER
    with pytest.raises(grpc.RpcError) as over:
        clients.authorization.ConsumeUnits(authorization_pb2.ConsumeUnitsRequest(
            claim_line_id="clm-stay/6", claim=dataclasses_free_copy(fifth_day, units=9)), metadata=CLAIMS,
            timeout=10)
    assert over.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "has 5 of 6 days left" in (over.value.details() or "")


def dataclasses_free_copy(claim: authorization_pb2.ClaimLine, *, units: int) -> authorization_pb2.ClaimLine:
    copy = authorization_pb2.ClaimLine()
    copy.CopyFrom(claim)
    copy.units = units
    return copy


def test_a_pending_request_revised_through_intake_is_reviewed_again(clients: Clients) -> None:
    original = lumbar_mri(meets=False)
    pended = clients.settle(clients.intake.SubmitRequest(original, timeout=10).request.request_id)
    assert pended.status == intake_pb2.REQUEST_STATUS_PENDED
    revision = lumbar_mri(meets=True, start=dt.date(2029, 6, 1))
    with pytest.raises(grpc.RpcError) as caught:
        clients.intake.ReviseRequest(intake_pb2.ReviseRequestRequest(
            request_id=pended.request_id, requesting_npi=OTHER_NPI, revision=revision), timeout=10)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    revised = clients.intake.ReviseRequest(intake_pb2.ReviseRequestRequest(
        request_id=pended.request_id, requesting_npi=VALID_NPI, revision=revision), timeout=10).request
    assert revised.lines[0].line.start_date == pdate(dt.date(2029, 6, 1))
    view = authorized(clients, pended.request_id)
    line = view.lines[0]
    assert line.determination.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert line.determination.decided_by.role == "software"
    assert line.authorization.valid_from == pdate(dt.date(2029, 6, 1))
    # Decided now: not edited any more.
    with pytest.raises(grpc.RpcError) as decided:
        clients.intake.CancelRequest(intake_pb2.CancelRequestRequest(request_id=pended.request_id,
                                                                     requesting_npi=VALID_NPI), timeout=10)
    assert decided.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "file a new request, or an appeal" in (decided.value.details() or "")


def test_a_pending_request_cancelled_through_intake_withdraws_its_task_and_authorizes_nothing(
        clients: Clients) -> None:
    pended = clients.settle(clients.intake.SubmitRequest(lumbar_mri(meets=False), timeout=10).request.request_id)
    cancelled = clients.intake.CancelRequest(intake_pb2.CancelRequestRequest(
        request_id=pended.request_id, requesting_npi=VALID_NPI, reason="patient moved"), timeout=10).request
    assert cancelled.status == intake_pb2.REQUEST_STATUS_CANCELLED
    assert "withdrawn by its submitter: patient moved" in cancelled.status_reason
    view = wait_until(lambda: view_of(clients, pended.request_id), 60, what="review to answer the lines C",
                      until=lambda v: v.lines[0].determination.action_code == types_pb2.ACTION_CODE_CANCELLED)
    assert view.status == intake_pb2.REQUEST_STATUS_CANCELLED
    tasks = clients.review.ListMemberTasks(review_pb2.ListMemberTasksRequest(member_id="T-MA-0001"),
                                           metadata=SUPERVISOR, timeout=10).tasks
    assert pended.request_id not in {t.request_id for t in tasks}  # withdrawn: no longer waiting
    wait_until(lambda: view_of(clients, pended.request_id), 60, what="the record to be cancelled",
               until=lambda v: v.lines[0].authorization.status == types_pb2.AUTHORIZATION_STATUS_CANCELLED)
    claim_line = authorization_pb2.ClaimLine(member_id="T-MA-0001", servicing_npi=OTHER_NPI, procedure_code="72148",
                                             date_of_service=view.lines[0].line.start_date, units=1,
                                             authorization_number=view.lines[0].authorization.authorization_number)
    check = clients.authorization.CheckClaim(authorization_pb2.CheckClaimRequest(claim=claim_line), metadata=CLAIMS,
                                             timeout=10)
    assert check.match == authorization_pb2.CLAIM_MATCH_CANCELLED
    again = clients.intake.CancelRequest(intake_pb2.CancelRequestRequest(request_id=pended.request_id,
                                                                         requesting_npi=VALID_NPI), timeout=10)
    assert again.request.status == intake_pb2.REQUEST_STATUS_CANCELLED
