"""Units over gRPC: only platform administrators create and change them (REG-3), GB 32100 codes."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_testing.calls import refused

from .conftest import GOV, HOSPITAL, SHOP, Registry, unit_msg


async def test_an_admin_creates_a_unit_with_one_event_and_one_audit_record(registry: Registry) -> None:
    created = await registry.stub("admin").CreateUnit(pb.CreateUnitRequest(unit=unit_msg(HOSPITAL)))
    assert created.unit_id == HOSPITAL[0] and created.HasField("create_time")
    (event,) = await registry.events(type_=events_pb2.UnitCreated)
    assert (event.topic, event.key, event.message.unit.name) == (
        "vigil.registry.events.v1",
        HOSPITAL[0],
        HOSPITAL[1],
    )
    (record,) = await registry.audits("registry.unit.create")
    assert record.decision == 1 and list(record.resources.unit_ids) == [HOSPITAL[0]]
    assert record.actor.id == "user:admin"


async def test_a_unit_operator_cannot_create_a_unit(registry: Registry) -> None:
    async with refused() as err:
        await registry.stub("hospital").CreateUnit(pb.CreateUnitRequest(unit=unit_msg(SHOP)))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "REG-3")
    (record,) = await registry.audits("registry.unit.create")
    assert (record.decision, record.rule_id) == (2, "REG-3")
    assert await registry.events(type_=events_pb2.UnitCreated) == []


async def test_a_unit_with_a_wrong_check_character_is_refused_naming_the_field(registry: Registry) -> None:
    bad = unit_msg(HOSPITAL)
    bad.unit_id = HOSPITAL[0][:-1] + "0"
    async with refused() as err:
        await registry.stub("admin").CreateUnit(pb.CreateUnitRequest(unit=bad))
    assert (err[0].code, err[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "unit.unit_id")


async def test_creating_a_unit_twice_is_already_exists(registry: Registry) -> None:
    admin = registry.stub("admin")
    await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(GOV)))
    async with refused() as err:
        await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(GOV)))
    assert err[0].code == grpc.StatusCode.ALREADY_EXISTS


async def test_update_unit_changes_only_the_masked_fields(registry: Registry) -> None:
    admin = registry.stub("admin")
    await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(SHOP)))
    patch = pb.Unit(unit_id=SHOP[0], name="Corner Shop Group", kind=0)
    updated = await admin.UpdateUnit(pb.UpdateUnitRequest(unit=patch, update_mask=FieldMask(paths=["name"])))
    assert (updated.name, updated.kind) == ("Corner Shop Group", unit_msg(SHOP).kind)
    (event,) = await registry.events(type_=events_pb2.UnitUpdated)
    assert list(event.message.changed_fields) == ["name"]


async def test_an_update_without_a_mask_is_refused(registry: Registry) -> None:
    admin = registry.stub("admin")
    await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(SHOP)))
    async with refused() as err:
        await admin.UpdateUnit(pb.UpdateUnitRequest(unit=pb.Unit(unit_id=SHOP[0], name="x")))
    assert (err[0].code, err[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "update_mask")


async def test_a_unit_operator_reads_only_its_own_unit(registry: Registry) -> None:
    admin = registry.stub("admin")
    for unit in (HOSPITAL, SHOP):
        await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(unit)))
    listed = await registry.stub("hospital").ListUnits(pb.ListUnitsRequest())
    assert [u.unit_id for u in listed.units] == [HOSPITAL[0]]
    async with refused() as err:
        await registry.stub("hospital").GetUnit(pb.GetUnitRequest(unit_id=SHOP[0]))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "ACC-2")


async def test_an_analyst_reads_nothing_of_the_registry(registry: Registry) -> None:
    async with refused() as err:
        await registry.stub("analyst").ListUnits(pb.ListUnitsRequest())
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "ACC-2")
    (record,) = await registry.audits("registry.unit.list")
    assert (record.decision, record.rule_id) == (2, "ACC-2")


async def test_list_units_pages_in_unit_id_order(registry: Registry) -> None:
    admin = registry.stub("admin")
    for unit in (SHOP, GOV, HOSPITAL):
        await admin.CreateUnit(pb.CreateUnitRequest(unit=unit_msg(unit)))
    first = await registry.stub("auditor").ListUnits(pb.ListUnitsRequest(page_size=2))
    second = await registry.stub("auditor").ListUnits(
        pb.ListUnitsRequest(page_size=2, page_token=first.next_page_token)
    )
    ids = [u.unit_id for u in first.units] + [u.unit_id for u in second.units]
    assert ids == sorted([SHOP[0], GOV[0], HOSPITAL[0]]) and second.next_page_token == ""
