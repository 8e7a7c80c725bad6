"""Acceptance (issue 10, identity): the unauthenticated approval path is closed.

The issue walked it: with no credentials at all, ``ListReviewQueue`` listed the open task's request
id, ``GetRequest`` returned its member, and ``SubmitAdditionalInformation`` took clinical facts from
anyone, after which review re-ran the criteria and approved. Here the same walk is refused at every
step (and so is the same walk by another submitter), nothing is recorded or approved; then the
request's own submitter sends the same facts and the request is approved, which shows the refused
facts would have approved it had they got through."""

from __future__ import annotations

import uuid

import grpc
import pytest
from ur.authorization.v1 import authorization_pb2, authorization_pb2_grpc
from ur.intake.v1 import intake_pb2, intake_pb2_grpc
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.cli.platform import Platform
from tests.e2e.conftest import Clients
from tests.factories import fact, lumbar_mri
from tests.identity import CLEARINGHOUSE, NURSE, as_
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

#: Facts that meet the lumbar MRI criteria (eight weeks of symptoms, seven of conservative therapy).
MEETING = [fact("symptom_duration_weeks", 8, "weeks"), fact("conservative_therapy_weeks", 7, "weeks")]


def refused(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_without_credentials_a_pended_lumbar_mri_cannot_be_approved(platform: Platform, clients: Clients) -> None:
    pended = clients.settle(clients.intake.SubmitRequest(lumbar_mri(meets=False), timeout=30).request.request_id)
    assert pended.status == intake_pb2.REQUEST_STATUS_PENDED
    request_id = pended.request_id
    information = intake_pb2.SubmitAdditionalInformationRequest(
        request_id=request_id, idempotency_key=f"walk-{uuid.uuid4()}", clinical_facts=MEETING)

    with platform.channel("review", anonymous=True) as review, platform.channel("intake", anonymous=True) as intake:
        queue = refused(lambda: review_pb2_grpc.ReviewServiceStub(review).ListReviewQueue(
            review_pb2.ListReviewQueueRequest(page_size=50), timeout=10))
        assert queue.code() is grpc.StatusCode.UNAUTHENTICATED
        assert request_id not in (queue.details() or "")
        anonymous = intake_pb2_grpc.IntakeServiceStub(intake)
        read = refused(lambda: anonymous.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10))
        assert read.code() is grpc.StatusCode.UNAUTHENTICATED
        assert pended.member_id not in (read.details() or "")
        added = refused(lambda: anonymous.SubmitAdditionalInformation(information, timeout=10))
        assert added.code() is grpc.StatusCode.UNAUTHENTICATED

        # The same walk by another submitter: its own credentials, not its request.
        read = refused(lambda: anonymous.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id),
                                                    metadata=as_(CLEARINGHOUSE), timeout=10))
        assert read.code() is grpc.StatusCode.NOT_FOUND
        added = refused(lambda: anonymous.SubmitAdditionalInformation(information, metadata=as_(CLEARINGHOUSE),
                                                                      timeout=10))
        assert added.code() is grpc.StatusCode.NOT_FOUND
        # A reviewer's token is no submitter's.
        added = refused(lambda: anonymous.SubmitAdditionalInformation(information, metadata=as_(NURSE), timeout=10))
        assert added.code() is grpc.StatusCode.PERMISSION_DENIED

    # Nothing was recorded: the request still waits for a person, with no information and no authorization.
    still = clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id), timeout=10).request
    assert still.status == intake_pb2.REQUEST_STATUS_PENDED
    assert list(still.additional_information) == []
    determination = clients.review.GetDetermination(review_pb2.GetDeterminationRequest(request_id=request_id),
                                                    timeout=10).determination
    assert determination.lines[0].queued_for_review

    # The submitter sends the same facts: approved, with an authorization. So the refused calls
    # would have approved it, and the one piece of information on file is the submitter's.
    clients.intake.SubmitAdditionalInformation(information, timeout=10)
    approved = wait_until(lambda: clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=request_id),
                                                            timeout=10).request, 90,
                          what="the submitter's information to approve the request",
                          until=lambda v: v.status == intake_pb2.REQUEST_STATUS_COMPLETE)
    assert len(approved.additional_information) == 1
    number = approved.lines[0].authorization.authorization_number
    assert number
    with platform.channel("authorization", anonymous=True) as channel:
        lookup = refused(lambda: authorization_pb2_grpc.AuthorizationServiceStub(channel).GetAuthorization(
            authorization_pb2.GetAuthorizationRequest(authorization_number=number), timeout=10))
        assert lookup.code() is grpc.StatusCode.UNAUTHENTICATED
        listing = refused(lambda: authorization_pb2_grpc.AuthorizationServiceStub(channel).ListMemberAuthorizations(
            authorization_pb2.ListMemberAuthorizationsRequest(member_id=approved.member_id), timeout=10))
        assert listing.code() is grpc.StatusCode.UNAUTHENTICATED
