"""The access log as structured log lines on the ``ur.workbench.access`` logger: one JSON object
per page that showed patient data, naming the reviewer, the page, the requests, members and tasks
it showed, and when. Issue 16 will move these into the tamper-evident audit log."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence

from services.workbench.service_layer.ports import AccessLog

logger = logging.getLogger("ur.workbench.access")


class LogAccessLog(AccessLog):
    def viewed(self, *, reviewer_id: str, page: str, at: dt.datetime, request_ids: Sequence[str] = (),
               member_ids: Sequence[str] = (), task_ids: Sequence[str] = ()) -> None:
        logger.info("%s", json.dumps({
            "event": "patient_data_viewed", "at": at.isoformat(timespec="milliseconds"), "reviewer": reviewer_id,
            "page": page, "request_ids": sorted(set(request_ids)), "member_ids": sorted(set(member_ids)),
            "task_ids": sorted(set(task_ids))}, separators=(",", ":")))
