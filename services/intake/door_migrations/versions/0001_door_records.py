"""the doors' records: PAS Bundles by request, Claim identifiers by submitter, X12 control numbers

Revision ID: 0001
Revises:
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pas_requests",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("submitter", sa.String(100), nullable=False),
        sa.Column("bundle", sa.LargeBinary, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pas_claim_identifiers",
        sa.Column("submitter", sa.String(100), primary_key=True),
        sa.Column("identifier_key", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pas_claim_identifiers_request", "pas_claim_identifiers", ["request_id"])
    counters = op.create_table(
        "door_counters",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counters, [{"name": "x12-control", "value": 0}])


def downgrade() -> None:
    op.drop_table("door_counters")
    op.drop_index("ix_pas_claim_identifiers_request", table_name="pas_claim_identifiers")
    op.drop_table("pas_claim_identifiers")
    op.drop_table("pas_requests")
