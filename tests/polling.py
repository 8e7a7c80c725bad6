"""The one way a test waits for something another thread or process does.

A test that polls says what it waits for and how long it is prepared to wait; when time runs out
the failure names both and shows the last thing it saw, so a red run explains itself. Measured on
``time.monotonic``, which neither the wall clock nor ``time_machine`` moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How much of the last value a timeout shows (a protobuf view can run to pages).
LAST_SEEN_CHARS = 2000


def _truthy(value: object) -> bool:
    return bool(value)


def wait_until(probe: Callable[[], T], timeout_s: float, *, what: str,
               until: Callable[[T], bool] = _truthy, interval_s: float = 0.1) -> T:
    """Call ``probe`` until ``until(value)`` holds (by default: until the value is truthy) and
    return that value. After ``timeout_s`` seconds, raise AssertionError naming ``what`` and the
    last value. An exception from ``probe`` is not retried: it fails the wait at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            seen = repr(value)
            if len(seen) > LAST_SEEN_CHARS:
                seen = seen[:LAST_SEEN_CHARS] + "..."
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last saw {seen}")
        time.sleep(interval_s)
