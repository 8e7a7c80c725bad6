"""Bearer-token identity for gRPC calls.

Each call carries metadata ``authorization: Bearer <token>``. Tokens are secrets from
configuration: a YAML file (path in the service's settings) listing, per principal, either the
SHA-256 of its token (``token_sha256``, what production files hold) or, for development only, the
token itself (``token``). Only hashes are kept in memory, and lookups compare hashes, so a token
never appears in logs or errors.

    tokens:
      - principal: rn-alvarez
        token_sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from services.common.errors import Unauthenticated


class TokenFileError(ValueError):
    """A tokens file that cannot be used; the message names the file and the entry."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenDirectory:
    """Token digests to principals."""

    principals_by_digest: Mapping[str, str]

    def principal(self, token: str) -> str | None:
        digest = token_digest(token)
        for known, principal in self.principals_by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def authenticate(self, context: grpc.ServicerContext) -> str:
        """The principal behind the call's bearer token; raises :class:`Unauthenticated`."""
        header = ""
        for key, value in context.invocation_metadata():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode()
        if not header:
            raise Unauthenticated("missing credentials: send metadata 'authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed credentials: expected 'authorization: Bearer <token>'")
        principal = self.principal(token.strip())
        if principal is None:
            raise Unauthenticated("unknown or revoked token")
        return principal


def load_tokens(path: Path | str) -> TokenDirectory:
    file = Path(path)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TokenFileError(f"{file}: cannot read tokens: {exc}") from exc
    entries = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise TokenFileError(f"{file}: expected a mapping with a 'tokens' list")
    digests: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = f"{file}: tokens[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("principal"), str) or not entry["principal"]:
            raise TokenFileError(f"{where}: needs a 'principal'")
        unknown = set(entry) - {"principal", "token", "token_sha256"}
        if unknown:
            raise TokenFileError(f"{where}: unknown key(s) {sorted(unknown)}")
        if ("token" in entry) == ("token_sha256" in entry):
            raise TokenFileError(f"{where}: give exactly one of 'token' (development) or 'token_sha256'")
        if "token" in entry:
            if not isinstance(entry["token"], str) or len(entry["token"]) < 16:
                raise TokenFileError(f"{where}.token: at least 16 characters")
            digest = token_digest(entry["token"])
        else:
            digest = str(entry["token_sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise TokenFileError(f"{where}.token_sha256: not a SHA-256 hex digest")
        if digest in digests:
            raise TokenFileError(f"{where}: the same token is listed twice")
        digests[digest] = entry["principal"]
    return TokenDirectory(digests)
