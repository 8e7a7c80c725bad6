"""``ur-fhir``: serve intake's standard front doors (Da Vinci PAS over FHIR, the X12 278) over HTTP
until SIGTERM or Ctrl-C.

Exit status: 0 after a graceful stop, 2 for a configuration error, 1 when it could not start."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.common import lifetime, logs, settings, tracing
from services.common.credentials import CredentialsSource
from services.common.errors import ConfigurationError
from services.common.listeners import bind_tcp
from services.common.main import EXIT_FAILED, configuration_error, serve_metrics
from services.common.metrics import MetricsBindError
from services.common.web import serve_asgi
from services.intake.adapters.door_clients import CredentialsDirectory
from services.intake.door_bootstrap import build

logger = logging.getLogger(__name__)


def credentials_of(config: settings.FhirSettings) -> CredentialsSource:
    """The platform's credentials file (raises ConfigurationError when it cannot be used)."""
    return CredentialsSource(config.credentials_file)


async def _reload(source: CredentialsSource, every_s: float) -> None:
    """Pick up a changed credentials file (added, rotated or revoked secrets) without a restart."""
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(source.check)


async def serve(config: settings.FhirSettings) -> None:
    credentials = credentials_of(config)
    built = build(config, CredentialsDirectory(credentials))
    reload = asyncio.create_task(_reload(credentials, config.credentials_reload_s))
    listener = serve_metrics(config, built.metrics)
    sock = bind_tcp(config.listen)
    try:
        await serve_asgi(built.app, sock, name="FHIR door (X12 278 at /x12/278)", path="/fhir",
                         port_file=config.port_file, ssl_certfile=config.tls_cert_file,
                         ssl_keyfile=config.tls_key_file)
    finally:
        reload.cancel()
        if listener is not None:
            listener.stop()


def main(argv: list[str] | None = None) -> int:
    try:
        config = settings.load(settings.FhirSettings)
    except ConfigurationError as exc:
        return configuration_error("fhir", exc)
    logs.configure(config.log_level, "fhir")
    if config.supervisor_pid is not None:
        lifetime.stop_with_supervisor(config.supervisor_pid)
    tracing.configure("fhir", config.otlp_traces_endpoint, config.trace_sample_ratio)
    try:
        asyncio.run(serve(config))
    except ConfigurationError as exc:
        return configuration_error("fhir", exc)
    except MetricsBindError as exc:
        logger.error("FHIR door failed to start: %s", exc)
        return EXIT_FAILED
    except OSError as exc:
        logger.exception("FHIR door failed to start: %s", exc)
        return EXIT_FAILED
    finally:
        tracing.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
