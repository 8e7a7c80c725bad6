"""The gRPC server every service runs: asyncio (grpc.aio), with standard health checking, reflection
that can describe every method, a request-decoding step, an interceptor hook, TLS, and a graceful stop.

Server model. One asyncio event loop per process, on its own thread, runs every server the process
creates (grpc's asyncio completion queue belongs to the loop that first used it, so there is one
loop, not one per server). A servicer method written ``async def`` runs on that loop; a plain one
runs in the server's thread pool (``max_workers``, UR_GRPC_MAX_WORKERS), exactly one thread per call
while it runs. So a call that waits (SubmitRequest with ``wait_ms``) awaits on the loop holding no
thread, health checks and reflection run on the loop and never queue behind busy workers, and the
blocking steps of an ``async`` method go to the same pool through :func:`offload`.

Every server has:

* the standard health service (``grpc.health.v1.Health``: Check, Watch and List), SERVING at start
  for "" and each registered service; :class:`HealthService` takes status changes from any thread
  (the runtime's health monitor, services/common/health.py, sets them);
* server reflection, v1 and v1alpha, which describes services, messages and methods alike (the
  Python descriptor pool cannot find a method by name; the servicer looks methods up itself);
* an interceptor chain: the caller's ``interceptors`` (``grpc.aio.ServerInterceptor``; issue 10's
  authentication goes here, per service), then the decoding step, which parses each unary request
  itself and answers an undecodable body INVALID_ARGUMENT with one log line, where grpcio would
  answer UNKNOWN/INTERNAL and log a traceback. The caller's interceptors therefore run first (an
  unauthenticated caller learns nothing about its body), and a behaviour they wrap sees the request
  as bytes; :func:`with_behaviour` rebuilds a handler around a wrapped behaviour;
* message size limits (``max_message_bytes``) both ways;
* TLS, and mutual TLS, when given a :class:`~services.common.tls.TransportSecurity` that can serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import grpc
import grpc.aio
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from services.common.listeners import port_holder
from services.common.tls import DEFAULT_MAX_MESSAGE_BYTES, TransportSecurity

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Registration:
    """One servicer: the generated ``add_XServicer_to_server`` function, the servicer, its full name."""

    add_to_server: Callable[[Any, Any], None]
    servicer: Any
    service_name: str


# -- the event loop and the thread pools ----------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None

#: The thread pool of the server running the current call (set by the decoding step).
_call_pool: contextvars.ContextVar[futures.Executor | None] = contextvars.ContextVar("ur_grpc_pool", default=None)


def event_loop() -> asyncio.AbstractEventLoop:
    """The process's gRPC event loop, running on its own daemon thread (started on first use)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            running = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(running.set)
                loop.run_forever()

            threading.Thread(target=run, name="grpc-loop", daemon=True).start()
            running.wait()
            _loop = loop
        return _loop


