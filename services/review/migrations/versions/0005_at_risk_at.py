"""at-risk point of each task, measured over the regulatory clock

Revision ID: 0005
Revises: 0004
"""
import datetime as dt
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The default share (UR_REVIEW_AT_RISK_FRACTION) for tasks that exist before this revision; new and
# re-timed tasks get the configured one.
FRACTION = 0.2


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def upgrade() -> None:
    with op.batch_alter_table("review_tasks") as batch:
        batch.add_column(sa.Column("at_risk_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_review_tasks_at_risk", "review_tasks", ["status", "at_risk_at"])
    # Existing undecided tasks: from receipt (the case's clock start) to the due time, less tolled time.
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT t.task_id, t.due_at, t.clock_paused, c.received_at, c.clock_state FROM review_tasks t "
        "JOIN cases c ON c.request_id = t.request_id "
        "WHERE t.status IN ('open', 'claimed', 'pended_information')")).all()
    for row in rows:
        if row.clock_paused:
            continue
        start = _utc(row.received_at)
        tolled = 0.0
        if row.clock_state:
            state = json.loads(row.clock_state)
            start = _utc(dt.datetime.fromisoformat(state.get("period_start") or state["received_at"]))
            tolled = float(state.get("tolled_s") or 0.0)
        due = _utc(row.due_at)
        total = max(0.0, (due - start).total_seconds() - tolled)
        conn.execute(sa.text("UPDATE review_tasks SET at_risk_at = :at WHERE task_id = :id"),
                     {"at": due - dt.timedelta(seconds=FRACTION * total), "id": row.task_id})


def downgrade() -> None:
    op.drop_index("ix_review_tasks_at_risk", table_name="review_tasks")
    with op.batch_alter_table("review_tasks") as batch:
        batch.drop_column("at_risk_at")
