"""notices of determinations, appeals on their own clocks, and appeal tasks (the appeal they decide,
the reviewers who may never take them)

Revision ID: 0009
Revises: 0008
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(sa.Column("appeal_id", sa.String(36), nullable=False, server_default=""))
        batch.add_column(sa.Column("excluded_reviewers", sa.Text(), nullable=False, server_default="[]"))
        batch.drop_constraint("uq_review_tasks_request_line", type_="unique")
        batch.create_unique_constraint("uq_review_tasks_request_line", ["request_id", "line_number", "appeal_id"])
    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("determination_id", sa.String(36), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("recipient_role", sa.String(30), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_numbers", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sections", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    op.create_index("ix_notices_request_id", "notices", ["request_id"])
    op.create_index("ix_notices_member_id", "notices", ["member_id"])
    op.create_table(
        "appeals",
        sa.Column("appeal_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.String(40), nullable=False),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("appellant", sa.String(30), nullable=False),
        sa.Column("appellant_name", sa.String(200), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("regime", sa.String(40), nullable=False),
        sa.Column("clock_state", sa.Text(), nullable=False),
        sa.Column("original_decider", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(30), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("forwarded_to", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("appeal_id"),
        sa.UniqueConstraint("task_id"),
    )
    op.create_index("ix_appeals_request_id", "appeals", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_appeals_request_id", table_name="appeals")
    op.drop_table("appeals")
    op.drop_index("ix_notices_member_id", table_name="notices")
    op.drop_index("ix_notices_request_id", table_name="notices")
    op.drop_table("notices")
    with op.batch_alter_table("review_tasks") as batch:
        batch.drop_constraint("uq_review_tasks_request_line", type_="unique")
        batch.create_unique_constraint("uq_review_tasks_request_line", ["request_id", "line_number"])
        batch.drop_column("excluded_reviewers")
        batch.drop_column("appeal_id")
