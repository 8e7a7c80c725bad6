"""records: one per determination line (status, provider, units used, criteria, decider, appeal),
extensions, and the units claim lines drew

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("authorizations") as batch:
        batch.add_column(sa.Column("servicing_npi", sa.String(10), nullable=False, server_default=""))
        batch.add_column(sa.Column("servicing_name", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("unit", sa.String(10), nullable=False, server_default="units"))
        batch.add_column(sa.Column("units_used", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("criteria", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("decided_by", sa.Text(), nullable=True))
        batch.add_column(sa.Column("next_review_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("action", sa.String(30), nullable=False, server_default=""))
        batch.add_column(sa.Column("approved_after_appeal", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("appeal_id", sa.String(36), nullable=False, server_default=""))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    # Records issued before 0003 were all certified lines; "active" is "approved" now.
    op.execute("UPDATE authorizations SET status = 'approved' WHERE status = 'active'")
    op.create_table(
        "authorization_extensions",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("authorization_number", sa.String(20), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("determination_id", sa.String(36), nullable=False),
        sa.Column("units_added", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("extended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "line_number", name="uq_authorization_extensions_line"),
    )
    op.create_index("ix_authorization_extensions_authorization_number", "authorization_extensions",
                    ["authorization_number"])
    op.create_table(
        "unit_draws",
        sa.Column("claim_line_id", sa.String(100), nullable=False),
        sa.Column("authorization_number", sa.String(20), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("claim_line_id"),
    )
    op.create_index("ix_unit_draws_authorization_number", "unit_draws", ["authorization_number"])


def downgrade() -> None:
    op.drop_index("ix_unit_draws_authorization_number", table_name="unit_draws")
    op.drop_table("unit_draws")
    op.drop_index("ix_authorization_extensions_authorization_number", table_name="authorization_extensions")
    op.drop_table("authorization_extensions")
    op.execute("UPDATE authorizations SET status = 'active' WHERE status = 'approved'")
    with op.batch_alter_table("authorizations") as batch:
        for name in ("updated_at", "appeal_id", "approved_after_appeal", "action", "reason", "next_review_date",
                     "decided_by", "criteria", "units_used", "unit", "servicing_name", "servicing_npi"):
            batch.drop_column(name)
