"""Database engines and the tables every service shares (outbox, processed events).

Each service owns its own database; these helpers only build engines and the
two reliability tables so that every service writes them the same way.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.pool import NullPool

from services.common.errors import ConfigurationError, DuplicateKey, NotFound

logger = logging.getLogger(__name__)

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def make_engine(url: str, *, pool_size: int = 10, libpq: Mapping[str, str] | None = None,
                password_file: Path | None = None) -> Engine:
    """An engine tuned for the backend: WAL and busy timeout on SQLite, a pool on PostgreSQL.

    PostgreSQL only: ``libpq`` parameters (sslmode, sslrootcert, ...) apply where the URL's query sets
    none of its own; ``password_file`` holds the password of a URL without one, read at every new
    connection (a rotated secret is picked up without a restart).

    Its errors never quote a statement's parameters (``hide_parameters``): they hold member ids,
    names and diagnoses, and an error's text ends up in logs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let pysqlite not issue BEGIN itself; we emit BEGIN IMMEDIATE below so
            # that writers serialize up front instead of failing on lock upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {k: v for k, v in (libpq or {}).items() if k not in parsed.query}
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                           pool_recycle=1800, connect_args=connect_args, hide_parameters=True)
    if password_file is not None and parsed.password is None:
        secret = password_file

        @event.listens_for(engine, "do_connect")
        def _password(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            cparams["password"] = secret.read_text(encoding="utf-8").strip()

    return engine


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def outbox_table(metadata: MetaData) -> Table:
    """Events waiting to be published; written in the same transaction as the change they announce."""
    table = Table(
        "outbox", metadata,
        Column("id", BigIntId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("message_key", String(100), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("schema_version", String(10), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        # The W3C traceparent of the span that wrote the event (tracing on; NULL otherwise), published
        # as the record's header so that the consumer continues the trace (services/common/tracing.py).
        Column("traceparent", String(55), nullable=True),
    )
    Index("ix_outbox_unpublished", table.c.id,
          postgresql_where=table.c.published_at.is_(None), sqlite_where=table.c.published_at.is_(None))
    # Retention (services/common/retention.py) deletes published rows oldest first.
    Index("ix_outbox_published_at", table.c.published_at,
          postgresql_where=table.c.published_at.is_not(None), sqlite_where=table.c.published_at.is_not(None))
    return table


def relay_lease_table(metadata: MetaData) -> Table:
    """Which relay may publish the outbox: one row per outbox (services/common/outbox.py
    :class:`~services.common.outbox.RelayLease`). ``epoch`` grows at every change of holder, so a relay
    that lost the lease (paused past ``expires_at``) can tell, and its writes are refused."""
    return Table(
        "relay_lease", metadata,
        Column("name", String(100), primary_key=True),
        Column("holder", String(200), nullable=False),
        Column("epoch", BigInteger, nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )


def processed_events_table(metadata: MetaData) -> Table:
    """Events a consumer has applied; its primary key makes redelivery harmless."""
    table = Table(
        "processed_events", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    # Retention (services/common/retention.py) forgets ids past the deduplication window, oldest first.
    Index("ix_processed_events_processed_at", table.c.processed_at)
    return table


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a row because a unique (or primary) key already holds that value."""
    sqlstate = getattr(exc.orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return getattr(exc.orig, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


@contextmanager
def duplicate_keys_raised_as(what: str) -> Iterator[None]:
    """Translate a unique-key refusal inside the block into :class:`DuplicateKey` (naming ``what``);
    other integrity errors (a foreign key, a NOT NULL) pass unchanged."""
    try:
        yield
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise DuplicateKey(f"{what} already exists") from exc
        raise


def read_only_engine(url: str, service: str) -> tuple[Engine, str]:
    """An engine that cannot write to ``service``'s database at ``url``, for tools outside the service
    (urctl criteria replay, audit, report), and the location to show (no password).

    Read only by construction, not by promise: a SQLite file is opened through its URI with
    ``mode=ro`` (and ``immutable=1`` when no writer has it open, so not even a -wal or -shm file
    appears next to it); PostgreSQL sessions start with ``default_transaction_read_only=on``.

    Raises :class:`ConfigurationError` for a URL that is not one or a backend other than SQLite or
    PostgreSQL, :class:`NotFound` for a SQLite file that does not exist."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"{url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        path = Path(database)
        if not database or database == ":memory:" or not path.is_file():
            raise NotFound(f"no {service} database at {database or url}")
        resolved = path.resolve()
        live = resolved.with_name(resolved.name + "-wal").exists()  # a service has it open
        uri = f"file:{quote(str(resolved))}?mode=ro" + ("" if live else "&immutable=1")
        engine = create_engine("sqlite://", poolclass=NullPool,
                               creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
        return engine, f"sqlite:///{resolved}"
    if backend == "postgresql":
        engine = create_engine(parsed, poolclass=NullPool,
                               connect_args={"options": "-c default_transaction_read_only=on"})
        return engine, parsed.render_as_string(hide_password=True)
    raise ConfigurationError(f"{service} databases are SQLite or PostgreSQL, not {backend}")
