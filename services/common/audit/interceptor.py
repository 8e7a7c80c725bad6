"""Every gRPC call runs with an actor for the audit log (services/common/audit/actor.py): whoever
the server identified, else ``anonymous``. It only names; access control is not its business."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from services.common.audit.actor import ANONYMOUS, acting_as
from services.common.grpc_server import Behaviour, with_behaviour


class CallerActor(grpc.aio.ServerInterceptor):
    """Sets the current actor for the length of each call of the server's own services (health
    checks and reflection read no patient data and record nothing)."""

    def __init__(self, actor_of: Callable[[Any], str] | None = None) -> None:
        """``actor_of(context)``: the actor of a call; default: ``anonymous``."""
        self._actor_of = actor_of or (lambda _context: ANONYMOUS)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler  # type: ignore[return-value]  # None: grpc answers UNIMPLEMENTED
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        named = with_behaviour(handler, self._named)
        self._wrapped[method] = (handler, named)
        return named

    def _named(self, behaviour: Behaviour) -> Behaviour:
        actor_of = self._actor_of
        if inspect.isasyncgenfunction(behaviour):
            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                with acting_as(actor_of(context)):
                    async for item in behaviour(request, context):
                        yield item

            return stream
        if inspect.iscoroutinefunction(behaviour):
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                with acting_as(actor_of(context)):
                    return await behaviour(request, context)

            return call

        def blocking(request: Any, context: grpc.ServicerContext) -> Any:  # runs in the server's thread pool
            with acting_as(actor_of(context)):
                return behaviour(request, context)

        return blocking
