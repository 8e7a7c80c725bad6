"""Event envelopes: how a protobuf event travels on Kafka.

Payloads are protobuf; the record key is the request id (one case stays on one
partition, in order); headers carry the event type, schema version, a unique
event id consumers deduplicate on, and the producing service.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from google.protobuf.message import Message

from services.common.clock import utcnow

HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_EVENT_ID = "event-id"
HEADER_PRODUCER = "producer"
HEADER_DLQ_REASON = "dlq-reason"
HEADER_DLQ_SOURCE = "dlq-source"
HEADER_DLQ_CONSUMER = "dlq-consumer"


def event_type_of(message: Message) -> str:
    return message.DESCRIPTOR.full_name


@dataclass(frozen=True)
class OutgoingEvent:
    """An event to be written to the outbox (and later published)."""

    topic: str
    key: str
    message: Message
    schema_version: str = "1"
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=utcnow)

    @property
    def event_type(self) -> str:
        return event_type_of(self.message)


@dataclass(frozen=True)
class IncomingEvent:
    """A decoded record handed to a service's handler."""

    event_id: str
    event_type: str
    schema_version: str
    key: str
    message: Message
    topic: str
    partition: int
    offset: int


class EventHandler(Protocol):
    """What the consumer loop (``services/common/consumer.py``) hands each batch to."""

    def handle_batch(self, events: Sequence[IncomingEvent]) -> None:
        """Apply every event and record its id, atomically, or raise without effect.

        ``events`` hold distinct event ids (the loop removes in-batch copies); ids applied by an
        earlier batch are the handler's to skip (``already_processed``)."""
