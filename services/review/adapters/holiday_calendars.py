"""Holiday calendars (YAML data under services/review/calendars/) into :class:`Calendar` objects,
strictly: an unknown key, a bad date or an unknown time zone names the file and the entry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from services.review.domain.deadlines import Calendar

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "calendars"
KEYS = frozenset({"name", "time_zone", "source", "holidays"})


class CalendarFileError(ValueError):
    pass


def load_calendar(path: Path) -> Calendar:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError for 2026-02-30
        raise CalendarFileError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(doc, dict):
        raise CalendarFileError(f"{path.name}: expected a mapping")
    unknown = sorted(set(doc) - KEYS)
    if unknown:
        raise CalendarFileError(f"{path.name}: {unknown[0]}: unknown key (allowed: {', '.join(sorted(KEYS))})")
    for key in ("name", "time_zone", "source"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise CalendarFileError(f"{path.name}: {key}: required text")
    try:
        ZoneInfo(doc["time_zone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarFileError(f"{path.name}: time_zone: {doc['time_zone']!r} is not an IANA time zone") from None
    entries = doc.get("holidays")
    if not isinstance(entries, list) or not entries:
        raise CalendarFileError(f"{path.name}: holidays: a non-empty list of {{date, name}}")
    days: set[dt.date] = set()
    for i, entry in enumerate(entries):
        where = f"{path.name}: holidays[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"date", "name"}:
            raise CalendarFileError(f"{where}: expected {{date: YYYY-MM-DD, name: ...}}")
        day = entry["date"]
        if isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day)
            except ValueError:
                raise CalendarFileError(f"{where}.date: {entry['date']!r} is not a date") from None
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise CalendarFileError(f"{where}.date: {entry['date']!r} is not a date")
        days.add(day)
    return Calendar(name=doc["name"], time_zone=doc["time_zone"], holidays=frozenset(days))


def load_calendars(directory: Path = DEFAULT_DIR) -> dict[str, Calendar]:
    calendars = [load_calendar(p) for p in sorted(directory.glob("*.yaml"))]
    return {c.name: c for c in calendars}
