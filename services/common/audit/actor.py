"""Who is acting, for the audit log: a small value that knows no transport.

An audit entry names its actor as text: ``reviewer:<id>`` (review knows the reviewer behind a
token), ``submitter:<principal>`` (intake knows who submitted a request and acts for them),
``caller:<principal>`` (any other authenticated caller, issue 10),
``service:<name>`` (the service on its own: a consumer applying an event, the deadline monitor) or
``anonymous`` (a call from someone the server did not identify).

Use cases that know the reviewer name them on the record itself. Everything else is taken from the
current actor, a context variable: the gRPC layer sets it for the length of each call
(services/common/audit/interceptor.py: ``anonymous`` until identity is known, the caller's principal
after), and outside any call (consumers, periodic work) there is none, so the store names the service.
Context variables follow a call into the thread pool that runs it (services/common/grpc_server.py).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from services.common.audit.chain import identifier

ANONYMOUS = "anonymous"

_ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("ur_audit_actor", default=None)


def reviewer(reviewer_id: str) -> str:
    return f"reviewer:{reviewer_id}"


def service(name: str) -> str:
    return f"service:{name}"


def caller(principal: str) -> str:
    """An authenticated caller; a principal that is not a plain token is named by its digest."""
    return f"caller:{identifier(principal)}"


def submitter(principal: str) -> str:
    """The submitter of a request (intake knows it: the caller that submitted, issue 10)."""
    return f"submitter:{identifier(principal)}"


def current_actor() -> str | None:
    """The actor of the call being served, or None outside a call."""
    return _ACTOR.get()


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Within the block, :func:`current_actor` is ``actor``."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)
