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
from typing import Annotated

import grpc
from pydantic import AfterValidator, model_validator

from services.common.config_files import ConfigFileError, FileModel, Text, load_model
from services.common.errors import Unauthenticated


class TokenFileError(ConfigFileError):
    """A tokens file that cannot be used; the message names the file and the entry, never a token."""


def _sha256_hex(value: str) -> str:
    digest = value.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("not a SHA-256 hex digest")
    return digest


def _long_enough(value: str) -> str:
    if len(value) < 16:
        raise ValueError("at least 16 characters")  # says nothing of the token itself
    return value


class TokenEntry(FileModel):
    principal: Text
    token: Annotated[str, AfterValidator(_long_enough)] | None = None
    token_sha256: Annotated[str, AfterValidator(_sha256_hex)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TokenEntry:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of 'token' (development) or 'token_sha256'")
        return self

    @property
    def digest(self) -> str:
        return token_digest(self.token) if self.token is not None else str(self.token_sha256)


class TokensFile(FileModel):
    tokens: list[TokenEntry]


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
    """The token directory of a tokens file; raises :class:`TokenFileError` (``file: field: problem``)."""
    doc = load_model(TokensFile, path, TokenFileError, redact=True)
    digests: dict[str, str] = {}
    where: dict[str, int] = {}
    for i, entry in enumerate(doc.tokens):
        digest = entry.digest
        if digest in digests:
            raise TokenFileError(path, f"tokens[{i}]", f"the same token as tokens[{where[digest]}]")
        digests[digest] = entry.principal
        where[digest] = i
    return TokenDirectory(digests)
