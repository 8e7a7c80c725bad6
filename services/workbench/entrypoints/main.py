"""``ur-workbench``: serve the workbench over HTTP until SIGTERM or Ctrl-C.

Exit status: 0 after a graceful stop, 2 for a configuration error, 1 when it could not start."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import uvicorn

from services.common import lifetime, logs, settings, tracing
from services.common.errors import ConfigurationError
from services.common.main import EXIT_FAILED, configuration_error, report_port, serve_metrics
from services.common.metrics import MetricsBindError
from services.workbench.bootstrap import build

logger = logging.getLogger(__name__)


def bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    return sock


async def serve(config: settings.WorkbenchSettings) -> None:
    built = build(config)
    listener = serve_metrics(config, built.metrics)
    sock = bind(config.listen)
    server = uvicorn.Server(uvicorn.Config(built.app, log_config=None, access_log=False, proxy_headers=False,
                                           server_header=False, date_header=True, timeout_graceful_shutdown=10))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        port = sock.getsockname()[1]
        logger.info("workbench serving on http://%s:%d/", sock.getsockname()[0], port)
        if config.port_file:
            report_port(config.port_file, port)
    try:
        await task
    finally:
        if listener is not None:
            listener.stop()


def main(argv: list[str] | None = None) -> int:
    try:
        config = settings.load(settings.WorkbenchSettings)
    except ConfigurationError as exc:
        return configuration_error("workbench", exc)
    logs.configure(config.log_level, "workbench")
    if config.supervisor_pid is not None:
        lifetime.stop_with_supervisor(config.supervisor_pid)
    tracing.configure("workbench", config.otlp_traces_endpoint, config.trace_sample_ratio)
    try:
        asyncio.run(serve(config))
    except ConfigurationError as exc:  # a file a setting names (UR_GRPC_TOKEN_FILE) cannot be used
        return configuration_error("workbench", exc)
    except MetricsBindError as exc:
        logger.error("workbench failed to start: %s", exc)
        return EXIT_FAILED
    except OSError as exc:
        logger.exception("workbench failed to start: %s", exc)
        return EXIT_FAILED
    finally:
        tracing.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
