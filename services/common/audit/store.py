"""The audit log in a service's own database (SQLAlchemy Core): the entries, the chain head, and the
signed checkpoints. The chain itself is services/common/audit/chain.py.

Tables (every service has the three; its Alembic migration creates them and the head row):

* ``audit_log``: one row per entry, keyed by its sequence number;
* ``audit_head``: one row (id 1), the last entry's number and hash. Appending locks it
  (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's writers are serialized by ``BEGIN IMMEDIATE``
  already), so appends from any number of threads and processes form one chain: each transaction
  reads the head, seals its entries after it and moves it, and the next waits for the commit;
* ``audit_checkpoints``: the signed checkpoints (:meth:`AuditLog.checkpoint`).

Entries are appended inside the transaction of the change they record (the unit of work appends
what its use case recorded just before it commits: services/common/uow.py), so a change and its
entry commit together or not at all, as a change and its outbox event do. The head lock is taken
last, right before the commit, so a transaction holds it only for an insert and an update.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    Update,
    bindparam,
    insert,
    select,
    update,
)

from services.common.audit import actor as actors
from services.common.audit.chain import (
    EMPTY,
    GENESIS,
    AuditEntry,
    AuditRecord,
    ChainHead,
    Checkpoint,
    make_checkpoint,
    member_ref,
    refs_text,
    seal,
)
from services.common.clock import Clock, ensure_utc, utcnow
from services.common.errors import ConfigurationError

logger = logging.getLogger(__name__)

_Id = BigInteger().with_variant(Integer(), "sqlite")
HEAD_ID = 1


def audit_tables(metadata: MetaData) -> None:
    """Add ``audit_log``, ``audit_head`` and ``audit_checkpoints`` to a service's metadata."""
    log = Table(
        "audit_log", metadata,
        Column("seq", _Id, primary_key=True, autoincrement=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor", String(120), nullable=False),
        Column("action", String(60), nullable=False),
        Column("request_id", String(100), nullable=False, server_default=""),
        Column("refs", Text, nullable=False),  # canonical JSON (chain.refs_text)
        Column("event_id", String(100), nullable=False, server_default=""),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    )
    # `urctl audit trail`: one request's entries.
    Index("ix_audit_log_request", log.c.request_id, log.c.seq)
    Table(
        "audit_head", metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("seq", _Id, nullable=False),
        Column("hash", String(64), nullable=False),
    )
    Table(
        "audit_checkpoints", metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("seq", _Id, nullable=False),
        Column("head_hash", String(64), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("mac", String(64), nullable=False),
    )


@dataclass(frozen=True)
class AuditTables:
    log: Table
    head: Table
    checkpoints: Table

    @classmethod
    def of(cls, metadata: MetaData) -> AuditTables | None:
        """The audit tables of ``metadata``, or None when it has none."""
        t = metadata.tables
        if "audit_log" not in t:
            return None
        return cls(t["audit_log"], t["audit_head"], t["audit_checkpoints"])


def _reader_tables() -> AuditTables:
    metadata = MetaData()
    audit_tables(metadata)
    tables = AuditTables.of(metadata)
    if tables is None:  # audit_tables() has just added them
        raise RuntimeError("audit tables missing")
    return tables


#: Tables of the shape every service has, for readers outside the services (urctl audit).
READER_TABLES = _reader_tables()


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(seq=int(row.seq), at=ensure_utc(row.at), actor=row.actor, action=row.action,
                      request_id=row.request_id, refs=json.loads(row.refs), event_id=row.event_id,
                      prev_hash=row.prev_hash, hash=row.hash)


def prepare(records: Sequence[AuditRecord], *, service: str, key: bytes | None) -> list[AuditRecord]:
    """The records ready to seal, in the caller's context: the actor filled in (the record's own,
    else the current actor, else ``service``) and the member id replaced by its reference under
    ``key`` (dropped without one)."""
    default = actors.current_actor() or actors.service(service)
    ready = []
    for record in records:
        refs = dict(record.refs)
        if record.member_id and key is not None:
            refs["member_ref"] = member_ref(key, record.member_id)
        ready.append(dataclasses.replace(record, actor=record.actor or default, member_id="", refs=refs))
    return ready


@functools.cache
def _append_statements(tables: AuditTables) -> tuple[Select[tuple[int, str]], Update]:
    """The head's lock, and the head's update with one entry's insert as its CTE (every value bound):
    built once per set of tables, so that SQLAlchemy compiles each once and no append (nor unit of work
    that makes its own AuditLog) builds them again."""
    lock_head = select(tables.head.c.seq, tables.head.c.hash).where(tables.head.c.id == HEAD_ID).with_for_update()
    entered = insert(tables.log).values({c.name: bindparam(c.name, type_=c.type) for c in tables.log.c})
    one_trip = (update(tables.head).where(tables.head.c.id == HEAD_ID)
                .values(seq=bindparam("head_seq", type_=tables.head.c.seq.type),
                        hash=bindparam("head_hash", type_=tables.head.c.hash.type))
                .add_cte(entered.cte("entered")))
    return lock_head, one_trip


class AuditLog:
    """One service's audit log in its database: :meth:`prepare` and :meth:`append` for units of
    work, :meth:`checkpoint` for the periodic signature, and the reads ``urctl audit`` needs.

    ``key`` (UR_AUDIT_KEY_FILE's bytes) signs checkpoints and makes member references; without it
    there are no checkpoints and records name no member."""

    def __init__(self, tables: AuditTables, *, service: str, clock: Clock = utcnow, key: bytes | None = None) -> None:
        self.tables = tables
        self.service = service
        self._clock = clock
        self._key = key

    @classmethod
    def of(cls, metadata: MetaData, *, service: str, clock: Clock = utcnow,
           key: bytes | None = None) -> AuditLog | None:
        tables = AuditTables.of(metadata)
        return None if tables is None else cls(tables, service=service, clock=clock, key=key)

    @property
    def signs(self) -> bool:
        return self._key is not None

    # -- writing ---------------------------------------------------------------------------------
    def prepare(self, records: Sequence[AuditRecord]) -> list[AuditRecord]:
        """:func:`prepare` for this service, with its key."""
        return prepare(records, service=self.service, key=self._key)

    def append(self, conn: Connection, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Seal ``records`` (prepared) after the chain head and store them, in ``conn``'s transaction;
        the head stays locked until that transaction ends."""
        if not records:
            return []
        t = self.tables
        lock_head, one_trip = _append_statements(t)
        row = conn.execute(lock_head).first()
        head = EMPTY if row is None else ChainHead(int(row.seq), row.hash)
        entries = seal(records, head, self._clock())
        rows = [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "request_id": e.request_id,
                 "refs": refs_text(e.refs), "event_id": e.event_id, "prev_hash": e.prev_hash, "hash": e.hash}
                for e in entries]
        last = entries[-1]
        if row is not None and len(rows) == 1 and conn.dialect.name == "postgresql":
            # One round trip for the entry and the head (most transactions record one entry, and pay
            # the trip while holding the head): the insert as a data-modifying CTE of the head's update.
            conn.execute(one_trip, {"head_seq": last.seq, "head_hash": last.hash, **rows[0]})
            return entries
        conn.execute(insert(t.log), rows)
        if row is None:
            conn.execute(insert(t.head).values(id=HEAD_ID, seq=last.seq, hash=last.hash))
        else:
            conn.execute(update(t.head).where(t.head.c.id == HEAD_ID).values(seq=last.seq, hash=last.hash))
        return entries

    def checkpoint(self, engine: Engine) -> Checkpoint | None:
        """Sign the chain head as it stands committed, unless the newest checkpoint already names it
        (or there is no key). The checkpoint is stored and logged, so that it also lives outside the
        database."""
        if self._key is None:
            return None
        t = self.tables
        with engine.begin() as conn:
            head = read_head(conn, t)
            newest = conn.execute(select(t.checkpoints.c.seq).order_by(t.checkpoints.c.id.desc()).limit(1)).scalar()
            if head.seq in (0, newest):
                return None
            cp = make_checkpoint(self._key, self.service, head, self._clock())
            conn.execute(insert(t.checkpoints).values(seq=cp.seq, head_hash=cp.head_hash, at=cp.at, mac=cp.mac))
        logger.info("audit checkpoint: %s entry %d head %s mac %s", self.service, cp.seq, cp.head_hash, cp.mac)
        return cp


# -- reading (any connection; urctl opens read-only ones) ---------------------------------------------

def read_head(conn: Connection, tables: AuditTables = READER_TABLES) -> ChainHead:
    row = conn.execute(select(tables.head.c.seq, tables.head.c.hash).where(tables.head.c.id == HEAD_ID)).first()
    return EMPTY if row is None else ChainHead(int(row.seq), row.hash or GENESIS)


def read_entries(conn: Connection, tables: AuditTables = READER_TABLES, *,
                 request_id: str | None = None) -> list[AuditEntry]:
    """Every entry (or one request's), in sequence order."""
    query = select(tables.log).order_by(tables.log.c.seq)
    if request_id is not None:
        query = query.where(tables.log.c.request_id == request_id)
    return [_entry(r) for r in conn.execute(query)]


def read_checkpoints(conn: Connection, tables: AuditTables = READER_TABLES) -> list[Checkpoint]:
    c = tables.checkpoints
    return [Checkpoint(int(r.seq), r.head_hash, ensure_utc(r.at), r.mac)
            for r in conn.execute(select(c.c.seq, c.c.head_hash, c.c.at, c.c.mac).order_by(c.c.id))]


def read_key(path: Path) -> bytes:
    """The audit key: the file's bytes, surrounding whitespace stripped (a key made with
    ``openssl rand -hex 32 > audit.key`` is its 64 hex characters). ConfigurationError when the file
    cannot be read or holds fewer than 16 bytes."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"UR_AUDIT_KEY_FILE: cannot read {path}: {exc.strerror}") from exc
    if len(key) < 16:
        raise ConfigurationError(f"UR_AUDIT_KEY_FILE: {path} holds {len(key)} bytes; an audit key needs at least 16")
    return key
