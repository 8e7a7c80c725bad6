"""What the workbench needs from the world, as abstract classes: the platform's services (review,
intake, authorization), the session store and the access log. Adapters implement them
(adapters/platform_client.py over gRPC, adapters/sessions.py in memory, adapters/access_log.py as
log lines); tests/fakes/workbench.py implements them for unit tests.

The workbench decides nothing: every call that acts carries the signed-in reviewer's bearer token,
and review checks it, the role and the task's state. Errors come back as the platform's service
errors (services/common/errors.py): PermissionDenied, FailedPrecondition, NotFound and so on, with
the server's own words.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

__all__ = ["AccessLog", "Platform", "Session", "SessionStore"]


class Platform(abc.ABC):
    """The services, as the workbench calls them. ``token`` is the signed-in reviewer's bearer token."""

    # -- review, as the reviewer --------------------------------------------------------------
    @abc.abstractmethod
    async def whoami(self, token: str) -> review_pb2.Reviewer:
        """The reviewer behind ``token``; Unauthenticated for an unknown token."""

    @abc.abstractmethod
    async def my_tasks(self, token: str, limit: int) -> review_pb2.ListMyTasksResponse: ...

    @abc.abstractmethod
    async def claim_next(self, token: str) -> review_pb2.TaskView: ...

    @abc.abstractmethod
    async def get_task(self, token: str, task_id: str) -> review_pb2.TaskView: ...

    @abc.abstractmethod
    async def decide(self, token: str, request: review_pb2.DecideTaskRequest) -> review_pb2.DecideTaskResponse: ...

    @abc.abstractmethod
    async def release(self, token: str, task_id: str, note: str) -> review_pb2.TaskView: ...

    @abc.abstractmethod
    async def reassign(self, token: str, task_id: str, reviewer_id: str, note: str) -> review_pb2.TaskView: ...

    @abc.abstractmethod
    async def peer_to_peer(self, token: str, request: review_pb2.RecordPeerToPeerRequest) -> review_pb2.TaskView: ...

    @abc.abstractmethod
    async def extend_deadline(self, token: str, request: review_pb2.ExtendDeadlineRequest) -> review_pb2.TaskView: ...

    @abc.abstractmethod
    async def queue_overview(self, token: str, limit: int) -> review_pb2.GetQueueOverviewResponse: ...

    @abc.abstractmethod
    async def reviewers(self, token: str) -> Sequence[review_pb2.Reviewer]: ...

    @abc.abstractmethod
    async def member_tasks(self, token: str, member_id: str) -> Sequence[review_pb2.ReviewTask]: ...

    @abc.abstractmethod
    async def case_notes(self, token: str, member_id: str) -> Sequence[review_pb2.CaseNote]: ...

    @abc.abstractmethod
    async def add_case_note(self, token: str, member_id: str, text: str, amends: str) -> review_pb2.CaseNote: ...

    # -- intake and authorization, as the workbench (its service identity; see service_layer/pages.py) ----
    @abc.abstractmethod
    async def request(self, request_id: str) -> intake_pb2.RequestView: ...

    @abc.abstractmethod
    async def member_requests(self, member_id: str) -> Sequence[intake_pb2.RequestView]: ...

    @abc.abstractmethod
    async def claim_requests(self, claim_number: str) -> Sequence[intake_pb2.RequestView]:
        """The workers' comp claim's requests, newest first; ValidationFailed for a claim number no
        request can carry."""

    @abc.abstractmethod
    async def member_authorizations(self, member_id: str) -> Sequence[types_pb2.Authorization]: ...


@dataclass
class Session:
    """A signed-in reviewer's session, kept on the server; the browser holds only its id.

    ``token`` is the reviewer's bearer token, passed to review on every call and never sent back
    to the browser. ``csrf`` is the token every form and htmx request must carry."""

    session_id: str
    reviewer_id: str
    name: str
    role: int  # review_pb2.ReviewerRole
    credential: str
    token: str
    csrf: str
    created_at: dt.datetime
    last_seen: dt.datetime
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message), shown once


class SessionStore(abc.ABC):
    @abc.abstractmethod
    def add(self, session: Session) -> None: ...

    @abc.abstractmethod
    def get(self, session_id: str) -> Session | None:
        """The session, or None when there is none by that id."""

    @abc.abstractmethod
    def remove(self, session_id: str) -> None: ...

    @abc.abstractmethod
    def remove_expired(self, idle_before: dt.datetime, created_before: dt.datetime) -> int:
        """Forget sessions last seen before ``idle_before`` or created before ``created_before``;
        how many went."""


class AccessLog(abc.ABC):
    """Who saw which patient data, when (a structured log line today; the audit log of issue 16
    later)."""

    @abc.abstractmethod
    def viewed(self, *, reviewer_id: str, page: str, at: dt.datetime, request_ids: Sequence[str] = (),
               member_ids: Sequence[str] = (), task_ids: Sequence[str] = ()) -> None: ...
