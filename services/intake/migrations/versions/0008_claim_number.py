"""claim number: each request's workers' comp claim number (the submission's
workers_comp.claim_number), indexed, for the adjuster's view of a claim. Requests recorded before
keep NULL: their claim numbers are only in their payloads.

Revision ID: 0008
Revises: 0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("claim_number", sa.String(40), nullable=True))
        batch.create_index("ix_requests_claim_number", ["claim_number"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_claim_number")
        batch.drop_column("claim_number")