async def offload(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking ``fn`` in the thread pool of the server handling this call (the pool plain
    servicer methods run in), keeping the context variables; await its result on the loop."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_call_pool.get(), call)


# -- health ---------------------------------------------------------------------------------------

class HealthService:
    """grpc.health.v1.Health on the asyncio server. :meth:`set` may be called from any thread: the
    status is visible to Check at once, and Watch streams are woken on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._statuses: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._final = False

    def set(self, name: str, serving: bool) -> None:
        """SERVING or NOT_SERVING for ``name`` ("" is the whole server); ignored once shut down."""
        if not self._final:
            self._statuses[name] = SERVING if serving else NOT_SERVING
            self._wake()

    def status(self, name: str) -> int | None:
        return self._statuses.get(name)

    def statuses(self) -> dict[str, int]:
        return dict(self._statuses)

    def shutdown(self) -> None:
        """NOT_SERVING for every name, for good (the server is stopping); Watch streams end."""
        for name in list(self._statuses):
            self._statuses[name] = NOT_SERVING
        self._final = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is watching
            self._loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def Check(self, request: health_pb2.HealthCheckRequest,  # noqa: N802 - gRPC method name
                    context: grpc.aio.ServicerContext[Any, Any]) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no service {request.service!r} on this server")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(self, request: health_pb2.HealthListRequest,  # noqa: N802
                   context: grpc.aio.ServicerContext[Any, Any]) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(statuses={  # a copy: other threads may add names meanwhile
            name: health_pb2.HealthCheckResponse(status=status) for name, status in self.statuses().items()})

    async def Watch(self, request: health_pb2.HealthCheckRequest,  # noqa: N802
                    context: grpc.aio.ServicerContext[Any, Any]) -> None:
        last: int | None = None
        while True:
            changed = self._changed
            status = self._statuses.get(request.service, SERVICE_UNKNOWN)
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if self._final:
                return
            await changed.wait()


# -- reflection -----------------------------------------------------------------------------------

def _v1_reflection_file(pool: Any) -> descriptor.FileDescriptor:
    """grpc.reflection.v1's file descriptor: v1alpha's, renamed (the two are the same messages with
    the same field numbers, so v1alpha's classes read and write v1's wire format)."""
    name = "grpc/reflection/v1/reflection.proto"
    with contextlib.suppress(KeyError):
        found: descriptor.FileDescriptor = pool.FindFileByName(name)
        return found
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto.name, proto.package = name, "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for fld in message.field:
            if fld.type_name:  # assigning "" would mark a scalar field as naming a type
                fld.type_name = fld.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(proto.SerializeToString())
    added: descriptor.FileDescriptor = pool.FindFileByName(name)
    return added


def _with_dependencies(file: descriptor.FileDescriptor) -> list[bytes]:
    """``file`` and everything it imports, serialized, ``file`` first (what reflection answers)."""
    seen: dict[str, descriptor.FileDescriptor] = {}
    todo = [file]
    while todo:
        current = todo.pop()
        if current.name not in seen:
            seen[current.name] = current
            todo.extend(current.dependencies)
    out = []
    for each in seen.values():
        proto = descriptor_pb2.FileDescriptorProto()
        each.CopyToProto(proto)
        out.append(proto.SerializeToString())
    return out


class ReflectionService:
    """grpc.reflection v1 and v1alpha (one implementation: the messages are the same). Unlike
    grpcio-reflection's servicer, it finds the file of a method (``pkg.Service.Method``), which is
    what ``grpcurl describe`` asks for."""

    def __init__(self, service_names: Iterable[str], pool: Any = None) -> None:
        self._pool = pool if pool is not None else descriptor_pool.Default()
        self._names = sorted(set(service_names))
        self._method_files: dict[str, descriptor.FileDescriptor] = {}
        for name in self._names:
            service = self._pool.FindServiceByName(name)
            for method in service.methods:
                self._method_files[method.full_name] = service.file

    @property
    def service_names(self) -> list[str]:
        return list(self._names)

    async def ServerReflectionInfo(self, requests: AsyncIterator[Any],  # noqa: N802 - gRPC method name
                                   context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async for request in requests:
            yield self.answer(request)

    def answer(self, request: Any) -> Any:
        response = reflection_pb2.ServerReflectionResponse(valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        try:
            if kind == "file_by_filename":
                self._files(response, self._pool.FindFileByName(request.file_by_filename))
            elif kind == "file_containing_symbol":
                self._files(response, self._file_of(request.file_containing_symbol))
            elif kind == "file_containing_extension":
                extendee = self._pool.FindMessageTypeByName(request.file_containing_extension.containing_type)
                extension = self._pool.FindExtensionByNumber(extendee,
                                                             request.file_containing_extension.extension_number)
                self._files(response, self._pool.FindFileContainingSymbol(extension.full_name))
            elif kind == "all_extension_numbers_of_type":
                extendee = self._pool.FindMessageTypeByName(request.all_extension_numbers_of_type)
                response.all_extension_numbers_response.base_type_name = extendee.full_name
                response.all_extension_numbers_response.extension_number.extend(
                    sorted(e.number for e in self._pool.FindAllExtensions(extendee)))
            elif kind == "list_services":
                response.list_services_response.service.extend(
                    reflection_pb2.ServiceResponse(name=name) for name in self._names)
            else:
                response.error_response.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                response.error_response.error_message = "no request kind set"
        except KeyError:
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = "not found"
        return response

    def _file_of(self, symbol: str) -> descriptor.FileDescriptor:
        file = self._method_files.get(symbol)
        if file is not None:
            return file
        found: descriptor.FileDescriptor = self._pool.FindFileContainingSymbol(symbol)
        return found

    @staticmethod
    def _files(response: Any, file: descriptor.FileDescriptor) -> None:
        response.file_descriptor_response.file_descriptor_proto.extend(_with_dependencies(file))

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """The servicer under both names (v1 and v1alpha)."""
        method = grpc.stream_stream_rpc_method_handler(
            self.ServerReflectionInfo, request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
        return [grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
                for name in (REFLECTION_V1, REFLECTION_V1ALPHA)]


# -- the interceptor chain ------------------------------------------------------------------------

Behaviour = Callable[..., Any]

#: What a body that is not the method's request message raises when parsed.
_UNDECODABLE = (DecodeError, ValueError, RecursionError)


def with_behaviour(handler: grpc.RpcMethodHandler[Any, Any], wrap: Callable[[Behaviour], Behaviour], *,
                   request_deserializer: Callable[[bytes], Any] | None = None,
                   replace_deserializer: bool = False) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour replaced by ``wrap(behaviour)`` (of the same kind: ``async`` if
    it was), keeping its request deserializer unless ``replace_deserializer``. For interceptors."""
    deserializer = request_deserializer if replace_deserializer else handler.request_deserializer
    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), deserializer, serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream), deserializer, serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), deserializer, serializer)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream), deserializer, serializer)
    raise ValueError("a method handler without a behaviour")


