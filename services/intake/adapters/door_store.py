"""The doors' SubmissionStore on SQLAlchemy Core (SQLite or PostgreSQL): services/intake/adapters/
door_tables.py. Blocking database work runs in a worker thread; a database that cannot be reached is
:class:`~services.common.errors.Unavailable`."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from services.common import migrations
from services.common.clock import ensure_utc
from services.common.db_errors import as_unavailable
from services.intake.adapters.door_tables import counters, pas_claim_identifiers, pas_requests
from services.intake.service_layer.door_ports import StoredRequest, SubmissionStore

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parents[1] / "door_migrations"
CONTROL_COUNTER = "x12-control"
MAX_CONTROL = 999_999_999


def migrate(engine: Engine) -> None:
    """Bring the doors' database to the newest revision."""
    migrations.upgrade("intake-doors", engine, MIGRATIONS)


def identifier_key(system: str, value: str) -> str:
    return hashlib.sha256(f"{system}\x1f{value}".encode()).hexdigest()


def _pack(bundle: Mapping[str, Any]) -> bytes:
    return zlib.compress(json.dumps(bundle, separators=(",", ":")).encode(), 6)


def _unpack(blob: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(zlib.decompress(blob))
    return value


class SqlSubmissionStore(SubmissionStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except SQLAlchemyError as exc:
            unavailable = as_unavailable(exc)
            if unavailable is not None:
                raise unavailable from exc
            raise

    async def record(self, request_id: str, submitter: str, bundle: Mapping[str, Any],
                     identifiers: Sequence[tuple[str, str]], at: dt.datetime) -> None:
        blob = _pack(bundle)

        def work() -> None:
            with self.engine.begin() as conn:
                changed = conn.execute(update(pas_requests).where(pas_requests.c.request_id == request_id).values(
                    bundle=blob, recorded_at=at)).rowcount
                if not changed:
                    conn.execute(insert(pas_requests).values(request_id=request_id, submitter=submitter, bundle=blob,
                                                             recorded_at=at))
                keys = {identifier_key(s, v) for s, v in identifiers}
                known = set(conn.execute(select(pas_claim_identifiers.c.identifier_key).where(
                    pas_claim_identifiers.c.submitter == submitter, pas_claim_identifiers.c.request_id == request_id,
                )).scalars())
                for key in sorted(keys - known):
                    conn.execute(insert(pas_claim_identifiers).values(submitter=submitter, identifier_key=key,
                                                                      request_id=request_id, recorded_at=at))

        try:
            await self._run(work)
        except IntegrityError:
            # A concurrent recording of the same request (a resent Bundle): it recorded the same.
            await self._run(work)

    async def get(self, request_id: str) -> StoredRequest | None:
        def work() -> StoredRequest | None:
            with self.engine.connect() as conn:
                row = conn.execute(select(pas_requests).where(pas_requests.c.request_id == request_id)).first()
            if row is None:
                return None
            return StoredRequest(row.request_id, row.submitter, _unpack(row.bundle), ensure_utc(row.recorded_at))

        return await self._run(work)

    async def find(self, submitter: str, system: str, value: str) -> list[str]:
        key = identifier_key(system, value)

        def work() -> list[str]:
            with self.engine.connect() as conn:
                return list(conn.execute(select(pas_claim_identifiers.c.request_id).where(
                    pas_claim_identifiers.c.submitter == submitter, pas_claim_identifiers.c.identifier_key == key,
                ).order_by(pas_claim_identifiers.c.recorded_at, pas_claim_identifiers.c.request_id)).scalars())

        return await self._run(work)

    async def next_control_number(self) -> int:
        def work() -> int:
            with self.engine.begin() as conn:
                value = conn.execute(update(counters).where(counters.c.name == CONTROL_COUNTER).values(
                    value=counters.c.value % MAX_CONTROL + 1).returning(counters.c.value)).scalar_one()
            return int(value)

        return await self._run(work)
