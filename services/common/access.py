"""Access control of every gRPC call, in one interceptor per service.

Each service declares an :class:`AccessPolicy`: for every method of its gRPC service, the scopes
that allow it (services/*/entrypoints/access.py). The policy is checked against the service's
descriptor when it is made, so a method without a rule stops the service from starting (and
tests/integration/test_access_matrix.py, which walks the descriptors, fails).

:class:`AccessControl` runs first in the server's interceptor chain (before the request is even
decoded) and, for every call of a protected service:

1. authenticates the caller: the bearer token of ``authorization: Bearer <token>`` if one is sent
   (an unknown token is refused; there is no falling back to the certificate), else the client
   certificate of a mutual-TLS connection, mapped to a principal by the credentials file
   (services/common/credentials.py). Neither → ``UNAUTHENTICATED``;
2. authorizes it: the principal must hold one of the method's scopes, else ``PERMISSION_DENIED``,
   every time, whatever the request says;
3. counts it against the caller's rate limit, where the service has one (intake):
   ``RESOURCE_EXHAUSTED`` with a google.rpc.RetryInfo saying when to retry;
4. runs the method with the caller known: :func:`current_caller` (a context variable, set for the
   call only). What the method then does with it (a submitter sees only its own requests; a
   reviewer's role decides what they may do) is the use case's business.

Health checking and reflection are not protected: a probe must work without credentials, and
reflection describes the API, not its data. Every refusal is logged (method, peer, who, why;
never a token).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor

from services.common.credentials import SCOPES, CredentialsSource
from services.common.errors import (
    ConfigurationError,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
)
from services.common.grpc_errors import status_for
from services.common.grpc_server import Behaviour, with_behaviour

logger = logging.getLogger(__name__)


# -- who is calling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of the current call."""

    principal: str
    scopes: frozenset[str]
    via: Literal["token", "certificate"]

    def has(self, scope: str) -> bool:
        return scope in self.scopes


_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("ur_caller", default=None)


def current_caller() -> Caller:
    """The caller of the call being served; raises :class:`Unauthenticated` outside one (a server
    built without :class:`AccessControl` refuses rather than serving an unknown caller)."""
    caller = _CALLER.get()
    if caller is None:
        raise Unauthenticated("no caller identity: this server does not authenticate its callers")
    return caller


@dataclass(frozen=True)
class Rule:
    """Who may call one method: a caller holding any of ``scopes``; ``limited``: the call counts
    against the caller's rate limit."""

    scopes: frozenset[str]
    limited: bool = False


def rule(*scopes: str, limited: bool = False) -> Rule:
    return Rule(frozenset(scopes), limited)


class AccessPolicy:
    """The rules of every method of one gRPC service; made from its descriptor, so that a method
    without a rule (or a rule for no method, or an unknown scope) is refused at start."""

    def __init__(self, service: ServiceDescriptor, rules: Mapping[str, Rule]) -> None:
        """Raises ConfigurationError when ``rules`` and the service's methods differ."""
        methods = {m.name for m in service.methods}
        missing = sorted(methods - set(rules))
        unknown = sorted(set(rules) - methods)
        if missing or unknown:
            raise ConfigurationError(f"access policy of {service.full_name}: "
                                     + "; ".join([*(f"no rule for {m}" for m in missing),
                                                  *(f"a rule for {m}, which it does not have" for m in unknown)]))
        for name, each in rules.items():
            if not each.scopes or not each.scopes <= set(SCOPES):
                raise ConfigurationError(f"access policy of {service.full_name}: {name} needs known scopes, "
                                         f"not {sorted(each.scopes)}")
        self.service = service.full_name
        self.rules = dict(rules)

    def rule_of(self, method: str) -> Rule | None:
        """The rule of a full method name (``/pkg.Service/Method``)."""
        service, _, name = method.lstrip("/").partition("/")
        return self.rules.get(name) if service == self.service else None


# -- the rate limit --------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per caller: ``rate_per_s`` calls a second on average, bursts of ``burst``.

    ``monotonic`` is the clock (injected: tests move it). Thread-safe."""

    def __init__(self, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._now = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)

    def take(self, caller: str) -> float | None:
        """Spend one call of ``caller``'s budget: None if it may go ahead, else the seconds until it may."""
        with self._lock:
            now = self._now()
            tokens, then = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return None
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s


# -- the interceptor -------------------------------------------------------------------------------


