"""The command line every service shares: ``ur-<service> [serve|migrate]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from services.common import logs, migrations, settings
from services.common.db import make_engine
from services.common.runtime import ServiceRuntime

logger = logging.getLogger(__name__)


def run(service: str, build: Callable[[settings.ServiceSettings], ServiceRuntime],
        argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"ur-{service}", description=f"The UR platform's {service} service.")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"],
                        help="serve (default): run the service; migrate: upgrade its database and exit")
    args = parser.parse_args(argv)
    try:
        config = settings.load(service)
    except settings.SettingsError as exc:
        print(f"ur-{service}: configuration error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    logs.configure(config.log_level, service)
    if args.command == "migrate":
        engine = make_engine(config.database_url)
        migrations.upgrade(service, engine)
        engine.dispose()
        return 0
    try:
        runtime = build(config)
    except Exception as exc:
        logger.exception("%s failed to start: %s", service, exc)
        return 1
    logger.info("%s serving on port %d", service, runtime.port)
    if config.grpc_port_file:
        try:
            report_port(Path(config.grpc_port_file), runtime.port)
        except OSError as exc:
            logger.error("%s cannot report its port in %s: %s", service, config.grpc_port_file, exc)
            runtime.stop()
            return 1
    runtime.serve_forever()
    return 0


def report_port(path: Path, port: int) -> None:
    """Write the bound port whole or not at all (rename is atomic), so a supervisor that sees the
    file never reads half a number. Written once everything serves: the file means "ready"."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(f"{port}\n", encoding="ascii")
    staging.replace(path)
