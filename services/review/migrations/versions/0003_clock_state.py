"""regulatory clock state on cases; paused clocks on tasks

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


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("clock_state", sa.Text(), nullable=True))
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(sa.Column("clock_paused", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.drop_column("clock_paused")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("clock_state")
