"""Checks every request of every RPC gets before its handler runs, whatever the service: the limits
no field of any API may pass. Each use case then checks its own fields (shapes, tighter bounds).

- No string holds a control character other than tab, newline and carriage return (C0, DEL, C1):
  NUL among them, which PostgreSQL text cannot hold (the database would refuse the statement).
- No string is longer than MAX_STRING characters, no repeated field has more than MAX_ITEMS items.

Pure: takes a protobuf message, returns field violations named by their proto field paths.
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import FieldViolation

MAX_STRING = 10_000
MAX_ITEMS = 10_000
#: Violations reported per request: a request with a million bad strings gets this many.
MAX_REPORTED = 50
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def request_problems(message: Message) -> list[FieldViolation]:
    """The violations of the limits above in ``message``, at most MAX_REPORTED of them."""
    found: list[FieldViolation] = []
    _walk(message, "", found)
    return found


def _walk(message: Message, prefix: str, found: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        if len(found) >= MAX_REPORTED:
            return
        path = f"{prefix}{field.name}"
        if not field.is_repeated:
            _check(field, value, path, found)
            continue
        if len(value) > MAX_ITEMS:
            found.append(FieldViolation(path, f"at most {MAX_ITEMS} items ({len(value)} sent)"))
            continue
        for i, item in enumerate(value):
            if len(found) >= MAX_REPORTED:
                return
            _check(field, item, f"{path}[{i}]", found)


def _check(field: FieldDescriptor, value: object, path: str, found: list[FieldViolation]) -> None:
    if isinstance(value, Message):
        _walk(value, f"{path}.", found)
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            found.append(FieldViolation(path, f"at most {MAX_STRING} characters ({len(value)} sent)"))
        elif (control := _CONTROL.search(value)) is not None:
            found.append(FieldViolation(path, f"contains the control character U+{ord(control.group()):04X}"))
