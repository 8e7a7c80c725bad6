"""Serving an ASGI application (the workbench, the FHIR door) with uvicorn on a socket already bound,
reporting the port once it serves (the supervisor's signal that the process is ready)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from services.common.main import report_port

logger = logging.getLogger(__name__)


async def serve_asgi(app: ASGIApp, sock: socket.socket, *, name: str, path: str = "/", port_file: Path | None = None,
                     ssl_certfile: Path | None = None, ssl_keyfile: Path | None = None) -> None:
    """Serve ``app`` on ``sock`` until the server stops (SIGTERM, Ctrl-C); HTTPS with a certificate.
    Logs ``name serving on URL`` and writes the port to ``port_file`` once it serves."""
    server = uvicorn.Server(uvicorn.Config(
        app, log_config=None, access_log=False, proxy_headers=False, server_header=False, date_header=True,
        timeout_graceful_shutdown=10, ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        host, port = sock.getsockname()[:2]
        logger.info("%s serving on %s://%s:%d%s", name, "https" if ssl_certfile else "http", host, port, path)
        if port_file:
            report_port(port_file, port)
    await task
