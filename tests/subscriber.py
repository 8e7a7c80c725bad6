"""A subscriber's rest-hook endpoint for the tests: a small HTTP server on a port of its own that
records what is POSTed to it, and that can go down (its port then refuses connections: it is held
bound but not listening, so nothing else takes it) and come back on the same port."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        status = self.body["entry"][0]["resource"]
        return str(next(p["valueCode"] for p in status["parameter"] if p["name"] == "type"))

    def focus(self) -> dict[str, Any]:
        """The PAS response Bundle an event notification carries."""
        resource: dict[str, Any] = self.body["entry"][1]["resource"]
        return resource

    def action_codes(self) -> list[str]:
        """The X12 HCR01 action codes of the ClaimResponse's items."""
        claim_response = self.focus()["entry"][0]["resource"]
        codes = []
        for item in claim_response.get("item", []):
            for adjudication in item.get("adjudication", []):
                for ext in adjudication.get("extension", []):
                    for part in ext.get("extension", []):
                        for coding in part.get("valueCodeableConcept", {}).get("coding", []):
                            if coding.get("system") == "https://codesystem.x12.org/005010/306":
                                codes.append(coding["code"])
        return codes

    def numbers(self) -> list[str]:
        """The authorization numbers in the ClaimResponse's review actions."""
        claim_response = self.focus()["entry"][0]["resource"]
        return [part["valueString"] for item in claim_response.get("item", [])
                for adjudication in item.get("adjudication", []) for ext in adjudication.get("extension", [])
                for part in ext.get("extension", []) if part.get("url") == "number"]


class Subscriber:
    """Start with :meth:`up`; :meth:`down` refuses connections until the next :meth:`up`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._holder: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notifications"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    def up(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                with owner._lock:
                    owner._received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                    body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        if self._holder is not None:
            self._holder.close()
            self._holder = None
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening; the port stays this subscriber's and refuses connections."""
        self._close_server()
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", self.port))  # bound, never listening: connections are refused
        self._holder = holder

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self._close_server()
        if self._holder is not None:
            self._holder.close()
            self._holder = None