class _DecodeRequests(grpc.aio.ServerInterceptor):
    """The last interceptor: parses unary requests itself, so that a body that is not the method's
    request message is answered INVALID_ARGUMENT with one log line; and tells :func:`offload` which
    thread pool serves the call."""

    def __init__(self, pool: futures.Executor) -> None:
        self._pool = pool
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                             Any],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler  # type: ignore[return-value]  # None: grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._decoding(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _decoding(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        if handler.unary_stream is not None and not _is_async(handler.unary_stream):
            # grpc calls a plain streaming behaviour on the loop itself, where a plain abort would
            # deadlock: leave it to grpc (none of the platform's methods is one).
            return handler
        parse = handler.request_deserializer
        if parse is None:
            return handler
        message_type = getattr(getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None), "full_name",
                               "request message")

        def problem(exc: Exception) -> str:
            logger.warning("%s: undecodable request body answered INVALID_ARGUMENT (%s: %s)", method,
                           type(exc).__name__, exc)
            return f"the request body is not a valid {message_type}"

        return with_behaviour(handler, functools.partial(_decoding_behaviour, parse=parse, problem=problem,
                                                         pool=self._pool), replace_deserializer=True)


def _is_async(behaviour: Behaviour) -> bool:
    return inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)


def _decoding_behaviour(behaviour: Behaviour, *, parse: Callable[[bytes], Any], problem: Callable[[Exception], str],
                        pool: futures.Executor) -> Behaviour:
    """``behaviour`` taking the request's bytes: parsed first, INVALID_ARGUMENT when they do not parse.
    Of the same kind as ``behaviour`` (async generator, coroutine or plain), as grpc dispatches on it."""
    if inspect.isasyncgenfunction(behaviour):
        async def stream(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                request = parse(raw)
            except _UNDECODABLE as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem(exc))
            _call_pool.set(pool)
            async for item in behaviour(request, context):
                yield item

        return stream
    if inspect.iscoroutinefunction(behaviour):
        async def call(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                request = parse(raw)
            except _UNDECODABLE as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem(exc))
            _call_pool.set(pool)
            return await behaviour(request, context)

        return call

    def blocking(raw: bytes, context: grpc.ServicerContext) -> Any:  # runs in the pool
        try:
            request = parse(raw)
        except _UNDECODABLE as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem(exc))
        return behaviour(request, context)

    return blocking


# -- the server -----------------------------------------------------------------------------------

