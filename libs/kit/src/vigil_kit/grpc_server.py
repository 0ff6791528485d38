"""The grpc.aio server every service runs: health, reflection, WhoAmI, and the metrics, error and auth interceptors."""

from __future__ import annotations

import asyncio
import contextlib
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
from vigil_kit import auth, errors, metrics
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

Scope = Callable[[grpc.aio.ServicerContext], contextlib.AbstractAsyncContextManager[None]]


@dataclass
class ServiceBinding:
    """One gRPC service a server hosts: its full proto name (for reflection and health), the servicer
    and the generated add_XServicer_to_server function."""

    name: str
    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]


def _wrap_behavior(behavior: Callable, response_streaming: bool, scope: Scope) -> Callable:
    """A handler function that runs `behavior` inside `scope(context)`, keeping its calling style:
    coroutines stay coroutines (they may use context.write), generators stay generators."""
    if response_streaming and not inspect.iscoroutinefunction(behavior):

        async def stream(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with scope(context):
                result = behavior(request_or_iterator, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    for item in result:
                        yield item

        return stream

    async def call(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        async with scope(context):
            result = behavior(request_or_iterator, context)
            if inspect.isawaitable(result):
                result = await result
            return result

    return call


def wrap_handler(handler: grpc.RpcMethodHandler, scope: Scope) -> grpc.RpcMethodHandler:
    """The same method handler with its behavior run inside `scope` (all four call types)."""
    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_wrap_behavior(handler.stream_stream, True, scope), **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_wrap_behavior(handler.stream_unary, False, scope), **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_wrap_behavior(handler.unary_stream, True, scope), **kw)
    return grpc.unary_unary_rpc_method_handler(_wrap_behavior(handler.unary_unary, False, scope), **kw)


def _call_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


class _ScopeInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps every registered method's handler in the scope made by `scope_for`."""

    def scope_for(self, method: str, handler: grpc.RpcMethodHandler) -> Scope | None:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        scope = self.scope_for(handler_call_details.method, handler)
        return handler if scope is None else wrap_handler(handler, scope)


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


class MetricsInterceptor(_ScopeInterceptor):
    """Counts calls and measures their latency per method and final status code."""

    def scope_for(self, method: str, handler: grpc.RpcMethodHandler) -> Scope:
        service, name = metrics.split_method(method)
        call_type = _call_type(handler)

        @contextlib.asynccontextmanager
        async def scope(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            metrics.GRPC_SERVER_STARTED.labels(service, name, call_type).inc()
            started = time.perf_counter()
            code: grpc.StatusCode | None = None
            try:
                yield
            except (asyncio.CancelledError, GeneratorExit):
                code = grpc.StatusCode.CANCELLED
                raise
            except errors.VigilError as exc:
                code = exc.code
                raise
            except BaseException:
                code = _status_code_of(context) or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code is None:
                    code = _status_code_of(context) or grpc.StatusCode.OK
                metrics.GRPC_SERVER_HANDLING_SECONDS.labels(service, name, call_type).observe(
                    time.perf_counter() - started
                )
                metrics.GRPC_SERVER_HANDLED.labels(service, name, call_type, code.name).inc()

        return scope


class ErrorInterceptor(_ScopeInterceptor):
    """VigilError → its gRPC status with rich details; any other exception → INTERNAL, logged, details hidden."""

    def scope_for(self, method: str, handler: grpc.RpcMethodHandler) -> Scope:
        @contextlib.asynccontextmanager
        async def scope(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            try:
                yield
            except grpc.aio.AbortError:
                raise  # the handler already chose its status
            except errors.VigilError as exc:
                level = logging.ERROR if exc.code == grpc.StatusCode.INTERNAL else logging.INFO
                logger.log(
                    level,
                    "call failed: %s",
                    errors.format_error(exc),
                    extra={"grpc_method": method, "grpc_code": exc.code.name, "rule": exc.rule},
                )
                await context.abort_with_status(errors.to_grpc_status(exc))
            except Exception:
                logger.exception("unhandled error in %s", method, extra={"grpc_method": method})
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return scope


class AuthInterceptor(_ScopeInterceptor):
    """Verifies the bearer token of every call to a non-exempt service and binds its principal to the call."""

    def __init__(self, verifier: auth.TokenVerifier, exempt_services: frozenset[str] = AUTH_EXEMPT_SERVICES):
        self._verifier = verifier
        self._exempt = exempt_services

    def scope_for(self, method: str, handler: grpc.RpcMethodHandler) -> Scope | None:
        service, _ = metrics.split_method(method)
        if service in self._exempt:
            return None

        @contextlib.asynccontextmanager
        async def scope(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            token = auth.bearer_token(context.invocation_metadata())
            verified = self._verifier.verify(token)  # AuthError → UNAUTHENTICATED via ErrorInterceptor
            reset = auth.set_current_token(verified)
            try:
                yield
            finally:
                # A stream closed from another context cannot reset the variable; that context ends anyway.
                with contextlib.suppress(ValueError):
                    auth.reset_current_token(reset)

        return scope


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
    WhoAmI, with metrics → error mapping → auth interceptors (then any extra `interceptors`)."""
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), ErrorInterceptor(), AuthInterceptor(verifier), *interceptors],
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES), *options],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(
        IdentityServicer(settings.service_name), server
    )
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    service_names = [*(b.name for b in bindings), IDENTITY_SERVICE]
    reflection.enable_server_reflection([*service_names, HEALTH_SERVICE, reflection.SERVICE_NAME], server)

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
