"""Holiday calendars for business-day clocks, for any year a calendar declares it covers.

Each calendar is a YAML file under ``services/review/calendars/``: the holidays come from the
``holidays`` package (computed by rule for every year, without its own weekend shifting), narrowed to
the ones the governing statute names (``keep``), completed by rules for any it lacks (``rules``),
moved off weekends by the statute's own observance rule (``observed``, with per-holiday exceptions),
and corrected by dated one-off entries (``add``, ``remove``: an executive order closing offices, a
published schedule that differs). A day outside ``years`` is refused by the calendar, never guessed.

Files are read strictly: an unknown key, a bad date, an unknown time zone or a ``keep`` name the
package does not know (say, after a rename) names the file and the entry.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import AfterValidator, Field, model_validator

from services.common.config_files import ConfigFileError, Date, FileModel, Text, load_model
from services.review.domain.deadlines import Calendar

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "calendars"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SATURDAY_MOVES = {"none": 0, "friday": -1}
SUNDAY_MOVES = {"none": 0, "monday": 1}
RULE_SHAPE = "expected {name, month, day} or {name, month, weekday, nth}"


class CalendarFileError(ConfigFileError):
    """One problem in one calendar file: ``file.yaml: field: problem``."""


# -- the file's shape ------------------------------------------------------------------------------


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone") from None
    return value


def _month(value: int) -> int:
    if not 1 <= value <= 12:
        raise ValueError("1 to 12")
    return value


def _nth(value: int) -> int:
    if value not in (1, 2, 3, 4, -1):
        raise ValueError("1 to 4, or -1 for the last")
    return value


class Years(FileModel):
    first: int
    last: int

    @model_validator(mode="after")
    def _ordered(self) -> Years:
        if not 1900 < self.first <= self.last < 2200:
            raise ValueError(f"first and last must be years with first <= last (got {self.first!r}, {self.last!r})")
        return self


class Base(FileModel):
    """A calendar of the holidays package: country and, optionally, subdivision."""

    country: Text
    subdivision: Text | None = None


class Rule(FileModel):
    """A holiday the package lacks: a fixed day of a month, or the nth (or last) weekday of one."""

    name: Text
    month: Annotated[int, AfterValidator(_month)]
    day: int | None = None
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None = None
    nth: Annotated[int, AfterValidator(_nth)] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Rule:
        given = {k for k in ("day", "weekday", "nth") if getattr(self, k) is not None}
        if given not in ({"day"}, {"weekday", "nth"}):
            raise ValueError(RULE_SHAPE)
        return self


class Observed(FileModel):
    """Where a holiday falling on a weekend is observed."""

    saturday: Literal["none", "friday"]
    sunday: Literal["none", "monday"]


class ObservedException(FileModel):
    """One holiday's own weekend rule (either day, or both)."""

    saturday: Literal["none", "friday"] | None = None
    sunday: Literal["none", "monday"] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ObservedException:
        if self.saturday is None and self.sunday is None:
            raise ValueError("expected {saturday: ...} and/or {sunday: ...}")
        return self


class Dated(FileModel):
    date: Date
    name: Text


class CalendarFile(FileModel):
    name: Text
    time_zone: Annotated[Text, AfterValidator(_time_zone)]
    source: Text
    years: Years
    base: Base
    keep: Annotated[list[Text], Field(min_length=1)]
    rules: list[Rule] | None = None
    observed: Observed
    observed_exceptions: dict[str, ObservedException] | None = None
    add: list[Dated] | None = None
    remove: list[Dated] | None = None


# -- loading ---------------------------------------------------------------------------------------


def load_calendar(path: Path) -> Calendar:
    return _Reader(path).calendar(load_model(CalendarFile, path, CalendarFileError))


def load_calendars(directory: Path = DEFAULT_DIR) -> dict[str, Calendar]:
    calendars = [load_calendar(p) for p in sorted(directory.glob("*.yaml"))]
    return {c.name: c for c in calendars}


class _Reader:
    """The holidays a valid calendar file describes; what its shape cannot say is checked here."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> CalendarFileError:
        return CalendarFileError(self.path, where, problem)

    def calendar(self, doc: CalendarFile) -> Calendar:
        first, last = doc.years.first, doc.years.last
        days: dict[dt.date, str] = {}
        span = range(first - 1, last + 2)  # a holiday of next year can be observed on 31 December
        exceptions = doc.observed_exceptions or {}
        for name, day in [*self.base(doc.base, doc.keep, span), *self.rules(doc.rules or [], span)]:
            days.setdefault(self.observe(day, doc.observed, exceptions.get(name)), name)
        for i, entry in enumerate(doc.remove or []):
            if days.get(entry.date) != entry.name:
                raise self.fail(f"remove[{i}]", f"{entry.date.isoformat()} is not {entry.name!r} in this calendar")
            del days[entry.date]
        for entry in doc.add or []:
            days[entry.date] = entry.name
        return Calendar(name=doc.name, time_zone=doc.time_zone, holidays=frozenset(days),
                        first_year=first, last_year=last)

    def base(self, base: Base, keep: list[str], span: range) -> list[tuple[str, dt.date]]:
        described = base.model_dump(exclude_none=True)
        try:
            known = holidays.country_holidays(base.country, subdiv=base.subdivision, years=span, observed=False)
        except (NotImplementedError, KeyError, ValueError) as exc:
            raise self.fail("base", f"the holidays package has no calendar for {described}: {exc}") from None
        found: list[tuple[str, dt.date]] = []
        for day, names in sorted(known.items()):
            for name in str(names).split("; "):
                if name in keep:
                    found.append((name, day))
        missing = sorted(set(keep) - {name for name, _ in found})
        if missing:
            raise self.fail(f"keep[{keep.index(missing[0])}]",
                            f"{missing[0]!r} is not a holiday the holidays package "
                            f"{importlib.metadata.version('holidays')} knows for {described}")
        return found

    def rules(self, rules: list[Rule], span: range) -> list[tuple[str, dt.date]]:
        found = []
        for i, rule in enumerate(rules):
            for year in span:
                if rule.day is not None:
                    try:
                        day = dt.date(year, rule.month, rule.day)
                    except ValueError:
                        raise self.fail(f"rules[{i}].day", f"{rule.day!r} is not a day of month {rule.month}") \
                            from None
                elif rule.weekday is not None and rule.nth is not None:
                    day = self.nth_weekday(year, rule.month, rule.weekday, rule.nth)
                else:  # Rule's own shape check refuses this before it gets here
                    raise self.fail(f"rules[{i}]", RULE_SHAPE)
                found.append((rule.name, day))
        return found

    @staticmethod
    def nth_weekday(year: int, month: int, weekday: str, nth: int) -> dt.date:
        target = WEEKDAYS.index(weekday)
        if nth == -1:
            nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
            last = nxt - dt.timedelta(days=1)
            return last - dt.timedelta(days=(last.weekday() - target) % 7)
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(target - first.weekday()) % 7 + 7 * (nth - 1))

    @staticmethod
    def observe(day: dt.date, rule: Observed, exception: ObservedException | None) -> dt.date:
        """The day off for a holiday falling on ``day``, under the calendar's weekend rule."""
        saturday, sunday = rule.saturday, rule.sunday
        if exception is not None:
            saturday = exception.saturday or saturday
            sunday = exception.sunday or sunday
        if day.weekday() == 5:
            return day + dt.timedelta(days=SATURDAY_MOVES[saturday])
        if day.weekday() == 6:
            return day + dt.timedelta(days=SUNDAY_MOVES[sunday])
        return day