@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthService
    service_names: tuple[str, ...]
    loop: asyncio.AbstractEventLoop
    pool: futures.ThreadPoolExecutor
    reflection: ReflectionService
    _stopped: bool = field(default=False)

    def set_serving(self, serving: bool) -> None:
        """Every name ("" and each service) SERVING or NOT_SERVING."""
        for name in ("", *self.service_names):
            self.health.set(name, serving)

    def stop(self, grace_s: float | None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones finish within ``grace_s`` (None:
        abort them), then release the thread pool. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.health.shutdown()
        done = asyncio.run_coroutine_threadsafe(self.server.stop(grace_s), self.loop)
        try:
            done.result(timeout=(grace_s or 0) + 10)
        except futures.TimeoutError:
            logger.warning("gRPC server on port %d did not stop within %.0f s", self.port, (grace_s or 0) + 10)
        self.pool.shutdown(wait=False, cancel_futures=True)


#: How long a client connection lives before the server asks the client to reconnect (GOAWAY), and how
#: long calls in flight then get to finish: longer than any unary call here (a waiting SubmitRequest
#: waits at most UR_INTAKE_MAX_WAIT_MS).
MAX_CONNECTION_AGE_MS = 300_000
MAX_CONNECTION_AGE_GRACE_MS = 60_000


class BindError(RuntimeError):
    """The server could not bind its address; the message names the port and, where it can be seen,
    the process holding it."""


def _bind_error(address: str, cause: Exception) -> BindError:
    port_text = address.rpartition(":")[2]
    holder = port_holder(int(port_text)) if port_text.isdigit() and int(port_text) > 0 else None
    if holder is not None:
        return BindError(f"cannot bind gRPC server to {address}: port {port_text} is in use by {holder}")
    return BindError(f"cannot bind gRPC server to {address} (port in use, or not an address of this machine): "
                     f"{cause}")


async def _start(address: str, registrations: Sequence[Registration], pool: futures.ThreadPoolExecutor,
                 interceptors: Sequence[grpc.aio.ServerInterceptor], security: TransportSecurity | None,
                 max_message_bytes: int) -> tuple[grpc.aio.Server, int, HealthService, ReflectionService]:
    server = grpc.aio.server(
        migration_thread_pool=pool, interceptors=[*interceptors, _DecodeRequests(pool)],
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", max_message_bytes),
                 ("grpc.so_reuseport", 0),
                 # Replicas: a client's connection is closed (gracefully) after a while, so that it resolves
                 # the service's name again and spreads its calls over replicas started since.
                 ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
                 ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS)])
    for reg in registrations:
        reg.add_to_server(reg.servicer, server)
    health = HealthService(asyncio.get_running_loop())
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _v1_reflection_file(descriptor_pool.Default())
    reflection = ReflectionService(
        (*(r.service_name for r in registrations), HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA))
    server.add_generic_rpc_handlers(reflection.handlers())
    try:
        if security is not None and security.can_serve:
            port = server.add_secure_port(address, security.server_credentials())
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise _bind_error(address, exc) from exc
    if port == 0:
        raise _bind_error(address, RuntimeError("grpc bound no port"))
    await server.start()
    return server, port, health, reflection


def create_server(address: str, registrations: Sequence[Registration], max_workers: int = 16, *,
                  interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
                  security: TransportSecurity | None = None,
                  max_message_bytes: int = MAX_MESSAGE_BYTES) -> RunningServer:
    """Bind and start a server (port 0 picks a free one; the bound port is returned), SERVING.

    ``interceptors`` run in order before the decoding step (see the module's docstring);
    ``security`` that can serve (a certificate and key) makes it a TLS server, requiring client
    certificates when it says so. Raises :class:`BindError` when the address cannot be bound."""
    loop = event_loop()
    pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc")
    started = asyncio.run_coroutine_threadsafe(
        _start(address, registrations, pool, interceptors, security, max_message_bytes), loop)
    try:
        server, port, health, reflection = started.result(timeout=60)
    except BaseException:
        pool.shutdown(wait=False)
        raise
    names = tuple(r.service_name for r in registrations)
    running = RunningServer(server=server, port=port, health=health, service_names=names, loop=loop, pool=pool,
                            reflection=reflection)
    running.set_serving(True)
    logger.info("gRPC %s listening on port %d (%s)", ", ".join(names), port,
                "mutual TLS" if security is not None and security.can_serve and security.require_client_cert
                else "TLS" if security is not None and security.can_serve else "plaintext")
    return running

