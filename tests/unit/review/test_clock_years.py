"""The regulatory clocks in years the old fixed calendars never covered (2028-2035), checked against
the statutes written out here independently of the ``holidays`` package: observed days of weekend
holidays, California's day after Thanksgiving, Texas' working days, daylight-saving changes in both
directions for requests at 23:30 and 00:30 local time, and a year no calendar covers refused."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.review.adapters.holiday_calendars import load_calendars
from services.review.domain.deadlines import (
    Calendar,
    CalendarRangeError,
    ClockEngine,
    ClockError,
    ClockRequest,
)

CALENDARS = load_calendars()
ENGINE = ClockEngine(CALENDARS)
UTC = dt.UTC
ET = ZoneInfo("America/New_York")
PT = ZoneInfo("America/Los_Angeles")
CT = ZoneInfo("America/Chicago")
YEARS = range(2028, 2036)
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


# -- the statutes, written out -------------------------------------------------------------------

def nth(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def last(year: int, month: int, weekday: int) -> dt.date:
    day = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return day - dt.timedelta(days=(day.weekday() - weekday) % 7)


def thanksgiving(year: int) -> dt.date:
    return nth(year, 11, THU, 4)


def federal(year: int) -> set[dt.date]:
    """5 U.S.C. 6103(a); Saturday holidays observed Friday, Sunday ones Monday (EO 11582, OPM)."""
    days = [dt.date(year, 1, 1), nth(year, 1, MON, 3), nth(year, 2, MON, 3), last(year, 5, MON),
            dt.date(year, 6, 19), dt.date(year, 7, 4), nth(year, 9, MON, 1), nth(year, 10, MON, 2),
            dt.date(year, 11, 11), thanksgiving(year), dt.date(year, 12, 25)]
    return {d - dt.timedelta(days=1) if d.weekday() == SAT else d + dt.timedelta(days=1) if d.weekday() == SUN
            else d for d in days}


def california(year: int) -> set[dt.date]:
    """Gov. Code 19853 (CalHR): Sunday holidays move to Monday, Saturday ones stay, except Veterans
    Day, observed the Friday before."""
    fixed = [dt.date(year, 1, 1), dt.date(year, 3, 31), dt.date(year, 7, 4), dt.date(year, 12, 25)]
    out = {d + dt.timedelta(days=1) if d.weekday() == SUN else d for d in fixed}
    veterans = dt.date(year, 11, 11)
    out.add(veterans - dt.timedelta(days=1) if veterans.weekday() == SAT
            else veterans + dt.timedelta(days=1) if veterans.weekday() == SUN else veterans)
    out |= {nth(year, 1, MON, 3), nth(year, 2, MON, 3), last(year, 5, MON), nth(year, 9, MON, 1),
            thanksgiving(year), thanksgiving(year) + dt.timedelta(days=1)}
    return out


def texas(year: int) -> set[dt.date]:
    """28 TAC 102.3(b): the national holidays of Gov't Code 662.003(a), the Friday after Thanksgiving,
    December 24 and 26; nothing moves off a weekend."""
    return {dt.date(year, 1, 1), nth(year, 1, MON, 3), nth(year, 2, MON, 3), last(year, 5, MON),
            dt.date(year, 7, 4), nth(year, 9, MON, 1), dt.date(year, 11, 11), thanksgiving(year),
            thanksgiving(year) + dt.timedelta(days=1), dt.date(year, 12, 24), dt.date(year, 12, 25),
            dt.date(year, 12, 26)}


def in_year(calendar: Calendar, year: int) -> set[dt.date]:
    return {d for d in calendar.holidays if d.year == year}


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize(("name", "statute"), [("us-federal", federal), ("california", california),
                                               ("texas", texas)])
def test_each_calendar_matches_its_statute_year_by_year(name: str, statute: object, year: int) -> None:
    expected = statute(year)  # type: ignore[operator]
    # New Year's Day on a Saturday is observed on 31 December of the year before.
    if name == "us-federal" and dt.date(year + 1, 1, 1).weekday() == SAT:
        expected.add(dt.date(year, 12, 31))
    expected = {d for d in expected if d.year == year}
    assert in_year(CALENDARS[name], year) == expected


def test_weekend_holidays_in_the_years_ahead_fall_where_each_statute_puts_them() -> None:
    fed, ca, tx = CALENDARS["us-federal"], CALENDARS["california"], CALENDARS["texas"]
    # New Year's Day 2028 is a Saturday: federal offices close Friday 31 December 2027.
    assert dt.date(2027, 12, 31) in fed.holidays
    assert dt.date(2028, 1, 1) not in fed.holidays
    # Independence Day 2032 is a Sunday: Monday 5 July off for federal and California offices, not Texas.
    assert dt.date(2032, 7, 5) in fed.holidays
    assert dt.date(2032, 7, 5) in ca.holidays
    assert tx.is_business_day(dt.date(2032, 7, 5))
    # Veterans Day 2028 is a Saturday: California observes Friday 10 November; Christmas 2032, a
    # Saturday, is not moved in California (holiday credit) but is Friday 24 December federally.
    assert dt.date(2028, 11, 10) in ca.holidays
    assert dt.date(2032, 12, 24) not in ca.holidays
    assert dt.date(2032, 12, 24) in fed.holidays
    # Juneteenth is federal only.
    assert dt.date(2029, 6, 19) in fed.holidays
    assert ca.is_business_day(dt.date(2029, 6, 19))
    assert tx.is_business_day(dt.date(2029, 6, 19))


def at(tz: dt.tzinfo, y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


def local(value: dt.datetime | None, tz: ZoneInfo) -> tuple[int, int, int, int, int]:
    assert value is not None
    d = value.astimezone(tz)
    return d.year, d.month, d.day, d.hour, d.minute


def req(lob: str, received: dt.datetime, *, state: str = "OH", urgency: str = "standard",
        review: str = "prospective", setting: str = "") -> ClockRequest:
    return ClockRequest(lob, state, urgency, review, received, setting)


@pytest.mark.parametrize("year", YEARS)
def test_california_skips_thanksgiving_and_the_day_after(year: int) -> None:
    wednesday = thanksgiving(year) - dt.timedelta(days=1)
    state = ENGINE.start(req("workers_comp", at(PT, wednesday.year, wednesday.month, wednesday.day), state="CA"))
    # Thursday, Friday, the weekend are skipped: five business days end on the Friday a week later.
    due = thanksgiving(year) + dt.timedelta(days=8)
    assert local(state.due_at, PT) == (due.year, due.month, due.day, 23, 59)


@pytest.mark.parametrize("year", YEARS)
def test_texas_three_working_days_around_christmas(year: int) -> None:
    start = dt.date(year, 12, 22)
    holidays_tx = texas(year) | texas(year + 1)
    day, counted = start, 0
    while counted < 3:
        day += dt.timedelta(days=1)
        counted += day.weekday() < SAT and day not in holidays_tx
    state = ENGINE.start(req("workers_comp", at(CT, year, 12, 22), state="TX", review="concurrent"))
    assert local(state.due_at, CT) == (day.year, day.month, day.day, 23, 59)


def dst_changes(year: int, tz: ZoneInfo) -> list[dt.date]:
    """The local days on which ``tz`` changes its offset in ``year`` (spring and autumn)."""
    days = []
    day = dt.date(year, 1, 1)
    while day.year == year:
        before = dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz).utcoffset()
        after = dt.datetime.combine(day, dt.time(12, 0), tzinfo=tz).utcoffset()
        if before != after:
            days.append(day)
        day += dt.timedelta(days=1)
    assert len(days) == 2
    return days


def requests_around_dst(year: int, tz: ZoneInfo) -> list[dt.datetime]:
    """For each change: 23:30 the evening before it and 00:30 on its night, both directions."""
    out = []
    for change in dst_changes(year, tz):
        eve = change - dt.timedelta(days=1)
        out.append(dt.datetime.combine(eve, dt.time(23, 30), tzinfo=tz))
        out.append(dt.datetime.combine(change, dt.time(0, 30), tzinfo=tz))
    return out


def calendar_days_later(received: dt.datetime, days: int) -> tuple[int, int, int, int, int]:
    d = received.date() + dt.timedelta(days=days)
    return d.year, d.month, d.day, received.hour, received.minute


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize(("lob", "urgency", "review", "days"), [
    ("medicare_advantage", "standard", "prospective", 7),
    ("medicaid", "standard", "prospective", 7),
    ("medicaid", "standard", "retrospective", 30),
    ("commercial", "standard", "prospective", 15),
    ("commercial", "standard", "retrospective", 30),
])
def test_calendar_day_clocks_count_local_days_across_both_dst_changes(year: int, lob: str, urgency: str,
                                                                       review: str, days: int) -> None:
    for received in requests_around_dst(year, ET):
        state = ENGINE.start(req(lob, received.astimezone(UTC), urgency=urgency, review=review))
        assert local(state.due_at, ET) == calendar_days_later(received, days), received


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize(("lob", "state"), [("medicare_advantage", "OH"), ("medicaid", "OH"),
                                            ("commercial", "NY"), ("workers_comp", "CA")])
def test_72_hour_clocks_stay_in_elapsed_time_across_both_dst_changes(year: int, lob: str, state: str) -> None:
    tz = PT if state == "CA" else ET
    for received in requests_around_dst(year, tz):
        clock = ENGINE.start(req(lob, received.astimezone(UTC), state=state, urgency="expedited"))
        assert clock.due_at == received.astimezone(UTC) + dt.timedelta(hours=72)


@pytest.mark.parametrize("year", YEARS)
def test_business_day_clocks_across_both_dst_changes(year: int) -> None:
    for tz, state, days, statute in ((PT, "CA", 5, california), (CT, "TX", 3, texas)):
        for received in requests_around_dst(year, tz):
            clock = ENGINE.start(req("workers_comp", received.astimezone(UTC), state=state))
            day, counted = received.date(), 0
            if state == "CA" and (received.time() > dt.time(17, 30) or received.weekday() >= SAT):
                # After the 5:30 pm cut-off or on a weekend: counted from the next business day.
                day += dt.timedelta(days=1)
                while day.weekday() >= SAT or day in statute(day.year):
                    day += dt.timedelta(days=1)
            while counted < days:
                day += dt.timedelta(days=1)
                counted += day.weekday() < SAT and day not in statute(day.year)
            assert local(clock.due_at, tz) == (day.year, day.month, day.day, 23, 59), received


def test_the_issues_example_medicare_advantage_across_the_march_change() -> None:
    received = dt.datetime(2026, 3, 2, 23, 30, tzinfo=ET)
    state = ENGINE.start(req("medicare_advantage", received.astimezone(UTC)))
    assert local(state.due_at, ET) == (2026, 3, 9, 23, 30)  # not 2026-03-10 00:30 EDT
    erisa = ENGINE.start(req("commercial", received.astimezone(UTC)))
    assert local(erisa.due_at, ET) == (2026, 3, 17, 23, 30)


def test_an_extension_adds_calendar_days_on_the_local_clock() -> None:
    received = dt.datetime(2030, 10, 25, 9, 0, tzinfo=ET)  # the clocks fall back on 3 November
    state = ENGINE.start(req("medicare_advantage", received.astimezone(UTC)))
    extended = ENGINE.extend(state, received.astimezone(UTC), "enrollee_request", notice_sent=True)
    assert local(extended.due_at, ET) == (2030, 11, 15, 9, 0)


def test_a_year_the_calendars_do_not_cover_is_refused_not_guessed() -> None:
    with pytest.raises(CalendarRangeError, match="covers 2025-2099"):
        ENGINE.start(req("workers_comp", at(PT, 2100, 3, 2), state="CA"))
    with pytest.raises(CalendarRangeError, match="cannot say whether 2024-12-31"):
        CALENDARS["texas"].is_business_day(dt.date(2024, 12, 31))
    with pytest.raises(ClockError, match="no holiday calendar for 'nevada'"):
        ENGINE.calendar("nevada")


# -- at risk over the clock itself ---------------------------------------------------------------

def test_at_risk_is_measured_from_receipt_not_from_when_anyone_looked() -> None:
    received = at(UTC, 2030, 6, 3, 12)
    state = ENGINE.start(req("medicare_advantage", received))  # 7 calendar days
    threshold = ENGINE.at_risk_from(state, 0.2)
    assert threshold == state.due_at - dt.timedelta(days=7) * 0.2  # type: ignore[operator]
    assert not ENGINE.at_risk(state, received + dt.timedelta(days=5))
    assert ENGINE.at_risk(state, received + dt.timedelta(days=5, hours=15))  # 33 h of 168 left


def test_at_risk_after_a_deemed_receipt_counts_from_it() -> None:
    friday_evening = at(PT, 2030, 6, 7, 18)  # after the cut-off: counted from Monday 10 June
    state = ENGINE.start(req("workers_comp", friday_evening, state="CA"))
    assert state.started_at == at(PT, 2030, 6, 10, 8)
    assert local(state.due_at, PT) == (2030, 6, 17, 23, 59)
    window = state.due_at - state.started_at  # type: ignore[operator]
    assert ENGINE.at_risk_from(state, 0.2) == state.due_at - window * 0.2  # type: ignore[operator]


def test_at_risk_leaves_out_the_time_the_clock_was_tolled() -> None:
    received = at(ET, 2030, 1, 7, 9)
    state = ENGINE.start(req("commercial", received))  # 15 days, tolled while pended
    pended = ENGINE.pend(state, received + dt.timedelta(days=3))
    assert ENGINE.at_risk_from(pended, 0.2) is None  # a stopped clock is never at risk
    resumed = ENGINE.information_received(pended, received + dt.timedelta(days=13))
    assert resumed.tolled_s == 10 * 86400
    assert resumed.due_at == received + dt.timedelta(days=25)
    # 15 days of clock time: at risk with 3 days left, not 5 (which 25 days from receipt would give).
    assert ENGINE.at_risk_from(resumed, 0.2) == resumed.due_at - dt.timedelta(days=3)
