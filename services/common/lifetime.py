"""A service that lives no longer than its supervisor (UR_SUPERVISOR_PID), and a stop that ends.

``make run``, the bench and the tests start the services as child processes and stop them when they
end; a supervisor killed outright (``kill -9``, an OOM kill) cannot. A service started with
UR_SUPERVISOR_PID asks the kernel (Linux: PR_SET_PDEATHSIG) for SIGTERM when its parent dies, which
it handles like any SIGTERM (a graceful stop), and stops at once if the supervisor is already gone.
Elsewhere it polls for the parent instead.

:func:`serve_until_signalled` is every long-running process's main loop: it waits for SIGTERM or SIGINT
and then stops gracefully, but never for longer than :data:`STOP_DEADLINE_S`: a stop held up by a thread
that does not end or a broker that does not answer ends the process with :data:`EXIT_STOP_OVERRAN`.
That SIGTERM may be the only one it ever gets (its supervisor is gone), and nothing would stop it later.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1

#: The longest a graceful stop may take (the gRPC grace, the consumer's and the relay's last round, the
#: producer's flush) before the process ends regardless.
STOP_DEADLINE_S = 45.0

#: The exit status of a process whose graceful stop overran :data:`STOP_DEADLINE_S`.
EXIT_STOP_OVERRAN = 3


def stop_with_supervisor(supervisor_pid: int, poll_s: float = 1.0) -> None:
    """Arrange SIGTERM for this process when ``supervisor_pid`` (its parent) dies."""
    if sys.platform.startswith("linux") and _parent_death_signal(signal.SIGTERM):
        if os.getppid() != supervisor_pid:  # gone before the request took effect
            logger.warning("supervisor %d is gone; stopping", supervisor_pid)
            os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            threading.Event().wait(poll_s)
        logger.warning("supervisor %d is gone; stopping", supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def _parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def serve_until_signalled(stop_event: threading.Event, stop: Callable[[], None], *, name: str,
                          deadline_s: float = STOP_DEADLINE_S) -> None:
    """Block until SIGTERM or SIGINT (or until ``stop_event`` is set, e.g. by a thread that died), then
    call ``stop``; if it has not returned ``deadline_s`` seconds later, log why and end the process
    (:data:`EXIT_STOP_OVERRAN`) without waiting for it. Call it from the main thread."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received signal %d", signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop_event.wait(1.0):
        pass
    watchdog = threading.Timer(deadline_s, _overran, args=(name, deadline_s))
    watchdog.daemon = True
    watchdog.start()
    try:
        stop()
    finally:
        watchdog.cancel()


def _overran(name: str, deadline_s: float) -> None:
    stuck = sorted(t.name for t in threading.enumerate()
                   if t not in (threading.current_thread(), threading.main_thread()) and not t.daemon)
    logger.error("%s did not stop within %g s (threads still running: %s); exiting", name, deadline_s,
                 ", ".join(stuck) or "none")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_STOP_OVERRAN)
