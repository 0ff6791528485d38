"""Partner event delivery on a real broker: the fan-out to vigil.partner.<unit>.v1 and the Subscribe stream.

Each test gets its own broker, so a partner topic holds only what the test caused. The fan-out's faust
group needs several seconds to join after start, hence the generous delivery deadlines.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.audit.v1 import audit_record_pb2
from vigil.registry.v1 import events_pb2 as reg_events
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit import cloudevents, kafka, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import EmbeddedProcess, free_port
from vigil_kit.service import ServiceContext, run_service
from vigil_sharing import app
from vigil_sharing.config import Settings
from vigil_sharing.fanout import FANOUT_GROUP
from vigil_sharing.subscribe import Cursor
from vigil_testing.poll import apoll_until

from .conftest import PARTNER, FakeClock, FakeRegistry, Sharing, _started, camera, playback_request

OFFLINE = "vigil.registry.v1.DeviceWentOffline"
PARTNER_TOPIC = topics.partner_topic(PARTNER[0])
DELIVERY_S = 90  # the fan-out group's first join takes ~13 s on the embedded broker; a loaded machine more


@pytest.fixture
async def partner_sharing(
    sqlite_url: str,
    issuer: TokenIssuer,
    fake_registry: FakeRegistry,
    fresh_kafka_broker: EmbeddedProcess,
) -> AsyncIterator[Sharing]:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    settings = Settings(
        grpc_host="127.0.0.1",
        grpc_port=free_port(),
        metrics_port=0,
        database_url=sqlite_url,
        kafka_bootstrap=fresh_kafka_broker.address,
        auth_public_keys=[issuer.public_key_pem.decode()],
        service_token=issuer.mint_service("sharing"),
        registry_addr=f"127.0.0.1:{fake_registry.port}",
        readiness_interval_s=5,
        shutdown_grace_s=0.5,
    )
    svc = Sharing(settings=settings, clock=clock, issuer=issuer, registry=fake_registry)

    async def build(ctx: ServiceContext) -> list:
        svc.context = ctx
        bindings = await functools.partial(app.build, clock=clock)(ctx)
        svc.servicer = bindings[0].servicer
        return bindings

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, build=build, migrations_dir=app.MIGRATIONS, needs_s3=False, stop=stop)
    )
    try:
        await apoll_until(
            lambda: _started(task, settings.grpc_port), timeout=30, interval=0.02, what="sharing listening"
        )
        await kafka.ensure_topics(settings.kafka_bootstrap, {**topics.PARTITIONS, PARTNER_TOPIC: 3})
        yield svc
    finally:
        for channel in svc.channels.values():
            await channel.close()
        stop.set()
        await asyncio.wait_for(task, 30)
        if svc.context is not None:
            await svc.context.engine.dispose()


async def _subscription(
    sharing: Sharing, grant_devices: list[str], scope_devices: list[str]
) -> pb.Subscription:
    request = playback_request(
        grant_devices, sharing.clock, actions=[pb.ACTION_SUBSCRIBE_EVENTS], footage_window=None
    )
    created = await sharing.stub("partner").CreateAccessRequest(request)
    grant = await sharing.stub("officer").ApproveAccessRequest(
        pb.ApproveAccessRequestRequest(request_id=created.request_id)
    )
    return await sharing.stub("partner").CreateSubscription(
        pb.CreateSubscriptionRequest(
            subscription=pb.Subscription(
                grant_id=grant.request_id, scope=pb.Scope(device_ids=scope_devices), event_types=[OFFLINE]
            )
        )
    )


def _offline(device_id: str) -> reg_events.DeviceWentOffline:
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    return reg_events.DeviceWentOffline(device_id=device_id, site_id="metro-central", offline_time=now)


async def _publish(
    bootstrap: str, topic: str, message: Any, *, key: str = "k", event_id: str | None = None
) -> str:
    """Publishes one CloudEvent; the same key for every event of a test keeps them on one partition, in order."""
    headers = cloudevents.headers_for(message, source_service="registry", subject=key, event_id=event_id)
    producer = await kafka.create_producer(bootstrap)
    try:
        await producer.send_and_wait(
            topic, value=message.SerializeToString(), key=key.encode(), headers=headers
        )
    finally:
        await producer.stop()
    return dict(headers)["ce_id"].decode()


async def _read_all(bootstrap: str, topic: str) -> list[cloudevents.CloudEvent]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        # Not end_offsets: the embedded broker answers it wrongly after a batched produce.
        out: list[cloudevents.CloudEvent] = []
        while batch := await consumer.getmany(timeout_ms=300):
            out += [cloudevents.from_record(r) for records in batch.values() for r in records]
        return out
    finally:
        await consumer.stop()


async def _fanout_done_with(bootstrap: str, offset_of: tuple[int, int]) -> bool:
    """Whether the fan-out group has committed past (partition, offset) of the status topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=FANOUT_GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(topics.DEVICE_STATUS, offset_of[0]))
        return committed is not None and committed > offset_of[1]
    finally:
        await consumer.stop()


def _stream(sharing: Sharing, who: str = "partner", **kw: Any) -> Any:
    return sharing.stub(who).Subscribe(pb.SubscribeRequest(**kw), timeout=120)


