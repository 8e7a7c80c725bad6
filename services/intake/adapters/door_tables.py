"""The doors' database (its own, apart from intake's): the PAS Bundles requests came in, the Claim
identifiers submitters name them by, and the X12 control number counter. Migrations:
services/intake/door_migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, MetaData, String, Table

metadata = MetaData()

#: The latest PAS Bundle about each request (the request, or the Claim update that changed it), as
#: zlib-compressed JSON.
pas_requests = Table(
    "pas_requests", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("submitter", String(100), nullable=False),
    Column("bundle", LargeBinary, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

#: The Claim identifiers a submitter gave its requests: ``identifier_key`` is the SHA-256 of
#: system and value (bounded, whatever their length).
pas_claim_identifiers = Table(
    "pas_claim_identifiers", metadata,
    Column("submitter", String(100), primary_key=True),
    Column("identifier_key", String(64), primary_key=True),
    Column("request_id", String(36), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("ix_pas_claim_identifiers_request", pas_claim_identifiers.c.request_id)

#: Named counters (X12 control numbers).
counters = Table(
    "door_counters", metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
