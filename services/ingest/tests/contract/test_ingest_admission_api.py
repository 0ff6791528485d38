"""Backpressure and device facts: per-device and byte limits answer RESOURCE_EXHAUSTED with a retry delay;
the cache asks the registry before refusing and follows registry events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil.registry.v1 import events_pb2 as registry_events
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil_ingest import store
from vigil_ingest.domain.signing import generate_device_key
from vigil_kit import cloudevents, kafka, topics
from vigil_testing.calls import refused
from vigil_testing.poll import apoll_until

from .conftest import HOSPITAL, Ingest, device_id, ingest_settings, running_ingest, ts_packets

MiB = 1024 * 1024


@pytest.fixture
async def tight_ingest(tmp_path, issuer, kafka_broker, s3_server, fake_registry) -> AsyncIterator[Ingest]:
    registry, port = fake_registry
    settings = ingest_settings(
        tmp_path,
        issuer,
        kafka_broker,
        s3_server,
        port,
        max_uploads_per_device=1,
        max_bytes_in_flight=3 * MiB,
        retry_after_s=2.5,
    )
    async with running_ingest(settings, issuer, s3_server, registry) as running:
        yield running


async def _held_upload(ingest: Ingest, did: str, sequence: int, data: bytes) -> tuple[asyncio.Event, object]:
    """An upload that sends its header and first chunk, then waits until released."""
    header = ingest.header(did, data, sequence=sequence)
    release = asyncio.Event()

    async def messages() -> AsyncIterator[pb.UploadSegmentRequest]:
        yield pb.UploadSegmentRequest(header=header)
        yield pb.UploadSegmentRequest(chunk=data[:188])
        await release.wait()
        for i in range(188, len(data), MiB):
            yield pb.UploadSegmentRequest(chunk=data[i : i + MiB])

    before = REGISTRY.get_sample_value("vigil_ingest_in_flight_uploads") or 0
    call = ingest.stub().UploadSegment(messages())
    await apoll_until(
        lambda: _value((REGISTRY.get_sample_value("vigil_ingest_in_flight_uploads") or 0) > before),
        timeout=20,
        what="the held upload admitted",
    )
    return release, call


async def _value(v: bool) -> bool:
    return v


async def test_a_second_concurrent_upload_of_one_device_is_resource_exhausted_with_a_retry_delay(
    tight_ingest: Ingest,
) -> None:
    ingest = tight_ingest
    did = await ingest.seed_device()
    data = ts_packets(100)
    release, call = await _held_upload(ingest, did, 1, data)
    other = ts_packets(100, fill=3)
    async with refused() as err:
        await ingest.upload(ingest.header(did, other, sequence=2), [other])
    assert err[0].code.name == "RESOURCE_EXHAUSTED"
    assert err[0].retry_after_s == 2.5
    release.set()
    assert not (await call).replayed  # the first one completes normally


async def test_uploads_beyond_the_bytes_in_flight_budget_are_resource_exhausted(tight_ingest: Ingest) -> None:
    ingest = tight_ingest
    first, second = await ingest.seed_device(), await ingest.seed_device()
    data = ts_packets((2 * MiB) // 188)  # reserves its 2 MiB plus a chunk: over half the 3 MiB budget
    release, call = await _held_upload(ingest, first, 1, data)
    async with refused() as err:
        await ingest.upload(ingest.header(second, data), [data])
    assert err[0].code.name == "RESOURCE_EXHAUSTED" and err[0].retry_after_s == 2.5
    release.set()
    await call
    chunks = [data[i : i + MiB] for i in range(0, len(data), MiB)]
    assert not (await ingest.upload(ingest.header(second, data), chunks)).replayed  # room again


async def test_a_device_activated_a_moment_ago_can_upload_before_its_event_arrives(ingest: Ingest) -> None:
    did = await ingest.seed_device(state="DEVICE_STATE_REGISTERED")
    ingest.registry.devices[did] = registry_pb.Device(
        device_id=did,
        owner_unit_id=HOSPITAL[0],
        state=registry_pb.DEVICE_STATE_ACTIVE,
        public_key=ingest.keys[did].public_key_b64,
        retention_days=30,
    )
    data = ts_packets(10)
    assert not (await ingest.upload(ingest.header(did, data), [data])).replayed
    assert ingest.registry.calls == 1
    assert ingest.context is not None
    async with ingest.context.sessions() as s:
        cached = await store.get_device(s, did)
    assert cached is not None and cached.active  # the registry's answer was cached


async def test_an_unknown_device_the_registry_knows_can_upload(ingest: Ingest) -> None:
    did = device_id(99_998)
    key = ingest.keys.setdefault(did, generate_device_key())
    ingest.registry.devices[did] = registry_pb.Device(
        device_id=did,
        owner_unit_id=HOSPITAL[0],
        state=registry_pb.DEVICE_STATE_ACTIVE,
        public_key=key.public_key_b64,
        retention_days=30,
    )
    data = ts_packets(10)
    seg = (await ingest.upload(ingest.header(did, data), [data])).segment
    assert seg.device_id == did
    # Second upload: served by the cache, the registry is not asked again.
    data2 = ts_packets(10, fill=2)
    await ingest.upload(ingest.header(did, data2, sequence=2), [data2])
    assert ingest.registry.calls == 1


async def test_the_cache_follows_the_registrys_device_events(ingest: Ingest, kafka_broker) -> None:
    did = device_id(99_997)
    device = registry_pb.Device(
        device_id=did,
        owner_unit_id=HOSPITAL[0],
        state=registry_pb.DEVICE_STATE_ACTIVE,
        public_key=generate_device_key().public_key_b64,
        retention_days=90,
    )
    device.update_time.FromDatetime(datetime.now(UTC))
    message = registry_events.DeviceActivated(device=device)
    producer = await kafka.create_producer(kafka_broker.address)
    try:
        headers = cloudevents.headers_for(message, source_service="registry", subject=did)
        await producer.send_and_wait(
            topics.REGISTRY_EVENTS, message.SerializeToString(), key=did.encode(), headers=headers
        )
    finally:
        await producer.stop()

    async def cached() -> store.DeviceFacts | None:
        assert ingest.context is not None
        async with ingest.context.sessions() as s:
            return await store.get_device(s, did)

    facts = await apoll_until(cached, timeout=30, what="the device in the cache")
    assert (facts.state, facts.retention_days) == ("DEVICE_STATE_ACTIVE", 90)
