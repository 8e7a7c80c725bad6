"""A service that lives no longer than its supervisor (UR_SUPERVISOR_PID).

``make run``, the bench and the tests start the services as child processes and stop them when they
end; a supervisor killed outright (``kill -9``, an OOM kill) cannot. A service started with
UR_SUPERVISOR_PID asks the kernel (Linux: PR_SET_PDEATHSIG) for SIGTERM when its parent dies, which
it handles like any SIGTERM (a graceful stop), and stops at once if the supervisor is already gone.
Elsewhere it polls for the parent instead.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


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
