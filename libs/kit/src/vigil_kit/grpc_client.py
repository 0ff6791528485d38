"""Client channels: the caller's bearer token on every call, a default deadline, retries for idempotent methods."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import grpc

from vigil_kit.grpc_server import MAX_RECEIVE_MESSAGE_BYTES

S = TypeVar("S")

TokenSource = str | Callable[[], str] | None


def _metadata_with_token(metadata: Any, token: TokenSource) -> grpc.aio.Metadata:
    entries = grpc.aio.Metadata(*(tuple(metadata) if metadata else ()))
    if token is None or "authorization" in entries:  # a caller's explicit header wins
        return entries
    value = token() if callable(token) else token
    if value:
        entries.add("authorization", f"Bearer {value}")
    return entries


class _CallDefaults:
    """Adds the token and, when the caller set none, a deadline to the call details."""

    def __init__(self, token: TokenSource, timeout_s: float | None) -> None:
        self._token = token
        self._timeout_s = timeout_s

    def apply(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        timeout = details.timeout if details.timeout is not None else self._timeout_s
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=timeout,
            metadata=_metadata_with_token(details.metadata, self._token),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _UnaryUnary(_CallDefaults, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self.apply(client_call_details), request)


class _UnaryStream(_CallDefaults, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self.apply(client_call_details), request)


class _StreamUnary(_CallDefaults, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(self.apply(client_call_details), request_iterator)


class _StreamStream(_CallDefaults, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await continuation(self.apply(client_call_details), request_iterator)


def _method_name(full: str) -> dict[str, str]:
    """{"service": ..., "method": ...} from "/pkg.Service/Method", or {"service": ...} from "pkg.Service"."""
    path = full.strip().lstrip("/")
    service, _, method = path.partition("/")
    if not service or "." not in service:
        raise ValueError(f"retry method must be '/pkg.Service/Method' or 'pkg.Service', got {full!r}")
    return {"service": service, "method": method} if method else {"service": service}


def retry_service_config(
    retry_methods: Sequence[str],
    *,
    max_attempts: int = 4,
    initial_backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
) -> str:
    """gRPC service config JSON retrying `retry_methods` on UNAVAILABLE with exponential backoff."""
    if not retry_methods:
        return json.dumps({"methodConfig": []})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [_method_name(m) for m in retry_methods],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": f"{initial_backoff_s}s",
                        "maxBackoff": f"{max_backoff_s}s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def make_channel(
    target: str,
    *,
    token: TokenSource,
    default_timeout_s: float = 5.0,
    retry_methods: Sequence[str] = (),
    stream_timeout_s: float | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An insecure grpc.aio channel to `target` that sends `authorization: Bearer <token>` on every call
    (token may be a callable, read per call), gives unary-response calls a `default_timeout_s` deadline
    when the caller sets none (response-streaming calls get `stream_timeout_s`, by default none, since
    watches and downloads legitimately run long), and retries `retry_methods` on UNAVAILABLE."""
    unary = (_UnaryUnary(token, default_timeout_s), _StreamUnary(token, default_timeout_s))
    streaming = (_UnaryStream(token, stream_timeout_s), _StreamStream(token, stream_timeout_s))
    channel_options = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry_service_config(retry_methods)),
        ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
        *options,
    ]
    return grpc.aio.insecure_channel(target, options=channel_options, interceptors=[*unary, *streaming])


class ServiceStub(Generic[S]):
    """Another Vigil service's stub, called as this service: the channel opens at first use with the
    service's own token (make_channel), and `stub()` is None when no token is configured, so the caller
    decides what a missing peer means (an absent sharing check, an Unavailable error)."""

    def __init__(
        self,
        stub_class: Callable[[grpc.aio.Channel], S],
        target: str,
        *,
        token: str,
        timeout_s: float,
        retry_methods: Sequence[str] = (),
    ) -> None:
        self._stub_class = stub_class
        self._target = target
        self._token = token
        self._timeout_s = timeout_s
        self._retry_methods = tuple(retry_methods)
        self._channel: grpc.aio.Channel | None = None
        self._stub: S | None = None

    @classmethod
    def from_settings(
        cls,
        stub_class: Callable[[grpc.aio.Channel], S],
        target: str,
        settings: Any,
        *,
        timeout_s: float,
        retry_methods: Sequence[str] = (),
    ) -> ServiceStub[S]:
        token = settings.service_token.get_secret_value() if settings.service_token else ""
        return cls(stub_class, target, token=token, timeout_s=timeout_s, retry_methods=retry_methods)

    def __call__(self) -> S | None:
        if not self._token:
            return None
        if self._stub is None:
            self._channel = make_channel(
                self._target,
                token=self._token,
                default_timeout_s=self._timeout_s,
                retry_methods=self._retry_methods,
            )
            self._stub = self._stub_class(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None
