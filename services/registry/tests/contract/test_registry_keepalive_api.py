"""Keepalives and status over gRPC (REG-11, REG-12): unary, streamed, offline detection, back online."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from sqlalchemy import text

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit import db
from vigil_testing.calls import refused
from vigil_testing.poll import apoll_until

from .conftest import Registry, camera, device_id


async def active(reg: Registry, serial: int = 1, **kw) -> str:
    await reg.stub("hospital").RegisterDevice(pb.RegisterDeviceRequest(device=camera(serial, **kw)))
    await reg.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(serial)))
    return device_id(serial)


async def test_a_keepalive_moves_the_offline_deadline(city: Registry) -> None:
    dev = await active(city, keepalive_interval_s=10, keepalive_timeout_count=3)
    city.clock.advance(seconds=5)
    response = await city.stub("hospital").Keepalive(pb.KeepaliveRequest(device_id=dev))
    assert response.state == pb.DEVICE_STATE_ACTIVE
    assert response.last_keepalive_time.ToDatetime().timestamp() == city.clock.now.timestamp()
    assert response.offline_deadline.ToDatetime().timestamp() == city.clock.now.timestamp() + 30


async def test_a_keepalive_from_another_unit_is_refused_and_audited(city: Registry) -> None:
    dev = await active(city)
    async with refused() as err:
        await city.stub("shop").Keepalive(pb.KeepaliveRequest(device_id=dev))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "REG-11")
    (record,) = await city.audits("registry.device.keepalive")
    assert (record.decision, record.rule_id, list(record.resources.device_ids)) == (2, "REG-11", [dev])


async def test_an_admin_may_send_keepalives_for_any_device(city: Registry) -> None:
    dev = await active(city)
    response = await city.stub("admin").Keepalive(pb.KeepaliveRequest(device_id=dev))
    assert response.state == pb.DEVICE_STATE_ACTIVE


async def test_a_keepalive_for_an_unknown_device_is_not_found(city: Registry) -> None:
    async with refused() as err:
        await city.stub("admin").Keepalive(pb.KeepaliveRequest(device_id=device_id(99)))
    assert err[0].code == grpc.StatusCode.NOT_FOUND


async def test_the_detector_marks_a_silent_device_offline_with_an_event_and_an_audit_record(
    city: Registry,
) -> None:
    dev = await active(city, keepalive_interval_s=1, keepalive_timeout_count=2)
    detector = city.detector()
    task = asyncio.create_task(detector.run())
    try:
        city.clock.advance(seconds=1.9)
        await asyncio.sleep(0.3)
        assert await city.events(type_=events_pb2.DeviceWentOffline) == []
        deadline = city.clock.advance(seconds=0.1)
        events = await apoll_until(
            lambda: city.events(type_=events_pb2.DeviceWentOffline), timeout=5, what="DeviceWentOffline"
        )
    finally:
        detector.stop()
        await asyncio.wait_for(task, 5)
    (event,) = events
    assert (event.topic, event.key) == ("vigil.device.status.v1", dev)
    assert event.message.offline_time.ToDatetime().timestamp() == deadline.timestamp()
    got = await city.stub("admin").GetDevice(pb.GetDeviceRequest(device_id=dev))
    assert got.state == pb.DEVICE_STATE_OFFLINE
    (record,) = await city.audits("registry.device.offline")
    assert list(record.resources.device_ids) == [dev]


async def test_an_offline_device_comes_back_online_on_its_next_keepalive(city: Registry) -> None:
    dev = await active(city, keepalive_interval_s=1, keepalive_timeout_count=1)
    city.clock.advance(seconds=2)
    detector = city.detector()
    await detector.status.mark_offline([dev])
    city.clock.advance(seconds=60)
    response = await city.stub("hospital").Keepalive(pb.KeepaliveRequest(device_id=dev))
    assert response.went_online and response.state == pb.DEVICE_STATE_ACTIVE
    (event,) = await city.events(type_=events_pb2.DeviceWentOnline)
    assert event.message.outage.seconds == 61


async def test_marking_offline_does_not_queue_behind_the_writers_already_waiting(city: Registry) -> None:
    # REG-11's deadline: the detector's transaction is admitted at the write gate before requests' writes
    # queued there first (a burst of activations would otherwise delay detection by all their commits).
    dev = await active(city, keepalive_interval_s=1, keepalive_timeout_count=1)
    assert city.context is not None
    sessions = city.context.sessions
    gate = db.write_gate(city.context.engine.url.database)
    seen: list[str] = []

    async def ordinary_writer() -> None:
        async with sessions.begin() as s:  # its transaction begins at the first statement, at the gate
            seen.append(await s.scalar(text("SELECT state FROM devices WHERE device_id = :d"), {"d": dev}))

    detector = city.detector()
    detecting = asyncio.create_task(detector.run())
    try:
        async with sessions.begin() as holding:
            await holding.execute(text("SELECT 1"))  # holds the write lock, and the gate
            writers = [asyncio.create_task(ordinary_writer()) for _ in range(3)]
            await apoll_until(lambda: _queued(gate, 3), timeout=10, what="three writers queued at the gate")
            city.clock.advance(seconds=2)  # the device is now past its deadline: the detector acts
            await apoll_until(lambda: _queued(gate, 4), timeout=10, what="the detector queued at the gate")
        await asyncio.wait_for(asyncio.gather(*writers), 10)
    finally:
        detector.stop()
        await asyncio.wait_for(detecting, 5)
    assert seen == ["DEVICE_STATE_OFFLINE"] * 3  # every queued writer began after the detector committed
    (event,) = await city.events(type_=events_pb2.DeviceWentOffline)
    assert event.key == dev


async def _queued(gate: db.WriteGate, n: int) -> bool:
    return gate.waiting == n


async def test_a_keepalive_reporting_a_new_aim_raises_unauthorized_change_detected(city: Registry) -> None:
    dev = await active(city)
    response = await city.stub("hospital").Keepalive(
        pb.KeepaliveRequest(device_id=dev, reported_direction_deg=140.0)
    )
    assert response.unauthorized_change_detected
    (event,) = await city.events(type_=events_pb2.UnauthorizedChangeDetected)
    assert list(event.message.changed_fields) == ["direction_deg"]
    assert event.message.angle_deg == 50.0 and event.message.device.device_id == dev
    (record,) = await city.audits("registry.device.unauthorized_change")
    assert record.rule_id == "REG-12"


async def test_a_keepalive_reporting_the_recorded_position_raises_nothing(city: Registry) -> None:
    dev = await active(city)
    response = await city.stub("hospital").Keepalive(
        pb.KeepaliveRequest(
            device_id=dev, reported_latitude=31.5701, reported_longitude=120.3001, reported_direction_deg=91.0
        )
    )
    assert not response.unauthorized_change_detected
    assert await city.events(type_=events_pb2.UnauthorizedChangeDetected) == []


async def test_stream_keepalives_commits_every_keepalive_and_lists_rejections(city: Registry) -> None:
    devices = [await active(city, serial) for serial in range(1, 4)]
    city.clock.advance(seconds=7)

    async def requests():
        for _ in range(50):
            for dev in devices:
                yield pb.KeepaliveRequest(device_id=dev)
        yield pb.KeepaliveRequest(device_id=device_id(77))

    summary = await city.stub("hospital").StreamKeepalives(requests())
    assert (summary.received, summary.accepted, summary.rejected) == (151, 150, 1)
    assert [(r.device_id, r.code) for r in summary.rejections] == [(device_id(77), "NOT_FOUND")]
    for dev in devices:
        got = await city.stub("hospital").GetDevice(pb.GetDeviceRequest(device_id=dev))
        assert got.last_keepalive_time.ToDatetime().timestamp() == city.clock.now.timestamp()


async def test_a_registered_devices_keepalive_is_recorded_with_no_offline_deadline(city: Registry) -> None:
    await city.stub("hospital").RegisterDevice(pb.RegisterDeviceRequest(device=camera(5)))
    response = await city.stub("hospital").Keepalive(pb.KeepaliveRequest(device_id=device_id(5)))
    assert response.state == pb.DEVICE_STATE_REGISTERED
    assert response.last_keepalive_time.ToDatetime().timestamp() == city.clock.now.timestamp()
    assert not response.HasField("offline_deadline")


async def test_a_streamed_keepalive_moves_the_detectors_deadline(city: Registry) -> None:
    dev = await active(city, keepalive_interval_s=10, keepalive_timeout_count=3)
    heard = city.clock.advance(seconds=12)
    summary = await city.stub("hospital").StreamKeepalives(_iterate([pb.KeepaliveRequest(device_id=dev)]))
    assert summary.accepted == 1
    assert city.detector().status.tracker.current[dev] == heard + timedelta(seconds=30)


async def test_a_stream_that_repeats_a_device_then_reports_its_new_aim_records_both(city: Registry) -> None:
    # Within one batch the first keepalive takes the time-only path and the second, reporting an aim,
    # the domain's: the change must still be detected, and the last keepalive recorded.
    dev = await active(city)
    city.clock.advance(seconds=4)
    requests = [
        pb.KeepaliveRequest(device_id=dev),
        pb.KeepaliveRequest(device_id=dev, reported_direction_deg=140.0),
    ]
    summary = await city.stub("hospital").StreamKeepalives(_iterate(requests))
    assert (summary.accepted, summary.unauthorized_changes) == (2, 1)
    (event,) = await city.events(type_=events_pb2.UnauthorizedChangeDetected)
    assert list(event.message.changed_fields) == ["direction_deg"]
    got = await city.stub("hospital").GetDevice(pb.GetDeviceRequest(device_id=dev))
    assert got.last_keepalive_time.ToDatetime().timestamp() == city.clock.now.timestamp()


async def _iterate(items):
    for item in items:
        yield item
