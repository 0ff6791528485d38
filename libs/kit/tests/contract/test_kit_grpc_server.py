"""The service server: authentication, WhoAmI, health, reflection, error mapping and metrics, in-process."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import urllib.request
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from vigil.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from vigil_kit import auth, errors, metrics
from vigil_kit.grpc_server import ServiceBinding, build_server
from vigil_kit.settings import ServiceSettings
from vigil_testing.poll import apoll_until

PROBE = "vigil.test.v1.Probe"


def _raise_for(request: bytes) -> None:
    """The test service's behaviour: b"reg1" → InvalidArgument REG-1, b"value" → ValueError, b"locked" → SQLite's
    write lock held past the busy timeout, else OK."""
    if request == b"reg1":
        raise errors.InvalidArgument("area type is required", rule="REG-1", field="device.area_type")
    if request == b"value":
        raise ValueError("secret internals: db password is pw123")
    if request == b"locked":
        raise OperationalError("UPDATE devices SET …", {}, sqlite3.OperationalError("database is locked"))


async def _unary(request: bytes, context) -> bytes:
    _raise_for(request)
    return auth.current_principal().id.encode()


async def _client_stream(requests, context) -> bytes:
    seen = [r async for r in requests]
    _raise_for(seen[-1])
    return auth.current_principal().id.encode() + b":" + str(len(seen)).encode()


async def _server_stream(request: bytes, context):
    yield b"first"
    _raise_for(request)
    yield auth.current_principal().id.encode()


async def _bidi(requests, context):
    yield auth.current_principal().id.encode()
    async for request in requests:
        _raise_for(request)
        yield request


def _add_probe(servicer: object, server: grpc.aio.Server) -> None:
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(PROBE, handlers),))


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return auth.generate_keypair()


@pytest.fixture
def issuer(keypair) -> auth.TokenIssuer:
    return auth.TokenIssuer(keypair[0])


@pytest.fixture
def token(issuer) -> str:
    return issuer.mint(
        sub="u-analyst-1",
        name="Analyst Wang",
        unit="11310000000000001X",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_DEPARTMENT_ANALYST"],
    )


@pytest.fixture
async def server(keypair):
    settings = ServiceSettings(service_name="registry", grpc_host="127.0.0.1", grpc_port=0)
    srv = await build_server(
        settings,
        bindings=[ServiceBinding(PROBE, None, _add_probe)],
        verifier=auth.TokenVerifier([keypair[1]]),
        checks={},
    )
    await srv.start()
    yield srv
    await srv.stop(0)


@pytest.fixture
async def channel(server):
    async with grpc.aio.insecure_channel(server.address) as ch:
        yield ch


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def whoami(channel, metadata=()):
    stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
    return await stub.WhoAmI(identity_service_pb2.WhoAmIRequest(), metadata=metadata, timeout=5)


async def test_server_binds_an_ephemeral_port_when_asked_for_port_0(server):
    assert server.port > 0


async def test_whoami_with_a_valid_token_returns_its_claims(channel, token):
    response = await whoami(channel, bearer(token))

    principal = auth.Principal.from_proto(response.principal)
    assert principal == auth.Principal(
        id="u-analyst-1",
        name="Analyst Wang",
        unit="11310000000000001X",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=frozenset({"ROLE_DEPARTMENT_ANALYST"}),
    )
    assert (response.issuer, response.service) == ("vigil", "registry")
    assert response.expire_time.ToDatetime(tzinfo=UTC) > datetime.now(UTC) + timedelta(hours=11)


async def test_whoami_without_a_token_is_unauthenticated(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await whoami(channel)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in caught.value.details()


async def test_whoami_with_an_expired_token_is_unauthenticated_without_echoing_it(channel, issuer):
    expired = issuer.mint(
        sub="u1", name="X", unit="U", unit_kind="UNIT_KIND_ENTERPRISE", roles=[],
        ttl_s=60, now=datetime.now(UTC) - timedelta(hours=2),
    )  # fmt: skip

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await whoami(channel, bearer(expired))

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in caught.value.details()
    assert expired not in caught.value.details()


async def test_whoami_with_a_foreign_signed_token_is_unauthenticated(channel):
    foreign = auth.TokenIssuer(auth.generate_keypair()[0]).mint(
        sub="u1", name="X", unit="U", unit_kind="UNIT_KIND_ENTERPRISE", roles=["ROLE_PLATFORM_ADMIN"]
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await whoami(channel, bearer(foreign))

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert errors.from_rpc_error(caught.value).rule is None


async def test_a_garbage_authorization_header_is_unauthenticated(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await whoami(channel, bearer("not-a-jwt"))

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not-a-jwt" not in caught.value.details()


async def test_health_check_works_without_a_token(channel):
    stub = health_pb2_grpc.HealthStub(channel)

    for service in ("", "liveness", PROBE, "vigil.identity.v1.IdentityService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_every_service_without_a_token(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name async for r in responses for s in r.list_services_response.service}

    assert names == {
        PROBE,
        "vigil.identity.v1.IdentityService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_reflection_describes_the_identity_service(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="vigil.identity.v1.IdentityService"
    )

    responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]

    assert responses[0].file_descriptor_response.file_descriptor_proto


def probe(channel, kind: str, method: str):
    factory = {
        "unary": channel.unary_unary,
        "client_stream": channel.stream_unary,
        "server_stream": channel.unary_stream,
        "bidi": channel.stream_stream,
    }[kind]
    return factory(f"/{PROBE}/{method}")


async def call_probe(channel, kind: str, payload: bytes, token: str) -> list[bytes]:
    """Call the probe method of `kind` with `payload`; returns its responses as a list."""
    md = bearer(token)
    if kind == "unary":
        return [await probe(channel, kind, "Unary")(payload, metadata=md, timeout=5)]
    if kind == "client_stream":
        return [await probe(channel, kind, "ClientStream")(iter([b"ok", payload]), metadata=md, timeout=5)]
    if kind == "server_stream":
        return [r async for r in probe(channel, kind, "ServerStream")(payload, metadata=md, timeout=5)]
    return [r async for r in probe(channel, kind, "Bidi")(iter([b"ok", payload]), metadata=md, timeout=5)]


KINDS = ["unary", "client_stream", "server_stream", "bidi"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_domain_error_reaches_the_client_with_its_rule_and_field(channel, token, kind):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call_probe(channel, kind, b"reg1", token)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = errors.from_rpc_error(caught.value)
    assert (type(err), err.rule, err.field) == (errors.InvalidArgument, "REG-1", "device.area_type")
    assert errors.format_error(err) == "INVALID_ARGUMENT [REG-1]: area type is required"


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unexpected_exception_is_internal_and_leaks_nothing(channel, token, kind):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call_probe(channel, kind, b"value", token)

    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    assert "pw123" not in str(caught.value) and "ValueError" not in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_database_locked_past_its_busy_timeout_is_unavailable_with_a_retry_delay(
    channel, token, kind
):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call_probe(channel, kind, b"locked", token)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    err = errors.from_rpc_error(caught.value)
    assert isinstance(err, errors.Unavailable) and err.retry_after_s == 1.0
    assert "UPDATE" not in caught.value.details()


async def test_an_unexpected_exception_is_logged_with_its_traceback(channel, token, caplog):
    with caplog.at_level(logging.ERROR, logger="vigil_kit.grpc_server"), pytest.raises(grpc.aio.AioRpcError):
        await call_probe(channel, "unary", b"value", token)

    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is ValueError
    assert record.grpc_method == f"/{PROBE}/Unary"


async def test_a_refused_token_is_not_logged(channel, issuer, caplog):
    expired = issuer.mint(
        sub="u1", name="X", unit="U", unit_kind="UNIT_KIND_ENTERPRISE", roles=[],
        ttl_s=60, now=datetime.now(UTC) - timedelta(hours=2),
    )  # fmt: skip
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.aio.AioRpcError):
        await whoami(channel, bearer(expired))

    assert "UNAUTHENTICATED" in caplog.text
    assert expired.split(".")[1] not in caplog.text


@pytest.mark.parametrize("kind", KINDS)
async def test_the_principal_is_visible_to_every_kind_of_handler(channel, token, kind):
    responses = await call_probe(channel, kind, b"ok", token)

    assert any(r.startswith(b"u-analyst-1") for r in responses)
    if kind == "client_stream":
        assert responses == [b"u-analyst-1:2"]


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_of_call_without_a_token_is_unauthenticated(channel, kind):
    calls = {
        "unary": lambda: probe(channel, kind, "Unary")(b"ok", timeout=5),
        "client_stream": lambda: probe(channel, kind, "ClientStream")(iter([b"ok"]), timeout=5),
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if kind in calls:
            await calls[kind]()
        else:
            method = "ServerStream" if kind == "server_stream" else "Bidi"
            request = b"ok" if kind == "server_stream" else iter([b"ok"])
            [r async for r in probe(channel, kind, method)(request, timeout=5)]

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "vigil_grpc_server_handled_total",
        {"grpc_service": PROBE, "grpc_method": method, "grpc_type": "unary", "grpc_code": code},
    )
    return value or 0.0


def latency_count(method: str) -> float:
    value = REGISTRY.get_sample_value(
        "vigil_grpc_server_handling_seconds_count",
        {"grpc_service": PROBE, "grpc_method": method, "grpc_type": "unary"},
    )
    return value or 0.0


async def test_calls_are_counted_per_method_and_status_code(channel, token):
    ok, invalid, unauth, count = (
        handled("Unary", "OK"),
        handled("Unary", "INVALID_ARGUMENT"),
        handled("Unary", "UNAUTHENTICATED"),
        latency_count("Unary"),
    )

    await call_probe(channel, "unary", b"ok", token)
    with pytest.raises(grpc.aio.AioRpcError):
        await call_probe(channel, "unary", b"reg1", token)
    with pytest.raises(grpc.aio.AioRpcError):
        await probe(channel, "unary", "Unary")(b"ok", timeout=5)

    # An aborting handler sends its status before it unwinds, so the server may record a moment later.
    async def recorded() -> bool:
        return latency_count("Unary") == count + 3

    await apoll_until(recorded, timeout=5, what="three calls recorded")
    assert handled("Unary", "OK") == ok + 1
    assert handled("Unary", "INVALID_ARGUMENT") == invalid + 1
    assert handled("Unary", "UNAUTHENTICATED") == unauth + 1


async def test_the_metrics_endpoint_shows_the_grpc_metrics(channel, token):
    await call_probe(channel, "unary", b"ok", token)
    port = metrics.start_metrics_server(0, host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        body = (await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())).decode()
    finally:
        metrics.stop_metrics_server(port)

    assert (
        f'vigil_grpc_server_handled_total{{grpc_code="OK",grpc_method="Unary",grpc_service="{PROBE}"' in body
    )
    assert "vigil_grpc_server_handling_seconds_bucket{" in body


async def test_an_unknown_method_is_unimplemented(channel, token):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{PROBE}/Nope")(b"", metadata=bearer(token), timeout=5)

    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_graceful_shutdown_turns_health_not_serving(server, channel):
    await server.health.enter_graceful_shutdown()

    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )

    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
