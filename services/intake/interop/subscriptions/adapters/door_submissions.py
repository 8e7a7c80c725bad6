"""The PAS request Bundles the FHIR door recorded, read from the door's own database (its
``pas_requests`` table: request id, submitting organization, the latest PAS Bundle about the request
as zlib-compressed JSON: services/intake/adapters/door_tables.py).

Only this table is read, on a connection of the door's database of its own (not in intake's
transaction: it is another database). A database the door has not created its table in yet holds no
PAS request; one that cannot be reached raises, so that the consumer retries rather than taking every
request for a non-PAS one."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, inspect, select

from services.intake.adapters.door_tables import pas_requests
from services.intake.interop.subscriptions.adapters.results import PasSubmission

logger = logging.getLogger(__name__)

class DoorSubmissions:
    """A :data:`~.results.PasSubmissions` over the door's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._table_seen = False

    def _has_table(self) -> bool:
        if not self._table_seen:
            self._table_seen = inspect(self.engine).has_table(pas_requests.name)
            if not self._table_seen:
                logger.info("the FHIR door's database has no %s table yet: no request came in as a PAS Bundle",
                            pas_requests.name)
        return self._table_seen

    def __call__(self, _conn: Connection, request_ids: Sequence[str]) -> dict[str, PasSubmission]:
        if not request_ids or not self._has_table():
            return {}
        t = pas_requests
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.request_id, t.c.submitter, t.c.bundle)
                                .where(t.c.request_id.in_(list(request_ids)))).all()
        return {row.request_id: PasSubmission(row.submitter, zlib.decompress(bytes(row.bundle))) for row in rows}
