"""The CMS-0057-F figures (services/review/domain/public_report.py), every one checked against a
fixture computed by hand: approvals, partial approvals, denials, an appeal overturned and one
upheld, extensions (standard and expedited), requests pending, withdrawn, needing no prior
authorization, of another line of business, decided the year before, and received the year before
but decided in the year."""

from __future__ import annotations

import datetime as dt

import pytest

from services.review.domain.public_report import (
    Outcome,
    ReportLine,
    ReportRequest,
    RequiredService,
    contract_of,
    decided_in,
    figures,
    services_requiring_authorization,
)

T = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
A1, A2, A3, A4, A6, C, NA = ("certified_in_total", "certified_partial", "not_certified", "pended", "modified",
                             "cancelled", "no_action_required")


def line(action: str, after_h: float | None, number: int = 1, appeal: str = "", code: str = "72148",
         start: dt.datetime = T) -> ReportLine:
    return ReportLine(number, action, None if after_h is None else start + after_h * H, appeal, code)


def request(rid: str, *lines: ReportLine, urgency: str = "standard", lob: str = "medicare_advantage",
            plan: str = "H4827-002", extended: bool = False, received: dt.datetime = T) -> ReportRequest:
    return ReportRequest(rid, lob, plan, urgency, received, extended, lines)


DEC_30 = dt.datetime(2025, 12, 30, 8, 0, tzinfo=dt.UTC)
DEC_1 = dt.datetime(2025, 12, 1, 8, 0, tzinfo=dt.UTC)

FIXTURE = [
    # standard, counted in 2026
    request("S1", line(A1, 10)),                                                  # approved, 10 h
    request("S2", line(A1, 20), line(A1, 30, number=2)),                          # approved, 30 h (last line)
    request("S3", line(A3, 48, appeal="overturned")),                             # denied, overturned: 48 h
    request("S4", line(A1, 24), line(A3, 72, number=2)),                          # in part (mixed), 72 h
    request("S5", line(A6, 24)),                                                  # in part (modified), 24 h
    request("S6", line(A1, 200), extended=True),                                  # extended then approved
    request("S7", line(A3, 300, appeal="upheld"), extended=True),                 # extended then denied
    request("S12", line(NA, 0, code="99213"), line(A1, 5, number=2), lob="medicaid", plan="MCD-NY-06"),  # 5 h
    request("S14", line(A1, 72, start=DEC_30), received=DEC_30),                  # received 2025, decided 2026
    # expedited, counted in 2026 (another contract)
    request("E1", line(A1, 20), urgency="expedited", plan="H9999-001"),
    request("E2", line(A3, 60), urgency="expedited", plan="H9999-001"),
    request("E3", line(A2, 30), urgency="expedited", plan="H9999-001"),
    request("E4", line(A1, 10), urgency="expedited", plan="H9999-001", extended=True),
    # not counted
    request("S8", line(A1, 5), line(A4, None, number=2)),                        # pending
    request("S9", line(C, 2)),                                                    # withdrawn
    request("S10", line(NA, 0, code="99213")),                                    # no prior authorization needed
    request("S11", line(A1, 3), lob="commercial", plan="ACME-PPO"),               # not an impacted payer
    request("S13", line(A3, 96, start=DEC_1), received=DEC_1),                    # decided in 2025
]