class AccessControl(grpc.aio.ServerInterceptor):
    """Authentication, authorization and rate limits of the methods of ``policies`` (see the module's
    docstring); calls of other services (health, reflection) pass untouched."""

    def __init__(self, policies: Sequence[AccessPolicy], credentials: CredentialsSource,
                 limiter: RateLimiter | None = None) -> None:
        self._policies = {p.service: p for p in policies}
        self._credentials = credentials
        self._limiter = limiter
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        method = handler_call_details.method
        policy = self._policies.get(method.lstrip("/").partition("/")[0])
        if handler is None or policy is None:
            return handler  # type: ignore[return-value]  # None: grpc answers UNIMPLEMENTED
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        found = policy.rule_of(method)
        # AccessPolicy has a rule for every method of its service: an unknown name has no handler.
        guarded = with_behaviour(handler, lambda behaviour: self._guard(method, found, behaviour))
        self._wrapped[method] = (handler, guarded)
        return guarded

    # -- the checks --------------------------------------------------------------------------------
    def admit(self, method: str, found: Rule | None, metadata: Sequence[tuple[str, str | bytes]],
              auth_context: Mapping[str, Sequence[bytes]]) -> Caller:
        """The caller of a call to ``method``, admitted; raises Unauthenticated, PermissionDenied or
        ResourceExhausted."""
        caller = self.authenticate(metadata, auth_context)
        name = method.rpartition("/")[2]
        if found is None or not (caller.scopes & found.scopes):
            needs = " or ".join(sorted(found.scopes)) if found is not None else "a rule"
            raise PermissionDenied(f"{caller.principal} may not call {name}: it needs the scope {needs}")
        if found.limited and self._limiter is not None:
            wait_s = self._limiter.take(caller.principal)
            if wait_s is not None:
                raise ResourceExhausted(
                    f"rate limit: {caller.principal} may make {self._limiter.rate_per_s:g} calls a second (bursts of "
                    f"{self._limiter.burst}); retry in {wait_s:.2f} s", retry_after_s=max(0.001, wait_s))
        return caller

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]],
                     auth_context: Mapping[str, Sequence[bytes]]) -> Caller:
        credentials = self._credentials.current()
        headers = [v if isinstance(v, str) else v.decode(errors="replace") for k, v in metadata if k == "authorization"]
        if len(headers) > 1:
            raise Unauthenticated("malformed credentials: more than one 'authorization' header")
        if headers:
            scheme, _, token = headers[0].partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("malformed credentials: expected 'authorization: Bearer <token>'")
            principal = credentials.by_token(token)
            if principal is None:
                raise Unauthenticated("unknown or revoked token")
            return Caller(principal.id, principal.scopes, "token")
        named = credentials.by_client_certificate(auth_context)
        if len(named) > 1:
            raise Unauthenticated("the client certificate names several principals of the credentials file: "
                                  + ", ".join(sorted(p.id for p in named)))
        if named:
            (principal,) = named
            return Caller(principal.id, principal.scopes, "certificate")
        if any(auth_context.get("x509_common_name") or ()):
            raise Unauthenticated("the client certificate names no principal of the credentials file, and no "
                                  "token was sent")
        raise Unauthenticated("missing credentials: send metadata 'authorization: Bearer <token>' (or a client "
                              "certificate the server knows)")

    def _refusal(self, method: str, context: Any, exc: ServiceError) -> grpc.Status:
        logger.info("refused %s from %s: %s: %s", method, _peer(context), type(exc).__name__, exc)
        return status_for(exc, method)

    # -- the wrapped behaviours (of the kind grpc dispatches on: plain, coroutine, async generator) --
    def _guard(self, method: str, found: Rule | None, behaviour: Behaviour) -> Behaviour:
        admit = self.admit
        refusal = self._refusal

        def check(context: Any) -> Caller | grpc.Status:
            try:
                return admit(method, found, context.invocation_metadata() or (), context.auth_context() or {})
            except (Unauthenticated, PermissionDenied, ResourceExhausted) as exc:
                return refusal(method, context, exc)

        if inspect.isasyncgenfunction(behaviour):
            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                caller = check(context)
                if isinstance(caller, grpc.Status):
                    await context.abort(caller.code, caller.details, caller.trailing_metadata)
                token = _CALLER.set(caller)
                try:
                    async for item in behaviour(request, context):
                        yield item
                finally:
                    _CALLER.reset(token)

            return stream
        if inspect.iscoroutinefunction(behaviour):
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                caller = check(context)
                if isinstance(caller, grpc.Status):
                    await context.abort(caller.code, caller.details, caller.trailing_metadata)
                token = _CALLER.set(caller)
                try:
                    return await behaviour(request, context)
                finally:
                    _CALLER.reset(token)

            return call

        def blocking(request: Any, context: grpc.ServicerContext) -> Any:  # runs in the server's thread pool
            caller = check(context)
            if isinstance(caller, grpc.Status):
                context.set_trailing_metadata(caller.trailing_metadata)
                context.abort(caller.code, caller.details)
            token = _CALLER.set(caller)
            try:
                return behaviour(request, context)
            finally:
                _CALLER.reset(token)

        return blocking


def _peer(context: Any) -> str:
    try:
        return str(context.peer())
    except (AttributeError, RuntimeError):
        return "?"

