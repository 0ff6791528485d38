"""ImportDevices over gRPC: a batch under RegisterDevice's rules, all or nothing, with every violation listed."""

from __future__ import annotations

import grpc

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit import topics
from vigil_registry.bulk import IMPORT_MAX
from vigil_testing.calls import refused

from .conftest import HOSPITAL, Registry, camera, device_id

DENIED = 2


async def import_devices(reg: Registry, devices: list[pb.Device], who: str = "hospital") -> list[pb.Device]:
    reply = await reg.stub(who).ImportDevices(pb.ImportDevicesRequest(devices=devices))
    return list(reply.devices)


async def registered_ids(reg: Registry) -> list[str]:
    return [e.key for e in await reg.events(type_=events_pb2.DeviceRegistered)]


async def test_an_import_registers_every_device_as_register_device_would(city: Registry) -> None:
    stored = await import_devices(city, [camera(1), camera(2), camera(3)])

    assert [d.device_id for d in stored] == [device_id(1), device_id(2), device_id(3)]
    single = await city.stub("hospital").RegisterDevice(pb.RegisterDeviceRequest(device=camera(4)))
    for d in stored:
        # Same message as RegisterDevice gives, but for the id and the name.
        expected = pb.Device()
        expected.CopyFrom(single)
        expected.device_id, expected.name = d.device_id, d.name
        assert d == expected
    got = await city.stub("auditor").GetDevice(pb.GetDeviceRequest(device_id=device_id(2)))
    assert got.state == pb.DEVICE_STATE_REGISTERED and got.retention_days == 30


async def test_an_import_publishes_one_event_per_device_and_one_audit_record_naming_them_all(
    city: Registry,
) -> None:
    await import_devices(city, [camera(1), camera(2), camera(3)])

    events = await city.events(topic=topics.REGISTRY_EVENTS, type_=events_pb2.DeviceRegistered)
    assert [e.key for e in events] == [device_id(1), device_id(2), device_id(3)]
    assert [e.message.device.device_id for e in events] == [device_id(1), device_id(2), device_id(3)]
    assert all(e.message.actor.unit == HOSPITAL[0] for e in events)
    (record,) = await city.audits("registry.device.register")
    assert record.decision == 1
    assert list(record.resources.device_ids) == [device_id(1), device_id(2), device_id(3)]
    assert list(record.resources.site_ids) == ["hosp-1"] and list(record.resources.unit_ids) == [HOSPITAL[0]]
    assert record.attributes["devices"] == "3"


async def test_one_refused_device_refuses_the_whole_import_naming_its_index_rule_and_field(
    city: Registry,
) -> None:
    batch = [camera(1), camera(2, area_type=pb.AREA_TYPE_TOILET), camera(3)]
    async with refused() as err:
        await import_devices(city, batch, who="admin")

    assert (err[0].code, err[0].rule, err[0].field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "REG-1",
        "devices[1].area_type",
    )
    assert await registered_ids(city) == []
    assert await city.audits("registry.device.register") != []
    (denied,) = [r for r in await city.audits("registry.device.register") if r.decision == DENIED]
    assert denied.rule_id == "REG-1" and list(denied.resources.device_ids) == [device_id(2)]
    assert denied.attributes["index"] == "1"


async def test_a_refused_import_lists_every_violation_of_every_refused_device(city: Registry) -> None:
    batch = [
        camera(1, name="", keepalive_interval_s=0.5),  # no name, keepalive under 1 s
        camera(2),
        camera(3, site_id="nowhere"),
        camera(4, device_id=device_id(4, network="9")),  # REG-10: reserved network digit
    ]
    async with refused() as err:
        await import_devices(city, batch)

    fields = [f for f, _ in err[0].violations]
    assert "devices[0].name" in fields and "devices[0].keepalive_interval_s" in fields
    assert "devices[2].site_id" in fields and "devices[3].device_id" in fields
    assert not any(f.startswith("devices[1]") for f in fields)
    described = dict(err[0].violations)
    assert described["devices[2].site_id"].startswith("NOT_FOUND: site 'nowhere'")
    assert described["devices[3].device_id"].startswith("INVALID_ARGUMENT [REG-10]: ")
    assert err[0].message.startswith("3 of 4 devices refused, so none was registered")
    denied = [r for r in await city.audits("registry.device.register") if r.decision == DENIED]
    assert sorted(r.attributes["index"] for r in denied) == ["0", "2", "3"]
    assert await registered_ids(city) == []


async def test_an_import_refuses_an_id_already_registered_and_an_id_repeated_in_the_batch(
    city: Registry,
) -> None:
    await import_devices(city, [camera(1)])
    async with refused() as err:
        await import_devices(city, [camera(1), camera(2), camera(2)])

    described = dict(err[0].violations)
    assert described["devices[0].device_id"].startswith("ALREADY_EXISTS [REG-10]")
    assert described["devices[2].device_id"].startswith("ALREADY_EXISTS [REG-10]")
    assert "devices[1].device_id" not in described
    assert await registered_ids(city) == [device_id(1)]


async def test_the_valid_devices_of_a_refused_import_register_when_sent_again_without_the_refused(
    city: Registry,
) -> None:
    batch = [camera(1), camera(2, area_type=pb.AREA_TYPE_TOILET), camera(3)]
    async with refused() as err:
        await import_devices(city, batch, who="admin")
    refused_indexes = {int(f.split("]")[0].removeprefix("devices[")) for f, _ in err[0].violations}

    await import_devices(city, [d for i, d in enumerate(batch) if i not in refused_indexes], who="admin")
    assert await registered_ids(city) == [device_id(1), device_id(3)]


async def test_reg1_refuses_an_import_even_from_a_caller_who_may_not_register(city: Registry) -> None:
    async with refused() as err:
        await import_devices(city, [camera(1, area_type=pb.AREA_TYPE_TOILET)], who="analyst")
    assert (err[0].rule, err[0].field) == ("REG-1", "devices[0].area_type")


async def test_an_import_by_a_caller_who_may_not_register_is_refused_whole_and_audited(
    city: Registry,
) -> None:
    async with refused() as err:
        await import_devices(city, [camera(1), camera(2)], who="analyst")
    assert err[0].code == grpc.StatusCode.PERMISSION_DENIED
    (denied,) = [r for r in await city.audits("registry.device.register") if r.decision == DENIED]
    assert list(denied.resources.device_ids) == [device_id(1), device_id(2)]
    assert await registered_ids(city) == []


async def test_an_empty_import_and_one_over_the_limit_are_refused(city: Registry) -> None:
    async with refused() as err:
        await import_devices(city, [])
    assert (err[0].code, err[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "devices")
    async with refused() as err:
        await import_devices(city, [camera(i) for i in range(1, IMPORT_MAX + 2)])
    assert (err[0].code, err[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "devices")
    assert await registered_ids(city) == []
