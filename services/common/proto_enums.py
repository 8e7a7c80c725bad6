"""Protobuf enum values ⇄ the lowercase names the domains use.

``LINE_OF_BUSINESS_MEDICARE_ADVANTAGE`` ⇄ ``"medicare_advantage"``; the
``*_UNSPECIFIED`` value (or an unknown number) maps to None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from google.protobuf.descriptor import EnumDescriptor
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)


def _prefix(descriptor: EnumDescriptor) -> str:
    unspecified = descriptor.values_by_number[0].name
    return unspecified[: -len("UNSPECIFIED")]


def to_name(enum: _EnumTypeWrapper[V], number: int) -> str | None:
    """enum is a generated enum (e.g. types_pb2.LineOfBusiness)."""
    value = enum.DESCRIPTOR.values_by_number.get(number)
    if value is None or number == 0:
        return None
    return value.name[len(_prefix(enum.DESCRIPTOR)):].lower()


def to_number(enum: _EnumTypeWrapper[V], name: str | None) -> V:
    """The enum's value named ``name`` (its prefix left off), or its ``*_UNSPECIFIED`` value."""
    prefix = _prefix(enum.DESCRIPTOR)
    if name and prefix + name.upper() in enum.DESCRIPTOR.values_by_name:
        return enum.Value(prefix + name.upper())
    return enum.Value(prefix + "UNSPECIFIED")
