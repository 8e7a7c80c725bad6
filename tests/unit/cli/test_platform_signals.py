"""The supervisor's signals (services/cli/platform.py ``stop_on_signals``): SIGTERM and SIGHUP become
``Stopped``; SIGINT raises KeyboardInterrupt even when the process inherited it ignored, as a process
started with ``&`` by a script without job control does (a CI runner): there ``kill -INT`` did nothing
and the platform kept running."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from services.cli.platform import Stopped, stop_on_signals


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _signalled(signum: int) -> None:
    """Send ``signum`` to this process inside ``stop_on_signals`` (its handler runs before the block ends)."""
    with stop_on_signals():
        os.kill(os.getpid(), signum)
        signal.sigtimedwait([], 0)


def test_sigint_inherited_ignored_still_interrupts_and_is_ignored_again_after(sigint_ignored: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        _signalled(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_sigterm_and_sighup_become_stopped_and_the_handlers_are_restored() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with pytest.raises(Stopped) as stopped:
            _signalled(signum)
        assert stopped.value.signum == signum
    assert {s: signal.getsignal(s) for s in before} == before
