"""Authorization's schema (SQLAlchemy Core). Alembic migrations mirror it."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Index, Integer, MetaData, String, Table, UniqueConstraint

from services.common.db import BigIntId, outbox_table, processed_events_table

metadata = MetaData()

authorizations = Table(
    "authorizations", metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("authorization_number", String(20), nullable=True, unique=True),
    Column("request_id", String(36), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("determination_id", String(36), nullable=False),
    Column("member_id", String(40), nullable=False),
    Column("procedure_code", String(5), nullable=False),
    Column("units", Integer, nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("status", String(20), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # Exactly one authorization per approved line, however often the event is delivered.
    UniqueConstraint("request_id", "line_number", name="uq_authorizations_request_line"),
)
Index("ix_authorizations_member_code", authorizations.c.member_id, authorizations.c.procedure_code)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
