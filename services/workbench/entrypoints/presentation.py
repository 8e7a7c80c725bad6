"""How values read on a page: enum labels, times, countdowns and durations. Jinja filters."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

LABELS: dict[str, dict[int, str]] = {
    "lob": {types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE: "Medicare Advantage",
            types_pb2.LINE_OF_BUSINESS_MEDICAID: "Medicaid", types_pb2.LINE_OF_BUSINESS_COMMERCIAL: "Commercial",
            types_pb2.LINE_OF_BUSINESS_WORKERS_COMP: "Workers' comp"},
    "urgency": {types_pb2.URGENCY_STANDARD: "Standard", types_pb2.URGENCY_EXPEDITED: "Expedited"},
    "review_type": {types_pb2.REVIEW_TYPE_PROSPECTIVE: "Prospective", types_pb2.REVIEW_TYPE_CONCURRENT: "Concurrent",
                    types_pb2.REVIEW_TYPE_RETROSPECTIVE: "Retrospective"},
    "role": {review_pb2.REVIEWER_ROLE_NURSE: "nurse", review_pb2.REVIEWER_ROLE_PHYSICIAN: "physician",
             review_pb2.REVIEWER_ROLE_ADJUSTER: "adjuster", review_pb2.REVIEWER_ROLE_SUPERVISOR: "supervisor",
             review_pb2.REVIEWER_ROLE_CASE_MANAGER: "case manager"},
    "outcome": {types_pb2.LINE_OUTCOME_MEETS_CRITERIA: "Meets criteria",
                types_pb2.LINE_OUTCOME_MEETS_CRITERIA_URGENT: "Meets criteria (urgent)",
                types_pb2.LINE_OUTCOME_REFER_TO_NURSE: "Referred for review",
                types_pb2.LINE_OUTCOME_PEND_MISSING_INFORMATION: "Missing information",
                types_pb2.LINE_OUTCOME_NO_ACTION_REQUIRED: "No authorization needed"},
    "action": {types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL: "Approved (A1)",
               types_pb2.ACTION_CODE_CERTIFIED_PARTIAL: "Approved in part (A2)",
               types_pb2.ACTION_CODE_NOT_CERTIFIED: "Denied (A3)", types_pb2.ACTION_CODE_PENDED: "Pended (A4)",
               types_pb2.ACTION_CODE_MODIFIED: "Modified (A6)", types_pb2.ACTION_CODE_CANCELLED: "Cancelled (C)",
               types_pb2.ACTION_CODE_CONTACT_PAYER: "Contact payer (CT)",
               types_pb2.ACTION_CODE_NO_ACTION_REQUIRED: "No action required (NA)"},
    "condition": {types_pb2.CONDITION_STATUS_MET: "met", types_pb2.CONDITION_STATUS_UNMET: "not met",
                  types_pb2.CONDITION_STATUS_MISSING: "missing"},
    "request_status": {intake_pb2.REQUEST_STATUS_IN_REVIEW: "In review", intake_pb2.REQUEST_STATUS_PENDED: "Pended",
                       intake_pb2.REQUEST_STATUS_DECIDED: "Decided", intake_pb2.REQUEST_STATUS_COMPLETE: "Complete",
                       intake_pb2.REQUEST_STATUS_INELIGIBLE: "Ineligible"},
    "auth_status": {types_pb2.AUTHORIZATION_STATUS_APPROVED: "Approved",
                    types_pb2.AUTHORIZATION_STATUS_EXPIRED: "Expired",
                    types_pb2.AUTHORIZATION_STATUS_CANCELLED: "Cancelled",
                    types_pb2.AUTHORIZATION_STATUS_PARTIALLY_APPROVED: "Partially approved",
                    types_pb2.AUTHORIZATION_STATUS_MODIFIED: "Modified",
                    types_pb2.AUTHORIZATION_STATUS_DENIED: "Denied",
                    types_pb2.AUTHORIZATION_STATUS_PENDED: "Pended"},
    "pos": {types_pb2.PLACE_OF_SERVICE_OFFICE: "Office (11)", types_pb2.PLACE_OF_SERVICE_HOME: "Home (12)",
            types_pb2.PLACE_OF_SERVICE_URGENT_CARE: "Urgent care (20)",
            types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL: "Inpatient hospital (21)",
            types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL: "Outpatient hospital (22)",
            types_pb2.PLACE_OF_SERVICE_EMERGENCY_ROOM: "Emergency room (23)",
            types_pb2.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER: "Ambulatory surgical center (24)",
            types_pb2.PLACE_OF_SERVICE_SKILLED_NURSING_FACILITY: "Skilled nursing facility (31)",
            types_pb2.PLACE_OF_SERVICE_INDEPENDENT_CLINIC: "Independent clinic (49)",
            types_pb2.PLACE_OF_SERVICE_INPATIENT_REHABILITATION: "Inpatient rehabilitation (61)",
            types_pb2.PLACE_OF_SERVICE_INDEPENDENT_LABORATORY: "Independent laboratory (81)"},
}

STATUS_WORDS = {"open": "Open", "claimed": "Held", "pended_information": "Waiting for information",
                "decided": "Decided", "cancelled": "Cancelled"}

REGIMES = {"cms-0057-f": "CMS-0057-F", "erisa-2560.503-1": "ERISA 29 CFR 2560.503-1",
           "ca-lc-4610": "California Labor Code 4610", "tx-28-tac-134.600": "Texas 28 TAC 134.600"}


def label(value: int, kind: str) -> str:
    return LABELS[kind].get(value, "—")


def words(value: str) -> str:
    """``advanced_imaging`` → ``advanced imaging``."""
    return value.replace("_", " ")


def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, words(status))


def regime(code: str) -> str:
    return REGIMES.get(code, code)


def to_datetime(ts: Timestamp) -> dt.datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


def iso(ts: Timestamp) -> str:
    when = to_datetime(ts)
    return when.isoformat(timespec="seconds") if when is not None else ""


def when(ts: Timestamp) -> str:
    """``2026-11-25 15:00 UTC`` (the page's script shows it in the reader's own zone)."""
    at = to_datetime(ts)
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "—"


def duration(seconds: float) -> str:
    """``2 d 3 h``, ``5 h 10 min``, ``12 min``: two units at most, rounded down."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def countdown(ts: Timestamp, now: dt.datetime) -> str:
    at = to_datetime(ts)
    if at is None:
        return "—"
    left = (at - now).total_seconds()
    return f"due in {duration(left)}" if left >= 0 else f"overdue by {duration(left)}"


def overdue(ts: Timestamp, now: dt.datetime) -> bool:
    at = to_datetime(ts)
    return at is not None and at <= now


def date(d: types_pb2.Date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}" if d.year else "—"


def fact(f: types_pb2.ClinicalFact) -> str:
    kind = f.WhichOneof("value")
    if kind == "bool_value":
        value = "yes" if f.bool_value else "no"
    elif kind == "number_value":
        value = f"{f.number_value:g}"
    elif kind == "text_value":
        value = f.text_value
    elif kind == "date_value":
        value = date(f.date_value)
    else:
        value = "—"
    return f"{value} {f.unit}".strip()
