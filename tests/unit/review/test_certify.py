"""Approved units and dates of a certified line, with and without a criteria approval cap."""

from __future__ import annotations

from ur.common.v1 import types_pb2

from services.review.domain.criteria import Approval, LineEvaluation, Outcome
from services.review.service_layer.determinations import certify


def _line(units: int) -> types_pb2.ServiceLine:
    return types_pb2.ServiceLine(line_number=1, procedure_code="99222", units=units,
                                 start_date=types_pb2.Date(year=2026, month=12, day=30),
                                 end_date=types_pb2.Date(year=2027, month=1, day=5))


def _evaluation(approval: Approval | None) -> LineEvaluation:
    return LineEvaluation(Outcome.MEETS_CRITERIA, "inpatient-stay", "1", "h", (), (), "meets", approval)


def test_without_a_cap_the_request_is_certified_as_asked() -> None:
    out = types_pb2.LineDetermination()
    certify(out, _line(7), _evaluation(None))
    assert out.approved_units == 7
    assert out.approved_end.day == 5
    assert not out.HasField("next_review_date")


def test_a_day_cap_certifies_a_period_and_names_the_next_review() -> None:
    out = types_pb2.LineDetermination()
    certify(out, _line(7), _evaluation(Approval(3, "days")))
    assert out.approved_units == 3
    assert (out.approved_start.year, out.approved_start.month, out.approved_start.day) == (2026, 12, 30)
    assert (out.approved_end.year, out.approved_end.month, out.approved_end.day) == (2027, 1, 1)
    assert (out.next_review_date.year, out.next_review_date.month, out.next_review_date.day) == (2027, 1, 2)
    assert "next concurrent review on 2027-01-02" in out.reasons[-1]


def test_a_request_within_the_cap_is_untouched() -> None:
    out = types_pb2.LineDetermination()
    certify(out, _line(3), _evaluation(Approval(3, "days")))
    assert out.approved_units == 3
    assert out.approved_end.day == 5
    assert not out.reasons


def test_a_visit_cap_keeps_the_dates() -> None:
    out = types_pb2.LineDetermination()
    certify(out, _line(12), _evaluation(Approval(6, "visits")))
    assert out.approved_units == 6
    assert out.approved_end.day == 5
    assert not out.HasField("next_review_date")
    assert "certified 6 of 12 requested visits" in out.reasons[-1]
