"""People's side of review, end to end with the services as processes on PostgreSQL and Kafka:
a request routed to a nurse, pended for information, answered through intake, referred, decided by
a physician; the authorization service receives the physician's determination. Identity is the
caller's bearer token, checked by the server."""

from __future__ import annotations

import uuid

import grpc
import pytest
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.platform import Platform
from tests.e2e.conftest import Clients, usable
from tests.factories import fact, lumbar_mri
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

NURSE = (("authorization", "Bearer dev-only-token-rn-alvarez"),)
PHYSICIAN = (("authorization", "Bearer dev-only-token-md-patel"),)
SUPERVISOR = (("authorization", "Bearer dev-only-token-sup-kim"),)


def submit_referred(clients: Clients) -> str:
    response = clients.intake.SubmitRequest(lumbar_mri(meets=False), timeout=10)
    view = clients.settle(response.request.request_id)
    assert view.status == intake_pb2.REQUEST_STATUS_PENDED
    return str(view.request_id)


def claim(clients: Clients, who: tuple[tuple[str, str], ...], request_id: str) -> review_pb2.TaskView:
    def attempt() -> review_pb2.TaskView | None:
        try:
            view = clients.review.ClaimNextTask(review_pb2.ClaimNextTaskRequest(), metadata=who, timeout=10).task
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise
        if view.task.request_id != request_id:  # another test's task: give it back
            clients.review.ReleaseTask(review_pb2.ReleaseTaskRequest(task_id=view.task.task_id), metadata=who,
                                       timeout=10)
            return None
        return view
    view = wait_until(attempt, 60, what=f"a claimable task for request {request_id}", until=lambda v: v is not None,
                      interval_s=0.2)
    assert view is not None
    return view


def line_of(clients: Clients, request_id: str) -> intake_pb2.LineView:
    return clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request.lines[0]


def test_calls_without_a_valid_token_are_refused(platform: Platform, clients: Clients) -> None:
    with platform.channel("review", anonymous=True) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            review_pb2_grpc.ReviewServiceStub(channel).ClaimNextTask(review_pb2.ClaimNextTaskRequest(), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # The platform's own service token reads the queue, and is no reviewer.
    with pytest.raises(grpc.RpcError) as caught:
        clients.review.ClaimNextTask(review_pb2.ClaimNextTaskRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        clients.review.WhoAmI(review_pb2.WhoAmIRequest(), metadata=(("authorization", "Bearer forged-token-123456"),),
                              timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    me = clients.review.WhoAmI(review_pb2.WhoAmIRequest(), metadata=NURSE, timeout=10)
    assert me.reviewer_id == "rn-alvarez"
    assert me.role == review_pb2.REVIEWER_ROLE_NURSE


def test_nurse_pends_information_answered_through_intake_then_physician_denies(clients: Clients) -> None:
    request_id = submit_referred(clients)
    task = claim(clients, NURSE, request_id)
    task_id = task.task.task_id
    assert any("licensed in" in w or "role: nurse" in w for w in task.why_eligible)

    # A nurse can neither deny nor reduce, whatever the client sends.
    for decision in (review_pb2.DecideTaskRequest(task_id=task_id, deny=review_pb2.DecideTaskRequest.Deny(
                         reason="not necessary", criterion="x")),
                     review_pb2.DecideTaskRequest(task_id=task_id, modify=review_pb2.DecideTaskRequest.Modify(
                         approved_units=1, reason="fewer", criterion="x"))):
        with pytest.raises(grpc.RpcError) as caught:
            clients.review.DecideTask(decision, metadata=NURSE, timeout=10)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "only a physician" in (caught.value.details() or "")

    pended = clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task_id, request_information=review_pb2.DecideTaskRequest.RequestInformation(
            facts=["conservative_therapy_weeks"], note="please send therapy notes")), metadata=NURSE, timeout=10)
    assert pended.task.task.status == "pended_information"
    assert pended.determination.lines[0].action_code == types_pb2.ACTION_CODE_PENDED
    wait_until(lambda: list(line_of(clients, request_id).determination.requested_facts), 60,
               what="intake to show the request for information", until=lambda f: f == ["conservative_therapy_weeks"])

    # The provider answers through intake; review re-runs the criteria and reopens the task.
    clients.intake.SubmitAdditionalInformation(intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key=f"info-{uuid.uuid4()}",
        clinical_facts=[fact("conservative_therapy_weeks", 3, "weeks")]), timeout=10)
    reopened = wait_until(lambda: clients.review.GetTask(review_pb2.GetTaskRequest(task_id=task_id), metadata=NURSE,
                                                         timeout=10), 60,
                          what="the task to reopen", until=lambda v: v.task.status == "open")
    assert "information_received" in [h.action for h in reopened.history]
    observed = [o for c in reopened.determination.explanation.conditions for o in c.observed]
    assert "conservative_therapy_weeks=3 weeks" in observed

    claim(clients, NURSE, request_id)
    clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task_id, refer_to_physician=review_pb2.DecideTaskRequest.ReferToPhysician(
            note="two weeks of symptoms, little therapy")), metadata=NURSE, timeout=10)
    physician_task = claim(clients, PHYSICIAN, request_id)
    assert physician_task.task.required_role == review_pb2.REVIEWER_ROLE_PHYSICIAN
    clients.review.RecordPeerToPeer(review_pb2.RecordPeerToPeerRequest(
        task_id=task_id, kind=review_pb2.RecordPeerToPeerRequest.KIND_OFFERED, provider_contact="requesting office",
        note="offered before deciding"), metadata=PHYSICIAN, timeout=10)
    decided = clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task_id, deny=review_pb2.DecideTaskRequest.Deny(
            reason="An MRI is not needed yet: two weeks of low back pain without warning signs usually improve with "
                   "six weeks of physical therapy and medication.",
            criterion="imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks")),
        metadata=PHYSICIAN, timeout=10)
    line = decided.determination.lines[0]
    assert line.action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED
    assert (line.decided_by.id, line.decided_by.role) == ("md-patel", "physician")
    assert line.decided_by.credential.startswith("MD")
    assert line.criterion == "imaging-mri-lumbar-spine@2026.1: conservative_therapy_six_weeks"
    assert line.explanation.criteria_id == "imaging-mri-lumbar-spine"

    # Intake tells the whole story; the denied line's record (its reference number) is nothing to draw on.
    final = wait_until(lambda: line_of(clients, request_id), 60, what="intake to record the denial",
                       until=lambda ln: ln.authorization.status == types_pb2.AUTHORIZATION_STATUS_DENIED)
    assert final.determination.action_code == types_pb2.ACTION_CODE_NOT_CERTIFIED
    assert final.determination.decided_by.id == "md-patel"
    assert not usable(final.authorization)
    assert final.authorization.units == 0
    actions = [h.action for h in decided.task.history]
    assert actions[:2] == ["claimed", "request_information"]
    assert actions[-2:] == ["peer_to_peer_offered", "deny"]


