"""What intake records in its audit log (on fakes): submissions, the events it applies and every view
of a request, with the actor and the event each came from, and no patient data."""

from __future__ import annotations

from services.common.audit import actor as actors
from services.common.audit.chain import member_ref
from services.intake.domain.model import RequestStatus
from tests.factories import lumbar_mri
from tests.fakes.common import FAKE_AUDIT_KEY
from tests.unit.intake.test_handlers import (
    CERTIFIED,
    CLINIC,
    TOPICS,
    Intake,
    authorizations,
    determination,
    incoming,
    intake,
)

__all__ = ["intake"]  # the fixture


def test_a_submission_is_recorded_with_the_event_that_announces_it(intake: Intake) -> None:
    with actors.acting_as(actors.caller(CLINIC)):
        record = intake.submit(lumbar_mri()).record
    (entry,) = intake.store.audit
    (announced,) = [e for e in intake.store.outbox if e.topic == TOPICS.request_submitted]
    assert (entry.action, entry.request_id, entry.actor) == ("request.submitted", record.request_id,
                                                             f"submitter:{CLINIC}")
    assert entry.event_id == announced.event_id
    assert entry.refs == {"status": "in_review", "lines": 1, "member_ref": member_ref(FAKE_AUDIT_KEY, "T-MA-0001")}


def test_an_ineligible_submission_is_recorded_without_an_event(intake: Intake) -> None:
    record = intake.submit(lumbar_mri(member_id="T-UNKNOWN-9")).record
    assert record.status is RequestStatus.INELIGIBLE
    (entry,) = intake.store.audit
    assert (entry.action, entry.event_id, entry.refs["status"]) == ("request.submitted", "", "ineligible")


def test_every_read_of_a_request_is_a_view_in_the_log(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri()).record.request_id
    with actors.acting_as(actors.caller("workbench")):
        intake.handlers.get_story(request_id, submitter=None)  # the workbench reads every submitter's
        intake.handlers.of_member("T-MA-0001", 10, submitter=None)
        intake.handlers.get_story(request_id, submitter=CLINIC)  # a submitter reads its own
        intake.handlers.of_member("T-NOBODY-1", 10, submitter=None)
    views = [(e.action, e.request_id, e.actor) for e in intake.store.audit[1:]]
    assert views == [("request.viewed", request_id, "caller:workbench"),
                     ("request.viewed", request_id, "caller:workbench"),
                     ("request.viewed", request_id, f"submitter:{CLINIC}"),
                     ("request.listed", "", "caller:workbench")]
    assert intake.store.audit[-1].refs == {"count": 0, "member_ref": member_ref(FAKE_AUDIT_KEY, "T-NOBODY-1")}


def test_applied_events_are_recorded_with_the_event_they_came_from(intake: Intake) -> None:
    request_id = intake.submit(lumbar_mri()).record.request_id
    made, issued = incoming(determination(request_id, CERTIFIED)), incoming(authorizations(request_id, 1))
    intake.handlers.handle_batch([made, issued])
    applied = [(e.action, e.event_id, e.actor) for e in intake.store.audit[1:]]
    assert applied == [("determination.recorded", made.event_id, "service:intake"),
                       ("authorizations.recorded", issued.event_id, "service:intake"),
                       ("request.status_changed", issued.event_id, "service:intake")]
    assert intake.store.audit[2].refs["authorization_number"] == "UR27-AAAA-BBB1"


def test_no_entry_holds_the_member_id_or_what_the_request_says(intake: Intake) -> None:
    message = lumbar_mri()
    request_id = intake.submit(message).record.request_id
    intake.handlers.get_story(request_id, submitter=None)
    intake.handlers.handle_batch([incoming(determination(request_id, CERTIFIED))])
    logged = repr(intake.store.audit)
    for secret in ("T-MA-0001", *[d.code for d in message.diagnoses], *[f.name for f in message.clinical_facts]):
        assert secret not in logged
