"""`urctl report cms-0057f` over a review database (SQLite, migrated) holding a fixture whose figures
are computed by hand: a line denied then overturned on appeal (its first decision is read from its
task's trail), a Medicaid deadline missed (a deemed denial), an expedited request whose timeframe
was extended, and a line needing no prior authorization. Markdown, CSV and the HTML page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import insert
from ur.common.v1 import types_pb2
from ur.events.v1 import events_pb2

from services.cli import urctl
from services.common import migrations
from services.common.db import make_engine
from services.review.adapters import tables

T = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
A1, A4, NA = (types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL, types_pb2.ACTION_CODE_PENDED,
              types_pb2.ACTION_CODE_NO_ACTION_REQUIRED)


def _case(rid: str, lob: str, plan: str, urgency: str, lines: list[tuple[int, int, str, float | None]], *,
          extended: bool = False, appeal: str = "") -> dict[str, object]:
    """``lines``: (number, action code, procedure code, hours after T it was decided)."""
    submitted = events_pb2.RequestSubmitted(request_id=rid, member_id="T-MA-0001",
                                            coverage=types_pb2.Coverage(plan_id=plan))
    determination = types_pb2.Determination(request_id=rid, determination_id=f"d-{rid}")
    for number, action, code, after in lines:
        ln = determination.lines.add(line_number=number, action_code=action, procedure_code=code)
        if after is not None:
            ln.decided_at.FromDatetime(T + after * H)
        if appeal:
            ln.appeal.CopyFrom(types_pb2.AppealOutcome(appeal_id=appeal, outcome="overturned"))
    return {"request_id": rid, "determination_id": f"d-{rid}", "member_id": "T-MA-0001", "line_of_business": lob,
            "member_state": "NY", "urgency": urgency, "review_type": "prospective", "requesting_npi": "1234567893",
            "received_at": T, "due_at": T + 168 * H, "regime": "cms-0057-f", "request": submitted.SerializeToString(),
            "determination": determination.SerializeToString(), "created_at": T,
            "clock_state": json.dumps({"extended": extended})}


def _task(task_id: str, rid: str, *, deemed_at: dt.datetime | None = None) -> dict[str, object]:
    return {"task_id": task_id, "request_id": rid, "line_number": 1, "procedure_code": "72148",
            "line_of_business": "medicaid" if deemed_at else "medicare_advantage", "member_state": "NY",
            "urgency": "standard", "outcome": "refer_to_nurse", "reasons": "[]", "status": "decided",
            "due_at": T + 168 * H, "created_at": T, "deemed_denial": deemed_at is not None, "missed_at": deemed_at}


@pytest.fixture
def review_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'review.db'}"
    engine = make_engine(url)
    migrations.upgrade("review", engine)
    with engine.begin() as conn:
        conn.execute(insert(tables.cases), [
            # R1: denied at 50 h by a physician, overturned on appeal at 300 h (the line says so now).
            _case("R1", "medicare_advantage", "H4827-002", "standard", [(1, A1, "72148", 300)], appeal="ap-1"),
            # R2: Medicaid, still pended, its deadline missed at 168 h: a deemed denial.
            _case("R2", "medicaid", "MCD-NY-06", "standard", [(1, A4, "72148", None)]),
            # R3: expedited, extended, approved at 20 h.
            _case("R3", "medicare_advantage", "H4827-001", "expedited", [(1, A1, "70553", 20)], extended=True),
            # R4: approved at 10 h; its office visit needed no prior authorization.
            _case("R4", "medicare_advantage", "H4827-002", "standard",
                  [(1, A1, "72148", 10), (2, NA, "99213", 0)]),
            # R5: commercial, not counted.
            _case("R5", "commercial", "ACME-PPO", "standard", [(1, A1, "72148", 1)]),
        ])
        conn.execute(insert(tables.review_tasks), [_task("t-1", "R1"), _task("t-2", "R2", deemed_at=T + 168 * H)])
        conn.execute(insert(tables.task_events), [
            {"task_id": "t-1", "at": T + 2 * H, "actor": "rn-1", "action": "refer_to_physician", "detail": ""},
            {"task_id": "t-1", "at": T + 50 * H, "actor": "md-1", "action": "deny", "detail": "not indicated"}])
        conn.execute(insert(tables.appeals), [{
            "appeal_id": "ap-1", "request_id": "R1", "line_number": 1, "member_id": "T-MA-0001",
            "urgency": "standard", "appellant": "member", "appellant_name": "x", "filed_at": T + 100 * H, "reason": "",
            "regime": "ma-reconsideration", "clock_state": "{}", "original_decider": "md-1", "task_id": "t-9",
            "status": "decided", "outcome": "overturned", "decided_by": "md-2", "decided_at": T + 300 * H}])
    engine.dispose()
    return url


def report(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    status = urctl.main(["report", "cms-0057f", "--year", "2026", "--review-database-url", url, *extra])
    return status, capsys.readouterr().out


def metric(rows: list[dict[str, str]], name: str, urgency: str) -> tuple[str, str, str]:
    (row,) = [r for r in rows if r["section"] == "metrics" and r["name"] == name and r["urgency"] == urgency]
    return row["value"], row["numerator"], row["denominator"]


def test_every_figure_is_read_from_the_review_database(review_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = report(review_db, capsys, "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    # Standard: R1 denied (its first decision, at 50 h), R2 denied (deemed, at 168 h), R4 approved (10 h).
    assert metric(rows, "requests_decided", "standard") == ("3", "3", "3")
    assert metric(rows, "approved", "standard") == ("33.33", "1", "3")
    assert metric(rows, "approved_in_part", "standard") == ("0.00", "0", "3")
    assert metric(rows, "denied", "standard") == ("66.67", "2", "3")
    assert metric(rows, "approved_after_appeal", "standard") == ("33.33", "1", "3")
    assert metric(rows, "mean_time_to_decision", "standard")[0] == "76.000000"  # (50 + 168 + 10) / 3
    assert metric(rows, "median_time_to_decision", "standard")[0] == "50.000000"
    # Expedited: R3 approved at 20 h, after an extension.
    assert metric(rows, "approved", "expedited") == ("100.00", "1", "1")
    assert metric(rows, "denied", "expedited") == ("0.00", "0", "1")
    assert metric(rows, "mean_time_to_decision", "expedited")[0] == "20.000000"
    assert metric(rows, "median_time_to_decision", "expedited")[0] == "20.000000"
    assert metric(rows, "extended_then_approved", "all") == ("25.00", "1", "4")
    listed = {r["name"] for r in rows if r["section"] == "requires_prior_authorization"}
    assert {"72148", "70553"} <= listed
    assert "99213" not in listed  # on the no-prior-authorization list


def test_a_contract_narrows_the_report(review_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = report(review_db, capsys, "--format", "csv", "--contract", "MCD-NY-06")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert metric(rows, "denied", "standard") == ("100.00", "1", "1")
    assert metric(rows, "requests_decided", "expedited") == ("0", "0", "0")


def test_markdown_and_a_self_contained_html_page(review_db: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status, out = report(review_db, capsys)
    assert status == 0
    assert "| Approved after appeal | 33.3 % (1) | not required |" in out
    assert "| Median time from submission to decision | 50.0 hours | 20.0 hours |" in out
    assert "25.0 % of the requests decided (1 of 4) had their review timeframe extended" in out
    status, _ = report(review_db, capsys, "--output", str(tmp_path / "out"))
    assert status == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["cms-0057f-2026.csv", "cms-0057f-2026.html", "cms-0057f-2026.md"]
    page = (tmp_path / "out" / "cms-0057f-2026.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 3  # the charts, inline
    for outside in ("<script", "src=", "<link"):  # nothing fetched
        assert outside not in page
    assert "T-MA-0001" not in page  # aggregates only


def test_a_missing_database_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = urctl.main(["report", "cms-0057f", "--year", "2026", "--review-database-url",
                         f"sqlite:///{tmp_path / 'none.db'}"])
    assert status == 1
    assert "no review database" in capsys.readouterr().err