def test_every_figure_matches_the_hand_computed_fixture() -> None:
    f = figures(FIXTURE, 2026)
    s, e = f.standard, f.expedited
    # Standard: S1 S2 S3 S4 S5 S6 S7 S12 S14 decided.
    assert (s.decided, s.approved, s.approved_in_part, s.denied, s.approved_after_appeal) == (9, 5, 2, 2, 1)
    assert s.approved_pct == pytest.approx(100 * 5 / 9)
    assert s.approved_in_part_pct == pytest.approx(100 * 2 / 9)
    assert s.denied_pct == pytest.approx(100 * 2 / 9)
    assert s.approved_after_appeal_pct == pytest.approx(100 * 1 / 9)
    # Hours: 10, 30, 48, 72, 24, 200, 300, 5, 72.
    assert s.mean_hours == pytest.approx(761 / 9)
    assert s.median_hours == pytest.approx(48.0)
    # Expedited: E1 approved 20 h, E2 denied 60 h, E3 in part 30 h, E4 approved 10 h.
    assert (e.decided, e.approved, e.approved_in_part, e.denied) == (4, 2, 1, 1)
    assert (e.approved_pct, e.approved_in_part_pct, e.denied_pct) == (50.0, 25.0, 25.0)
    assert (e.mean_hours, e.median_hours) == (30.0, 25.0)
    # Extended: S6 (approved), S7 (denied), E4 (approved), of 13 decided.
    assert (f.decided, f.extended, f.extended_then_approved) == (13, 3, 2)
    assert f.extended_then_approved_pct == pytest.approx(100 * 2 / 13)
    assert (f.pending, f.withdrawn) == (1, 1)


def test_a_contract_narrows_every_figure() -> None:
    f = figures(FIXTURE, 2026, "H4827")
    assert (f.standard.decided, f.standard.approved, f.standard.approved_in_part, f.standard.denied) == (8, 4, 2, 2)
    assert f.expedited.decided == 0
    assert f.expedited.approved_pct is None  # no request: no share
    assert f.expedited.mean_hours is None
    assert (f.extended, f.extended_then_approved) == (2, 1)


def test_the_year_before_is_its_own() -> None:
    f = figures(FIXTURE, 2025)
    assert (f.standard.decided, f.standard.denied, f.standard.median_hours) == (1, 1, 96.0)  # S13 only


@pytest.mark.parametrize(("req", "outcome"), [
    (request("a", line(A1, 1), line(NA, 0, number=2)), Outcome.APPROVED),
    (request("b", line(A3, 1), line(A3, 2, number=2)), Outcome.DENIED),
    (request("c", line(A1, 1), line(C, 2, number=2)), Outcome.APPROVED),  # a cancelled line is not a decision
    (request("d", line(A2, 1)), Outcome.APPROVED_IN_PART),
    (request("e", line(A1, 1), line(A4, None, number=2)), Outcome.PENDING),
    (request("f", line(C, 1), line(C, 1, number=2)), Outcome.WITHDRAWN),
    (request("g", line(NA, 0)), Outcome.NOT_REQUIRED),
])
def test_a_requests_outcome_follows_its_lines_first_decisions(req: ReportRequest, outcome: Outcome) -> None:
    assert req.outcome is outcome


def test_a_requests_decision_time_is_its_last_lines() -> None:
    req = request("a", line(A1, 3), line(A3, 9, number=2))
    assert req.decided_at == T + 9 * H
    assert req.hours_to_decision == 9.0
    assert request("p", line(A4, None)).decided_at is None


def test_contracts_of_plan_ids() -> None:
    assert contract_of("H4827-002") == "H4827"
    assert contract_of("R1234-001") == "R1234"
    assert contract_of("MCD-NY-06") == "MCD-NY-06"
    assert contract_of("H48-002") == "H48-002"


def test_decided_in_takes_the_years_requests_in_scope() -> None:
    assert sorted(r.request_id for r in decided_in(FIXTURE, 2026, "H9999")) == ["E1", "E2", "E3", "E4"]


def test_the_list_of_services_needing_prior_authorization() -> None:
    covered = [RequiredService("72148", "MRI lumbar spine", "imaging-mri-lumbar-spine@2026.1",
                               ("commercial", "medicaid", "medicare_advantage")),
               RequiredService("97110", "Physical therapy (workers' comp)", "mtus-pt@2026.1", ("workers_comp",))]
    requested = [("72148", "medicare_advantage"), ("E0601", "medicaid"), ("99213", "medicare_advantage"),
                 ("27447", "commercial")]
    exempt = [("99213", "medicare_advantage")]
    listed = services_requiring_authorization(covered, requested, exempt)
    assert [(s.code, s.criteria, s.lines_of_business) for s in listed] == [
        ("72148", "imaging-mri-lumbar-spine@2026.1", ("medicaid", "medicare_advantage")),
        ("E0601", "", ("medicaid",))]
