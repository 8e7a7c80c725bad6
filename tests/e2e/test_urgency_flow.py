"""Issue 13 end to end, with the services as processes on PostgreSQL and Kafka: a request that says
cauda equina syndrome in codes and words (G83.4, urinary retention, saddle anaesthesia) but not the
criteria's own fact name is not left on a 7-day clock behind routine cases. Its MRI is approved at
once as urgent, with the derived fact named in the explanation; its decompression, which no criteria
set covers, waits for a nurse expedited, first in her queue, saying why; a red flag with a fact still
missing (appendicitis with peritonitis, pregnancy not yet excluded) is pended the same way; a nurse
changes a task's urgency with a reason, and an adjuster may not. Intake refuses a negative duration."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import grpc
import pytest
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from tests.e2e.conftest import Clients
from tests.factories import OTHER_NPI, VALID_NPI, fact
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

NURSE = (("authorization", "Bearer dev-only-token-rn-alvarez"),)
ADJUSTER = (("authorization", "Bearer dev-only-token-adj-chen"),)
_windows = itertools.count()


def pb_date(d: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=d.year, month=d.month, day=d.day)


def request(*codes: str, diagnoses: tuple[str, ...], facts: list[types_pb2.ClinicalFact],
            member: str = "T-MA-0001",
            lob: types_pb2.LineOfBusiness.ValueType = types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,
            state: str = "CA") -> intake_pb2.SubmitRequestRequest:
    start = dt.date(2029, 1, 8) + dt.timedelta(days=21 * next(_windows))  # no two requests overlap
    return intake_pb2.SubmitRequestRequest(
        idempotency_key=f"urgency-{uuid.uuid4()}", member_id=member,
        coverage=types_pb2.Coverage(line_of_business=lob, member_state=state, plan_id="PLAN-1"),
        requesting_provider=types_pb2.Provider(npi=VALID_NPI, name="Valley Spine"),
        servicing_provider=types_pb2.Provider(npi=OTHER_NPI, name="Coastal Imaging"),
        diagnoses=[types_pb2.Diagnosis(code=d, primary=i == 0) for i, d in enumerate(diagnoses)],
        service_lines=[types_pb2.ServiceLine(line_number=i + 1, procedure_code=code, units=1, start_date=pb_date(start),
                                             end_date=pb_date(start + dt.timedelta(days=7)),
                                             place_of_service=types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL)
                       for i, code in enumerate(codes)],
        review_type=types_pb2.REVIEW_TYPE_PROSPECTIVE, urgency=types_pb2.URGENCY_STANDARD, clinical_facts=facts)


def submit(clients: Clients, message: intake_pb2.SubmitRequestRequest) -> intake_pb2.RequestView:
    view = clients.intake.SubmitRequest(message, timeout=30).request
    return clients.settle(view.request_id)


def queue(clients: Clients) -> list[review_pb2.TaskView]:
    return list(clients.review.ListMyTasks(review_pb2.ListMyTasksRequest(limit=50), metadata=NURSE,
                                           timeout=10).available)


def test_a_cauda_equina_request_in_codes_and_words_goes_first(clients: Clients) -> None:
    routine = submit(clients, request("72148", diagnoses=("M54.50",),
                                      facts=[fact("symptom_duration_weeks", 2, "weeks")]))
    assert routine.status == intake_pb2.REQUEST_STATUS_PENDED

    issue = submit(clients, request("72148", "63047", diagnoses=("M54.50", "G83.4"),
                                    facts=[fact("urinary_retention", True), fact("saddle_anaesthesia", True)]))
    assert issue.status == intake_pb2.REQUEST_STATUS_PENDED  # the decompression waits for a nurse
    mri, decompression = issue.lines
    assert mri.determination.outcome == types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT
    assert mri.determination.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    explanation = mri.determination.explanation
    assert [d.description for d in explanation.derived] == [
        "suspected cauda equina: derived from diagnosis G83.4, fact saddle_anaesthesia, fact urinary_retention"]
    assert explanation.urgency.startswith("meets the urgent lumbar spine MRI criteria: suspected cauda equina syndrome")
    assert decompression.determination.queued_for_review

    pended = submit(clients, request("74177", diagnoses=("R10.31", "K35.20"), facts=[], member="T-COM-0003",
                                     lob=types_pb2.LINE_OF_BUSINESS_COMMERCIAL, state="NY"))
    [ct] = pended.lines
    assert ct.determination.outcome == types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION
    assert list(ct.determination.explanation.missing_facts) == ["pregnancy_possible"]

    order = [v.task.request_id for v in queue(clients)]
    assert order.index(issue.request_id) < order.index(routine.request_id)
    assert order.index(pended.request_id) < order.index(routine.request_id)
    first = queue(clients)[0].task
    assert first.urgency == types_pb2.URGENCY_EXPEDITED
    assert first.urgency_reason
    by_request = {v.task.request_id: v for v in queue(clients)}
    task = by_request[issue.request_id]
    assert (task.task.line_number, task.task.urgency) == (2, types_pb2.URGENCY_EXPEDITED)
    assert task.task.urgency_reason.startswith("its request is expedited: line 1: meets the urgent lumbar spine MRI")
    assert "derived from diagnosis G83.4" in task.task.urgency_reason
    assert "42 CFR 422.570(c)(2)(i)" in task.task.clock.rule
    created = task.task.created_at.ToDatetime(tzinfo=dt.UTC)
    assert task.task.due_at.ToDatetime(tzinfo=dt.UTC) - created <= dt.timedelta(hours=72)
    assert task.history[0].action == "expedited"
    assert task.history[0].actor == "system"
    ct_task = by_request[pended.request_id].task
    assert ct_task.urgency == types_pb2.URGENCY_EXPEDITED
    assert "peritoneal signs: derived from diagnosis K35.20" in ct_task.urgency_reason
    assert by_request[routine.request_id].task.urgency == types_pb2.URGENCY_STANDARD


def test_a_nurse_changes_a_task_s_urgency_with_a_reason_and_an_adjuster_may_not(clients: Clients) -> None:
    view = submit(clients, request("72148", diagnoses=("M54.50",), facts=[fact("symptom_duration_weeks", 3, "weeks")]))
    task = wait_until(lambda: {v.task.request_id: v for v in queue(clients)}.get(view.request_id), 60,
                      what="the routine task in the nurse's queue", until=lambda v: v is not None)
    assert task is not None
    assert task.task.urgency == types_pb2.URGENCY_STANDARD
    with pytest.raises(grpc.RpcError) as caught:
        clients.review.SetTaskUrgency(review_pb2.SetTaskUrgencyRequest(
            task_id=task.task.task_id, urgency=types_pb2.URGENCY_EXPEDITED, reason="x"), metadata=ADJUSTER, timeout=10)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    changed = clients.review.SetTaskUrgency(review_pb2.SetTaskUrgencyRequest(
        task_id=task.task.task_id, urgency=types_pb2.URGENCY_EXPEDITED,
        reason="the member called: new leg weakness"), metadata=NURSE, timeout=10)
    assert changed.task.urgency == types_pb2.URGENCY_EXPEDITED
    assert changed.task.urgency_reason == "set by rn-alvarez: the member called: new leg weakness"
    assert changed.history[-1].action == "urgency_changed"
    assert changed.history[-1].actor == "rn-alvarez"
    assert "clock restarts as expedited" in changed.history[-1].detail
    received = changed.task.created_at.ToDatetime(tzinfo=dt.UTC)
    assert changed.task.due_at.ToDatetime(tzinfo=dt.UTC) - received <= dt.timedelta(hours=72)
    with pytest.raises(grpc.RpcError) as caught:
        clients.review.SetTaskUrgency(review_pb2.SetTaskUrgencyRequest(
            task_id=task.task.task_id, urgency=types_pb2.URGENCY_STANDARD, reason=" "), metadata=NURSE, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_intake_refuses_a_negative_duration_and_a_foreign_unit(clients: Clients) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        clients.intake.SubmitRequest(request("72148", diagnoses=("M54.50",), facts=[
            fact("symptom_duration_weeks", -6, "weeks"), fact("conservative_therapy_weeks", 42, "days")]), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "clinical_facts[0].number_value" in details
    assert "cannot be negative" in details
    assert "clinical_facts[1].unit" in details
    assert "send it in weeks" in details
