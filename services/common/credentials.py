"""Who may call a service: the credentials file every service reads (UR_CREDENTIALS_FILE), and the
bearer tokens the platform's own clients send.

One format for all three services. Each principal (a submitting organization, a service, a
reviewer) has scopes (what it may do, :data:`services.common.access.SCOPES`) and is recognised by
bearer tokens (opaque API keys) and/or mutual-TLS client certificates:

    # Credentials of the callers of the platform's services.
    salt: 9c1d0f6e2b7a4c3d8e5f60718293a4b5     # random, per file: token digests are keyed with it
    principals:
      - id: acme-clinic                        # a provider system submitting requests
        scopes: [requests:submit, requests:read]
        tokens:
          - hmac_sha256: 5f2b...               # HMAC-SHA256(salt, token), hex: never the token itself
          - hmac_sha256: 0a91...               # a second one while the first is rotated out
      - id: svc-review                         # the review service, calling authorization
        scopes: [authorizations:read]
        certificates:
          - dns: review.ur.svc.cluster.local   # a DNS subject alternative name of its client certificate
          - common_name: ur-review             # or its subject's common name; uri: for a URI SAN

Secrets are stored hashed: a token is HMAC-SHA256 keyed with the file's salt, so the same token in
two files has two unrelated digests and a leaked file cannot be checked against a list of tokens
computed in advance. Only a development file (``development: true``, as deploy/sample's) may list
a token in plain text (``dev_token``), and its value must start with ``dev-only-``. ``urctl
credentials token --file F`` makes a new token and prints the line to add to F.

A service re-reads its file when it changes (:class:`CredentialsSource`, checked every
UR_CREDENTIALS_RELOAD_S): a token added, revoked or rotated takes effect without a restart, and a
file that no longer parses is logged and ignored (the last good one stays in force).

Client side, :class:`TokenFile` is the token a process sends (UR_GRPC_TOKEN_FILE), re-read when it
changes, and :class:`BearerToken` the channel interceptor that sends it.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import grpc
from pydantic import AfterValidator, model_validator

from services.common.config_files import ConfigFileError, FileModel, Text, load_model
from services.common.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: What a plain (development) token must start with, so that one is never taken for a real secret.
DEV_PREFIX = "dev-only-"
#: The shortest salt and token accepted (a token from `urctl credentials token` has 43 characters).
MIN_SALT = 16
MIN_TOKEN = 16

#: Every scope a principal may hold, and what it allows. The services' access policies
#: (services/*/entrypoints/access.py) name no other; a credentials file naming another is refused.
SCOPES: Mapping[str, str] = {
    "requests:submit": "intake: submit requests; for the caller's own requests only, send additional information, "
                       "cancel, revise and appeal them",
    "requests:read": "intake: read the caller's own requests (GetRequest, ListMemberRequests, ListClaimRequests)",
    "requests:read-all": "intake: read every submitter's requests (the workbench)",
    "authorizations:read": "authorization: read authorizations, by number and by member, and their metrics",
    "authorizations:check": "authorization: look one authorization up by its number, and match claim lines against "
                            "authorizations (CheckClaim): claims adjudication",
    "authorizations:consume": "authorization: draw a paid claim line's units from its authorization (ConsumeUnits, "
                              "once per claim line): a claims system",
    "review:work": "review: act as the reviewer named by the principal's id (the reviewer directory decides "
                   "what the reviewer's role allows), and read determinations and the queue",
    "review:read": "review: read determinations, the open queue, notices and appeals, as a service (no reviewer "
                   "identity)",
}

_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,99}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class CredentialsFileError(ConfigFileError):
    """A credentials file that cannot be used; the message names the file and the entry, never a token."""


# -- the file --------------------------------------------------------------------------------------


def _principal_id(value: str) -> str:
    if not _PRINCIPAL.fullmatch(value):
        raise ValueError("letters, digits and . _ @ : - (at most 100, starting with a letter or digit)")
    return value


def _scope(value: str) -> str:
    if value not in SCOPES:
        raise ValueError(f"is not one of {', '.join(SCOPES)}")
    return value


def _digest(value: str) -> str:
    digest = value.strip().lower()
    if not _HEX64.fullmatch(digest):
        raise ValueError("not an HMAC-SHA256 hex digest (64 hexadecimal digits)")
    return digest


def _dev_token(value: str) -> str:
    if not value.startswith(DEV_PREFIX) or len(value) < MIN_TOKEN or not value.isascii() or not value.isprintable():
        # The message says nothing of the token itself.
        raise ValueError(f"a development token starts with '{DEV_PREFIX}' and has at least {MIN_TOKEN} printable "
                         "ASCII characters")
    return value


def _salt(value: str) -> str:
    if len(value) < MIN_SALT or not value.isascii() or not value.isprintable():
        raise ValueError(f"at least {MIN_SALT} printable ASCII characters (random: `urctl credentials salt`)")
    return value


class TokenEntry(FileModel):
    """One token of a principal: its digest, or (development files only) the token itself."""

    hmac_sha256: Annotated[str, AfterValidator(_digest)] | None = None
    dev_token: Annotated[str, AfterValidator(_dev_token)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TokenEntry:
        if (self.hmac_sha256 is None) == (self.dev_token is None):
            raise ValueError("give exactly one of 'hmac_sha256' or (development files only) 'dev_token'")
        return self


class CertificateEntry(FileModel):
    """One name a client certificate (verified against UR_GRPC_TLS_CA_FILE) carries."""

    common_name: Text | None = None
    dns: Text | None = None
    uri: Text | None = None

    @model_validator(mode="after")
    def _one_name(self) -> CertificateEntry:
        if sum(v is not None for v in (self.common_name, self.dns, self.uri)) != 1:
            raise ValueError("give exactly one of 'common_name', 'dns' or 'uri'")
        return self

    @property
    def key(self) -> tuple[str, str]:
        for kind in ("common_name", "dns", "uri"):
            value = getattr(self, kind)
            if value is not None:
                return kind, str(value)
        raise ValueError("a certificate entry without a name")  # the validator makes this impossible


class PrincipalEntry(FileModel):
    id: Annotated[str, AfterValidator(_principal_id)]
    scopes: list[Annotated[str, AfterValidator(_scope)]] = []
    tokens: list[TokenEntry] = []
    certificates: list[CertificateEntry] = []


class CredentialsFile(FileModel):
    #: True only in a development sample: allows plain ``dev_token`` entries.
    development: bool = False
    salt: Annotated[str, AfterValidator(_salt)] | None = None
    principals: list[PrincipalEntry]

    @model_validator(mode="after")
    def _consistent(self) -> CredentialsFile:
        tokens = [t for p in self.principals for t in p.tokens]
        if any(t.dev_token is not None for t in tokens) and not self.development:
            raise ValueError("plain 'dev_token' entries need 'development: true' (never in a production file: "
                             "list hmac_sha256 digests)")
        if tokens and self.salt is None:
            raise ValueError("'salt' is required when a principal has tokens")
        return self


# -- the directory ---------------------------------------------------------------------------------


def token_digest(salt: str, token: str) -> str:
    """HMAC-SHA256 of ``token`` keyed with the file's ``salt``, hex (what ``hmac_sha256`` holds)."""
    return hmac.new(salt.encode(), token.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def new_salt() -> str:
    return secrets.token_hex(16)


#: grpc's auth context property of each kind of certificate name.
_CERTIFICATE_PROPERTIES = {"common_name": "x509_common_name", "dns": "peer_dns", "uri": "peer_uri"}


@dataclass(frozen=True)
class Principal:
    id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Credentials:
    """The principals of one credentials file, by token digest and by certificate name."""

    salt: str
    by_digest: Mapping[str, Principal]
    by_certificate: Mapping[tuple[str, str], Principal]
    #: Where they came from (for log lines), and whether any token is a plain development one.
    source: str = ""
    development: bool = False

    @classmethod
    def empty(cls, source: str = "no credentials file") -> Credentials:
        """Knows nobody: every call is refused."""
        return cls("", {}, {}, source)

    def by_token(self, token: str) -> Principal | None:
        """The principal whose token this is. A dictionary lookup of the keyed digest: what an attacker
        controls is the token, and the digest of a guess says nothing about the digests on file."""
        if not self.salt:
            return None
        return self.by_digest.get(token_digest(self.salt, token))

    def by_client_certificate(self, auth_context: Mapping[str, Sequence[bytes]]) -> set[Principal]:
        """The principals the peer's certificate names (grpc's auth context of the call). Only a
        certificate the server verified is there: servers ask for one only when they require one
        (UR_GRPC_TLS_REQUIRE_CLIENT_CERT), and then check it against UR_GRPC_TLS_CA_FILE."""
        found: set[Principal] = set()
        if not self.by_certificate:
            return found
        for kind, prop in _CERTIFICATE_PROPERTIES.items():
            for raw in auth_context.get(prop, ()):
                principal = self.by_certificate.get((kind, raw.decode(errors="replace")))
                if principal is not None:
                    found.add(principal)
        return found

    def principals(self) -> list[Principal]:
        unique = {p.id: p for p in (*self.by_digest.values(), *self.by_certificate.values())}
        return [unique[k] for k in sorted(unique)]


def parse_credentials(doc: CredentialsFile, path: Path | str) -> Credentials:
    """The directory of a validated file; raises :class:`CredentialsFileError` for an id, token or
    certificate name given twice."""
    salt = doc.salt or ""
    by_digest: dict[str, Principal] = {}
    by_certificate: dict[tuple[str, str], Principal] = {}
    token_at: dict[str, str] = {}
    certificate_at: dict[tuple[str, str], str] = {}
    ids: dict[str, int] = {}
    for i, entry in enumerate(doc.principals):
        if entry.id in ids:
            raise CredentialsFileError(path, f"principals[{i}].id", f"'{entry.id}' is also principals[{ids[entry.id]}]")
        ids[entry.id] = i
        principal = Principal(entry.id, frozenset(entry.scopes))
        for j, token in enumerate(entry.tokens):
            where = f"principals[{i}].tokens[{j}]"
            digest = token.hmac_sha256 or token_digest(salt, str(token.dev_token))
            if digest in token_at:
                raise CredentialsFileError(path, where, f"the same token as {token_at[digest]}")
            token_at[digest] = where
            by_digest[digest] = principal
        for j, certificate in enumerate(entry.certificates):
            where = f"principals[{i}].certificates[{j}]"
            if certificate.key in certificate_at:
                raise CredentialsFileError(path, where,
                                           f"the same certificate name as {certificate_at[certificate.key]}")
            certificate_at[certificate.key] = where
            by_certificate[certificate.key] = principal
    development = any(t.dev_token is not None for p in doc.principals for t in p.tokens)
    return Credentials(salt, by_digest, by_certificate, str(path), development)


def load_credentials(path: Path | str) -> Credentials:
    """The credentials of the file at ``path``; raises :class:`CredentialsFileError` (``file: field:
    problem``, never echoing a token)."""
    return parse_credentials(load_model(CredentialsFile, path, CredentialsFileError, redact=True), path)


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is rewritten or replaced (a Kubernetes secret swaps a symlink)."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class CredentialsSource:
    """The credentials a service authenticates against, re-read when the file changes.

    :meth:`current` is what each call reads (no I/O); :meth:`check` (the runtime runs it every
    UR_CREDENTIALS_RELOAD_S) looks at the file and loads it again when it changed. A changed file
    that cannot be used is logged and ignored: the last good credentials stay in force, so a
    half-written file never locks every caller out. Without a file, every call is refused."""

    def __init__(self, path: Path | None) -> None:
        """Loads the file now; raises :class:`CredentialsFileError` when it cannot be used."""
        self.path = path
        self._lock = threading.Lock()
        if path is None:
            self._current = Credentials.empty()
            self._stamp: tuple[int, int, int] | None = None
            logger.warning("UR_CREDENTIALS_FILE is not set: every call to this service is refused (UNAUTHENTICATED)")
            return
        self._stamp = _stamp(path)
        self._current = load_credentials(path)
        self._announce(self._current)

    @staticmethod
    def _announce(credentials: Credentials) -> None:
        logger.info("credentials from %s: %d principals", credentials.source, len(credentials.principals()))
        if credentials.development:
            logger.warning("%s lists development tokens in plain text: for development only", credentials.source)

    def current(self) -> Credentials:
        return self._current

    def check(self) -> bool:
        """Load the file again if it changed since it was last read; whether new credentials are in force."""
        if self.path is None:
            return False
        with self._lock:
            try:
                stamp = _stamp(self.path)
            except OSError as exc:
                logger.error("credentials file %s cannot be read (%s); keeping the credentials in force",
                             self.path, exc.strerror or exc)
                return False
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                fresh = load_credentials(self.path)
            except ConfigurationError as exc:
                logger.error("credentials file %s changed but cannot be used; keeping the credentials in force:\n%s",
                             self.path, exc)
                return False
            self._current = fresh
        logger.info("credentials file %s changed: reloaded", self.path)
        self._announce(fresh)
        return True


# -- the client side -------------------------------------------------------------------------------


class TokenFile:
    """A bearer token kept in a file (a mounted secret: UR_GRPC_TOKEN_FILE), read again when the file
    changes, so a rotated token is sent without a restart. Calling it gives the token."""

    def __init__(self, path: Path) -> None:
        """Reads the file now; raises ConfigurationError when it cannot be read or is empty."""
        self.path = path
        self._lock = threading.Lock()
        self._token = self._read()
        self._stamp = _stamp(path)

    def _read(self) -> str:
        try:
            token = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{self.path}: cannot read the token: {exc}") from exc
        if not token or not token.isascii() or not token.isprintable():
            raise ConfigurationError(f"{self.path}: expected one token (printable ASCII) in the file")
        return token

    def __call__(self) -> str:
        try:
            stamp = _stamp(self.path)
        except OSError:
            return self._token  # being replaced: the last token read
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._token, self._stamp = self._read(), stamp
                except ConfigurationError as exc:
                    logger.warning("%s; sending the previous token", exc)
        return self._token


#: What a client sends: a fixed token, or a function giving the current one (:class:`TokenFile`).
TokenSource = str | Callable[[], str]


def bearer(token: TokenSource) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``token``."""
    value = token if isinstance(token, str) else token()
    return (("authorization", f"Bearer {value}"),)


class _CallDetails(collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                           "wait_for_ready", "compression")),
                   grpc.ClientCallDetails):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor,
                  grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor,
                  grpc.StreamStreamClientInterceptor):
    """A channel interceptor adding ``authorization: Bearer <token>`` to every call that does not carry
    an authorization header already (a call made on a reviewer's behalf keeps the reviewer's)."""

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        if any(key == "authorization" for key, _ in metadata):
            return details
        metadata.extend(bearer(self._token))
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails,
                               request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails,
                               requests: Iterator[Any]) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails,
                                requests: Iterator[Any]) -> Any:
        return continuation(self._details(details), requests)