def test_physician_modification_reaches_the_authorization_service(clients: Clients) -> None:
    request_id = submit_referred(clients)
    task_id = claim(clients, NURSE, request_id).task.task_id
    clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task_id, refer_to_physician=review_pb2.DecideTaskRequest.ReferToPhysician()), metadata=NURSE,
        timeout=10)
    claim(clients, PHYSICIAN, request_id)
    clients.review.DecideTask(review_pb2.DecideTaskRequest(
        task_id=task_id, modify=review_pb2.DecideTaskRequest.Modify(
            approved_units=1, reason="approved as MRI without contrast",
            criterion="imaging-mri-lumbar-spine@2026.1: symptoms_six_weeks")), metadata=PHYSICIAN, timeout=10)
    line = wait_until(lambda: line_of(clients, request_id), 60, what="the authorization for the modified line",
                      until=lambda ln: ln.authorization.status == types_pb2.AUTHORIZATION_STATUS_MODIFIED)
    assert line.determination.action_code == types_pb2.ACTION_CODE_MODIFIED
    assert line.authorization.units == 1
    assert line.authorization.determination_id
    view = clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request
    assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE


def test_supervisor_reassigns_and_sees_the_directory(clients: Clients) -> None:
    request_id = submit_referred(clients)
    task_id = claim(clients, NURSE, request_id).task.task_id
    with pytest.raises(grpc.RpcError) as caught:
        clients.review.ReassignTask(review_pb2.ReassignTaskRequest(task_id=task_id, reviewer_id="rn-alvarez"),
                                    metadata=NURSE, timeout=10)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:  # a physician may not take a nurse-level task
        clients.review.ReassignTask(review_pb2.ReassignTaskRequest(task_id=task_id, reviewer_id="md-patel"),
                                    metadata=SUPERVISOR, timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "needs a nurse" in (caught.value.details() or "")
    moved = clients.review.ReassignTask(review_pb2.ReassignTaskRequest(
        task_id=task_id, reviewer_id="rn-okafor", note="covering for Maria"), metadata=SUPERVISOR, timeout=10)
    assert moved.task.assigned_to == "rn-okafor"
    assert moved.history[-1].action == "reassigned"
    directory = clients.review.ListReviewers(review_pb2.ListReviewersRequest(), metadata=SUPERVISOR, timeout=10)
    assert {r.reviewer_id for r in directory.reviewers} >= {"rn-alvarez", "md-patel", "sup-kim"}
    okafor = (("authorization", "Bearer dev-only-token-rn-okafor"),)
    mine = clients.review.ListMyTasks(review_pb2.ListMyTasksRequest(), metadata=okafor, timeout=10)
    assert [v.task.task_id for v in mine.held] == [task_id]
    assert mine.held[0].why_eligible
