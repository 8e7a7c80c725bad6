"""urctl's reviewer commands: fact parsing for add-info and the token requirement."""

from __future__ import annotations

import pytest

from services.cli import urctl
from services.cli.reviewer import parse_fact


@pytest.mark.parametrize(("text", "kind", "value", "unit"), [
    ("conservative_therapy_weeks=7:weeks", "number_value", 7.0, "weeks"),
    ("suspected_cancer=false", "bool_value", False, ""),
    ("imaging_done=true", "bool_value", True, ""),
    ("note=saw PT twice: improving", "text_value", "saw PT twice: improving", ""),
    ("bmi=41.5:kg/m2", "number_value", 41.5, "kg/m2"),
])
def test_facts_parse_by_shape(text: str, kind: str, value: object, unit: str) -> None:
    fact = parse_fact(text)
    assert fact.WhichOneof("value") == kind
    assert getattr(fact, kind) == value
    assert fact.unit == unit


def test_dates_parse_as_dates() -> None:
    fact = parse_fact("surgery_date=2026-10-02")
    assert fact.WhichOneof("value") == "date_value"
    assert (fact.date_value.month, fact.date_value.day) == (10, 2)


def test_a_fact_without_a_value_is_a_clear_error() -> None:
    with pytest.raises(urctl.CliError, match="expected name=value"):
        parse_fact("weeks")


def test_review_commands_need_a_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("UR_REVIEWER_TOKEN", raising=False)
    assert urctl.main(["review", "claim"]) == urctl.EXIT_SERVICE_ERROR
    assert "need a reviewer token" in capsys.readouterr().err
