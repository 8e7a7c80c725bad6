"""Every service's Alembic history reaches head on PostgreSQL and SQLite, twice (idempotent)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from services.common import migrations
from services.common.db import make_engine

pytestmark = pytest.mark.integration

SHARED = {"outbox", "processed_events", "relay_lease"}
EXPECTED = {"intake": {"requests", "request_lines", "members", "coverages", *SHARED},
            "review": {"cases", "review_tasks", "reviewers", "task_events", *SHARED},
            "authorization": {"authorizations", *SHARED}}


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_migrations_on_postgres_and_sqlite(service: str, make_database: Callable[[str], str],
                                           tmp_path: Path) -> None:
    for url in (make_database(service), f"sqlite:///{tmp_path / (service + '.db')}"):
        engine = make_engine(url)
        migrations.upgrade(service, engine)
        migrations.upgrade(service, engine)
        assert EXPECTED[service] <= set(inspect(engine).get_table_names())
        # The migrations build exactly the schema the code declares (tables, columns, types, indexes).
        metadata = importlib.import_module(f"services.{service}.adapters.tables").metadata
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"{service} migrations differ from adapters/tables.py on {engine.dialect.name}: {diff}"
        engine.dispose()
