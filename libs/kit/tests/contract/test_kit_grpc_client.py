"""Client channels: token on every call, default deadline, retries of idempotent methods."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from vigil.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from vigil_kit import auth, errors
from vigil_kit.grpc_client import make_channel, retry_service_config
from vigil_kit.grpc_server import ServiceBinding, build_server
from vigil_kit.settings import ServiceSettings

SLOW = "vigil.test.v1.Slow"


class SlowServicer:
    """Test service: Wait blocks until released; Remaining tells the deadline left; Flaky fails UNAVAILABLE `failures` times, then answers."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.failures = 0
        self.flaky_calls = 0

    async def wait(self, request: bytes, context) -> bytes:
        await self.release.wait()
        return b"released"

    async def flaky(self, request: bytes, context) -> bytes:
        self.flaky_calls += 1
        if self.flaky_calls <= self.failures:
            raise errors.Unavailable("warming up")
        return auth.current_principal().id.encode()

    async def remaining(self, request: bytes, context) -> bytes:
        return str(context.time_remaining()).encode()

    async def remaining_stream(self, request: bytes, context):
        remaining = context.time_remaining()
        # Without a deadline gRPC reports an effectively infinite remaining time.
        yield b"none" if remaining is None or remaining > 1e6 else str(remaining).encode()

    async def upload(self, requests, context) -> bytes:
        return str(len([r async for r in requests])).encode() + b":" + auth.current_principal().id.encode()

    async def echo(self, requests, context):
        yield auth.current_principal().id.encode()
        async for request in requests:
            yield request


def add_slow(servicer: SlowServicer, server: grpc.aio.Server) -> None:
    handlers = {
        "Wait": grpc.unary_unary_rpc_method_handler(servicer.wait),
        "Flaky": grpc.unary_unary_rpc_method_handler(servicer.flaky),
        "Remaining": grpc.unary_unary_rpc_method_handler(servicer.remaining),
        "RemainingStream": grpc.unary_stream_rpc_method_handler(servicer.remaining_stream),
        "Upload": grpc.stream_unary_rpc_method_handler(servicer.upload),
        "Echo": grpc.stream_stream_rpc_method_handler(servicer.echo),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SLOW, handlers),))


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return auth.generate_keypair()


@pytest.fixture
def token(keypair) -> str:
    return auth.TokenIssuer(keypair[0]).mint_service("ingest")


@pytest.fixture
def servicer() -> SlowServicer:
    return SlowServicer()


@pytest.fixture
async def server(keypair, servicer):
    settings = ServiceSettings(service_name="archive", grpc_host="127.0.0.1", grpc_port=0)
    srv = await build_server(
        settings,
        bindings=[ServiceBinding(SLOW, servicer, add_slow)],
        verifier=auth.TokenVerifier([keypair[1]]),
        checks={},
    )
    await srv.start()
    yield srv
    servicer.release.set()
    await srv.stop(0)


async def test_the_channel_sends_the_token_on_unary_calls(server, token):
    async with make_channel(server.address, token=token) as channel:
        response = await identity_service_pb2_grpc.IdentityServiceStub(channel).WhoAmI(
            identity_service_pb2.WhoAmIRequest()
        )

    assert response.principal.id == "service:ingest"


async def test_the_channel_sends_the_token_on_streaming_calls(server, token):
    async with make_channel(server.address, token=token) as channel:
        uploaded = await channel.stream_unary(f"/{SLOW}/Upload")(iter([b"a", b"b"]))
        echoed = [r async for r in channel.stream_stream(f"/{SLOW}/Echo")(iter([b"a"]))]

    assert uploaded == b"2:service:ingest"
    assert echoed == [b"service:ingest", b"a"]


async def test_a_token_callable_is_read_for_each_call(server, keypair):
    issuer = auth.TokenIssuer(keypair[0])
    current = {"token": issuer.mint_service("ingest")}

    async with make_channel(server.address, token=lambda: current["token"]) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        first = await stub.WhoAmI(identity_service_pb2.WhoAmIRequest())
        current["token"] = issuer.mint_service("sharing")
        second = await stub.WhoAmI(identity_service_pb2.WhoAmIRequest())

    assert (first.principal.id, second.principal.id) == ("service:ingest", "service:sharing")


async def test_a_channel_without_a_token_is_unauthenticated(server):
    async with make_channel(server.address, token=None) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await identity_service_pb2_grpc.IdentityServiceStub(channel).WhoAmI(
                identity_service_pb2.WhoAmIRequest()
            )

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_call_without_its_own_deadline_gets_the_default_one(server, token):
    async with make_channel(server.address, token=token, default_timeout_s=0.3) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SLOW}/Wait")(b"")

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_callers_own_deadline_overrides_the_default(server, token):
    async with make_channel(server.address, token=token, default_timeout_s=2) as channel:
        defaulted = float(await channel.unary_unary(f"/{SLOW}/Remaining")(b""))
        own = float(await channel.unary_unary(f"/{SLOW}/Remaining")(b"", timeout=60))

    assert 0 < defaulted < 3
    assert 10 < own < 61


async def test_response_streams_get_no_default_deadline(server, token):
    async with make_channel(server.address, token=token, default_timeout_s=2) as channel:
        (remaining,) = [r async for r in channel.unary_stream(f"/{SLOW}/RemainingStream")(b"")]

    assert remaining == b"none"


async def test_listed_idempotent_methods_are_retried_on_unavailable(server, servicer, token):
    servicer.failures = 2

    async with make_channel(server.address, token=token, retry_methods=[f"/{SLOW}/Flaky"]) as channel:
        response = await channel.unary_unary(f"/{SLOW}/Flaky")(b"")

    assert response == b"service:ingest"
    assert servicer.flaky_calls == 3


async def test_unlisted_methods_are_not_retried(server, servicer, token):
    servicer.failures = 1

    async with make_channel(server.address, token=token) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SLOW}/Flaky")(b"")

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.flaky_calls == 1


def test_the_retry_config_names_whole_services_or_single_methods():
    config = json.loads(
        retry_service_config(["vigil.registry.v1.RegistryService", "/vigil.audit.v1.AuditService/Get"])
    )

    (method_config,) = config["methodConfig"]
    assert method_config["name"] == [
        {"service": "vigil.registry.v1.RegistryService"},
        {"service": "vigil.audit.v1.AuditService", "method": "Get"},
    ]
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method_config["retryPolicy"]["maxAttempts"] > 1
