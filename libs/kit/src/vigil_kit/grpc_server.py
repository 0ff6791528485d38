"""The grpc.aio server every service runs: health, reflection, WhoAmI, and metrics, error mapping and auth per call."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vigil.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from vigil_kit import auth, errors, metrics, validation
from vigil_kit.health import Check, ReadinessMonitor

if TYPE_CHECKING:
    from vigil_kit.settings import ServiceSettings

logger = logging.getLogger(__name__)

MAX_RECEIVE_MESSAGE_BYTES = 8 * 1024 * 1024
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
IDENTITY_SERVICE = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
# Infrastructure services any caller (probes, grpcurl) may use without a token.
AUTH_EXEMPT_SERVICES: frozenset[str] = frozenset(
    {HEALTH_SERVICE, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"}
)


@dataclass
class ServiceBinding:
    """One gRPC service a server hosts: its full proto name (for reflection and health), the servicer
    and the generated add_XServicer_to_server function."""

    name: str
    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]


def _status_code_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except Exception:  # older runtimes lack ServicerContext.code()
        return None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return errors.status_code(code)
    return None


def _call_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


class _MethodGuard:
    """What every call of one method goes through, built once per method rather than per call: metrics
    (label children resolved up front), authentication (unless exempt) binding the principal to the call,
    and error mapping (VigilError → its rich status; any other exception → INTERNAL, logged, details hidden).
    """

    __slots__ = ("_handled", "_labels", "_seconds", "_started", "method", "verifier")

    def __init__(self, method: str, call_type: str, verifier: auth.TokenVerifier | None) -> None:
        service, name = metrics.split_method(method)
        self.method = method
        self.verifier = verifier
        self._labels = (service, name, call_type)
        self._started = metrics.GRPC_SERVER_STARTED.labels(service, name, call_type)
        self._seconds = metrics.GRPC_SERVER_HANDLING_SECONDS.labels(service, name, call_type)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def begin(self, context: grpc.aio.ServicerContext) -> contextvars.Token | None:
        """Count the call and authenticate it (AuthError when refused); the token to reset at the end."""
        self._started.inc()
        if self.verifier is None:
            return None
        verified = self.verifier.verify(auth.bearer_token(context.invocation_metadata()))
        return auth.set_current_token(verified)

    def end(
        self,
        context: grpc.aio.ServicerContext,
        started: float,
        code: grpc.StatusCode | None,
        reset: contextvars.Token | None,
    ) -> None:
        if reset is not None:
            # A stream closed from another context cannot reset the variable; that context ends anyway.
            with contextlib.suppress(ValueError):
                auth.reset_current_token(reset)
        self._seconds.observe(time.perf_counter() - started)
        if code is None:
            code = _status_code_of(context) or grpc.StatusCode.OK
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = metrics.GRPC_SERVER_HANDLED.labels(*self._labels, code.name)
        counter.inc()

    async def refuse(self, context: grpc.aio.ServicerContext, exc: Exception) -> grpc.StatusCode:
        """Answer `exc` as the call's status (raises AbortError); the code it answered with is returned only
        if aborting did not raise."""
        # A lock held past the busy timeout is overload, not a fault: the caller is told to retry.
        exc = errors.busy_database(exc) or exc
        if isinstance(exc, errors.VigilError):
            level = logging.ERROR if exc.code == grpc.StatusCode.INTERNAL else logging.INFO
            logger.log(
                level,
                "call failed: %s",
                errors.format_error(exc),
                extra={"grpc_method": self.method, "grpc_code": exc.code.name, "rule": exc.rule},
            )
            await context.abort_with_status(errors.to_grpc_status(exc))
            return exc.code
        logger.exception("unhandled error in %s", self.method, extra={"grpc_method": self.method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return grpc.StatusCode.INTERNAL


def _code_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status a call failing with `exc` ends with, when the exception alone tells (else the context)."""
    if isinstance(exc, errors.VigilError):
        return exc.code
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    if isinstance(exc, grpc.aio.AbortError):
        return None  # the context holds the status the handler (or refuse()) chose
    if isinstance(exc, Exception):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.UNKNOWN


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        validation.check_enums(request)
        yield request


