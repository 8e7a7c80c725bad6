"""Review's schema (SQLAlchemy Core). Alembic migrations mirror it."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.common.db import outbox_table, processed_events_table

metadata = MetaData()

cases = Table(
    "cases", metadata,
    # One case, and so one automated determination, per request.
    Column("request_id", String(36), primary_key=True),
    Column("determination_id", String(36), nullable=False, unique=True),
    Column("member_id", String(40), nullable=False, index=True),
    Column("line_of_business", String(30), nullable=False),
    Column("member_state", String(2), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("review_type", String(20), nullable=False),
    Column("requesting_npi", String(10), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("regime", String(40), nullable=False),
    # ur.events.v1.RequestSubmitted as received (kept for what-if replay) and
    # ur.common.v1.Determination as decided.
    Column("request", LargeBinary, nullable=False),
    Column("determination", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

review_tasks = Table(
    "review_tasks", metadata,
    Column("task_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("procedure_code", String(5), nullable=False),
    Column("line_of_business", String(30), nullable=False),
    Column("member_state", String(2), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of strings
    Column("status", String(20), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("request_id", "line_number", name="uq_review_tasks_request_line"),
)
Index("ix_review_tasks_queue", review_tasks.c.status, review_tasks.c.urgency, review_tasks.c.due_at)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
