"""Review's schema (SQLAlchemy Core). Alembic migrations mirror it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.common.audit.store import audit_tables
from services.common.db import outbox_table, processed_events_table, relay_lease_table

metadata = MetaData()

cases = Table(
    "cases", metadata,
    # One case, and so one automated determination, per request.
    Column("request_id", String(36), primary_key=True),
    Column("determination_id", String(36), nullable=False, unique=True),
    Column("member_id", String(40), nullable=False, index=True),
    Column("line_of_business", String(30), nullable=False),
    Column("member_state", String(2), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("review_type", String(20), nullable=False),
    Column("requesting_npi", String(10), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("regime", String(40), nullable=False),
    # ur.events.v1.RequestSubmitted as received (kept for what-if replay) and
    # ur.common.v1.Determination as decided.
    Column("request", LargeBinary, nullable=False),
    Column("determination", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The regulatory clock (services/review/domain/deadlines.py ClockState as JSON), migration 0003.
    Column("clock_state", Text, nullable=True),
)

review_tasks = Table(
    "review_tasks", metadata,
    Column("task_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("procedure_code", String(5), nullable=False),
    Column("line_of_business", String(30), nullable=False),
    Column("member_state", String(2), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of strings
    Column("status", String(20), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The reviewer workflow (migration 0002). Routing: the criteria category ("general" when no
    # criteria set covers the line) and the role the next action needs.
    Column("category", String(40), nullable=False, server_default="general"),
    Column("required_role", String(20), nullable=False, server_default="nurse"),
    Column("units", Integer, nullable=False, server_default="0"),
    Column("regime", String(40), nullable=False, server_default=""),
    Column("clock_rule", Text, nullable=False, server_default=""),
    # Lease: who holds the task until when; version makes every change a compare-and-set.
    Column("assigned_to", String(64), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("requested_facts", Text, nullable=True),  # JSON list, while pended for information
    Column("information_due", Date, nullable=True),
    Column("escalated_at", DateTime(timezone=True), nullable=True),
    Column("missed_at", DateTime(timezone=True), nullable=True),
    Column("deemed_denial", Boolean, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    # True while the regime stops the clock (ERISA tolling during a request for information).
    Column("clock_paused", Boolean, nullable=False, server_default="0"),
    # From when less than the at-risk share of the regulatory clock is left (receipt or deemed receipt
    # to deadline, less tolled time); NULL while the clock is tolled (migration 0005).
    Column("at_risk_at", DateTime(timezone=True), nullable=True),
    # The queue's order as a number (0 expedited, 1 otherwise), so that an index can serve it; an
    # ORDER BY on CASE urgency cannot use one (migration 0007).
    Column("urgency_rank", Integer, nullable=False, server_default="1"),
    # An appeal's task (migration 0009): the appeal it decides ("" for a line's first review) and the
    # reviewers who may never take it (JSON list: whoever made the decision appealed).
    Column("appeal_id", String(36), nullable=False, server_default=""),
    Column("excluded_reviewers", Text, nullable=False, server_default="[]"),
    # One first review per line, and one task per appeal of it.
    UniqueConstraint("request_id", "line_number", "appeal_id", name="uq_review_tasks_request_line"),
)
# The queue, most urgent first (claim-next, the queue listing, a reviewer's held tasks): one status
# read in the order the queries ask for, so the first rows are the answer and nothing is sorted.
Index("ix_review_tasks_queue_order", review_tasks.c.status, review_tasks.c.urgency_rank, review_tasks.c.due_at,
      review_tasks.c.task_id)
Index("ix_review_tasks_assignee", review_tasks.c.assigned_to, review_tasks.c.status)
# The deadline monitor's two questions: deadlines passed but not yet recorded, at-risk times reached
# but not yet escalated. Tasks already marked drop out of these indexes, so a pass reads only the
# tasks it has to act on, however many open tasks there are.
Index("ix_review_tasks_due_unmissed", review_tasks.c.status, review_tasks.c.due_at,
      postgresql_where=review_tasks.c.missed_at.is_(None), sqlite_where=review_tasks.c.missed_at.is_(None))
# The metrics' count of tasks at risk (services/review/adapters/metrics.py): undecided tasks whose
# at-risk time has come, escalated or not.
Index("ix_review_tasks_status_at_risk", review_tasks.c.status, review_tasks.c.at_risk_at, review_tasks.c.urgency_rank)
Index("ix_review_tasks_at_risk_unescalated", review_tasks.c.status, review_tasks.c.at_risk_at,
      postgresql_where=review_tasks.c.escalated_at.is_(None), sqlite_where=review_tasks.c.escalated_at.is_(None))

reviewers = Table(
    "reviewers", metadata,
    Column("reviewer_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("specialties", Text, nullable=False),  # JSON lists
    Column("licence_states", Text, nullable=False),
    Column("lines_of_business", Text, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("credential", String(200), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every action on a task, attributed: the audit trail a reviewer's queue view and regulators read.
task_events = Table(
    "task_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("task_id", String(36), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(40), nullable=False),
    Column("detail", Text, nullable=False),
)

# Lines decided by criteria or by a person, per requesting provider and service category: the record
# a gold-card exemption is computed from (migration 0004). Lines answered from the no-prior-
# authorization list or approved under a gold card are not recorded, so an exemption cannot feed itself.
provider_line_outcomes = Table(
    "provider_line_outcomes", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("line_number", Integer, primary_key=True),
    Column("requesting_npi", String(10), nullable=False),
    Column("category", String(40), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("decided_by", String(64), nullable=False),  # "system:rules-engine" or a reviewer id
)
Index("ix_provider_line_outcomes_provider", provider_line_outcomes.c.requesting_npi,
      provider_line_outcomes.c.category, provider_line_outcomes.c.decided_at)

# Case notes on members (migration 0006): append only, never updated or deleted; a correction is a
# new note naming the one it amends.
case_notes = Table(
    "case_notes", metadata,
    Column("note_id", String(36), primary_key=True),
    Column("member_id", String(40), nullable=False),
    Column("author_id", String(64), nullable=False),
    Column("author_name", String(200), nullable=False),
    Column("author_role", String(20), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
    Column("text", Text, nullable=False),
    Column("amends", String(36), nullable=True),
)
Index("ix_case_notes_member", case_notes.c.member_id, case_notes.c.written_at)

# Notices of determinations (migration 0009), stored with the determination: the letter as composed
# (sections as JSON, the plain text); the PDF is rendered from the sections when asked for.
notices = Table(
    "notices", metadata,
    Column("notice_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False, index=True),
    Column("determination_id", String(36), nullable=False),
    Column("member_id", String(40), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("recipient_role", String(30), nullable=False),
    Column("recipient", Text, nullable=False),  # JSON: name, address lines
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("line_numbers", Text, nullable=False),  # JSON list
    Column("subject", Text, nullable=False),
    Column("sections", Text, nullable=False),  # JSON list of {heading, paragraphs, reference}
    Column("text", Text, nullable=False),
)

# Appeals of adverse lines (migration 0009), each on its own clock, for a reviewer other than the
# one who made the decision appealed.
appeals = Table(
    "appeals", metadata,
    Column("appeal_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False, index=True),
    Column("line_number", Integer, nullable=False),
    Column("member_id", String(40), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("appellant", String(30), nullable=False),
    Column("appellant_name", String(200), nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("regime", String(40), nullable=False),
    Column("clock_state", Text, nullable=False),  # ClockState as JSON
    Column("original_decider", String(64), nullable=False),
    Column("task_id", String(36), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("outcome", String(30), nullable=True),
    Column("decided_by", String(64), nullable=False, server_default=""),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("forwarded_to", Text, nullable=False, server_default=""),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
relay_lease = relay_lease_table(metadata)
# The tamper-evident audit log (services/common/audit/store.py).
audit_tables(metadata)
