"""Logging set-up for every process: one JSON object per line on stderr.

Each line carries ``ts`` (UTC, milliseconds), ``level``, ``service``, ``logger`` and ``message``;
``trace_id`` and ``span_id`` when tracing is on and the line was logged inside a span (so a log line
leads to its trace, services/common/tracing.py); ``exception`` with the traceback when there is
one; and the fields a caller passes as ``extra={"fields": {...}}`` (the workbench's access log).

Services log ids and counts, never patient data: no member id, name, date of birth or diagnosis code
appears in a log line (tests/e2e/test_observability.py scans every line of a run for those of the
data it submitted). Request, task, event and reviewer ids are the platform's own and may appear.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from services.common import tracing

#: The ``extra`` key whose mapping is merged into the line.
FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (non-ASCII kept as is)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "service": self._service, "logger": record.name,
            "message": record.getMessage()}
        ids = tracing.current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def configure(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (connection churn); its warnings still show.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
