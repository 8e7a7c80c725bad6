"""The command line every service shares: ``ur-<service> [serve|migrate]``.

Exit status: 0 after a graceful stop; 2 for a configuration error (a setting, or a file a setting
names: the message says which, and which field); 1 when the service could not start otherwise
(database or broker unreachable)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from services.common import lifetime, logs, metrics, migrations, settings, tracing
from services.common.db import make_engine
from services.common.errors import ConfigurationError
from services.common.grpc_server import BindError
from services.common.runtime import Application, Runnable

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_CONFIGURATION = 2

S = TypeVar("S", bound=settings.ServiceSettings)


def configuration_error(service: str, error: ConfigurationError) -> int:
    """Say what is wrong on stderr (one problem a line), and the exit status that means it."""
    lines = str(error).splitlines() or [type(error).__name__]
    text = f" {lines[0]}" if len(lines) == 1 else "".join(f"\n  {line}" for line in lines)
    sys.stderr.write(f"ur-{service}: configuration error:{text}\n")
    return EXIT_CONFIGURATION


def run(model: type[S], build: Callable[[S], Application], argv: list[str] | None = None) -> int:
    """Read ``model`` from the environment, ``build`` the service, start it and serve until stopped."""
    service = model.service
    parser = argparse.ArgumentParser(prog=f"ur-{service}", description=f"The UR platform's {service} service.")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"],
                        help="serve (default): run the service; migrate: upgrade its database and exit")
    args = parser.parse_args(argv)
    try:
        config = settings.load(model)
    except ConfigurationError as exc:
        return configuration_error(service, exc)
    logs.configure(config.log_level, service)
    if config.supervisor_pid is not None:
        lifetime.stop_with_supervisor(config.supervisor_pid)
    if args.command == "migrate":
        engine = make_engine(config.database, libpq=config.libpq_options(),
                             password_file=config.database_password_file)
        migrations.upgrade(service, engine)
        engine.dispose()
        return 0
    tracing.configure(service, config.otlp_traces_endpoint, config.trace_sample_ratio)
    try:
        runtime = build(config).runtime
    except ConfigurationError as exc:
        return configuration_error(service, exc)
    except Exception:
        logger.exception("%s failed to start", service)
        return EXIT_FAILED
    try:
        listener = _start(service, runtime, config)
    except _Exit as exc:
        return exc.status
    runtime.serve_forever()
    if listener is not None:
        listener.stop()
    tracing.shutdown()
    return 0


class _Exit(Exception):
    """Starting failed; what was started is stopped, the process exits with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _start(service: str, runtime: Runnable, config: settings.ServiceSettings) -> metrics.MetricsServer | None:
    """Start the runtime and its /metrics listener, then report the port (which says "ready")."""
    unbound: BindError | None = None
    try:
        runtime.start()
    except ConfigurationError as exc:
        runtime.stop()
        raise _Exit(configuration_error(service, exc)) from exc
    except BindError as exc:
        unbound = exc
    except Exception as exc:
        logger.exception("%s failed to start", service)
        runtime.stop()
        raise _Exit(EXIT_FAILED) from exc
    if unbound is not None:
        # Its message says it all (the port, and who holds it): one line, no traceback.
        logger.error("%s failed to start: %s", service, unbound)
        runtime.stop()
        raise _Exit(EXIT_FAILED)
    try:
        listener = serve_metrics(config, runtime.metrics)
    except (metrics.MetricsBindError, OSError) as exc:
        logger.error("%s failed to start: %s", service, exc)
        runtime.stop()
        raise _Exit(EXIT_FAILED) from exc
    # What start-up built (modules, descriptors, table metadata, pools) lives as long as the process:
    # keep it out of the collector's full passes, which otherwise walk it all and pause every thread,
    # gRPC calls included, for 50-150 ms.
    gc.freeze()
    logger.info("%s serving on port %d", service, runtime.port)
    if config.grpc_port_file:
        try:
            report_port(config.grpc_port_file, runtime.port)
        except OSError as exc:
            logger.error("%s cannot report its port in %s: %s", service, config.grpc_port_file, exc)
            runtime.stop()
            if listener is not None:
                listener.stop()
            raise _Exit(EXIT_FAILED) from exc
    return listener


def serve_metrics(config: settings.PlatformSettings, registry: metrics.Metrics) -> metrics.MetricsServer | None:
    """The process's /metrics listener on its ``metrics_listen`` address (None when that is "off"),
    its port reported in UR_METRICS_PORT_FILE before anything else says the process is ready."""
    address = getattr(config, "metrics_listen", "off")
    if address == "off":
        return None
    listener = metrics.serve(address, registry)
    if config.metrics_port_file:
        try:
            report_port(config.metrics_port_file, listener.port)
        except OSError:
            listener.stop()
            raise
    return listener


def report_port(path: Path, port: int) -> None:
    """Write the bound port whole or not at all (rename is atomic), so a supervisor that sees the
    file never reads half a number. Written once everything serves: the file means "ready"."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(f"{port}\n", encoding="ascii")
    staging.replace(path)
