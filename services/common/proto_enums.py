"""Protobuf enum values ⇄ the lowercase names the domains use.

``LINE_OF_BUSINESS_MEDICARE_ADVANTAGE`` ⇄ ``"medicare_advantage"``; the
``*_UNSPECIFIED`` value (or an unknown number) maps to None.
"""

from __future__ import annotations

from typing import Any


def _prefix(enum: Any) -> str:
    unspecified = enum.values_by_number[0].name
    return str(unspecified[: -len("UNSPECIFIED")])


def to_name(enum: Any, number: int) -> str | None:
    """enum is a generated EnumDescriptor (e.g. types_pb2.LineOfBusiness.DESCRIPTOR)."""
    value = enum.values_by_number.get(number)
    if value is None or number == 0:
        return None
    return str(value.name[len(_prefix(enum)):].lower())


def to_number(enum: Any, name: str | None) -> int:
    if not name:
        return 0
    value = enum.values_by_name.get(_prefix(enum) + name.upper())
    return int(value.number) if value is not None else 0
