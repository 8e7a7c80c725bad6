"""observability: outbox.traceparent (the trace context an event was written in, published as its
Kafka header) and an index counting the tasks at risk by status (the review_tasks_at_risk metric)

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
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(55), nullable=True))
    op.create_index("ix_review_tasks_status_at_risk", "review_tasks", ["status", "at_risk_at", "urgency_rank"])


def downgrade() -> None:
    op.drop_index("ix_review_tasks_status_at_risk", table_name="review_tasks")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("traceparent")
