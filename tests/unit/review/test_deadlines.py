"""The regulatory clocks: every regime, expedited and standard, pends under each regime, business days
across weekends and holidays, the California 5:30 pm cut-off, daylight-saving changes, year ends and
extensions. Each deadline names the rule that set it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.review.adapters.holiday_calendars import CalendarFileError, load_calendar, load_calendars
from services.review.domain.deadlines import ClockEngine, ClockError, ClockRequest, ClockState, ExtensionRefused

ET = ZoneInfo("America/New_York")
PT = ZoneInfo("America/Los_Angeles")
CT = ZoneInfo("America/Chicago")
UTC = dt.UTC
ENGINE = ClockEngine(load_calendars())


def at(tz: dt.tzinfo, y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


def req(lob: str, received: dt.datetime, *, state: str = "OH", urgency: str = "standard",
        review: str = "prospective", setting: str = "") -> ClockRequest:
    return ClockRequest(lob, state, urgency, review, received, setting)


def local(due: dt.datetime | None, tz: ZoneInfo) -> tuple[int, int, int, int, int]:
    assert due is not None
    d = due.astimezone(tz)
    return d.year, d.month, d.day, d.hour, d.minute


# -- CMS-0057-F ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lob", ["medicare_advantage", "medicaid"])
def test_cms_standard_is_seven_calendar_days_and_expedited_72_hours(lob: str) -> None:
    received = at(UTC, 2026, 11, 25, 15)
    standard = ENGINE.start(req(lob, received))
    assert standard.regime == "cms-0057-f"
    assert standard.due_at == received + dt.timedelta(days=7)
    assert "7 calendar days" in standard.rule
    assert "CMS-0057-F" in standard.rule
    expedited = ENGINE.start(req(lob, received, urgency="expedited"))
    assert expedited.due_at == received + dt.timedelta(hours=72)
    assert "72 hours" in expedited.rule
    assert standard.deemed_denial_on_miss is (lob == "medicaid")


def test_cms_pend_leaves_the_clock_running() -> None:
    received = at(UTC, 2026, 11, 25, 15)
    state = ENGINE.start(req("medicare_advantage", received))
    pended = ENGINE.pend(state, received + dt.timedelta(days=2))
    assert pended.due_at == state.due_at
    assert "keeps running" in pended.rule
    answered = ENGINE.information_received(pended, received + dt.timedelta(days=5))
    assert answered.due_at == state.due_at
    assert "unchanged" in answered.rule
    assert [e.kind for e in answered.history] == ["started", "pended", "information_received"]


def test_medicare_advantage_extension_only_on_permitted_grounds_with_notice() -> None:
    received = at(UTC, 2026, 11, 25, 15)
    state = ENGINE.start(req("medicare_advantage", received))
    with pytest.raises(ExtensionRefused, match="not a permitted ground"):
        ENGINE.extend(state, received, "reviewer_backlog", notice_sent=True)
    with pytest.raises(ExtensionRefused, match="written notice"):
        ENGINE.extend(state, received, "enrollee_request", notice_sent=False)
    extended = ENGINE.extend(state, received + dt.timedelta(days=1), "enrollee_request", notice_sent=True)
    assert extended.due_at == received + dt.timedelta(days=21)
    assert "422.568(b)(1)" in extended.rule
    with pytest.raises(ExtensionRefused, match="one extension"):
        ENGINE.extend(extended, received + dt.timedelta(days=2), "information_needed_in_enrollee_interest", True)


# -- ERISA -------------------------------------------------------------------------------------------

def test_erisa_pre_service_is_15_days_tolled_while_waiting_for_information() -> None:
    received = at(ET, 2026, 3, 2, 7)  # 07:00 EST; the clocks spring forward on 8 March
    state = ENGINE.start(req("commercial", received))
    assert state.regime == "erisa-2560.503-1"
    assert local(state.due_at, ET) == (2026, 3, 17, 7, 0)
    assert "2560.503-1(f)(2)(iii)(A)" in state.rule
    pended = ENGINE.pend(state, at(ET, 2026, 3, 7, 7))
    assert pended.due_at is None
    assert pended.tolled
    assert "tolled" in pended.rule
    assert not ENGINE.at_risk(pended, received + dt.timedelta(days=30))
    assert not ENGINE.is_missed(pended, received + dt.timedelta(days=30))
    answered = ENGINE.information_received(pended, at(ET, 2026, 3, 14, 7))
    assert local(answered.due_at, ET) == (2026, 3, 24, 7, 0)  # 10 days were left when it stopped
    assert "10 days" in answered.rule
    assert answered.tolled_s == 7 * 86400 - 3600  # seven days on the calendar, one hour short in real time


def test_erisa_urgent_is_72_hours_and_an_incomplete_urgent_claim_follows_48_plus_48() -> None:
    received = at(UTC, 2026, 3, 2, 12)
    state = ENGINE.start(req("commercial", received, urgency="expedited"))
    assert state.due_at == received + dt.timedelta(hours=72)
    assert "urgent care claim" in state.rule
    pended = ENGINE.pend(state, received + dt.timedelta(hours=20), "incomplete claim")
    assert pended.due_at == received + dt.timedelta(hours=20 + 96)
    quick = ENGINE.information_received(pended, received + dt.timedelta(hours=30))
    assert quick.due_at == received + dt.timedelta(hours=30 + 48)
    late = ENGINE.information_received(pended, received + dt.timedelta(hours=90))
    assert late.due_at == received + dt.timedelta(hours=20 + 48 + 48)  # 48 h from the end of the answer time
    with pytest.raises(ExtensionRefused, match="urgent care claims have no extension"):
        ENGINE.extend(state, received, "beyond_plan_control", True)


def test_erisa_allows_one_extension_with_notice_before_the_period_ends() -> None:
    received = at(ET, 2026, 3, 2, 7)
    state = ENGINE.start(req("commercial", received))
    extended = ENGINE.extend(state, received + dt.timedelta(days=14), "beyond_plan_control", notice_sent=True)
    assert local(extended.due_at, ET) == (2026, 4, 1, 7, 0)
    with pytest.raises(ExtensionRefused, match="one extension"):
        ENGINE.extend(extended, received + dt.timedelta(days=16), "beyond_plan_control", notice_sent=True)
    with pytest.raises(ExtensionRefused, match="already ended"):
        ENGINE.extend(state, received + dt.timedelta(days=16), "beyond_plan_control", notice_sent=True)
    post = ENGINE.start(req("commercial", received, review="retrospective"))
    assert local(post.due_at, ET) == (2026, 4, 1, 7, 0)
    assert "post-service" in post.rule


# -- California workers' comp ------------------------------------------------------------------------

def test_california_five_business_days_skip_thanksgiving_the_day_after_and_the_weekend() -> None:
    # Wednesday 2026-11-25 10:00 PT: Thu 26 and Fri 27 are holidays, then the weekend.
    state = ENGINE.start(req("workers_comp", at(PT, 2026, 11, 25), state="CA"))
    assert state.regime == "ca-lc-4610"
    assert "5 business days" in state.rule
    assert local(state.due_at, PT) == (2026, 12, 4, 23, 59)  # Mon 30, Tue 1, Wed 2, Thu 3, Fri 4


def test_california_cutoff_at_half_past_five() -> None:
    before = ENGINE.start(req("workers_comp", at(PT, 2026, 3, 2, 17, 29), state="CA"))  # Monday
    after = ENGINE.start(req("workers_comp", at(PT, 2026, 3, 2, 17, 31), state="CA"))
    assert local(before.due_at, PT)[:3] == (2026, 3, 9)
    assert local(after.due_at, PT)[:3] == (2026, 3, 10)
    assert "cut-off" in after.rule
    assert "cut-off" not in before.rule
    weekend = ENGINE.start(req("workers_comp", at(PT, 2026, 3, 7, 9), state="CA"))  # Saturday
    assert local(weekend.due_at, PT)[:3] == (2026, 3, 16)  # counted from Monday 9


def test_california_deadline_across_the_november_daylight_saving_change() -> None:
    # Friday 2026-10-30: five business days are Nov 2-6; clocks fall back on Sunday Nov 1.
    state = ENGINE.start(req("workers_comp", at(PT, 2026, 10, 30), state="CA"))
    assert local(state.due_at, PT) == (2026, 11, 6, 23, 59)
    assert state.due_at == dt.datetime(2026, 11, 7, 7, 59, 59, tzinfo=UTC)  # PST is UTC-8


def test_california_restarts_on_information_but_never_beyond_14_days() -> None:
    received = at(PT, 2026, 3, 2)  # Monday
    state = ENGINE.start(req("workers_comp", received, state="CA"))
    pended = ENGINE.pend(state, at(PT, 2026, 3, 3))
    assert local(pended.due_at, PT) == (2026, 3, 16, 10, 0)
    assert "14 days" in pended.rule
    answered = ENGINE.information_received(pended, at(PT, 2026, 3, 4))  # Wednesday
    assert local(answered.due_at, PT)[:3] == (2026, 3, 11)
    assert "from its receipt" in answered.rule
    assert answered.started_at == at(PT, 2026, 3, 4)  # the period restarted from the information
    late = ENGINE.information_received(pended, at(PT, 2026, 3, 12))
    assert local(late.due_at, PT) == (2026, 3, 16, 10, 0)
    assert "14-day limit" in late.rule
    with pytest.raises(ExtensionRefused, match="allows no extension"):
        ENGINE.extend(state, received, "enrollee_request", True)


def test_california_expedited_and_retrospective() -> None:
    received = at(PT, 2026, 3, 2, 18)
    assert ENGINE.start(req("workers_comp", received, state="CA", urgency="expedited")).due_at == \
        received + dt.timedelta(hours=72)
    retro = ENGINE.start(req("workers_comp", received, state="CA", review="retrospective"))
    assert local(retro.due_at, PT) == (2026, 4, 1, 18, 0)
    assert "retrospective" in retro.rule


# -- Texas workers' comp -----------------------------------------------------------------------------

def test_texas_three_working_days_skip_the_days_28_tac_102_3_names() -> None:
    # Tuesday 2026-12-22: Dec 24, 25 (Fri) are not working days; Dec 26 is a Saturday.
    state = ENGINE.start(req("workers_comp", at(CT, 2026, 12, 22), state="TX", review="concurrent"))
    assert state.regime == "tx-28-tac-134.600"
    assert "3 working days" in state.rule
    assert local(state.due_at, CT)[:3] == (2026, 12, 29)  # Wed 23, Mon 28, Tue 29


def test_texas_inpatient_concurrent_review_is_one_working_day_across_the_year_end() -> None:
    # Thursday 2026-12-31: New Year's Day is not a working day, then the weekend.
    state = ENGINE.start(req("workers_comp", at(CT, 2026, 12, 31), state="TX", review="concurrent",
                             setting="inpatient"))
    assert local(state.due_at, CT)[:3] == (2027, 1, 4)
    assert "1 working day" in state.rule
    pended = ENGINE.pend(state, at(CT, 2027, 1, 2))
    assert pended.due_at == state.due_at
    assert "keeps running" in pended.rule


def test_texas_across_the_march_daylight_saving_change() -> None:
    # Friday 2026-03-06; clocks spring forward on Sunday March 8: due Wednesday March 11, CDT (UTC-5).
    state = ENGINE.start(req("workers_comp", at(CT, 2026, 3, 6), state="TX"))
    assert state.due_at == dt.datetime(2026, 3, 12, 4, 59, 59, tzinfo=UTC)


def test_other_states_workers_comp_get_a_conservative_named_default() -> None:
    state = ENGINE.start(req("workers_comp", at(UTC, 2026, 3, 2), state="NV"))
    assert state.regime == "workers-comp-default"
    assert "NV" in state.rule


# -- across regimes ----------------------------------------------------------------------------------

def test_at_risk_when_less_than_a_fifth_of_the_time_is_left() -> None:
    received = at(UTC, 2026, 3, 2, 0)
    state = ENGINE.start(req("medicare_advantage", received, urgency="expedited"))  # 72 h
    assert not ENGINE.at_risk(state, received + dt.timedelta(hours=57))
    assert ENGINE.at_risk(state, received + dt.timedelta(hours=58))
    assert ENGINE.is_missed(state, received + dt.timedelta(hours=72, seconds=1))


def test_state_round_trips_through_its_stored_form() -> None:
    state = ENGINE.pend(ENGINE.start(req("commercial", at(UTC, 2026, 3, 2))), at(UTC, 2026, 3, 4))
    assert ClockState.from_dict(state.to_dict()) == state


def test_every_regime_names_its_rule() -> None:
    received = at(UTC, 2026, 6, 1)
    for lob, state, urgency, review in [("medicare_advantage", "OH", "standard", "prospective"),
                                        ("medicaid", "OH", "expedited", "prospective"),
                                        ("medicaid", "OH", "standard", "retrospective"),
                                        ("commercial", "NY", "standard", "prospective"),
                                        ("commercial", "NY", "expedited", "concurrent"),
                                        ("workers_comp", "CA", "standard", "concurrent"),
                                        ("workers_comp", "TX", "standard", "prospective")]:
        clock = ENGINE.start(req(lob, received, state=state, urgency=urgency, review=review))
        assert clock.rule
        assert clock.regime
        assert clock.history[0].rule == clock.rule
    with pytest.raises(ClockError, match="time zone"):
        ENGINE.start(req("commercial", dt.datetime(2026, 1, 1)))  # noqa: DTZ001 - refused for being naive


GOOD_CALENDAR = """name: x
time_zone: UTC
source: s
years: {first: 2025, last: 2030}
base: {country: US}
keep: ["Christmas Day"]
observed: {saturday: friday, sunday: monday}
"""


@pytest.mark.parametrize(("change", "problem"), [
    (("time_zone: UTC", "time_zone: Mars/Olympus"), r"bad\.yaml: time_zone: 'Mars/Olympus'"),
    (("keep:", "add: [{date: 2026-02-30, name: a}]\nkeep:"),
     r"bad\.yaml: not valid YAML: '2026-02-30' is not a date: day is out of range for month \(line 6, column 14\)"),
    (("keep:", "holiday: []\nkeep:"), "holiday: unknown key"),
    (("Christmas Day", "Xmas"), r"keep\[0\]: 'Xmas' is not a holiday the holidays package"),
    (("{first: 2025, last: 2030}", "{first: 2030, last: 2025}"), "years: first and last"),
    (("sunday: monday", "sunday: tuesday"), r"observed\.sunday: 'tuesday' is not one of 'none' or 'monday'"),
    (("keep:", "rules: [{name: d, month: 9, weekday: fri, nth: 6}]\nkeep:"), r"rules\[0\]\.nth: 1 to 4"),
    (("keep:", "remove: [{date: 2026-12-24, name: nope}]\nkeep:"), r"remove\[0\]: 2026-12-24 is not 'nope'"),
    (("base: {country: US}", "base: {country: ZZ}"), "base: the holidays package has no calendar"),
])
def test_a_malformed_calendar_is_refused_precisely(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_CALENDAR)
    load_calendar(bad)
    bad.write_text(GOOD_CALENDAR.replace(*change))
    with pytest.raises(CalendarFileError, match=problem):
        load_calendar(bad)


# -- appeal clocks -------------------------------------------------------------------------------

@pytest.mark.parametrize(("regime", "urgency", "review", "hours", "cite"), [
    ("ma-reconsideration", "standard", "prospective", 30 * 24, "422.590(a)(1)"),
    ("ma-reconsideration", "expedited", "prospective", 72, "422.590(e)(1)"),
    ("medicaid-appeal", "standard", "prospective", 30 * 24, "438.408(b)(2)"),
    ("medicaid-appeal", "expedited", "prospective", 72, "438.408(b)(3)"),
    ("erisa-appeal", "standard", "prospective", 30 * 24, "2560.503-1(i)(2)(ii)"),
    ("erisa-appeal", "expedited", "prospective", 72, "2560.503-1(i)(2)(i)"),
    ("erisa-appeal", "standard", "retrospective", 60 * 24, "2560.503-1(i)(2)(iii)"),
    ("ca-imr", "standard", "prospective", 30 * 24, "4610.5(h)(3)"),
    ("tx-reconsideration", "standard", "prospective", 30 * 24, "19.2011"),
    ("workers-comp-default", "expedited", "prospective", 72, "conservative"),
])
def test_appeal_clocks_follow_their_regime(regime: str, urgency: str, review: str, hours: int, cite: str) -> None:
    received = dt.datetime(2027, 1, 12, 15, 0, tzinfo=dt.UTC)  # winter: no daylight-saving change within 60 days
    state = ENGINE.start_appeal(regime, ClockRequest("medicare_advantage", "TX", urgency, review, received))
    assert state.regime == regime
    assert state.due_at == received + dt.timedelta(hours=hours)
    assert cite in state.rule


def test_a_texas_reconsideration_of_a_stay_has_three_working_days() -> None:
    received = dt.datetime(2027, 1, 15, 15, 0, tzinfo=dt.UTC)  # a Friday: the weekend does not count
    state = ENGINE.start_appeal("tx-reconsideration", ClockRequest("workers_comp", "TX", "standard", "concurrent",
                                                                   received, "inpatient"))
    assert state.business_days == 3
    assert state.due_at is not None
    assert state.due_at > received + dt.timedelta(days=3)


def test_an_unknown_appeal_regime_is_refused() -> None:
    with pytest.raises(ClockError, match="no appeal clock"):
        ENGINE.start_appeal("nowhere", ClockRequest("commercial", "NY", "standard", "prospective",
                                                    dt.datetime(2027, 1, 12, tzinfo=dt.UTC)))
