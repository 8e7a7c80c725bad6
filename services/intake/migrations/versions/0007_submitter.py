"""submitter: who submitted each request and each piece of additional information; idempotency keys
become each submitter's own (unique per submitter, not across submitters)

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

TABLES = ("requests", "additional_information")
# SQLite reports the old unique constraints without a name: batch mode names them by this convention.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_on(table: str, columns: list[str]) -> str:
    """The name of the unique constraint over exactly ``columns`` (PostgreSQL's, or the convention's)."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if constraint["column_names"] == columns:
            return constraint["name"] or f"uq_{table}_{columns[0]}"
    raise RuntimeError(f"{table} has no unique constraint on {columns}")


def upgrade() -> None:
    for table in TABLES:
        old = _unique_on(table, ["idempotency_key"])
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            # Rows from before callers were authenticated belong to no submitter ("").
            batch.add_column(sa.Column("submitter", sa.String(100), nullable=False, server_default=""))
            batch.drop_constraint(old, type_="unique")
            batch.create_unique_constraint(f"uq_{table}_submitter_key", ["submitter", "idempotency_key"])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.drop_constraint(f"uq_{table}_submitter_key", type_="unique")
            batch.create_unique_constraint(f"uq_{table}_idempotency_key", ["idempotency_key"])
            batch.drop_column("submitter")
