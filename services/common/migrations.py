"""Alembic, driven from code: each service keeps its migrations in
``services/<name>/migrations`` and upgrades its own database to head."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, text

logger = logging.getLogger(__name__)

SERVICES_DIR = Path(__file__).resolve().parent.parent


def alembic_config(service: str, database_url: str, location: Path | None = None) -> Config:
    """``location``: the migrations directory when it is not ``services/<service>/migrations`` (a
    service's second database, as intake's doors have)."""
    config = Config()
    config.set_main_option("script_location", str(location or SERVICES_DIR / service / "migrations"))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


#: The PostgreSQL advisory lock under which a service's migrations run (any number, the same for all).
MIGRATION_LOCK = 0x75720001


def upgrade(service: str, engine: Engine, location: Path | None = None) -> None:
    """Bring the database to the newest revision, on the given engine's connection.

    Replicas of a service starting together (or their Kubernetes init containers) migrate one at a
    time: on PostgreSQL the migration transaction first takes an advisory lock, so the second finds
    the schema at head and does nothing (SQLite's writers are serialized already)."""
    config = alembic_config(service, engine.url.render_as_string(hide_password=False), location)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    logger.info("%s database at head", service)


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``."""
    from alembic import context
    from sqlalchemy import create_engine

    config = context.config
    connection = config.attributes.get("connection")
    render_as_batch = True  # SQLite needs batch mode to alter tables
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=render_as_batch)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                          render_as_batch=render_as_batch)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=render_as_batch)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
