"""The regulatory clock engine: each request's decision deadline, the rule that set it, and what
pends, answers and extensions do to it. Pure (no I/O); holiday calendars come in as data.

Conventions
-----------
* Every instant is an aware datetime; what is stored and returned is UTC. Days are counted on the
  regime's local calendar (its time zone), so daylight-saving changes and year ends fall where they
  fall locally.
* Hour clocks (72 hours) run in elapsed time from the instant of receipt.
* Calendar-day clocks (7, 15, 30 days; 14-day extensions and caps) run from the instant of receipt to
  the same local time of day that many days later: a request received 23:30 on 2 March in New York
  is due 23:30 on 9 March, whatever the clocks did on 8 March (168 elapsed hours would end at 00:30
  on the 10th). A local time that does not exist on the due day (skipped by the spring change) is
  read with the offset before the change.
* A business-day clock counts days after the (effective) day of receipt that are neither weekend
  days nor holidays of the regime's calendar, and is due at the end of the last one
  (23:59:59 local time).
* Calendars answer only for the years they cover; a day outside them is refused
  (:class:`CalendarRangeError`), never silently treated as a business day.
* At risk is measured over the clock itself: from receipt (or deemed receipt, e.g. after
  California's 5:30 pm cut-off, or the receipt of information that restarts the period) to the
  deadline, less any time the clock was tolled.
* California workers' comp: a request received after 5:30 pm Pacific, or on a day that is not a
  business day, counts as received on the next business day (8 CCR 9792.9.1).

Regimes (``regime`` ids are stored with every deadline)
------------------------------------------------------
``cms-0057-f``        Medicare Advantage and Medicaid managed care: 72 hours expedited, 7 calendar
                      days standard (42 CFR 422.568(b), 422.572(a); 438.210(d); CMS-0057-F); 30
                      days retrospective. A pend leaves the clock running; one extension of up to 14
                      days, only when the enrollee asks or the plan justifies a need for information
                      in the enrollee's interest, with written notice (422.568(b)(1), 422.572(b);
                      438.210(d)(1)(ii)). Medicaid: a missed deadline is a deemed adverse decision
                      (438.404(c)(5)).
``erisa-2560.503-1``  Commercial group health plans (29 CFR 2560.503-1(f)): urgent 72 hours, and if
                      the urgent claim is incomplete the claimant has at least 48 hours to answer and
                      the plan decides within 48 hours of the earlier of the answer or the end of that
                      time; pre-service 15 days, tolled from the request for information until the
                      answer, one 15-day extension for matters beyond the plan's control with notice
                      before the period ends; post-service 30 days.
``ca-lc-4610``        California workers' comp (Labor Code 4610; 8 CCR 9792.9.1): prospective or
                      concurrent 5 business days from receipt of the request; a request for
                      information restarts the 5 business days from receipt of it, never beyond 14
                      calendar days from receipt of the request; expedited 72 hours; retrospective 30
                      days from receipt of the medical information. No extensions.
``tx-28-tac-134.600`` Texas workers' comp (28 TAC 134.600, 19.2009): 3 working days from receipt for
                      preauthorization and concurrent review, 1 working day for concurrent review of
                      an inpatient stay; working days per 28 TAC 102.3. Pends leave it unchanged.
``workers-comp-default`` Other states' workers' comp: 5 business days on the federal calendar, a
                      conservative placeholder until the state's rule is configured.

Appeal clocks (:meth:`ClockEngine.start_appeal`, from the appeal's receipt; the regime ids are those
of the appeal rights, ``services/review/policy/appeal-rights.yaml``)
---------------------------------------------------------------------------------------------------
``ma-reconsideration``   Medicare Advantage pre-service reconsideration: 30 calendar days (42 CFR
                         422.590(a)(1)); expedited 72 hours (422.590(e)(1)).
``medicaid-appeal``      Medicaid managed care plan appeal: 30 calendar days (42 CFR 438.408(b)(2));
                         expedited 72 hours (438.408(b)(3)).
``erisa-appeal``         ERISA internal appeal: pre-service 30 days (29 CFR 2560.503-1(i)(2)(ii)),
                         urgent care 72 hours ((i)(2)(i)), post-service 60 days ((i)(2)(iii)).
``ca-imr``               California workers' comp: the claims administrator's internal appeal is
                         optional (Labor Code 4610.5(h)(3)); decided within 30 days, 72 hours when
                         expedited (this platform's policy, never delaying IMR).
``tx-reconsideration``   Texas workers' comp reconsideration: 30 calendar days, 3 working days for a
                         concurrent review of an inpatient stay or when expedited (28 TAC 19.2011).
``workers-comp-default`` Other states: 30 calendar days, 72 hours when expedited (conservative).
Appeal clocks keep running while information is awaited and have no extension here.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

UTC = dt.UTC
END_OF_DAY = dt.time(23, 59, 59)
CA_CUTOFF = dt.time(17, 30)


class PendEffect(enum.StrEnum):
    UNCHANGED = "unchanged"  # the clock keeps running (CMS, Texas)
    TOLL = "toll"  # the clock stops until the answer (ERISA pre- and post-service)
    RESTART = "restart"  # the period starts again from the answer, within a cap (California)
    URGENT_INCOMPLETE = "urgent_incomplete"  # ERISA urgent: 48 h to answer, then 48 h to decide


class ClockError(ValueError):
    """A clock operation that makes no sense in the state the clock is in."""


class ExtensionRefused(ClockError):
    """The regime does not allow this extension; the message says why."""


class CalendarRangeError(ClockError):
    """A day outside the years a holiday calendar covers: refused rather than guessed."""


@dataclass(frozen=True)
class Calendar:
    """Non-business days of a jurisdiction besides weekends, the time zone days are counted in, and
    the years (inclusive) the calendar can answer for."""

    name: str
    time_zone: str
    holidays: frozenset[dt.date]
    first_year: int = dt.MINYEAR
    last_year: int = dt.MAXYEAR

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def covers(self, day: dt.date) -> bool:
        return self.first_year <= day.year <= self.last_year

    def is_business_day(self, day: dt.date) -> bool:
        if not self.covers(day):
            raise CalendarRangeError(f"the {self.name} holiday calendar covers {self.first_year}-{self.last_year}; "
                                     f"it cannot say whether {day.isoformat()} is a business day")
        return day.weekday() < 5 and day not in self.holidays

    def next_business_day(self, day: dt.date) -> dt.date:
        day += dt.timedelta(days=1)
        while not self.is_business_day(day):
            day += dt.timedelta(days=1)
        return day

    def add_business_days(self, day: dt.date, days: int) -> dt.date:
        """The ``days``-th business day after ``day``."""
        for _ in range(days):
            day = self.next_business_day(day)
        return day

    def end_of(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, END_OF_DAY, tzinfo=self.zone).astimezone(UTC)

    def add_days(self, at: dt.datetime, days: int) -> dt.datetime:
        """``days`` calendar days after ``at`` on this calendar's local clock (same local time of day)."""
        return add_local_days(at, days, self.zone)


