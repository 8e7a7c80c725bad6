"""Authorization's schema (SQLAlchemy Core). Alembic migrations mirror it."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.common.audit.store import audit_tables
from services.common.db import BigIntId, outbox_table, processed_events_table, relay_lease_table

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
    # approved, partially_approved, modified, denied, pended, cancelled (migration 0003; "active" before)
    Column("status", String(20), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # The record of a determination line (migration 0003): where, how much is used, on what criteria,
    # decided by whom, when the stay is reviewed next, and what an appeal did to it.
    Column("servicing_npi", String(10), nullable=False, server_default=""),
    Column("servicing_name", String(200), nullable=False, server_default=""),
    Column("unit", String(10), nullable=False, server_default="units"),
    # Only a conditional UPDATE (repository.draw) changes it: claims never draw past units.
    Column("units_used", Integer, nullable=False, server_default="0"),
    Column("criteria", Text, nullable=False, server_default="[]"),  # JSON list of "id@version"
    Column("decided_by", Text, nullable=True),  # JSON: id, role, credential, name, criteria
    Column("next_review_date", Date, nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("action", String(30), nullable=False, server_default=""),
    Column("approved_after_appeal", Boolean, nullable=False, server_default="0"),
    Column("appeal_id", String(36), nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    # Exactly one record per determination line, however often the event is delivered.
    UniqueConstraint("request_id", "line_number", name="uq_authorizations_request_line"),
)
Index("ix_authorizations_member_code", authorizations.c.member_id, authorizations.c.procedure_code)

# Extensions and renewals added to an authorization (concurrent review), one per extension line.
authorization_extensions = Table(
    "authorization_extensions", metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("authorization_number", String(20), nullable=False, index=True),
    Column("request_id", String(36), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("determination_id", String(36), nullable=False),
    Column("units_added", Integer, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("extended_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("request_id", "line_number", name="uq_authorization_extensions_line"),
)

# Units drawn by claim lines: the claim line id is the key, so a retried draw finds its first answer.
unit_draws = Table(
    "unit_draws", metadata,
    Column("claim_line_id", String(100), primary_key=True),
    Column("authorization_number", String(20), nullable=False, index=True),
    Column("units", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("drawn_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
relay_lease = relay_lease_table(metadata)
# The tamper-evident audit log (services/common/audit/store.py).
audit_tables(metadata)
