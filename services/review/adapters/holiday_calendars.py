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
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml

from services.review.domain.deadlines import Calendar

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "calendars"
KEYS = frozenset({"name", "time_zone", "source", "years", "base", "keep", "rules", "observed",
                  "observed_exceptions", "add", "remove"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SATURDAY_MOVES = {"none": 0, "friday": -1}
SUNDAY_MOVES = {"none": 0, "monday": 1}


class CalendarFileError(ValueError):
    pass


def load_calendar(path: Path) -> Calendar:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError for 2026-02-30
        raise CalendarFileError(f"{path.name}: cannot read: {exc}") from exc
    return _Reader(path.name).calendar(doc)


def load_calendars(directory: Path = DEFAULT_DIR) -> dict[str, Calendar]:
    calendars = [load_calendar(p) for p in sorted(directory.glob("*.yaml"))]
    return {c.name: c for c in calendars}


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, problem: str) -> CalendarFileError:
        return CalendarFileError(f"{self.file}: {where}: {problem}")

    def calendar(self, doc: Any) -> Calendar:
        if not isinstance(doc, dict):
            raise CalendarFileError(f"{self.file}: expected a mapping")
        unknown = sorted(set(doc) - KEYS)
        if unknown:
            raise self.fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(KEYS))})")
        for key in ("name", "time_zone", "source"):
            if not isinstance(doc.get(key), str) or not doc[key].strip():
                raise self.fail(key, "required text")
        try:
            ZoneInfo(doc["time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail("time_zone", f"{doc['time_zone']!r} is not an IANA time zone") from None
        first, last = self.years(doc.get("years"))
        days: dict[dt.date, str] = {}
        span = range(first - 1, last + 2)  # a holiday of next year can be observed on 31 December
        base = self.base(doc.get("base"), doc.get("keep"), span)
        for name, day in [*base, *self.rules(doc.get("rules"), span)]:
            days.setdefault(self.observe(name, day, doc.get("observed"), doc.get("observed_exceptions")), name)
        for day, name in self.dated(doc.get("remove"), "remove"):
            if days.get(day) != name:
                raise self.fail("remove", f"{day.isoformat()} is not {name!r} in this calendar")
            del days[day]
        for day, name in self.dated(doc.get("add"), "add"):
            days[day] = name
        return Calendar(name=doc["name"], time_zone=doc["time_zone"], holidays=frozenset(days),
                        first_year=first, last_year=last)

    def years(self, value: Any) -> tuple[int, int]:
        if not isinstance(value, dict) or set(value) != {"first", "last"}:
            raise self.fail("years", "expected {first: YYYY, last: YYYY}")
        first, last = value["first"], value["last"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)) or not \
                1900 < first <= last < 2200:
            raise self.fail("years", f"first and last must be years with first <= last (got {first!r}, {last!r})")
        return first, last

    def base(self, value: Any, keep: Any, span: range) -> list[tuple[str, dt.date]]:
        if not isinstance(value, dict) or not set(value) <= {"country", "subdivision"} or "country" not in value:
            raise self.fail("base", "expected {country: XX, subdivision: YY (optional)} of the holidays package")
        if not isinstance(keep, list) or not keep or not all(isinstance(k, str) and k for k in keep):
            raise self.fail("keep", "a non-empty list of holiday names as the holidays package spells them")
        try:
            known = holidays.country_holidays(value["country"], subdiv=value.get("subdivision"), years=span,
                                              observed=False)
        except (NotImplementedError, KeyError, ValueError) as exc:
            raise self.fail("base", f"the holidays package has no calendar for {value}: {exc}") from None
        found: list[tuple[str, dt.date]] = []
        for day, names in sorted(known.items()):
            for name in str(names).split("; "):
                if name in keep:
                    found.append((name, day))
        missing = sorted(set(keep) - {name for name, _ in found})
        if missing:
            raise self.fail("keep", f"{missing[0]!r} is not a holiday the holidays package "
                                    f"{importlib.metadata.version('holidays')} knows for {value}")
        return found

    def rules(self, value: Any, span: range) -> list[tuple[str, dt.date]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail("rules", "a list of {name, month, day} or {name, month, weekday, nth}")
        found = []
        for i, rule in enumerate(value):
            where = f"rules[{i}]"
            if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
                raise self.fail(where, "expected {name, month, day} or {name, month, weekday, nth}")
            keys = set(rule) - {"name"}
            month = rule.get("month")
            if not isinstance(month, int) or not 1 <= month <= 12:
                raise self.fail(f"{where}.month", "1 to 12")
            for year in span:
                if keys == {"month", "day"}:
                    try:
                        day = dt.date(year, month, rule["day"])
                    except (TypeError, ValueError):
                        raise self.fail(f"{where}.day", f"{rule['day']!r} is not a day of month {month}") from None
                elif keys == {"month", "weekday", "nth"}:
                    day = self.nth_weekday(where, year, month, rule["weekday"], rule["nth"])
                else:
                    raise self.fail(where, "expected {name, month, day} or {name, month, weekday, nth}")
                found.append((rule["name"], day))
        return found

    def nth_weekday(self, where: str, year: int, month: int, weekday: Any, nth: Any) -> dt.date:
        if weekday not in WEEKDAYS:
            raise self.fail(f"{where}.weekday", f"one of {', '.join(WEEKDAYS)}")
        if nth not in (1, 2, 3, 4, -1):
            raise self.fail(f"{where}.nth", "1 to 4, or -1 for the last")
        target = WEEKDAYS.index(weekday)
        if nth == -1:
            nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
            last = nxt - dt.timedelta(days=1)
            return last - dt.timedelta(days=(last.weekday() - target) % 7)
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(target - first.weekday()) % 7 + 7 * (nth - 1))

    def observe(self, name: str, day: dt.date, rule: Any, exceptions: Any) -> dt.date:
        """The day off for a holiday falling on ``day``, under the calendar's weekend rule."""
        if not isinstance(rule, dict) or set(rule) != {"saturday", "sunday"} \
                or rule["saturday"] not in SATURDAY_MOVES or rule["sunday"] not in SUNDAY_MOVES:
            raise self.fail("observed", "expected {saturday: none|friday, sunday: none|monday}")
        if exceptions is not None:
            if not isinstance(exceptions, dict):
                raise self.fail("observed_exceptions", "a mapping of holiday name to {saturday, sunday}")
            specific = exceptions.get(name)
            if specific is not None:
                rule = {**rule, **self.partial_rule(name, specific)}
        if day.weekday() == 5:
            return day + dt.timedelta(days=SATURDAY_MOVES[rule["saturday"]])
        if day.weekday() == 6:
            return day + dt.timedelta(days=SUNDAY_MOVES[rule["sunday"]])
        return day

    def partial_rule(self, name: str, value: Any) -> Mapping[str, str]:
        where = f"observed_exceptions.{name}"
        if not isinstance(value, dict) or not value or not set(value) <= {"saturday", "sunday"}:
            raise self.fail(where, "expected {saturday: ...} and/or {sunday: ...}")
        if value.get("saturday", "none") not in SATURDAY_MOVES or value.get("sunday", "none") not in SUNDAY_MOVES:
            raise self.fail(where, "saturday: none|friday, sunday: none|monday")
        return value

    def dated(self, value: Any, key: str) -> list[tuple[dt.date, str]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, "a list of {date: YYYY-MM-DD, name: ...}")
        out = []
        for i, entry in enumerate(value):
            where = f"{key}[{i}]"
            if not isinstance(entry, dict) or set(entry) != {"date", "name"}:
                raise self.fail(where, "expected {date: YYYY-MM-DD, name: ...}")
            day = entry["date"]
            if isinstance(day, str):
                try:
                    day = dt.date.fromisoformat(day)
                except ValueError:
                    raise self.fail(f"{where}.date", f"{entry['date']!r} is not a date") from None
            if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
                raise self.fail(f"{where}.date", f"{entry['date']!r} is not a date")
            out.append((day, str(entry["name"])))
        return out
