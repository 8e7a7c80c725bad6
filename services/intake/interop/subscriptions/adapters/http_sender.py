"""The rest-hook channel over HTTP(S) with the standard library (``http.client``): one POST per
notification, a fresh connection each time (notifications are rare; a pooled connection to an
endpoint that went away would only fail the next attempt).

Redirects are not followed (a subscriber names where notifications go; a 3xx is a failure that
the retries report), proxies from the environment are not used, TLS certificates are verified
against the system's CAs unless a context is given. The answer's body is read up to a small limit
and ignored."""

from __future__ import annotations

import http.client
import logging
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

from services.intake.interop.subscriptions.service_layer import ports

logger = logging.getLogger(__name__)

USER_AGENT = "ur-platform-subscriptions/1"
MAX_ANSWER_BYTES = 64 * 1024


class HttpSender(ports.Sender):
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls or ssl.create_default_context()

    def post(self, endpoint: str, headers: Sequence[tuple[str, str]], body: bytes, timeout_s: float) -> str | None:
        parts = urlsplit(endpoint)
        try:
            port = parts.port
        except ValueError:
            return "the endpoint's port is not a number"
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.putrequest("POST", target)
            for name, value in (*headers, ("User-Agent", USER_AGENT), ("Content-Length", str(len(body)))):
                conn.putheader(name, value)
            conn.endheaders(body)
            answer = conn.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            return None if 200 <= answer.status < 300 else f"HTTP {answer.status} {answer.reason}".strip()
        except ConnectionRefusedError:
            return "connection refused"
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except ssl.SSLError as exc:
            return f"TLS failed: {exc.reason or exc}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        finally:
            conn.close()
