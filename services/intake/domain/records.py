"""What intake keeps about a request as its story unfolds, and the changes that the determination
and authorization events make to it. Plain values: the repositories (``service_layer/ports.py``)
take and return them; ``bytes`` fields hold protobuf messages exactly as they were received."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from services.intake.domain.model import RequestStatus


@dataclass(frozen=True)
class LineRecord:
    line_number: int
    procedure_code: str
    outcome: str | None = None  # ur.common.v1.LineOutcome name, once decided
    queued: bool = False  # waiting for a person
    certified: bool = False  # approved in whole or part: an authorization is due
    determination: bytes | None = None  # ur.common.v1.LineDetermination
    authorization: bytes | None = None  # ur.common.v1.Authorization


@dataclass(frozen=True)
class RequestRecord:
    """A submitted request: its identity, who submitted it (``submitter``: the authenticated principal,
    the only caller besides readers of every request who may see it), the submission as received
    (``payload``: ur.intake.v1.SubmitRequestRequest with wait_ms cleared), where it stands, and its lines.
    Idempotency keys are the submitter's own: two submitters may use the same key."""

    request_id: str
    submitter: str
    idempotency_key: str
    fingerprint: str  # PriorAuthRequest.fingerprint(): tells a replay from a conflicting reuse of the key
    member_id: str
    line_of_business: str | None
    member_state: str
    urgency: str | None
    review_type: str | None
    status: RequestStatus
    status_reason: str
    received_at: dt.datetime
    payload: bytes
    lines: tuple[LineRecord, ...]
    determination_id: str | None = None
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    determination_header: bytes | None = None  # ur.common.v1.Determination without its lines
    claim_number: str | None = None  # workers' comp: the submission's workers_comp.claim_number, if any


@dataclass(frozen=True)
class InformationRecord:
    """Additional information received for a request (``payload``:
    ur.intake.v1.SubmitAdditionalInformationRequest)."""

    information_id: str
    request_id: str
    submitter: str  # who sent it: the request's submitter (keys are each submitter's own)
    idempotency_key: str
    fingerprint: str  # AdditionalInformation.fingerprint()
    payload: bytes
    received_at: dt.datetime


@dataclass(frozen=True)
class RevisionRecord:
    """A revision of a request (``payload``: ur.intake.v1.ReviseRequestRequest as received)."""

    revision_id: str
    request_id: str
    idempotency_key: str
    fingerprint: str
    payload: bytes
    received_at: dt.datetime


@dataclass(frozen=True)
class AppealRecord:
    """An appeal of one line as filed (``payload``: ur.intake.v1.FileAppealRequest), and its outcome."""

    appeal_id: str
    request_id: str
    line_number: int
    idempotency_key: str
    fingerprint: str
    urgency: str
    appellant: str
    appellant_name: str
    reason: str
    filed_at: dt.datetime
    payload: bytes
    status: str = "filed"  # filed, decided
    outcome: str = ""  # overturned, partially_overturned, upheld
    decided_at: dt.datetime | None = None
    forwarded_to: str = ""


# -- changes events make ------------------------------------------------------------------------

@dataclass(frozen=True)
class DeterminationRecorded:
    request_id: str
    determination_id: str
    decided_at: dt.datetime
    decided_by: str
    header: bytes  # ur.common.v1.Determination without its lines


@dataclass(frozen=True)
class LineDecided:
    request_id: str
    line_number: int
    outcome: str
    queued: bool
    certified: bool
    determination: bytes  # ur.common.v1.LineDetermination


@dataclass(frozen=True)
class LineAuthorized:
    request_id: str
    line_number: int
    authorization: bytes  # ur.common.v1.Authorization
    authorization_number: str


@dataclass(frozen=True)
class AppealDecided:
    request_id: str
    line_number: int
    appeal_id: str
    outcome: str
    decided_at: dt.datetime
    forwarded_to: str


@dataclass(frozen=True)
class StatusChanged:
    request_id: str
    status: RequestStatus
    at: dt.datetime


@dataclass
class RequestChanges:
    """Changes to apply together. Within each list a later change to the same request or line
    overrides an earlier one (events are applied in order)."""

    determinations: list[DeterminationRecorded] = field(default_factory=list)
    statuses: list[StatusChanged] = field(default_factory=list)
    lines_decided: list[LineDecided] = field(default_factory=list)
    lines_authorized: list[LineAuthorized] = field(default_factory=list)
    appeals_decided: list[AppealDecided] = field(default_factory=list)
