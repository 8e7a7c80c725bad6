"""The regulatory clock engine: each request's decision deadline, the rule that set it, and what
pends, answers and extensions do to it. Pure (no I/O); holiday calendars come in as data.

Conventions
-----------
* Every instant is an aware datetime; what is stored and returned is UTC. Business days are counted
  in the regime's time zone, so daylight-saving changes and year ends fall where they fall locally.
* Hour and calendar-day clocks run from the instant of receipt (7 calendar days = 168 hours).
* A business-day clock counts days after the (effective) day of receipt that are neither weekend
  days nor holidays of the regime's calendar, and is due at the end of the last one
  (23:59:59 local time).
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


@dataclass(frozen=True)
class Calendar:
    """Non-business days of a jurisdiction besides weekends, and the time zone days are counted in."""

    name: str
    time_zone: str
    holidays: frozenset[dt.date]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_business_day(self, day: dt.date) -> bool:
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


@dataclass(frozen=True)
class ClockRequest:
    line_of_business: str  # medicare_advantage | medicaid | commercial | workers_comp
    member_state: str
    urgency: str  # standard | expedited
    review_type: str  # prospective | concurrent | retrospective
    received_at: dt.datetime
    setting: str = ""  # "inpatient" for a concurrent review of an inpatient stay


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
                "history": [{"at": ts(e.at), "kind": e.kind, "rule": e.rule, "due_at": ts(e.due_at)}
                            for e in self.history]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClockState:
        def ts(value: Any) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None
        received = ts(d["received_at"])
        assert received is not None
        return cls(regime=d["regime"], rule=d["rule"], due_at=ts(d["due_at"]), received_at=received,
                   pend_effect=PendEffect(d["pend_effect"]), deemed_denial_on_miss=bool(d["deemed_denial_on_miss"]),
                   calendar=d["calendar"], business_days=int(d["business_days"]), expedited=bool(d["expedited"]),
                   paused_at=ts(d["paused_at"]), remaining_s=d["remaining_s"], cap_at=ts(d["cap_at"]),
                   extended=bool(d["extended"]),
                   history=tuple(ClockEvent(ts(e["at"]) or received, e["kind"], e["rule"], ts(e["due_at"]))
                                 for e in d["history"]))


MA_EXTENSION_GROUNDS = frozenset({"enrollee_request", "information_needed_in_enrollee_interest"})
ERISA_EXTENSION_GROUNDS = frozenset({"beyond_plan_control", "information_needed"})


class ClockEngine:
    """Starts clocks and applies pends, answers and extensions per regime (see the module doc)."""

    def __init__(self, calendars: Mapping[str, Calendar]) -> None:
        for needed in ("us-federal", "california", "texas"):
            if needed not in calendars:
                raise ClockError(f"the {needed!r} holiday calendar is missing")
        self._calendars = dict(calendars)

    def calendar(self, name: str) -> Calendar:
        return self._calendars[name]

    # -- start ---------------------------------------------------------------------------------
    def start(self, req: ClockRequest) -> ClockState:
        received = _utc(req.received_at)
        expedited = req.urgency == "expedited"
        lob, state, review = req.line_of_business, req.member_state.upper(), req.review_type
        if lob in ("medicare_advantage", "medicaid"):
            medicaid = lob == "medicaid"
            cite = "42 CFR 438.210(d)" if medicaid else "42 CFR 422.568(b), 422.572(a)"
            if review == "retrospective":
                return self._hours("cms-0057-f", received, 30 * 24, PendEffect.UNCHANGED,
                                   "retrospective: 30 calendar days from receipt", deemed=medicaid)
            if expedited:
                return self._hours("cms-0057-f", received, 72, PendEffect.UNCHANGED,
                                   f"expedited: 72 hours from receipt ({cite}; CMS-0057-F)", deemed=medicaid,
                                   expedited=True)
            return self._hours("cms-0057-f", received, 7 * 24, PendEffect.UNCHANGED,
                               f"standard: 7 calendar days from receipt ({cite}; CMS-0057-F)", deemed=medicaid)
        if lob == "commercial":
            if review == "retrospective":
                return self._hours("erisa-2560.503-1", received, 30 * 24, PendEffect.TOLL,
                                   "post-service claim: 30 days (29 CFR 2560.503-1(f)(2)(iii)(B))")
            if expedited:
                return self._hours("erisa-2560.503-1", received, 72, PendEffect.URGENT_INCOMPLETE,
                                   "urgent care claim: 72 hours from receipt (29 CFR 2560.503-1(f)(2)(i))",
                                   expedited=True)
            return self._hours("erisa-2560.503-1", received, 15 * 24, PendEffect.TOLL,
                               "pre-service claim: 15 days from receipt (29 CFR 2560.503-1(f)(2)(iii)(A))")
        if lob == "workers_comp" and state == "CA":
            return self._california(received, expedited, review)
        if lob == "workers_comp" and state == "TX":
            days = 1 if review == "concurrent" and req.setting == "inpatient" else 3
            what = ("concurrent review of an inpatient stay: 1 working day" if days == 1 else
                    f"{'concurrent review' if review == 'concurrent' else 'preauthorization'}: 3 working days")
            return self._business("tx-28-tac-134.600", "texas", received, received, days, PendEffect.UNCHANGED,
                                  f"{what} from receipt (28 TAC 134.600, 19.2009; working days per 28 TAC 102.3)")
        if lob == "workers_comp":
            return self._business("workers-comp-default", "us-federal", received, received, 5, PendEffect.UNCHANGED,
                                  f"no rule configured for {state or 'this state'}'s workers' comp: 5 business days "
                                  "(conservative default)")
        raise ClockError(f"no regime for line of business {lob!r}")

    def _california(self, received: dt.datetime, expedited: bool, review: str) -> ClockState:
        if expedited:
            return self._hours("ca-lc-4610", received, 72, PendEffect.UNCHANGED,
                               "expedited: 72 hours from receipt (Labor Code 4610(i)(2); 8 CCR 9792.9.1(c)(4))",
                               expedited=True)
        if review == "retrospective":
            return self._hours("ca-lc-4610", received, 30 * 24, PendEffect.UNCHANGED,
                               "retrospective: 30 days from receipt of the medical information "
                               "(Labor Code 4610(i)(3); 8 CCR 9792.9.1(d))")
        effective = self._ca_effective(received)
        state = self._business("ca-lc-4610", "california", received, effective, 5, PendEffect.RESTART,
                               "prospective/concurrent: 5 business days from receipt of the request "
                               "(Labor Code 4610(i)(1); 8 CCR 9792.9.1(c)(3))" + self._cutoff_note(received, effective))
        return replace(state, cap_at=received + dt.timedelta(days=14))

    def _ca_effective(self, at: dt.datetime) -> dt.datetime:
        """8 CCR 9792.9.1: after 5:30 pm Pacific, or on a non-business day, the next business day."""
        cal = self._calendars["california"]
        local = at.astimezone(cal.zone)
        if cal.is_business_day(local.date()) and local.time() <= CA_CUTOFF:
            return at
        day = cal.next_business_day(local.date())
        return dt.datetime.combine(day, dt.time(8, 0), tzinfo=cal.zone).astimezone(UTC)

    def _cutoff_note(self, received: dt.datetime, effective: dt.datetime) -> str:
        if effective == received:
            return ""
        cal = self._calendars["california"]
        return (f"; received {received.astimezone(cal.zone):%a %Y-%m-%d %H:%M %Z}, after the 5:30 pm cut-off or "
                f"on a non-business day, so counted from {effective.astimezone(cal.zone):%a %Y-%m-%d}")

    def _hours(self, regime: str, received: dt.datetime, hours: int, effect: PendEffect, rule: str, *,
               deemed: bool = False, expedited: bool = False) -> ClockState:
        due = received + dt.timedelta(hours=hours)
        return ClockState(regime=regime, rule=rule, due_at=due, received_at=received, pend_effect=effect,
                          deemed_denial_on_miss=deemed, expedited=expedited,
                          history=(ClockEvent(received, "started", rule, due),))

    def _business(self, regime: str, calendar: str, received: dt.datetime, effective: dt.datetime, days: int,
                  effect: PendEffect, rule: str) -> ClockState:
        cal = self._calendars[calendar]
        due = cal.end_of(cal.add_business_days(effective.astimezone(cal.zone).date(), days))
        return ClockState(regime=regime, rule=rule, due_at=due, received_at=received, pend_effect=effect,
                          calendar=calendar, business_days=days,
                          history=(ClockEvent(received, "started", rule, due),))

    # -- pends and answers ----------------------------------------------------------------------
    def pend(self, state: ClockState, at: dt.datetime, reason: str = "information requested") -> ClockState:
        at = _utc(at)
        if state.paused_at is not None:
            raise ClockError("the clock is already waiting for information")
        if state.pend_effect is PendEffect.UNCHANGED:
            rule = f"{reason}: the clock keeps running ({_unchanged_cite(state.regime)})"
            return _with(state, at, "pended", rule, state.due_at, paused_at=at)
        if state.pend_effect is PendEffect.TOLL:
            assert state.due_at is not None
            remaining = max(0.0, (state.due_at - at).total_seconds())
            rule = (f"{reason}: the period is tolled from the request for information until the answer "
                    "(29 CFR 2560.503-1(f)(4))")
            return replace(_with(state, at, "pended", rule, None, paused_at=at), remaining_s=remaining)
        if state.pend_effect is PendEffect.URGENT_INCOMPLETE:
            due = at + dt.timedelta(hours=96)
            rule = (f"{reason} (urgent claim incomplete): at least 48 hours to answer, then a decision within "
                    "48 hours of the answer or of the end of that time (29 CFR 2560.503-1(f)(2)(i))")
            return _with(state, at, "pended", rule, due, paused_at=at)
        # California: the period restarts when the information arrives; until then the 14-day cap holds.
        assert state.cap_at is not None
        rule = (f"{reason}: 5 business days from receipt of the information, never beyond 14 days from "
                "the request (8 CCR 9792.9.1(f)(1))")
        return _with(state, at, "pended", rule, state.cap_at, paused_at=at)

    def information_received(self, state: ClockState, at: dt.datetime) -> ClockState:
        at = _utc(at)
        if state.paused_at is None:
            raise ClockError("the clock is not waiting for information")
        if state.pend_effect is PendEffect.UNCHANGED:
            return _with(state, at, "information_received",
                         f"information received: the deadline is unchanged ({_unchanged_cite(state.regime)})",
                         state.due_at, paused_at=None)
        if state.pend_effect is PendEffect.TOLL:
            assert state.remaining_s is not None
            due = at + dt.timedelta(seconds=state.remaining_s)
            hours = state.remaining_s / 3600
            return replace(_with(state, at, "information_received",
                                 f"information received: the tolled period resumes with {hours:.1f} hours left "
                                 "(29 CFR 2560.503-1(f)(4))", due, paused_at=None), remaining_s=None)
        if state.pend_effect is PendEffect.URGENT_INCOMPLETE:
            answer_by = state.paused_at + dt.timedelta(hours=48)
            due = min(at, answer_by) + dt.timedelta(hours=48)
            return _with(state, at, "information_received",
                         "urgent claim completed: decision within 48 hours of the answer "
                         "(29 CFR 2560.503-1(f)(2)(i))", due, paused_at=None)
        assert state.cap_at is not None
        effective = self._ca_effective(at)
        cal = self._calendars["california"]
        due = cal.end_of(cal.add_business_days(effective.astimezone(cal.zone).date(), state.business_days))
        if due > state.cap_at:
            return _with(state, at, "information_received",
                         "information received: 5 business days would pass the 14-day limit, so due 14 days "
                         "from the request (8 CCR 9792.9.1(f)(1))", state.cap_at, paused_at=None)
        return _with(state, at, "information_received",
                     "information received: 5 business days from its receipt (8 CCR 9792.9.1(f)(1))"
                     + self._cutoff_note(at, effective), due, paused_at=None)

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
        extended = _with(state, at, "extended", rule, state.due_at + dt.timedelta(days=days))
        return replace(extended, extended=True)

    # -- monitoring ----------------------------------------------------------------------------
    @staticmethod
    def at_risk(state: ClockState, now: dt.datetime, fraction: float = 0.2) -> bool:
        """Less than ``fraction`` of the time from receipt to deadline is left (never while tolled)."""
        if state.due_at is None:
            return False
        total = (state.due_at - state.received_at).total_seconds()
        return (state.due_at - _utc(now)).total_seconds() < fraction * total

    @staticmethod
    def is_missed(state: ClockState, now: dt.datetime) -> bool:
        return state.due_at is not None and _utc(now) > state.due_at


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
