"""reviewer workflow: routing and lease columns on review_tasks, reviewers, task_events

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(sa.Column("category", sa.String(40), nullable=False, server_default="general"))
        batch.add_column(sa.Column("required_role", sa.String(20), nullable=False, server_default="nurse"))
        batch.add_column(sa.Column("units", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("regime", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("clock_rule", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("assigned_to", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("requested_facts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("information_due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("missed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deemed_denial", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_review_tasks_assignee", "review_tasks", ["assigned_to", "status"])
    op.create_table(
        "reviewers",
        sa.Column("reviewer_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("specialties", sa.Text(), nullable=False),
        sa.Column("licence_states", sa.Text(), nullable=False),
        sa.Column("lines_of_business", sa.Text(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("credential", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "task_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_task_events_task_id", "task_events", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_events_task_id", table_name="task_events")
    op.drop_table("task_events")
    op.drop_table("reviewers")
    op.drop_index("ix_review_tasks_assignee", table_name="review_tasks")
    with op.batch_alter_table("review_tasks") as batch:
        for column in ("updated_at", "deemed_denial", "missed_at", "escalated_at", "information_due",
                       "requested_facts", "version", "lease_expires_at", "assigned_to", "clock_rule", "regime",
                       "units", "required_role", "category"):
            batch.drop_column(column)
