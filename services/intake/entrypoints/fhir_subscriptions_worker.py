"""``ur-intake-subscriptions``: intake's subscription worker, the process that records the FHIR
Subscription notifications the determination events owe and delivers them
(services/intake/interop/subscriptions/worker.py).

It reads intake's settings (its database, Kafka, topics) and its own
``UR_INTAKE_SUBSCRIPTIONS_*`` ones; it shares intake's database and waits for intake to have
migrated it. Its Prometheus /metrics listener (UR_INTAKE_SUBSCRIPTIONS_METRICS_LISTEN) reports its
port in UR_METRICS_PORT_FILE once everything runs: a supervisor reads that file as "ready".

Exit status: 0 after a graceful stop; 2 for a configuration error; 1 when it could not start."""

from __future__ import annotations

import argparse
import logging
import sys

from services.common import lifetime, logs, metrics, settings
from services.common.errors import ConfigurationError
from services.common.main import EXIT_FAILED, configuration_error, report_port
from services.intake.interop.subscriptions.bootstrap import build_worker
from services.intake.interop.subscriptions.service_layer.handlers import CONSUMER_NAME

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"ur-{CONSUMER_NAME}",
                                     description="Records and delivers the FHIR Subscription notifications.")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)
    try:
        config = settings.load(settings.IntakeSettings)
    except ConfigurationError as exc:
        return configuration_error(CONSUMER_NAME, exc)
    logs.configure(config.log_level, CONSUMER_NAME)
    if config.supervisor_pid is not None:
        lifetime.stop_with_supervisor(config.supervisor_pid)
    try:
        worker = build_worker(config)
    except ConfigurationError as exc:
        return configuration_error(CONSUMER_NAME, exc)
    except Exception:
        logger.exception("%s failed to start", CONSUMER_NAME)
        return EXIT_FAILED
    try:
        worker.start()
        listener = None
        if config.subscriptions_metrics_listen != "off":
            listener = metrics.serve(config.subscriptions_metrics_listen, worker.metrics)
            if config.metrics_port_file is not None:
                report_port(config.metrics_port_file, listener.port)
    except (metrics.MetricsBindError, OSError) as exc:
        logger.error("%s failed to start: %s", CONSUMER_NAME, exc)
        worker.stop()
        return EXIT_FAILED
    except Exception:
        logger.exception("%s failed to start", CONSUMER_NAME)
        worker.stop()
        return EXIT_FAILED
    logger.info("%s running", CONSUMER_NAME)
    worker.serve_forever()
    if listener is not None:
        listener.stop()
    return 0



if __name__ == "__main__":
    sys.exit(main())
