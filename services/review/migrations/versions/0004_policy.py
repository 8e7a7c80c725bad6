"""provider line outcomes (the gold-card record)

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
        "provider_line_outcomes",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("line_number", sa.Integer(), primary_key=True),
        sa.Column("requesting_npi", sa.String(10), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_provider_line_outcomes_provider", "provider_line_outcomes",
                    ["requesting_npi", "category", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_line_outcomes_provider", table_name="provider_line_outcomes")
    op.drop_table("provider_line_outcomes")
