"""``ur-workbench``: serve the workbench over HTTP until SIGTERM or Ctrl-C.

Exit status: 0 after a graceful stop, 2 for a configuration error, 1 when it could not start."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.common import lifetime, logs, settings, tracing
from services.common.errors import ConfigurationError
from services.common.listeners import bind_tcp as bind
from services.common.main import EXIT_FAILED, configuration_error, serve_metrics
from services.common.metrics import MetricsBindError
from services.common.web import serve_asgi
from services.workbench.bootstrap import build

logger = logging.getLogger(__name__)


async def serve(config: settings.WorkbenchSettings) -> None:
    built = build(config)
    listener = serve_metrics(config, built.metrics)
    sock = bind(config.listen)
    try:
        await serve_asgi(built.app, sock, name="workbench", port_file=config.port_file)
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
