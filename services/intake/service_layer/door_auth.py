"""OAuth2 client credentials (RFC 6749 section 4.4) for the doors: a submitting organization trades its
client id and secret for a short-lived bearer token, and each door call with that token acts as it.

The client id is the organization's principal id in the platform's credentials file and the secret
is one of its tokens there (held as a salted HMAC digest, never in clear): the same credential intake
accepts. The door keeps, for each access token it issued and only until it expires, whom it stands
for and that credential, which it presents to intake on every call (:class:`Submitter`). So intake
authenticates the organization itself and applies its own rules (scopes, rate limit, a submitter
sees only its own requests): the door holds no identity of its own that could act for anyone.

Access tokens are random (256 bits); only their SHA-256 digest is kept, in memory: a door that
restarts forgets them and clients ask for a new one (``invalid_token`` says so). A token never
outlives the credential it was issued for by more than its lifetime, and a credential revoked in
the file is refused by intake at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from dataclasses import dataclass

from services.common.errors import Unauthenticated
from services.intake.service_layer.door_ports import ClientDirectory, Clock, Submitter

#: The most live tokens one client may hold (each request for a token makes a new one).
MAX_TOKENS_PER_CLIENT = 100
#: The most live tokens of all clients together (a bound on the memory they take).
MAX_TOKENS = 100_000


@dataclass(frozen=True)
class IssuedToken:
    access_token: str = ""
    expires_in: int = 0
    token_type: str = "Bearer"  # noqa: S105 - the OAuth2 token type, not a secret


@dataclass(frozen=True)
class _Grant:
    submitter: Submitter
    expires_at: dt.datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenIssuer:
    """Issues and checks the doors' access tokens (see the module docstring). Thread-safe."""

    def __init__(self, clients: ClientDirectory, *, clock: Clock, lifetime_s: int) -> None:
        if lifetime_s < 1:
            raise ValueError("an access token lives at least a second")
        self._clients = clients
        self._now = clock
        self._lifetime = dt.timedelta(seconds=lifetime_s)
        self._lock = threading.Lock()
        self._grants: dict[str, _Grant] = {}

    def issue(self, client_id: str, secret: str) -> IssuedToken:
        """A new access token for ``client_id``; Unauthenticated (the same words whatever was wrong)
        unless ``secret`` is one of its credentials."""
        if not client_id or not secret or not self._clients.authenticate(client_id, secret):
            raise Unauthenticated("invalid client credentials")
        token = secrets.token_urlsafe(32)
        now = self._now()
        with self._lock:
            self._prune(now)
            mine = [d for d, g in self._grants.items() if g.submitter.id == client_id]  # oldest first
            for digest in mine[:max(0, len(mine) - MAX_TOKENS_PER_CLIENT + 1)]:
                del self._grants[digest]  # the oldest make way
            if len(self._grants) >= MAX_TOKENS:
                raise Unauthenticated("too many live access tokens; try again later")
            self._grants[_digest(token)] = _Grant(Submitter(client_id, secret), now + self._lifetime)
        return IssuedToken(token, int(self._lifetime.total_seconds()))

    def submitter(self, access_token: str) -> Submitter:
        """Whom a live access token stands for; Unauthenticated when it is unknown or expired."""
        now = self._now()
        with self._lock:
            grant = self._grants.get(_digest(access_token))
            if grant is not None and grant.expires_at <= now:
                del self._grants[_digest(access_token)]
                grant = None
        if grant is None:
            raise Unauthenticated("the access token is unknown or expired; ask [base]/auth/token for a new one")
        return grant.submitter

    def _prune(self, now: dt.datetime) -> None:
        for digest in [d for d, g in self._grants.items() if g.expires_at <= now]:
            del self._grants[digest]

    def __len__(self) -> int:
        return len(self._grants)
