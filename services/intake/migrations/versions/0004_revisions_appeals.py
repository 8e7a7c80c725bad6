"""revisions of requests under review, and appeals of adverse lines (one per line)

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_revisions",
        sa.Column("revision_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.request_id"]),
        sa.PrimaryKeyConstraint("revision_id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_request_revisions_request_id", "request_revisions", ["request_id"])
    op.create_table(
        "appeals",
        sa.Column("appeal_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("appellant", sa.String(30), nullable=False),
        sa.Column("appellant_name", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(30), nullable=False, server_default=""),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("forwarded_to", sa.String(300), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["request_id"], ["requests.request_id"]),
        sa.PrimaryKeyConstraint("appeal_id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("request_id", "line_number", name="uq_appeals_request_line"),
    )


def downgrade() -> None:
    op.drop_table("appeals")
    op.drop_index("ix_request_revisions_request_id", table_name="request_revisions")
    op.drop_table("request_revisions")
