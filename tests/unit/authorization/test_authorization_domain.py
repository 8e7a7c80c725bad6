from __future__ import annotations

import datetime as dt

from services.authorization.domain import numbers
from services.authorization.domain.model import DecidedLine, plan_authorizations


def test_numbers_are_a_bijection_and_well_formed() -> None:
    seen = {numbers.authorization_number(i, 2026) for i in range(1, 50_001)}
    assert len(seen) == 50_000
    assert all(numbers.is_well_formed(n) for n in list(seen)[:1000])
    assert numbers.authorization_number(1, 2026).startswith("UR26-")
    assert numbers.permute(numbers.MAX_ID) != numbers.permute(numbers.MAX_ID - 1)


def test_numbers_are_not_sequential_looking() -> None:
    a, b = numbers.authorization_number(1000, 2026), numbers.authorization_number(1001, 2026)
    assert a[5:9] != b[5:9] or a[10:] != b[10:]
    assert sum(x != y for x, y in zip(a, b, strict=True)) >= 3


def test_normalize_forgives_case_spaces_and_lookalikes() -> None:
    n = numbers.authorization_number(42, 2026)
    messy = n.lower().replace("0", "o").replace("1", "l")
    assert numbers.normalize(f" {messy} ") == n


def test_only_certified_lines_get_authorizations() -> None:
    lines = [
        DecidedLine(1, "72148", "certified_in_total", 1, dt.date(2027, 1, 10), dt.date(2027, 1, 24)),
        DecidedLine(2, "97110", "pended", 0, None, None),
        DecidedLine(3, "97140", "certified_partial", 6, dt.date(2027, 1, 10), None),
        DecidedLine(4, "99999", "no_action_required", 1, None, None),
    ]
    drafts = plan_authorizations(lines, dt.date(2026, 12, 1), 90)
    assert [d.line_number for d in drafts] == [1, 3]
    assert drafts[0].valid_to == dt.date(2027, 1, 24)
    assert drafts[1].valid_to == dt.date(2027, 1, 10) + dt.timedelta(days=89)