def _checked(request_or_iterator: Any, request_streaming: bool) -> Any:
    """The request (or each message of a request stream) with its enum fields checked (validation)."""
    if request_streaming:
        return _checked_stream(request_or_iterator)
    validation.check_enums(request_or_iterator)
    return request_or_iterator


def _guarded_behavior(
    behavior: Callable, response_streaming: bool, guard: _MethodGuard, request_streaming: bool = False
) -> Callable:
    """`behavior` run under `guard`, keeping its calling style: coroutines stay coroutines (they may use
    context.write), generators stay generators. Requests are checked (vigil_kit.validation) after the
    caller is authenticated, so an unknown caller learns nothing from them."""
    if response_streaming and not inspect.iscoroutinefunction(behavior):

        async def stream(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            code: grpc.StatusCode | None = None
            reset = None
            try:
                reset = guard.begin(context)
                result = behavior(_checked(request_or_iterator, request_streaming), context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    for item in result:
                        yield item
            except BaseException as exc:
                code = _code_of(exc)
                if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
                    await guard.refuse(context, exc)
                raise
            finally:
                guard.end(context, started, code, reset)

        return stream

    async def call(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        code: grpc.StatusCode | None = None
        reset = None
        try:
            reset = guard.begin(context)
            result = behavior(_checked(request_or_iterator, request_streaming), context)
            if inspect.isawaitable(result):
                result = await result
            return result
        except BaseException as exc:
            code = _code_of(exc)
            if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
                await guard.refuse(context, exc)
            raise
        finally:
            guard.end(context, started, code, reset)

    return call


def guard_handler(
    method: str, handler: grpc.RpcMethodHandler, verifier: auth.TokenVerifier | None
) -> grpc.RpcMethodHandler:
    """The same method handler with its behavior run under metrics, authentication (when `verifier` is
    given) and error mapping — all four call types."""
    guard = _MethodGuard(method, _call_type(handler), verifier)
    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _guarded_behavior(handler.stream_stream, True, guard, request_streaming=True), **kw
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _guarded_behavior(handler.stream_unary, False, guard, request_streaming=True), **kw
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _guarded_behavior(handler.unary_stream, True, guard), **kw
        )
    return grpc.unary_unary_rpc_method_handler(_guarded_behavior(handler.unary_unary, False, guard), **kw)


class _Guards:
    """Which methods need a token, and the guarded handler of each method seen (wrapped once, reused)."""

    # Methods a generic handler may answer are finite in practice; the bound only guards against one that
    # answers any name.
    MAX_CACHED = 4096

    def __init__(self, verifier: auth.TokenVerifier, exempt_services: frozenset[str]) -> None:
        self._verifier = verifier
        self._exempt = exempt_services
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        hit = self._cache.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        service, _ = metrics.split_method(method)
        verifier = None if service in self._exempt else self._verifier
        guarded = guard_handler(method, handler, verifier)
        if len(self._cache) < self.MAX_CACHED or method in self._cache:
            self._cache[method] = (handler, guarded)
        return guarded


class _GuardedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come out guarded."""

    def __init__(self, inner: grpc.GenericRpcHandler, guards: _Guards) -> None:
        self._inner = inner
        self._guards = guards

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        return self._guards.guard(handler_call_details.method, handler)


class _GuardingServer(grpc.aio.Server):
    """What the services' add_XServicer_to_server functions register on: every handler is wrapped in its
    guard once, at registration, instead of running a chain of server interceptors on every call (which
    cost a coroutine per interceptor and a freshly built handler per call)."""

    def __init__(self, server: grpc.aio.Server, guards: _Guards) -> None:
        self._server = server
        self._guards = guards

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            [_GuardedGenericHandler(h, self._guards) for h in generic_rpc_handlers]
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                name: self._guards.guard(f"/{service_name}/{name}", handler)
                for name, handler in method_handlers.items()
            },
        )

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self._server.wait_for_termination(timeout)


class IdentityServicer(identity_service_pb2_grpc.IdentityServiceServicer):
    """vigil.identity.v1.IdentityService: tells the caller which principal this service verified."""

    def __init__(self, service_name: str) -> None:
        self._service = service_name

    async def WhoAmI(
        self, request: identity_service_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> identity_service_pb2.WhoAmIResponse:
        verified = auth.current_token()
        response = identity_service_pb2.WhoAmIResponse(
            principal=verified.principal.to_proto(), issuer=verified.issuer, service=self._service
        )
        response.expire_time.FromDatetime(verified.expires_at)
        return response


class VigilServer:
    """A built (not yet started) service server; start() begins readiness probes and serving."""

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        host: str,
        health_servicer: health.aio.HealthServicer,
        readiness: ReadinessMonitor,
        service_names: Sequence[str],
        shutdown_grace_s: float,
    ) -> None:
        self.server = server
        self.port = port
        self.host = host
        self.health = health_servicer
        self.readiness = readiness
        self.service_names = list(service_names)
        self._grace = shutdown_grace_s
        self._started = False

    @property
    def address(self) -> str:
        """host:port clients can dial (loopback when bound to all interfaces)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::", "[::]") else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        # Readiness first, so the health service never answers SERVING before the first probe round.
        await self.readiness.start()
        await self.server.start()
        self._started = True
        logger.info(
            "gRPC server listening",
            extra={"grpc_port": self.port, "grpc_host": self.host, "ready": self.readiness.ready},
        )

    async def stop(self, grace_s: float | None = None) -> None:
        """Report NOT_SERVING, stop probing, let in-flight calls finish for up to `grace_s`, then stop."""
        grace = self._grace if grace_s is None else grace_s
        await self.health.enter_graceful_shutdown()
        await self.readiness.stop()
        await self.server.stop(grace)
        self._started = False

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


async def build_server(
    settings: ServiceSettings,
    *,
    bindings: Sequence[ServiceBinding],
    verifier: auth.TokenVerifier,
    checks: Mapping[str, Check],
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    options: Sequence[tuple[str, Any]] = (),
) -> VigilServer:
    """A grpc.aio server on settings.grpc_host:grpc_port hosting `bindings` plus health, reflection and
    WhoAmI; every call runs under metrics → error mapping → auth (health and reflection need no token),
    and any extra `interceptors` run before that."""
    server = grpc.aio.server(
        interceptors=list(interceptors) or None,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES), *options],
    )
    # Every handler registered through `guarded` runs under metrics → error mapping → auth (see _MethodGuard).
    guarded = _GuardingServer(server, _Guards(verifier, AUTH_EXEMPT_SERVICES))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, guarded)
    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(
        IdentityServicer(settings.service_name), guarded
    )
    for binding in bindings:
        binding.add_to_server(binding.servicer, guarded)
    service_names = [*(b.name for b in bindings), IDENTITY_SERVICE]
    reflection.enable_server_reflection([*service_names, HEALTH_SERVICE, reflection.SERVICE_NAME], guarded)

    bind = f"{settings.grpc_host}:{settings.grpc_port}"
    port = server.add_insecure_port(bind)
    if port == 0:
        raise RuntimeError(f"gRPC server could not bind {bind}")
    readiness = ReadinessMonitor(
        health_servicer,
        service_names,
        checks,
        interval_s=settings.readiness_interval_s,
        timeout_s=settings.readiness_timeout_s,
    )
    return VigilServer(
        server, port, settings.grpc_host, health_servicer, readiness, service_names, settings.shutdown_grace_s
    )
