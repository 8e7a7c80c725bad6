"""case notes on members: append only

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_notes",
        sa.Column("note_id", sa.String(36), primary_key=True),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("author_id", sa.String(64), nullable=False),
        sa.Column("author_name", sa.String(200), nullable=False),
        sa.Column("author_role", sa.String(20), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("amends", sa.String(36), nullable=True),
    )
    op.create_index("ix_case_notes_member", "case_notes", ["member_id", "written_at"])


def downgrade() -> None:
    op.drop_index("ix_case_notes_member", table_name="case_notes")
    op.drop_table("case_notes")