async def test_an_in_scope_event_reaches_the_partner_topic_and_the_stream_and_an_out_of_scope_one_does_not(
    partner_sharing: Sharing,
) -> None:
    sharing = partner_sharing
    one, two = sharing.registry.add(camera(1)), sharing.registry.add(camera(2))
    sub = await _subscription(sharing, [one, two], [one])
    bootstrap = sharing.settings.kafka_bootstrap
    outside = await _publish(bootstrap, topics.DEVICE_STATUS, _offline(two))
    message = _offline(one)
    inside = await _publish(bootstrap, topics.DEVICE_STATUS, message)

    async def copied() -> list[str]:
        return [e.id for e in await _read_all(bootstrap, PARTNER_TOPIC)]

    # Both went to one partition in order: once the in-scope copy is there, the other was decided.
    ids = await apoll_until(lambda: _contains(copied, inside), timeout=DELIVERY_S, what="in-scope copy")
    assert outside not in ids

    call = _stream(sharing, subscription_id=sub.subscription_id, cursor=Cursor(PARTNER[0], {}).encode())
    first = await asyncio.wait_for(call.read(), 10)
    assert (first.ce_id, first.ce_type, first.data) == (inside, OFFLINE, message.SerializeToString())
    call.cancel()


async def _contains(read: Any, wanted: str) -> list[str] | None:
    ids = await read()
    return ids if wanted in ids else None


async def test_subscribe_resumes_from_a_cursor_without_gap_or_duplicate_and_only_in_scope(
    partner_sharing: Sharing,
) -> None:
    sharing = partner_sharing
    one, two = sharing.registry.add(camera(1)), sharing.registry.add(camera(2))
    sub = await _subscription(sharing, [one, two], [one])
    bootstrap = sharing.settings.kafka_bootstrap
    # Written straight to the partner topic, as a fan-out that repeated itself after a crash would:
    # b twice (same ce_id), and an event outside the subscription's scope that the stream must not pass.
    a = await _publish(bootstrap, PARTNER_TOPIC, _offline(one))
    b = await _publish(bootstrap, PARTNER_TOPIC, _offline(one))
    stranger = await _publish(bootstrap, PARTNER_TOPIC, _offline(two))
    c = await _publish(bootstrap, PARTNER_TOPIC, _offline(one))
    await _publish(bootstrap, PARTNER_TOPIC, _offline(one), event_id=b)
    d = await _publish(bootstrap, PARTNER_TOPIC, _offline(one))

    call = _stream(sharing, subscription_id=sub.subscription_id, cursor=Cursor(PARTNER[0], {}).encode())
    got = [await asyncio.wait_for(call.read(), 10) for _ in range(2)]
    call.cancel()
    assert [e.ce_id for e in got] == [a, b]

    resumed = _stream(sharing, subscription_id=sub.subscription_id, cursor=got[-1].cursor)
    rest = [await asyncio.wait_for(resumed.read(), 10) for _ in range(2)]
    assert [e.ce_id for e in rest] == [c, d]
    with pytest.raises(TimeoutError):  # nothing else: not b's copy, not the stranger
        await asyncio.wait_for(resumed.read(), 1.0)
    resumed.cancel()
    assert stranger not in {e.ce_id for e in got + rest}


async def test_a_revoked_grant_ends_the_stream_and_stops_the_fan_out(partner_sharing: Sharing) -> None:
    sharing = partner_sharing
    one = sharing.registry.add(camera(1))
    sub = await _subscription(sharing, [one], [one])
    bootstrap = sharing.settings.kafka_bootstrap
    call = _stream(sharing, subscription_id=sub.subscription_id)
    first = await _publish(bootstrap, topics.DEVICE_STATUS, _offline(one))
    got = await asyncio.wait_for(call.read(), DELIVERY_S)
    assert got.ce_id == first

    await sharing.stub("officer").RevokeGrant(pb.RevokeGrantRequest(grant_id=sub.grant_id))
    loop = asyncio.get_running_loop()
    revoked_at = loop.time()
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(call.read(), 5)
    assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert loop.time() - revoked_at < 1.5

    after = await _publish(bootstrap, topics.DEVICE_STATUS, _offline(one))
    status = next(e for e in await _read_all(bootstrap, topics.DEVICE_STATUS) if e.id == after)
    await apoll_until(
        lambda: _fanout_done_with(bootstrap, (status.partition, status.offset)),
        timeout=30,
        what="fan-out past the post-revocation event",
    )
    assert after not in {e.id for e in await _read_all(bootstrap, PARTNER_TOPIC)}


async def test_only_the_partner_units_principals_may_subscribe_and_each_call_is_audited(
    partner_sharing: Sharing,
) -> None:
    sharing = partner_sharing
    one = sharing.registry.add(camera(1))
    sub = await _subscription(sharing, [one], [one])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await asyncio.wait_for(_stream(sharing, "analyst", subscription_id=sub.subscription_id).read(), 10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    allowed = _stream(sharing, subscription_id=sub.subscription_id)
    await asyncio.sleep(0)  # the call starts on first read; the audit record is written before any event
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(allowed.read(), 1.0)
    allowed.cancel()

    async def stream_audits() -> list[audit_record_pb2.AuditRecord] | None:
        records = [
            audit_record_pb2.AuditRecord.FromString(e.data)
            for e in await _read_all(sharing.settings.kafka_bootstrap, topics.AUDIT_RECORDS)
        ]
        found = [r for r in records if r.action == "sharing.subscription.stream"]
        return found if len(found) >= 2 else None

    records = await apoll_until(stream_audits, timeout=30, what="two stream audit records")
    by_actor = {r.actor.id: audit_record_pb2.Decision.Name(r.decision) for r in records}
    assert by_actor == {"user:analyst": "DECISION_DENIED", "user:partner": "DECISION_ALLOWED"}