def add_local_days(at: dt.datetime, days: int, zone: ZoneInfo) -> dt.datetime:
    """``days`` calendar days after ``at`` at the same wall-clock time in ``zone``, as UTC."""
    wall = _utc(at).astimezone(zone).replace(tzinfo=None) + dt.timedelta(days=days)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def wall_seconds(start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> float:
    """Seconds from ``start`` to ``end`` as the local wall clock in ``zone`` reads them (a day is always
    86,400 of them), so that a period tolled across a daylight-saving change resumes with the same
    days and local time of day left."""
    def wall(value: dt.datetime) -> dt.datetime:
        return _utc(value).astimezone(zone).replace(tzinfo=None)
    return (wall(end) - wall(start)).total_seconds()


def add_wall_seconds(at: dt.datetime, seconds: float, zone: ZoneInfo) -> dt.datetime:
    wall = _utc(at).astimezone(zone).replace(tzinfo=None) + dt.timedelta(seconds=seconds)
    return wall.replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class ClockRequest:
    line_of_business: str  # medicare_advantage | medicaid | commercial | workers_comp
    member_state: str
    urgency: str  # standard | expedited
    review_type: str  # prospective | concurrent | retrospective
    received_at: dt.datetime
    setting: str = ""  # "inpatient" for a concurrent review of an inpatient stay
    # Why the plan expedited a request the provider did not ask to expedite (domain/urgency.py);
    # recorded with the rule of an expedited clock.
    expedited_because: str = ""


@dataclass(frozen=True)
class ClockEvent:
    at: dt.datetime
    kind: str  # started, pended, information_received, extended
    rule: str
    due_at: dt.datetime | None


@dataclass(frozen=True)
class ClockState:
    regime: str
    rule: str  # the rule that set the current due time, citing its source
    due_at: dt.datetime | None  # None while tolled (the clock is stopped)
    received_at: dt.datetime
    pend_effect: PendEffect
    deemed_denial_on_miss: bool = False
    calendar: str = ""
    business_days: int = 0  # for business-day clocks: the period
    expedited: bool = False
    paused_at: dt.datetime | None = None
    remaining_s: float | None = None  # time left when tolled
    cap_at: dt.datetime | None = None  # California: never beyond 14 days from receipt
    extended: bool = False
    history: tuple[ClockEvent, ...] = field(default=())
    # When the period being counted started: the receipt, a deemed receipt (California's cut-off) or
    # the receipt of information that restarted it. None means the receipt.
    period_start: dt.datetime | None = None
    tolled_s: float = 0.0  # elapsed time the clock stood still (ERISA tolling), summed
    time_zone: str = "America/New_York"  # the local calendar its days are counted on

    @property
    def started_at(self) -> dt.datetime:
        return self.period_start or self.received_at

    @property
    def tolled(self) -> bool:
        return self.paused_at is not None and self.due_at is None

    def to_dict(self) -> dict[str, Any]:
        def ts(value: dt.datetime | None) -> str | None:
            return value.astimezone(UTC).isoformat() if value is not None else None
        return {"regime": self.regime, "rule": self.rule, "due_at": ts(self.due_at),
                "received_at": ts(self.received_at), "pend_effect": self.pend_effect.value,
                "deemed_denial_on_miss": self.deemed_denial_on_miss, "calendar": self.calendar,
                "business_days": self.business_days, "expedited": self.expedited, "paused_at": ts(self.paused_at),
                "remaining_s": self.remaining_s, "cap_at": ts(self.cap_at), "extended": self.extended,
                "period_start": ts(self.period_start), "tolled_s": self.tolled_s, "time_zone": self.time_zone,
                "history": [{"at": ts(e.at), "kind": e.kind, "rule": e.rule, "due_at": ts(e.due_at)}
                            for e in self.history]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClockState:
        def ts(value: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None
        received = ts(d["received_at"])
        if received is None:
            raise ValueError("a stored clock state without received_at")
        return cls(regime=d["regime"], rule=d["rule"], due_at=ts(d["due_at"]), received_at=received,
                   pend_effect=PendEffect(d["pend_effect"]), deemed_denial_on_miss=bool(d["deemed_denial_on_miss"]),
                   calendar=d["calendar"], business_days=int(d["business_days"]), expedited=bool(d["expedited"]),
                   paused_at=ts(d["paused_at"]), remaining_s=d["remaining_s"], cap_at=ts(d["cap_at"]),
                   extended=bool(d["extended"]), period_start=ts(d.get("period_start")),
                   tolled_s=float(d.get("tolled_s") or 0.0), time_zone=d.get("time_zone") or "America/New_York",
                   history=tuple(ClockEvent(ts(e["at"]) or received, e["kind"], e["rule"], ts(e["due_at"]))
                                 for e in d["history"]))


MA_EXTENSION_GROUNDS = frozenset({"enrollee_request", "information_needed_in_enrollee_interest"})
ERISA_EXTENSION_GROUNDS = frozenset({"beyond_plan_control", "information_needed"})


class ClockEngine:
    """Starts clocks and applies pends, answers and extensions per regime (see the module doc)."""

    # The local calendar each regime counts its days on. CMS and ERISA clocks count calendar days on
    # the federal calendar's clock (Eastern time); the states' on their own.
    REGIME_CALENDAR = {"cms-0057-f": "us-federal", "erisa-2560.503-1": "us-federal", "ca-lc-4610": "california",
                       "tx-28-tac-134.600": "texas", "workers-comp-default": "us-federal",
                       "ma-reconsideration": "us-federal", "medicaid-appeal": "us-federal",
                       "erisa-appeal": "us-federal", "ca-imr": "california", "tx-reconsideration": "texas"}

    def __init__(self, calendars: Mapping[str, Calendar]) -> None:
        for needed in ("us-federal", "california", "texas"):
            if needed not in calendars:
                raise ClockError(f"the {needed!r} holiday calendar is missing")
        self._calendars = dict(calendars)

    def calendar(self, name: str) -> Calendar:
        try:
            return self._calendars[name]
        except KeyError:
            raise ClockError(f"no holiday calendar for {name!r} (known: {', '.join(sorted(self._calendars))})") \
                from None

    # -- start ---------------------------------------------------------------------------------
    def start(self, req: ClockRequest) -> ClockState:
        """The clock of a new request; an expedited clock the plan chose records why in its rule."""
        state = self._start(req)
        if not (req.expedited_because and state.expedited):
            return state
        rule = f"{state.rule}; {req.expedited_because}"
        started = state.history[0]
        return replace(state, rule=rule, history=(ClockEvent(started.at, started.kind, rule, started.due_at),
                                                  *state.history[1:]))

    def _start(self, req: ClockRequest) -> ClockState:
        received = _utc(req.received_at)
        expedited = req.urgency == "expedited"
        lob, state, review = req.line_of_business, req.member_state.upper(), req.review_type
        if lob in ("medicare_advantage", "medicaid"):
            medicaid = lob == "medicaid"
            cite = "42 CFR 438.210(d)" if medicaid else "42 CFR 422.568(b), 422.572(a)"
            if review == "retrospective":
                return self._days("cms-0057-f", received, 30, PendEffect.UNCHANGED,
                                  "retrospective: 30 calendar days from receipt", deemed=medicaid)
            if expedited:
                return self._hours("cms-0057-f", received, 72, PendEffect.UNCHANGED,
                                   f"expedited: 72 hours from receipt ({cite}; CMS-0057-F)", deemed=medicaid,
                                   expedited=True)
            return self._days("cms-0057-f", received, 7, PendEffect.UNCHANGED,
                              f"standard: 7 calendar days from receipt ({cite}; CMS-0057-F)", deemed=medicaid)
        if lob == "commercial":
            if review == "retrospective":
                return self._days("erisa-2560.503-1", received, 30, PendEffect.TOLL,
                                  "post-service claim: 30 days (29 CFR 2560.503-1(f)(2)(iii)(B))")
            if expedited:
                return self._hours("erisa-2560.503-1", received, 72, PendEffect.URGENT_INCOMPLETE,
                                   "urgent care claim: 72 hours from receipt (29 CFR 2560.503-1(f)(2)(i))",
                                   expedited=True)
            return self._days("erisa-2560.503-1", received, 15, PendEffect.TOLL,
                              "pre-service claim: 15 days from receipt (29 CFR 2560.503-1(f)(2)(iii)(A))")
        if lob == "workers_comp" and state == "CA":
            return self._california(received, expedited, review)
        if lob == "workers_comp" and state == "TX":
            days = 1 if review == "concurrent" and req.setting == "inpatient" else 3
            what = ("concurrent review of an inpatient stay: 1 working day" if days == 1 else
                    f"{'concurrent review' if review == 'concurrent' else 'preauthorization'}: 3 working days")
            return self._business("tx-28-tac-134.600", received, received, days, PendEffect.UNCHANGED,
                                  f"{what} from receipt (28 TAC 134.600, 19.2009; working days per 28 TAC 102.3)")
        if lob == "workers_comp":
            return self._business("workers-comp-default", received, received, 5, PendEffect.UNCHANGED,
                                  f"no rule configured for {state or 'this state'}'s workers' comp: 5 business days "
                                  "(conservative default)")
        raise ClockError(f"no regime for line of business {lob!r}")

    def _california(self, received: dt.datetime, expedited: bool, review: str) -> ClockState:
        if expedited:
            return self._hours("ca-lc-4610", received, 72, PendEffect.UNCHANGED,
                               "expedited: 72 hours from receipt (Labor Code 4610(i)(2); 8 CCR 9792.9.1(c)(4))",
                               expedited=True)
        if review == "retrospective":
            return self._days("ca-lc-4610", received, 30, PendEffect.UNCHANGED,
                              "retrospective: 30 days from receipt of the medical information "
                              "(Labor Code 4610(i)(3); 8 CCR 9792.9.1(d))")
        effective = self._ca_effective(received)
        state = self._business("ca-lc-4610", received, effective, 5, PendEffect.RESTART,
                               "prospective/concurrent: 5 business days from receipt of the request "
                               "(Labor Code 4610(i)(1); 8 CCR 9792.9.1(c)(3))" + self._cutoff_note(received, effective))
        return replace(state, cap_at=self.calendar("california").add_days(received, 14))

    def _ca_effective(self, at: dt.datetime) -> dt.datetime:
        """8 CCR 9792.9.1: after 5:30 pm Pacific, or on a non-business day, the next business day."""
        cal = self.calendar("california")
        local = at.astimezone(cal.zone)
        if cal.is_business_day(local.date()) and local.time() <= CA_CUTOFF:
            return at
        day = cal.next_business_day(local.date())
        return dt.datetime.combine(day, dt.time(8, 0), tzinfo=cal.zone).astimezone(UTC)

    def _cutoff_note(self, received: dt.datetime, effective: dt.datetime) -> str:
        if effective == received:
            return ""
        cal = self.calendar("california")
        return (f"; received {received.astimezone(cal.zone):%a %Y-%m-%d %H:%M %Z}, after the 5:30 pm cut-off or "
                f"on a non-business day, so counted from {effective.astimezone(cal.zone):%a %Y-%m-%d}")

    def _zone_of(self, regime: str) -> str:
        return self.calendar(self.REGIME_CALENDAR[regime]).time_zone

    def _hours(self, regime: str, received: dt.datetime, hours: int, effect: PendEffect, rule: str, *,
               deemed: bool = False, expedited: bool = False) -> ClockState:
        """An elapsed-time clock: ``hours`` real hours whatever the local clocks do."""
        due = received + dt.timedelta(hours=hours)
        return ClockState(regime=regime, rule=rule, due_at=due, received_at=received, pend_effect=effect,
                          deemed_denial_on_miss=deemed, expedited=expedited, time_zone=self._zone_of(regime),
                          history=(ClockEvent(received, "started", rule, due),))

    def _days(self, regime: str, received: dt.datetime, days: int, effect: PendEffect, rule: str, *,
              deemed: bool = False) -> ClockState:
        """A calendar-day clock, counted on the regime's local calendar."""
        zone = self._zone_of(regime)
        due = add_local_days(received, days, ZoneInfo(zone))
        return ClockState(regime=regime, rule=rule, due_at=due, received_at=received, pend_effect=effect,
                          deemed_denial_on_miss=deemed, time_zone=zone,
                          history=(ClockEvent(received, "started", rule, due),))

    def _business(self, regime: str, received: dt.datetime, effective: dt.datetime, days: int,
                  effect: PendEffect, rule: str) -> ClockState:
        calendar = self.REGIME_CALENDAR[regime]
        cal = self.calendar(calendar)
        due = cal.end_of(cal.add_business_days(effective.astimezone(cal.zone).date(), days))
        return ClockState(regime=regime, rule=rule, due_at=due, received_at=received, pend_effect=effect,
                          calendar=calendar, business_days=days, time_zone=cal.time_zone,
                          period_start=effective if effective != received else None,
                          history=(ClockEvent(received, "started", rule, due),))

    # -- appeals -------------------------------------------------------------------------------
    def start_appeal(self, regime: str, req: ClockRequest) -> ClockState:
        """The decision clock of an appeal received at ``req.received_at`` under the appeal regime
        ``regime`` (see the module doc); a pend leaves it running."""
        received = _utc(req.received_at)
        expedited = req.urgency == "expedited"
        inpatient = req.review_type == "concurrent" and req.setting == "inpatient"
        if regime in ("ma-reconsideration", "medicaid-appeal"):
            ma = regime == "ma-reconsideration"
            if expedited:
                cite = "42 CFR 422.590(e)(1)" if ma else "42 CFR 438.408(b)(3)"
                return self._hours(regime, received, 72, PendEffect.UNCHANGED,
                                   f"expedited appeal: 72 hours from receipt ({cite})", expedited=True)
            cite = "42 CFR 422.590(a)(1)" if ma else "42 CFR 438.408(b)(2)"
            return self._days(regime, received, 30, PendEffect.UNCHANGED,
                              f"standard appeal: 30 calendar days from receipt ({cite})")
        if regime == "erisa-appeal":
            if expedited:
                return self._hours(regime, received, 72, PendEffect.UNCHANGED,
                                   "urgent care appeal: 72 hours from receipt (29 CFR 2560.503-1(i)(2)(i))",
                                   expedited=True)
            if req.review_type == "retrospective":
                return self._days(regime, received, 60, PendEffect.UNCHANGED,
                                  "post-service appeal: 60 days from receipt (29 CFR 2560.503-1(i)(2)(iii))")
            return self._days(regime, received, 30, PendEffect.UNCHANGED,
                              "pre-service appeal: 30 days from receipt (29 CFR 2560.503-1(i)(2)(ii))")
        if regime == "tx-reconsideration":
            if expedited or inpatient:
                return self._business(regime, received, received, 3, PendEffect.UNCHANGED,
                                      "reconsideration of an inpatient stay or expedited: 3 working days from receipt "
                                      "(28 TAC 19.2011; working days per 28 TAC 102.3)")
            return self._days(regime, received, 30, PendEffect.UNCHANGED,
                              "reconsideration: 30 calendar days from receipt (28 TAC 19.2011)")
        if regime in ("ca-imr", "workers-comp-default"):
            what = ("internal appeal (optional, Labor Code 4610.5(h)(3); independent medical review is not delayed)"
                    if regime == "ca-imr" else "appeal (no state rule configured: conservative default)")
            if expedited:
                return self._hours(regime, received, 72, PendEffect.UNCHANGED,
                                   f"expedited {what}: 72 hours from receipt", expedited=True)
            return self._days(regime, received, 30, PendEffect.UNCHANGED, f"{what}: 30 calendar days from receipt")
        raise ClockError(f"no appeal clock for regime {regime!r}")

    @staticmethod
    def stop(state: ClockState, at: dt.datetime, reason: str) -> ClockState:
        """The request was withdrawn: the clock stops for good (no due time, nothing at risk)."""
        at = _utc(at)
        return replace(_with(state, at, "stopped", f"{reason}: the clock stops", None, paused_at=at),
                       remaining_s=None)

    # -- pends and answers ----------------------------------------------------------------------
    def pend(self, state: ClockState, at: dt.datetime, reason: str = "information requested") -> ClockState:
        at = _utc(at)
        if state.paused_at is not None:
            raise ClockError("the clock is already waiting for information")
        if state.pend_effect is PendEffect.UNCHANGED:
            rule = f"{reason}: the clock keeps running ({_unchanged_cite(state.regime)})"
            return _with(state, at, "pended", rule, state.due_at, paused_at=at)
        if state.pend_effect is PendEffect.TOLL:
            due = _running(state)
            # Days and local time of day left, so the period resumes with them after a DST change.
            remaining = max(0.0, wall_seconds(at, due, ZoneInfo(state.time_zone)))
            rule = (f"{reason}: the period is tolled from the request for information until the answer "
                    "(29 CFR 2560.503-1(f)(4))")
            return replace(_with(state, at, "pended", rule, None, paused_at=at), remaining_s=remaining)
        if state.pend_effect is PendEffect.URGENT_INCOMPLETE:
            due = at + dt.timedelta(hours=96)
            rule = (f"{reason} (urgent claim incomplete): at least 48 hours to answer, then a decision within "
                    "48 hours of the answer or of the end of that time (29 CFR 2560.503-1(f)(2)(i))")
            return _with(state, at, "pended", rule, due, paused_at=at)
        # California: the period restarts when the information arrives; until then the 14-day cap holds.
        rule = (f"{reason}: 5 business days from receipt of the information, never beyond 14 days from "
                "the request (8 CCR 9792.9.1(f)(1))")
        return _with(state, at, "pended", rule, _cap(state), paused_at=at)

    def information_received(self, state: ClockState, at: dt.datetime) -> ClockState:
        at = _utc(at)
        paused_at = state.paused_at
        if paused_at is None:
            raise ClockError("the clock is not waiting for information")
        if state.pend_effect is PendEffect.UNCHANGED:
            return _with(state, at, "information_received",
                         f"information received: the deadline is unchanged ({_unchanged_cite(state.regime)})",
                         state.due_at, paused_at=None)
        if state.pend_effect is PendEffect.TOLL:
            if state.remaining_s is None:
                raise ClockError("a tolled clock without the time it had left")
            due = add_wall_seconds(at, state.remaining_s, ZoneInfo(state.time_zone))
            days, rest = divmod(state.remaining_s, 86400)
            left = f"{int(days)} days {rest / 3600:.1f} hours" if days else f"{rest / 3600:.1f} hours"
            resumed = _with(state, at, "information_received",
                            f"information received: the tolled period resumes with {left} left "
                            "(29 CFR 2560.503-1(f)(4))", due, paused_at=None)
            return replace(resumed, remaining_s=None,
                           tolled_s=state.tolled_s + max(0.0, (at - paused_at).total_seconds()))
        if state.pend_effect is PendEffect.URGENT_INCOMPLETE:
            answer_by = paused_at + dt.timedelta(hours=48)
            due = min(at, answer_by) + dt.timedelta(hours=48)
            return _with(state, at, "information_received",
                         "urgent claim completed: decision within 48 hours of the answer "
                         "(29 CFR 2560.503-1(f)(2)(i))", due, paused_at=None)
        cap = _cap(state)
        effective = self._ca_effective(at)
        cal = self.calendar("california")
        due = cal.end_of(cal.add_business_days(effective.astimezone(cal.zone).date(), state.business_days))
        if due > cap:
            answered = _with(state, at, "information_received",
                             "information received: 5 business days would pass the 14-day limit, so due 14 days "
                             "from the request (8 CCR 9792.9.1(f)(1))", cap, paused_at=None)
        else:
            answered = _with(state, at, "information_received",
                             "information received: 5 business days from its receipt (8 CCR 9792.9.1(f)(1))"
                             + self._cutoff_note(at, effective), due, paused_at=None)
        return replace(answered, period_start=effective)  # the period restarted from the information

    # -- extensions ----------------------------------------------------------------------------
    def extend(self, state: ClockState, at: dt.datetime, ground: str, notice_sent: bool) -> ClockState:
        at = _utc(at)
        if state.regime == "cms-0057-f":
            if ground not in MA_EXTENSION_GROUNDS:
                raise ExtensionRefused(f"{ground!r} is not a permitted ground: only an enrollee's request, or a "
                                       "justified need for information in the enrollee's interest "
                                       "(42 CFR 422.568(b)(1)(i), 422.572(b); 438.210(d)(1)(ii))")
            if not notice_sent:
                raise ExtensionRefused("an extension needs written notice to the enrollee of the reasons and of "
                                       "the right to file an expedited grievance (42 CFR 422.568(b)(1)(ii))")
            return self._extend_once(state, at, 14, f"extended 14 days on the ground {ground} with notice "
                                                    "(42 CFR 422.568(b)(1), 422.572(b))")
        if state.regime == "erisa-2560.503-1":
            if state.expedited:
                raise ExtensionRefused("urgent care claims have no extension (29 CFR 2560.503-1(f)(2)(i))")
            if ground not in ERISA_EXTENSION_GROUNDS:
                raise ExtensionRefused(f"{ground!r} is not a permitted ground: only matters beyond the plan's "
                                       "control (29 CFR 2560.503-1(f)(2)(iii))")
            if not notice_sent:
                raise ExtensionRefused("an extension needs notice to the claimant before the initial period ends "
                                       "(29 CFR 2560.503-1(f)(2)(iii))")
            if state.due_at is not None and at > state.due_at:
                raise ExtensionRefused("the initial period has already ended")
            return self._extend_once(state, at, 15, "extended 15 days for matters beyond the plan's control, "
                                                    "notice given (29 CFR 2560.503-1(f)(2)(iii))")
        raise ExtensionRefused(f"the {state.regime} regime allows no extension of the decision deadline")

    def _extend_once(self, state: ClockState, at: dt.datetime, days: int, rule: str) -> ClockState:
        if state.extended:
            raise ExtensionRefused("the regime allows one extension, and it was taken")
        if state.due_at is None:
            raise ExtensionRefused("the clock is tolled; extend it once it runs again")
        due = add_local_days(state.due_at, days, ZoneInfo(state.time_zone))
        return replace(_with(state, at, "extended", rule, due), extended=True)

    # -- monitoring ----------------------------------------------------------------------------
    @staticmethod
    def at_risk_from(state: ClockState, fraction: float = 0.2) -> dt.datetime | None:
        """The instant from which less than ``fraction`` of the clock's own time is left: the period
        from its start (receipt, deemed receipt or restart) to the deadline, less tolled time. None
        while the clock is tolled (a stopped clock is never at risk)."""
        if state.due_at is None:
            return None
        total = max(0.0, (state.due_at - state.started_at).total_seconds() - state.tolled_s)
        return state.due_at - dt.timedelta(seconds=fraction * total)

    @classmethod
    def at_risk(cls, state: ClockState, now: dt.datetime, fraction: float = 0.2) -> bool:
        """Less than ``fraction`` of the clock's time is left (never while tolled)."""
        threshold = cls.at_risk_from(state, fraction)
        return threshold is not None and _utc(now) > threshold

    @staticmethod
    def is_missed(state: ClockState, now: dt.datetime) -> bool:
        return state.due_at is not None and _utc(now) > state.due_at


def _running(state: ClockState) -> dt.datetime:
    if state.due_at is None:
        raise ClockError("the clock is tolled")
    return state.due_at


def _cap(state: ClockState) -> dt.datetime:
    if state.cap_at is None:
        raise ClockError(f"a {state.regime} clock without its 14-day cap")
    return state.cap_at


def _with(state: ClockState, at: dt.datetime, kind: str, rule: str, due: dt.datetime | None, *,
          paused_at: dt.datetime | object | None = ...) -> ClockState:
    changes: dict[str, Any] = {"rule": rule, "due_at": due,
                               "history": (*state.history, ClockEvent(at, kind, rule, due))}
    if paused_at is not ...:
        changes["paused_at"] = paused_at
    return replace(state, **changes)


def _unchanged_cite(regime: str) -> str:
    return {"cms-0057-f": "CMS-0057-F; only a permitted extension moves it",
            "tx-28-tac-134.600": "28 TAC 134.600",
            "ca-lc-4610": "Labor Code 4610(i)(2)"}.get(regime, regime)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ClockError("times must carry a time zone")
    return value.astimezone(UTC)
