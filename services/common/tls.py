"""gRPC transport security from settings: TLS for the servers (mutual TLS when client certificates
are required), TLS for the clients, and the one way every gRPC client of the platform opens a channel.

    UR_GRPC_TLS_CERT_FILE, UR_GRPC_TLS_KEY_FILE   this process's certificate: served by its server,
                                                  presented by its clients as their client certificate
    UR_GRPC_TLS_CA_FILE                           CA bundle: clients verify servers against it (TLS on
                                                  for clients when it is set); servers verify client
                                                  certificates against it
    UR_GRPC_TLS_REQUIRE_CLIENT_CERT               servers refuse clients without such a certificate

Nothing set means plaintext, which a service accepts on loopback addresses only (see
:meth:`services.common.settings.ServiceSettings.transport_problems`).

A server re-reads its certificate files when they change (a rotated Kubernetes secret, a renewed
certificate): new connections get the new certificate, open ones keep theirs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc

from services.common import settings as settings_module
from services.common.credentials import BearerToken, TokenSource
from services.common.errors import ConfigurationError
from services.common.settings import PlatformSettings

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

ChannelOptions = Sequence[tuple[str, int | str]]


@dataclass(frozen=True)
class TransportSecurity:
    """TLS material of one process, as file paths (PEM). As a server it serves ``cert_file``/``key_file``
    and checks client certificates against ``ca_file`` (demanding one when ``require_client_cert``); as a
    client it checks servers against ``ca_file`` (the system's roots when None) and presents
    ``cert_file``/``key_file`` when set."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    require_client_cert: bool = False

    @property
    def can_serve(self) -> bool:
        return self.cert_file is not None and self.key_file is not None

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for a server, re-read from the files whenever one of them changes."""
        if self.cert_file is None or self.key_file is None:
            raise ConfigurationError("a TLS server needs UR_GRPC_TLS_CERT_FILE and UR_GRPC_TLS_KEY_FILE")
        if self.require_client_cert and self.ca_file is None:
            raise ConfigurationError("UR_GRPC_TLS_REQUIRE_CLIENT_CERT needs UR_GRPC_TLS_CA_FILE")
        files = _ServerFiles(self.cert_file, self.key_file, self.ca_file)
        # The fetcher returns None for "no change" (grpc's documented contract; the stubs omit it).
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], files.changed)
        return grpc.dynamic_ssl_server_credentials(files.configuration(), fetch,
                                                   require_client_authentication=self.require_client_cert)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        key = _read(self.key_file) if self.key_file is not None else None
        cert = _read(self.cert_file) if self.cert_file is not None else None
        return grpc.ssl_channel_credentials(root_certificates=_read(self.ca_file) if self.ca_file else None,
                                            private_key=key, certificate_chain=cert)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc


class _ServerFiles:
    """The server's certificate files and when they last changed (the fetcher grpc calls on each new
    connection; it must be cheap, so it compares modification times and reads only on a change)."""

    def __init__(self, cert: Path, key: Path, ca: Path | None) -> None:
        self._paths = (cert, key, ca)
        self._lock = threading.Lock()
        self._stamp = self._stamps()

    def _stamps(self) -> tuple[int, ...]:
        return tuple(os.stat(p).st_mtime_ns if p is not None else 0 for p in self._paths)

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        cert, key, ca = self._paths
        return grpc.ssl_server_certificate_configuration([(_read(key), _read(cert))],
                                                         root_certificates=_read(ca) if ca else None)

    def changed(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            with self._lock:
                stamp = self._stamps()
                if stamp == self._stamp:
                    return None
                configuration = self.configuration()
                self._stamp = stamp
        except (OSError, ConfigurationError) as exc:
            # Half-written during a rotation, say: keep serving the certificate that works.
            logger.warning("TLS certificate files changed but cannot be read (%s); keeping the current ones", exc)
            return None
        logger.info("TLS certificate files changed; new connections get the new certificate")
        return configuration


def from_settings(config: PlatformSettings) -> TransportSecurity | None:
    """The service's TLS material; None when no TLS file is set (plaintext)."""
    if config.grpc_tls_cert_file is None and config.grpc_tls_ca_file is None:
        return None
    return TransportSecurity(ca_file=config.grpc_tls_ca_file, cert_file=config.grpc_tls_cert_file,
                             key_file=config.grpc_tls_key_file,
                             require_client_cert=config.grpc_tls_require_client_cert)


def for_clients(env: Mapping[str, str] | None = None) -> TransportSecurity | None:
    """What urctl and the tools use: the UR_GRPC_TLS_* variables (environment, else unset), checked;
    None (plaintext) when neither a CA bundle nor a client certificate is named."""
    paths: dict[str, Path | None] = {}
    for name in ("UR_GRPC_TLS_CA_FILE", "UR_GRPC_TLS_CERT_FILE", "UR_GRPC_TLS_KEY_FILE"):
        value = settings_module.get(name, env)
        if value and not Path(value).is_file():
            raise ConfigurationError(f"{name}: no such file: '{value}'")
        paths[name] = Path(value) if value else None
    if (paths["UR_GRPC_TLS_CERT_FILE"] is None) != (paths["UR_GRPC_TLS_KEY_FILE"] is None):
        raise ConfigurationError("UR_GRPC_TLS_CERT_FILE: set UR_GRPC_TLS_CERT_FILE and UR_GRPC_TLS_KEY_FILE together")
    if paths["UR_GRPC_TLS_CA_FILE"] is None and paths["UR_GRPC_TLS_CERT_FILE"] is None:
        return None
    return TransportSecurity(ca_file=paths["UR_GRPC_TLS_CA_FILE"], cert_file=paths["UR_GRPC_TLS_CERT_FILE"],
                             key_file=paths["UR_GRPC_TLS_KEY_FILE"])


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Every channel's options. Round robin: a target that resolves to several replicas (a Kubernetes
    headless Service, ``ipv4:host:port,host:port``) gets its calls spread over those that answer;
    a one-address target behaves as with the default policy."""
    return [("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.lb_policy_name", "round_robin")]


def open_channel(target: str, security: TransportSecurity | None = None, *, token: TokenSource | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, options: ChannelOptions = ()) -> grpc.Channel:
    """A channel to ``target``: TLS with ``security``, plaintext without; with ``token``, every call
    that carries no authorization header of its own sends ``authorization: Bearer <token>``; carrying
    the trace on when tracing is on (services/common/grpc_telemetry.py)."""
    # Imported here: grpc_telemetry builds on grpc_server, which builds on this module.
    from services.common.grpc_telemetry import client_interceptors

    merged = [*channel_options(max_message_bytes), *options]
    if security is None:
        channel = grpc.insecure_channel(target, options=merged)
    else:
        channel = grpc.secure_channel(target, security.channel_credentials(), options=merged)
    interceptors: list[grpc.UnaryUnaryClientInterceptor] = [*client_interceptors()]
    if token is not None:
        interceptors.append(BearerToken(token))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel
