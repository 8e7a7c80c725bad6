"""What fuzzing the three services found beyond intake's validation (tests/integration/test_fuzz.py),
each pinned here without a database: the limits every request keeps, and the shapes review and
authorization now check before a value reaches a query or a column."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.authorization.domain import numbers
from services.authorization.domain.model import member_query_problems
from services.common.errors import ValidationFailed
from services.common.request_checks import MAX_ITEMS, MAX_REPORTED, MAX_STRING, request_problems
from services.review.domain.workflow import BadDecision, Decision, Reviewer, Role, check_decision
from services.review.entrypoints.grpc_api import decision_from_proto, timestamp_from_proto
from services.review.service_layer.directory import validate_reviewer
from tests.factories import lumbar_mri

# -- every request -------------------------------------------------------------------------------------


def test_a_valid_request_keeps_the_limits() -> None:
    assert request_problems(lumbar_mri()) == []


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "\x07", "\x1b[31m", "\x7f", "\x85"])
def test_control_characters_are_refused_wherever_they_are(bad: str) -> None:
    message = lumbar_mri()
    message.service_lines[0].modifiers.append(bad)
    message.requesting_provider.name = f"Valley{bad}"
    assert [v.field for v in request_problems(message)] == ["requesting_provider.name",
                                                             "service_lines[0].modifiers[0]"]


def test_tab_and_newline_are_text() -> None:
    message = intake_pb2.SubmitAdditionalInformationRequest(note="PT notes:\n\t6 weeks\r\n")
    assert request_problems(message) == []


def test_sizes_are_bounded() -> None:
    message = lumbar_mri()
    message.member_id = "x" * (MAX_STRING + 1)
    message.diagnoses.extend([types_pb2.Diagnosis(code="M54.16")] * MAX_ITEMS)
    found = {v.field: v.description for v in request_problems(message)}
    assert found == {"member_id": f"at most {MAX_STRING} characters ({MAX_STRING + 1} sent)",
                     "diagnoses": f"at most {MAX_ITEMS} items ({MAX_ITEMS + 1} sent)"}


def test_a_flood_of_problems_is_cut_short() -> None:
    message = intake_pb2.SubmitRequestRequest(diagnoses=[types_pb2.Diagnosis(code="\x00")] * MAX_ITEMS)
    assert len(request_problems(message)) == MAX_REPORTED


# -- authorization ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("member_id", "procedure_code", "limit", "fields"), [
    ("T-MA-0001", "", 0, []),
    ("T-MA-0001", "72148", 1000, []),
    ("T-MA-0001", "E0601", 10, []),
    ("", "", 0, ["member_id"]),
    ("T-MA-0001\n", "", 0, ["member_id"]),
    ("T-MA-\uff10001", "", 0, ["member_id"]),
    ("x" * 41, "", 0, ["member_id"]),
    ("T-MA-0001", "27\U0001d7ce47", 0, ["procedure_code"]),
    ("T-MA-0001", "72148\n", 0, ["procedure_code"]),
    ("T-MA-0001", "", -1, ["limit"]),
    ("T-MA-0001", "", 1001, ["limit"]),
])
def test_member_queries_have_the_shapes_intake_accepts(member_id: str, procedure_code: str, limit: int,
                                                       fields: list[str]) -> None:
    assert [v.field for v in member_query_problems(member_id, procedure_code, limit)] == fields


@pytest.mark.parametrize("number", ["UR\uff12\uff16-8K3F-Q9ZD", "UR26-8K3F-Q9ZD\n", "UR٢6-8K3F-Q9ZD"])
def test_authorization_numbers_are_ascii(number: str) -> None:
    assert numbers.is_well_formed("UR26-8K3F-Q9ZD")
    assert not numbers.is_well_formed(number)


# -- review ----------------------------------------------------------------------------------------------

NURSE = Reviewer("rn-1", "Reviewer One", Role.NURSE, frozenset({"general"}), frozenset({"TX"}),
                 frozenset({"commercial"}), 5, "RN")
DOCTOR = dataclasses.replace(NURSE, reviewer_id="md-1", role=Role.PHYSICIAN, credential="MD")


@pytest.mark.parametrize(("changes", "field"), [
    ({"reviewer_id": "rn 1"}, "reviewer.reviewer_id"),
    ({"reviewer_id": "rn-1\n"}, "reviewer.reviewer_id"),
    ({"reviewer_id": "rn-\u0661"}, "reviewer.reviewer_id"),
    ({"reviewer_id": "r" * 65}, "reviewer.reviewer_id"),
    ({"name": "n" * 201}, "reviewer.name"),
    ({"credential": "c" * 201}, "reviewer.credential"),
    ({"licence_states": frozenset({"ÀÉ"})}, "reviewer.licence_states"),
])
def test_directory_entries_fit_their_columns(changes: dict[str, object], field: str) -> None:
    validate_reviewer(NURSE)
    with pytest.raises(ValidationFailed) as caught:
        validate_reviewer(dataclasses.replace(NURSE, **changes))  # type: ignore[arg-type]
    assert [v.field for v in caught.value.violations] == [field]


@pytest.mark.parametrize("units", [0, 10_000, 2**31 - 1, -(2**31)])
def test_decided_units_are_bounded(units: int) -> None:
    check_decision(DOCTOR, Decision.MODIFY, reason="r", criterion="c", approved_units=9999, requested_units=10)
    with pytest.raises(BadDecision, match="between 1 and 9999"):
        check_decision(DOCTOR, Decision.MODIFY, reason="r", criterion="c", approved_units=units, requested_units=10)


@pytest.mark.parametrize("facts", [["conservative_therapy_weeks\x00"], ["Weeks"], ["w" * 65],
                                   [f"fact_{i}" for i in range(51)]])
def test_requested_facts_are_fact_names(facts: list[str]) -> None:
    with pytest.raises(BadDecision):
        check_decision(NURSE, Decision.REQUEST_INFORMATION, facts=facts)


@pytest.mark.parametrize("year", [1, 1899, 2200, 9999])
def test_decision_dates_are_bounded(year: int) -> None:
    partial = review_pb2.DecideTaskRequest.ApprovePartial(
        approved_units=1, approved_start=types_pb2.Date(year=year, month=12, day=31), reason="r", criterion="c")
    with pytest.raises(ValidationFailed) as caught:
        decision_from_proto(review_pb2.DecideTaskRequest(task_id="t", approve_partial=partial))
    assert [v.field for v in caught.value.violations] == ["approve_partial.approved_start"]


@pytest.mark.parametrize(("seconds", "nanos"), [(501, 2**31 - 1), (0, -1), (253402300800, 0),
                                                (-62135596801, 0), (-2208988801, 0)])
def test_peer_to_peer_times_are_valid_timestamps(seconds: int, nanos: int) -> None:
    assert timestamp_from_proto(Timestamp(seconds=1_800_000_000), "at") == dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)
    with pytest.raises(ValidationFailed):
        timestamp_from_proto(Timestamp(seconds=seconds, nanos=nanos), "at")
