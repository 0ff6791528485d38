"""vigil_kit.validation: enum numbers a request carries must be ones its enums define."""

from __future__ import annotations

import pytest

from vigil.registry.v1 import registry_service_pb2 as reg
from vigil.sharing.v1 import sharing_service_pb2 as sharing
from vigil_kit.errors import InvalidArgument
from vigil_kit.validation import check_enums, unknown_enum_values


def test_defined_values_and_the_unspecified_zero_pass() -> None:
    check_enums(reg.ListSitesRequest(place_category=reg.PLACE_CATEGORY_TRANSPORT))
    check_enums(reg.ListSitesRequest())


def test_an_undefined_number_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_enums(reg.ListSitesRequest(place_category=519))
    assert caught.value.field == "place_category"


def test_nested_and_repeated_fields_are_named_by_their_path() -> None:
    request = sharing.CreateAccessRequestRequest(
        access_request=sharing.AccessRequest(
            scope=sharing.Scope(place_categories=[reg.PLACE_CATEGORY_TRANSPORT, -1]), actions=[99]
        )
    )
    assert sorted(unknown_enum_values(request)) == [
        ("access_request.actions[0]", 99),
        ("access_request.scope.place_categories[1]", -1),
    ]


def test_every_device_of_a_batch_is_checked() -> None:
    request = reg.ImportDevicesRequest(
        devices=[reg.Device(area_type=reg.AREA_TYPE_ENTRANCE), reg.Device(area_type=1695)]
    )
    with pytest.raises(InvalidArgument) as caught:
        check_enums(request)
    assert caught.value.field == "devices[1].area_type"


def test_a_request_without_enums_is_passed_without_a_walk() -> None:
    from vigil.registry.v1 import registry_service_pb2 as r
    from vigil_kit import validation

    check_enums(r.GetDeviceRequest(device_id="32021301041326000001"))
    assert validation._HOLDERS["vigil.registry.v1.GetDeviceRequest"] == frozenset()


def test_an_enum_inside_a_recursive_type_is_found() -> None:
    from google.protobuf import struct_pb2

    inner = struct_pb2.Value(null_value=7)
    value = struct_pb2.Value(
        list_value=struct_pb2.ListValue(values=[struct_pb2.Value(string_value="x"), inner])
    )
    request = struct_pb2.Struct(fields={"a": value})
    assert unknown_enum_values(request) == [("fields['a'].list_value.values[1].null_value", 7)]
