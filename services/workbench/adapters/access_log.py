"""The access log as structured log lines on the ``ur.workbench.access`` logger: one line per page
that showed patient data, naming the reviewer, the page, the requests and tasks it showed, the
members as opaque references, and when. Issue 16's tamper-evident audit log will carry the
identifiers themselves; a log line carries no patient data (services/common/logs.py).

A member reference is ``m-`` and the first 20 hex digits of HMAC-SHA256(key, member id): the same
member gives the same reference under one key, and without the key a reference cannot be turned
back into a member id (ids are short and guessable, so a plain hash could be). The key is
UR_WORKBENCH_ACCESS_LOG_KEY; an auditor holding it computes the reference of the member in question
and searches the log for it. Without the setting each process draws a random key, and references
link the lines of that process only."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence

from services.common.logs import FIELDS
from services.workbench.service_layer.ports import AccessLog

logger = logging.getLogger("ur.workbench.access")


def member_reference(key: bytes, member_id: str) -> str:
    """The opaque reference of ``member_id`` under ``key``."""
    return "m-" + hmac.new(key, member_id.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


class LogAccessLog(AccessLog):
    def __init__(self, key: str | None = None) -> None:
        self._key = key.encode("utf-8") if key else secrets.token_bytes(32)

    def viewed(self, *, reviewer_id: str, page: str, at: dt.datetime, request_ids: Sequence[str] = (),
               member_ids: Sequence[str] = (), task_ids: Sequence[str] = ()) -> None:
        logger.info("patient data viewed", extra={FIELDS: {
            "event": "patient_data_viewed", "at": at.isoformat(timespec="milliseconds"), "reviewer": reviewer_id,
            "page": page, "request_ids": sorted(set(request_ids)),
            "member_refs": sorted({member_reference(self._key, m) for m in member_ids}),
            "task_ids": sorted(set(task_ids))}})
