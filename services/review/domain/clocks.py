"""Decision deadlines: which regulatory clock governs a request, and when it is due.

This is the walking-skeleton clock: the regime and its headline timeframe, with
the rule that set it recorded beside the deadline. Holiday calendars, pends,
tolling and extensions come with the full clock engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
CENTRAL = ZoneInfo("America/Chicago")


@dataclass(frozen=True)
class Deadline:
    regime: str
    rule: str
    due_at: dt.datetime  # UTC


def _add_business_days(start: dt.datetime, days: int, tz: ZoneInfo) -> dt.datetime:
    """Counted from the day after receipt; weekends skipped; due at the end of the last day."""
    local = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        local += dt.timedelta(days=1)
        if local.weekday() < 5:
            counted += 1
    end_of_day = dt.datetime.combine(local, dt.time(23, 59, 59), tzinfo=tz)
    return end_of_day.astimezone(dt.UTC)


def deadline_for(line_of_business: str, member_state: str, urgency: str, review_type: str,
                 received_at: dt.datetime) -> Deadline:
    expedited = urgency == "expedited"
    if line_of_business in ("medicare_advantage", "medicaid"):
        regime = "cms-0057-f"
        if review_type == "retrospective":
            return Deadline(regime, "retrospective review: 30 calendar days (42 CFR 422.568(b) post-service)",
                            received_at + dt.timedelta(days=30))
        if expedited:
            return Deadline(regime, "expedited: 72 hours from receipt (CMS-0057-F)",
                            received_at + dt.timedelta(hours=72))
        return Deadline(regime, "standard: 7 calendar days from receipt (CMS-0057-F)",
                        received_at + dt.timedelta(days=7))
    if line_of_business == "commercial":
        regime = "erisa-2560.503-1"
        if review_type == "retrospective":
            return Deadline(regime, "post-service claim: 30 days (29 CFR 2560.503-1(i))",
                            received_at + dt.timedelta(days=30))
        if expedited:
            return Deadline(regime, "urgent care claim: 72 hours (29 CFR 2560.503-1(f)(2)(i))",
                            received_at + dt.timedelta(hours=72))
        return Deadline(regime, "pre-service claim: 15 days (29 CFR 2560.503-1(f)(2)(iii))",
                        received_at + dt.timedelta(days=15))
    if line_of_business == "workers_comp" and member_state == "TX":
        regime = "tx-28-tac-134.600"
        return Deadline(regime, "concurrent/prospective review: 3 working days (28 TAC 134.600)",
                        _add_business_days(received_at, 3, CENTRAL))
    if line_of_business == "workers_comp":
        regime = "ca-lc-4610" if member_state == "CA" else "workers-comp-default"
        if review_type == "retrospective":
            return Deadline(regime, "retrospective: 30 days (8 CCR 9792.9.1)", received_at + dt.timedelta(days=30))
        if expedited:
            return Deadline(regime, "expedited: 72 hours (Labor Code 4610)", received_at + dt.timedelta(hours=72))
        return Deadline(regime, "prospective/concurrent: 5 business days from receipt (Labor Code 4610)",
                        _add_business_days(received_at, 5, PACIFIC))
    return Deadline("unknown", "no regime known for this line of business: 72 hours by default",
                    received_at + dt.timedelta(hours=72))
