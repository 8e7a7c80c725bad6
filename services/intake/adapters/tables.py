"""Intake's schema (SQLAlchemy Core). Alembic migrations mirror it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
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
from services.common.db import BigIntId, outbox_table, processed_events_table, relay_lease_table

metadata = MetaData()

members = Table(
    "members", metadata,
    Column("member_id", String(40), primary_key=True),
    Column("birth_date", Date, nullable=True),
)

coverages = Table(
    "coverages", metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("member_id", String(40), ForeignKey("members.member_id"), nullable=False, index=True),
    Column("line_of_business", String(30), nullable=False),
    Column("plan_id", String(40), nullable=False),
    Column("state", String(2), nullable=False),
    Column("effective", Date, nullable=False),
    Column("termination", Date, nullable=True),
)

requests = Table(
    "requests", metadata,
    Column("request_id", String(36), primary_key=True),
    # The principal that submitted it (the credentials file's id); "" for requests from before
    # callers were authenticated, which only readers of every request see.
    Column("submitter", String(100), nullable=False, server_default=""),
    Column("idempotency_key", String(100), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("member_id", String(40), nullable=False, index=True),
    Column("line_of_business", String(30), nullable=True),
    Column("member_state", String(2), nullable=False),
    Column("urgency", String(20), nullable=True),
    Column("review_type", String(20), nullable=True),
    Column("status", String(20), nullable=False),
    Column("status_reason", String(300), nullable=False, default=""),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # The submission as received (ur.intake.v1.SubmitRequestRequest, wait_ms cleared).
    Column("payload", LargeBinary, nullable=False),
    Column("determination_id", String(36), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(100), nullable=True),
    # ur.common.v1.Determination without its lines (decider, clock), as received.
    Column("determination_header", LargeBinary, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Workers' comp: the submission's workers_comp.claim_number (NULL for none), for the claim's view.
    Column("claim_number", String(40), nullable=True, index=True),
)
Index("ix_requests_status_received", requests.c.status, requests.c.received_at)
UniqueConstraint(requests.c.submitter, requests.c.idempotency_key, name="uq_requests_submitter_key")

request_lines = Table(
    "request_lines", metadata,
    Column("request_id", String(36), ForeignKey("requests.request_id"), primary_key=True),
    Column("line_number", Integer, primary_key=True, autoincrement=False),
    Column("procedure_code", String(5), nullable=False),
    Column("outcome", String(40), nullable=True),
    Column("queued", Boolean, nullable=False, default=False),
    Column("certified", Boolean, nullable=False, default=False),
    # ur.common.v1.LineDetermination and ur.common.v1.Authorization, as received.
    Column("determination", LargeBinary, nullable=True),
    Column("authorization", LargeBinary, nullable=True),
    Column("authorization_number", String(20), nullable=True),
)

# Additional information sent for a request under review (forwarded to review).
additional_information = Table(
    "additional_information", metadata,
    Column("information_id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("requests.request_id"), nullable=False, index=True),
    Column("submitter", String(100), nullable=False, server_default=""),
    Column("idempotency_key", String(100), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    # ur.intake.v1.SubmitAdditionalInformationRequest as received.
    Column("payload", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

UniqueConstraint(additional_information.c.submitter, additional_information.c.idempotency_key,
                 name="uq_additional_information_submitter_key")

# Revisions of requests under review (migration 0004).
request_revisions = Table(
    "request_revisions", metadata,
    Column("revision_id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("requests.request_id"), nullable=False, index=True),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    # ur.intake.v1.ReviseRequestRequest as received.
    Column("payload", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Appeals of adverse lines, one per line (migration 0004), and their outcomes.
appeals = Table(
    "appeals", metadata,
    Column("appeal_id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("requests.request_id"), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("appellant", String(30), nullable=False),
    Column("appellant_name", String(200), nullable=False),
    Column("reason", String(2000), nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    # ur.intake.v1.FileAppealRequest as received.
    Column("payload", LargeBinary, nullable=False),
    Column("status", String(20), nullable=False),
    Column("outcome", String(30), nullable=False, server_default=""),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("forwarded_to", String(300), nullable=False, server_default=""),
    UniqueConstraint("request_id", "line_number", name="uq_appeals_request_line"),
)

# FHIR Subscriptions (R4 backport) to the PAS topic, per organization, and the notifications owed to them
# (migration 0009; services/intake/interop/subscriptions).
fhir_subscriptions = Table(
    "fhir_subscriptions", metadata,
    Column("subscription_id", String(36), primary_key=True),
    Column("owner", String(100), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("reason", String(1000), nullable=False),
    Column("org_identifier", String(80), nullable=True),
    Column("endpoint", String(2000), nullable=False),
    # JSON list of "Name: value" lines, as the subscriber gave them.
    Column("headers", Text, nullable=False),
    Column("heartbeat_period_s", Integer, nullable=True),
    Column("timeout_s", Integer, nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("events_since_start", BigInteger, nullable=False),
    Column("handshake_at", DateTime(timezone=True), nullable=True),
    Column("last_delivered_at", DateTime(timezone=True), nullable=True),
    Column("failures", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("error", String(300), nullable=False),
)
Index("ix_fhir_subscriptions_due_at", fhir_subscriptions.c.due_at)

fhir_notifications = Table(
    "fhir_notifications", metadata,
    Column("notification_id", BigIntId, primary_key=True, autoincrement=True),
    Column("subscription_id", String(36), ForeignKey("fhir_subscriptions.subscription_id", ondelete="CASCADE"),
           nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("determination_id", String(36), nullable=False),
    Column("state", String(10), nullable=False),
    # Held: the certified lines ("1,2") whose authorization the result waits for.
    Column("awaiting", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("event_number", BigInteger, nullable=True),
    # The PAS response Bundle (JSON) the notification carries, fixed when it is released.
    Column("focus", LargeBinary, nullable=True),
    Column("released_at", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("subscription_id", "event_id", name="uq_fhir_notifications_subscription_event"),
)
Index("ix_fhir_notifications_line", fhir_notifications.c.subscription_id, fhir_notifications.c.state,
      fhir_notifications.c.event_number)
Index("ix_fhir_notifications_held", fhir_notifications.c.state, fhir_notifications.c.request_id,
      fhir_notifications.c.created_at)
Index("ix_fhir_notifications_delivered_at", fhir_notifications.c.delivered_at)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
relay_lease = relay_lease_table(metadata)
# The tamper-evident audit log (services/common/audit/store.py).
audit_tables(metadata)
