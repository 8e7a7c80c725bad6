"""index-backed queue and monitor queries: urgency_rank, the queue order and the monitor's partial indexes

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The queue's order (services/review/domain/workflow.py priority) after the status.
QUEUE_ORDER = ["status", "urgency_rank", "due_at", "task_id"]


def upgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(sa.Column("urgency_rank", sa.Integer(), nullable=False, server_default="1"))
    op.execute("UPDATE review_tasks SET urgency_rank = 0 WHERE urgency = 'expedited'")
    op.drop_index("ix_review_tasks_queue", table_name="review_tasks")
    op.drop_index("ix_review_tasks_at_risk", table_name="review_tasks")
    op.create_index("ix_review_tasks_queue_order", "review_tasks", QUEUE_ORDER)
    op.create_index("ix_review_tasks_due_unmissed", "review_tasks", ["status", "due_at"],
                    postgresql_where=sa.text("missed_at IS NULL"), sqlite_where=sa.text("missed_at IS NULL"))
    op.create_index("ix_review_tasks_at_risk_unescalated", "review_tasks", ["status", "at_risk_at"],
                    postgresql_where=sa.text("escalated_at IS NULL"), sqlite_where=sa.text("escalated_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_review_tasks_at_risk_unescalated", table_name="review_tasks")
    op.drop_index("ix_review_tasks_due_unmissed", table_name="review_tasks")
    op.drop_index("ix_review_tasks_queue_order", table_name="review_tasks")
    op.create_index("ix_review_tasks_at_risk", "review_tasks", ["status", "at_risk_at"])
    op.create_index("ix_review_tasks_queue", "review_tasks", ["status", "urgency", "due_at"])
    with op.batch_alter_table("review_tasks") as batch:
        batch.drop_column("urgency_rank")
