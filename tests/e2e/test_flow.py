"""Acceptance: one request travels intake → review → authorization over real
gRPC, Kafka and PostgreSQL, with the services as separate processes."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import create_engine, func, select, text
from ur.authorization.v1 import authorization_pb2
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.cli.platform import Platform
from services.intake.adapters import tables as intake_tables
from tests.e2e.conftest import Clients, usable
from tests.factories import lumbar_mri
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


def test_approved_request_gets_its_authorization_within_the_wait(clients: Clients) -> None:
    request = lumbar_mri(meets=True)
    request.wait_ms = 15000
    view = clients.intake.SubmitRequest(request, timeout=30).request
    assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE, view
    line = view.lines[0]
    det = line.determination
    assert det.action_code == types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL
    assert det.outcome == types_pb2.LINE_OUTCOME_MEETS_CRITERIA
    assert det.explanation.criteria_id == "imaging-mri-lumbar-spine"
    assert det.explanation.criteria_version
    assert det.explanation.criteria_hash
    assert any(c.status == types_pb2.CONDITION_STATUS_MET for c in det.explanation.conditions)
    assert view.decided_by.id == "system:rules-engine"
    assert view.clock.regime == "cms-0057-f"
    assert "7 calendar days" in view.clock.rule
    number = line.authorization.authorization_number
    assert number.startswith("UR")
    fetched = clients.authorization.GetAuthorization(
        authorization_pb2.GetAuthorizationRequest(authorization_number=number.lower()), timeout=10).authorization
    assert fetched.request_id == view.request_id
    assert fetched.units == 1
    assert fetched.procedure_code == "72148"
    listed = clients.authorization.ListMemberAuthorizations(
        authorization_pb2.ListMemberAuthorizationsRequest(member_id="T-MA-0001"), timeout=10).authorizations
    assert number in {a.authorization_number for a in listed}


def test_overlapping_authorization_is_flagged_and_routed_to_a_nurse(clients: Clients) -> None:
    import datetime as dt

    first = lumbar_mri(start=dt.date(2029, 3, 1))
    first.wait_ms = 15000
    number = clients.intake.SubmitRequest(first, timeout=30).request.lines[0].authorization.authorization_number
    assert number
    again = lumbar_mri(start=dt.date(2029, 3, 10))  # same member and code, overlapping dates
    view = clients.settle(clients.intake.SubmitRequest(again, timeout=30).request.request_id)
    det = view.lines[0].determination
    assert view.status == intake_pb2.REQUEST_STATUS_PENDED
    assert det.queued_for_review
    assert any(number in flag for flag in det.explanation.flags)


def test_request_not_meeting_criteria_is_queued_for_a_nurse(clients: Clients) -> None:
    view = clients.intake.SubmitRequest(lumbar_mri(meets=False, member_id="T-COM-0003", state="NY",
                                                   lob=types_pb2.LINE_OF_BUSINESS_COMMERCIAL),
                                        timeout=30).request
    view = clients.settle(view.request_id)
    assert view.status == intake_pb2.REQUEST_STATUS_PENDED
    det = view.lines[0].determination
    assert det.action_code == types_pb2.ACTION_CODE_PENDED
    assert det.queued_for_review
    assert not usable(view.lines[0].authorization)
    assert any(c.status == types_pb2.CONDITION_STATUS_UNMET for c in det.explanation.conditions)
    assert view.clock.regime == "erisa-2560.503-1"
    queue = clients.review.ListReviewQueue(review_pb2.ListReviewQueueRequest(page_size=500), timeout=10)
    assert view.request_id in {t.request_id for t in queue.tasks}
    determination = clients.review.GetDetermination(
        review_pb2.GetDeterminationRequest(request_id=view.request_id), timeout=10).determination
    assert determination.lines[0].reasons


def test_missing_facts_are_pended_naming_them(clients: Clients) -> None:
    view = clients.intake.SubmitRequest(lumbar_mri(missing_facts=True), timeout=30).request
    view = clients.settle(view.request_id)
    det = view.lines[0].determination
    assert det.outcome == types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION
    assert "symptom_duration_weeks" in det.explanation.missing_facts


def test_unknown_service_is_referred(clients: Clients) -> None:
    view = clients.intake.SubmitRequest(lumbar_mri(procedure_code="28296"), timeout=30).request
    det = clients.settle(view.request_id).lines[0].determination
    assert det.outcome == types_pb2.LINE_OUTCOME_REFER_TO_NURSE
    assert "no criteria set covers 28296" in det.reasons[0]


def test_ineligible_member_is_answered_and_recorded(clients: Clients) -> None:
    view = clients.intake.SubmitRequest(lumbar_mri(member_id="T-TERM-0005"), timeout=30).request
    assert view.status == intake_pb2.REQUEST_STATUS_INELIGIBLE
    assert "not active" in view.status_reason
    again = clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=view.request_id)).request
    assert again.status == intake_pb2.REQUEST_STATUS_INELIGIBLE


def _violations(exc: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)
    assert status is not None
    found = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def test_invalid_request_gets_field_errors_and_nothing_is_stored(clients: Clients, platform: Platform) -> None:
    request = lumbar_mri()
    request.requesting_provider.npi = "1234567890"  # wrong check digit
    request.service_lines[0].procedure_code = "7214"
    request.service_lines[0].units = 0
    request.diagnoses[0].code = "54.5"
    request.service_lines[0].end_date.year = request.service_lines[0].start_date.year - 1  # before the start
    with pytest.raises(grpc.RpcError) as caught:
        clients.intake.SubmitRequest(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(caught.value)
    assert set(violations) >= {"requesting_provider.npi", "service_lines[0].procedure_code",
                               "service_lines[0].units", "diagnoses[0].code", "service_lines[0].end_date"}
    assert "Luhn" in violations["requesting_provider.npi"]
    engine = create_engine(platform.database_urls["intake"])
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(intake_tables.requests)
                              .where(intake_tables.requests.c.idempotency_key == request.idempotency_key)).scalar()
        outbox = conn.execute(text("SELECT count(*) FROM outbox WHERE payload IS NULL")).scalar()
    engine.dispose()
    assert stored == 0
    assert outbox == 0


def test_repeated_idempotency_key_is_one_request(clients: Clients, platform: Platform) -> None:
    key = f"idem-{uuid.uuid4()}"
    request = lumbar_mri(key=key)
    results: list[intake_pb2.SubmitRequestResponse] = []
    errors: list[Exception] = []

    def submit() -> None:
        try:
            results.append(clients.intake.SubmitRequest(request, timeout=30))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.request.request_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    engine = create_engine(platform.database_urls["intake"])
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(intake_tables.requests)
                             .where(intake_tables.requests.c.idempotency_key == key)).scalar()
    engine.dispose()
    assert count == 1
    changed = lumbar_mri(key=key, meets=False)
    with pytest.raises(grpc.RpcError) as caught:
        clients.intake.SubmitRequest(changed, timeout=10)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "different payload" in (caught.value.details() or "")


def test_poison_messages_go_to_the_dead_letter_topic_while_the_rest_flows(clients: Clients,
                                                                           platform: Platform) -> None:
    topics = f"{platform.topic_prefix}.intake.request-submitted.v1"
    producer = KafkaProducer(bootstrap_servers=platform.kafka_bootstrap)
    marker = uuid.uuid4().hex
    producer.send(topics, key=b"poison-1", value=b"\xff\x00 not protobuf",
                  headers=[("event-type", b"ur.events.v1.RequestSubmitted"), ("event-id", marker.encode())])
    producer.send(topics, key=b"poison-2", value=b"{}", headers=[("event-id", (marker[:30] + "x").encode())])
    producer.flush()
    producer.close()
    view = clients.intake.SubmitRequest(lumbar_mri(meets=True), timeout=30).request
    assert clients.settle(view.request_id).status == intake_pb2.REQUEST_STATUS_COMPLETE
    consumer = KafkaConsumer(f"{platform.topic_prefix}.review.dead-letter.v1",
                             bootstrap_servers=platform.kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000, group_id=None)
    reasons: dict[bytes, str] = {}

    def parked() -> dict[bytes, str]:
        for record in consumer:  # until consumer_timeout_ms passes without a record
            reasons[record.key] = dict(record.headers)["dlq-reason"].decode()
        return reasons

    wait_until(parked, 30, what="both poison records on the review dead-letter topic", until=lambda r: len(r) >= 2,
               interval_s=0)
    consumer.close()
    assert "not a valid ur.events.v1.RequestSubmitted" in reasons[b"poison-1"]
    assert "missing 'event-type' header" in reasons[b"poison-2"]


def test_health_reports_serving(platform: Platform) -> None:
    for service in ("intake", "review", "authorization"):
        assert platform.is_serving(service)


def test_the_audit_trail_tells_one_requests_story_across_the_services_and_every_log_verifies(
        clients: Clients, platform: Platform, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from services.cli import urctl

    request = lumbar_mri(meets=True)
    request.wait_ms = 15000
    view = clients.intake.SubmitRequest(request, timeout=30).request
    assert view.status == intake_pb2.REQUEST_STATUS_COMPLETE, view
    number = view.lines[0].authorization.authorization_number
    clients.intake.GetRequest(intake_pb2.GetRequestRequest(request_id=view.request_id), timeout=10)
    clients.authorization.GetAuthorization(authorization_pb2.GetAuthorizationRequest(authorization_number=number),
                                           timeout=10)
    databases = [f"--{s}-database-url={platform.database_urls[s]}" for s in ("intake", "review", "authorization")]

    def story() -> list[tuple[str, str, str]]:
        assert urctl.main(["audit", "trail", view.request_id, "--json", *databases]) == 0
        return [(e["service"], e["action"], e["actor"]) for e in json.loads(capsys.readouterr().out)]

    # Read as the services committed it (each view is recorded before its answer leaves).
    trail = wait_until(story, 30, what="the authorization's view in the trail",
                       until=lambda t: any(a == "authorization.viewed" for _, a, _ in t))
    # The calls are the callers' (access control admitted them), what follows from them the services'.
    assert trail[0][:2] == ("intake", "request.submitted")
    assert trail[0][2].startswith("submitter:")
    assert any(a == "request.viewed" and who == trail[0][2] for _, a, who in trail)  # the submitter's read
    assert any(a == "authorization.viewed" and who.startswith("caller:") for _, a, who in trail)
    for step in [("review", "request.received", "service:review"), ("review", "line.decided", "service:review"),
                 ("review", "notice.issued", "service:review"),
                 ("authorization", "authorization.recorded", "service:authorization"),
                 ("intake", "determination.recorded", "service:intake"),
                 ("intake", "authorizations.recorded", "service:intake")]:
        assert step in trail
    order = [action for _, action, _ in trail]
    assert order.index("request.submitted") < order.index("request.received") < order.index("line.decided") \
        < order.index("authorization.recorded")
    assert platform.audit_key_file is not None
    monkeypatch.setenv("UR_AUDIT_KEY_FILE", str(platform.audit_key_file))
    assert urctl.main(["audit", "verify", "--json", *databases]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert [(v["service"], v["ok"]) for v in verified] == [("intake", True), ("review", True),
                                                           ("authorization", True)]
