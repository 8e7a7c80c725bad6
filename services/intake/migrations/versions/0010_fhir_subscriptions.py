"""FHIR Subscriptions to the PAS topic (R4 backport) and the notifications owed to them

Revision ID: 0010
Revises: 0009
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_subscriptions",
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("org_identifier", sa.String(80), nullable=True),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("heartbeat_period_s", sa.Integer(), nullable=True),
        sa.Column("timeout_s", sa.Integer(), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events_since_start", sa.BigInteger(), nullable=False),
        sa.Column("handshake_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id"),
    )
    op.create_index("ix_fhir_subscriptions_owner", "fhir_subscriptions", ["owner"])
    op.create_index("ix_fhir_subscriptions_due_at", "fhir_subscriptions", ["due_at"])
    op.create_table(
        "fhir_notifications",
        sa.Column("notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("determination_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("awaiting", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_number", sa.BigInteger(), nullable=True),
        sa.Column("focus", sa.LargeBinary(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["fhir_subscriptions.subscription_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("notification_id"),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_fhir_notifications_subscription_event"),
    )
    op.create_index("ix_fhir_notifications_line", "fhir_notifications", ["subscription_id", "state", "event_number"])
    op.create_index("ix_fhir_notifications_held", "fhir_notifications", ["state", "request_id", "created_at"])
    op.create_index("ix_fhir_notifications_delivered_at", "fhir_notifications", ["delivered_at"])


def downgrade() -> None:
    op.drop_table("fhir_notifications")
    op.drop_table("fhir_subscriptions")
