"""What the standard front doors (Da Vinci PAS over FHIR, the X12 278 over HTTP) need from the world.

The doors are a process of their own in front of intake: they translate and call intake's gRPC API
as the submitting organization that called them, so that intake's rules, clocks, explanations,
events and its access control (a submitter sees only its own requests) stay the only ones.

* :class:`IntakeApi`: intake's gRPC API, called with a :class:`Submitter`'s own credential;
  failures come back as the platform's errors (services/common/errors.py).
* :class:`SubmissionStore`: what the door keeps that intake does not: the PAS Bundle each request
  came in (a response or an inquiry answer echoes it), the submitter's Claim identifiers (how an
  inquiry or an update names a request), and the X12 control numbers of its replies.
* :class:`ClientDirectory`: who may obtain an access token (the OAuth2 client credentials).

Implementations: services/intake/adapters/door_intake.py (gRPC), door_store.py (SQL), door_clients.py
(the platform's credentials file); in-memory fakes in tests/fakes/door.py, held to the same
contracts by tests/contract/test_door_ports.py.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ur.intake.v1 import intake_pb2

from services.common.clock import Clock

__all__ = ["ClientDirectory", "Clock", "ControlNumbers", "IntakeApi", "StoredRequest", "SubmissionStore",
           "Submitter"]


@dataclass(frozen=True)
class Submitter:
    """An authenticated submitting organization: its principal id, and the credential the door presents
    to intake on its behalf (its own token: intake authenticates it again and applies its rules).
    The credential never appears in ``repr`` (nor in a log line made of one)."""

    id: str
    credential: str = field(repr=False)


class IntakeApi(abc.ABC):
    """Intake's gRPC API (ur.intake.v1.IntakeService) as a door calls it, each call as ``submitter``.

    Raises the platform's errors: ValidationFailed (with intake's field violations), NotFound (also
    for another submitter's request: intake does not tell them apart), PermissionDenied,
    Unauthenticated, FailedPrecondition, IdempotencyConflict, ResourceExhausted (``retry_after_s``),
    Unavailable (intake cannot be reached or did not answer in time)."""

    @abc.abstractmethod
    async def submit(self, command: intake_pb2.SubmitRequestRequest, submitter: Submitter,
                     ) -> intake_pb2.SubmitRequestResponse:
        """SubmitRequest: waits up to ``command.wait_ms`` for the determination."""

    @abc.abstractmethod
    async def get(self, request_id: str, submitter: Submitter) -> intake_pb2.RequestView:
        """GetRequest."""

    @abc.abstractmethod
    async def member_requests(self, member_id: str, submitter: Submitter) -> list[intake_pb2.RequestView]:
        """ListMemberRequests: the member's requests the submitter may read, newest first."""

    @abc.abstractmethod
    async def cancel(self, request_id: str, requesting_npi: str, reason: str,
                     submitter: Submitter) -> intake_pb2.RequestView:
        """CancelRequest."""

    @abc.abstractmethod
    async def revise(self, request_id: str, requesting_npi: str, revision: intake_pb2.SubmitRequestRequest,
                     submitter: Submitter) -> intake_pb2.RequestView:
        """ReviseRequest (the revision's idempotency key makes a resent update answer the same)."""


@dataclass(frozen=True)
class StoredRequest:
    """A request as the door recorded it: whose, and the latest PAS Bundle about it (the request, or the
    Claim update that revised or cancelled it)."""

    request_id: str
    submitter: str
    bundle: Mapping[str, Any]
    recorded_at: dt.datetime


class ControlNumbers(abc.ABC):
    """Where the X12 door's reply envelopes get their control numbers."""

    @abc.abstractmethod
    async def next_control_number(self) -> int:
        """A fresh X12 control number (1 to 999999999), never handed out twice until it wraps."""


class SubmissionStore(ControlNumbers):
    """The door's own records (see the module docstring). Times are aware UTC datetimes."""

    @abc.abstractmethod
    async def record(self, request_id: str, submitter: str, bundle: Mapping[str, Any],
                     identifiers: Sequence[tuple[str, str]], at: dt.datetime) -> None:
        """Record (or replace) the Bundle of ``request_id`` and add the Claim ``identifiers`` (system,
        value) the submitter may name it by; recording the same request again is harmless. An
        identifier the submitter already gave another request keeps naming that one too."""

    @abc.abstractmethod
    async def get(self, request_id: str) -> StoredRequest | None:
        """The recorded request, or None."""

    @abc.abstractmethod
    async def find(self, submitter: str, system: str, value: str) -> list[str]:
        """The ids of ``submitter``'s requests whose Claim carried identifier (system, value), oldest
        first; another submitter's are never among them."""


class ClientDirectory(abc.ABC):
    """The submitting organizations that may obtain an access token."""

    @abc.abstractmethod
    def authenticate(self, client_id: str, secret: str) -> bool:
        """Whether ``secret`` is a current credential of ``client_id`` (compared without revealing which
        part was wrong)."""
