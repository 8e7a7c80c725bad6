"""Signing in and out, and the session every other page starts from.

A reviewer signs in with their credentials (today the bearer token review knows them by): the
workbench asks review who that is (WhoAmI) and keeps the token in a server-side session; the
browser gets only a random session id. A session ends on sign-out, after ``idle_timeout`` without a
request, and ``max_age`` after it began, whichever comes first. Each session has its own CSRF
token, which every state-changing request must present (:func:`csrf_ok`)."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets

from services.common.clock import Clock
from services.common.errors import Unauthenticated
from services.workbench.service_layer.ports import Platform, Session, SessionStore

logger = logging.getLogger(__name__)

MAX_TOKEN = 512


def new_secret() -> str:
    """256 bits from the operating system's CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def csrf_ok(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())


class Sessions:
    def __init__(self, platform: Platform, store: SessionStore, *, clock: Clock, idle_timeout_s: float,
                 max_age_s: float) -> None:
        self._platform = platform
        self._store = store
        self._now = clock
        self._idle = dt.timedelta(seconds=idle_timeout_s)
        self._max_age = dt.timedelta(seconds=max_age_s)

    async def sign_in(self, token: str) -> Session:
        """A new session for the reviewer behind ``token``; Unauthenticated when review does not
        know it (or it is not a reviewer's)."""
        token = token.strip()
        if not token or len(token) > MAX_TOKEN:
            raise Unauthenticated("enter your access token")
        me = await self._platform.whoami(token)
        if not me.active:
            raise Unauthenticated("this reviewer is inactive")
        now = self._now()
        session = Session(session_id=new_secret(), reviewer_id=me.reviewer_id, name=me.name, role=me.role,
                          credential=me.credential, token=token, csrf=new_secret(), created_at=now, last_seen=now)
        self._store.add(session)
        logger.info("signed in: %s", me.reviewer_id)
        return session

    def current(self, session_id: str | None) -> Session | None:
        """The live session ``session_id`` names, its idle clock restarted; None (and the session
        forgotten) when it has expired or never existed."""
        now = self._now()
        self._store.remove_expired(now - self._idle, now - self._max_age)
        session = self._store.get(session_id) if session_id else None
        if session is None:
            return None
        session.last_seen = now
        return session

    def sign_out(self, session: Session) -> None:
        self._store.remove(session.session_id)
        logger.info("signed out: %s", session.reviewer_id)
