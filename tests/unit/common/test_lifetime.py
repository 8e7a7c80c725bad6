"""serve_until_signalled: a process asked to stop stops, and a stop that hangs ends the process after
the deadline instead of leaving it running (its SIGTERM may have come from the kernel because its
supervisor died: nothing would ever stop it later). Each case runs in a process of its own."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from services.common.lifetime import EXIT_STOP_OVERRAN
from tests.conftest import REPO

SCRIPT = """
import logging, signal, sys, threading, time
from services.common.lifetime import serve_until_signalled
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
stop_event = threading.Event()
def stop():
    print("stopping", flush=True)
    if {hang}:
        threading.Thread(target=threading.Event().wait, name="stuck-consumer").start()
        threading.Event().wait()
    print("stopped", flush=True)
def announce():  # once the handler is in place: a SIGTERM before it would end the process at once
    while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        time.sleep(0.01)
    print("serving", flush=True)
threading.Thread(target=announce, daemon=True).start()
serve_until_signalled(stop_event, stop, name="test service", deadline_s=0.5)
print("returned", flush=True)
"""


def _serve_and_terminate(hang: bool) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPT.format(hang=hang))], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "serving"
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


def test_a_signalled_process_stops_gracefully_and_returns() -> None:
    code, out = _serve_and_terminate(hang=False)
    assert code == 0, out
    assert out.splitlines()[-3:] == ["stopping", "stopped", "returned"]
    assert f"received signal {int(signal.SIGTERM)}" in out


def test_a_stop_that_hangs_ends_the_process_after_the_deadline_naming_what_still_runs() -> None:
    code, out = _serve_and_terminate(hang=True)
    assert code == EXIT_STOP_OVERRAN, out
    assert "stopped" not in out.splitlines()
    assert "test service did not stop within 0.5 s (threads still running: stuck-consumer); exiting" in out
