"""Sessions in the workbench process's memory.

Enough for one workbench process: a restart signs everyone out (they sign in again), and two
processes behind a load balancer would need sticky sessions or a shared store (a SessionStore on
Redis or the database) instead. Nothing but the session lives here: no patient data is cached.
"""

from __future__ import annotations

import datetime as dt

from services.workbench.service_layer.ports import Session, SessionStore


class MemorySessionStore(SessionStore):
    """A dict; the workbench runs on one event loop, so no lock is needed."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def add(self, session: Session) -> None:
        self._sessions[session.session_id] = session

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def remove(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def remove_expired(self, idle_before: dt.datetime, created_before: dt.datetime) -> int:
        gone = [sid for sid, s in self._sessions.items() if s.last_seen < idle_before or s.created_at < created_before]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)

    def __len__(self) -> int:
        return len(self._sessions)
