"""`-f PATCH` for the registry's update commands: the patch's present fields become the update mask."""

from __future__ import annotations

import pytest

from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_cli import output
from vigil_cli.registry_cmds import load_patch, parse_patch


def test_the_mask_is_the_fields_present_in_either_naming_style_as_proto_names() -> None:
    device, paths = parse_patch('{"privacyMeasures": "masked", "capture_range_m": 40}', pb.Device)
    assert paths == ["privacy_measures", "capture_range_m"]
    assert device.privacy_measures == "masked" and device.capture_range_m == 40


def test_a_field_set_to_its_zero_value_is_still_in_the_mask() -> None:
    device, paths = parse_patch('{"notice_sign_confirmed": false, "privacy_masks": []}', pb.Device)
    assert paths == ["notice_sign_confirmed", "privacy_masks"]
    assert device.notice_sign_confirmed is False


def test_a_field_named_twice_in_both_styles_is_a_usage_error() -> None:
    with pytest.raises(output.UsageError):
        parse_patch('{"direction_deg": 90, "directionDeg": 90}', pb.Device)


def test_an_unknown_field_is_a_usage_error_naming_it() -> None:
    with pytest.raises(output.UsageError, match="'colour'"):
        parse_patch('{"colour": "red"}', pb.Device)


@pytest.mark.parametrize("text", ["[1, 2]", '"name"', "{}", "{not json"])
def test_a_patch_that_is_not_a_non_empty_json_object_is_a_usage_error(text: str) -> None:
    with pytest.raises(output.UsageError):
        parse_patch(text, pb.Device)


def test_a_value_of_the_wrong_type_is_a_usage_error() -> None:
    with pytest.raises(output.UsageError, match=r"vigil\.registry\.v1\.Device"):
        parse_patch('{"area_type": "AREA_TYPE_NOWHERE"}', pb.Device)


def test_the_resource_id_comes_from_the_argument_and_stays_out_of_the_mask(tmp_path) -> None:
    patch = tmp_path / "patch.json"
    patch.write_text('{"site_id": "hosp-1", "address": "2 Xingyuan Rd"}')
    site, paths = load_patch(patch, pb.Site, id_field="site_id", id_value="hosp-1")
    assert site.site_id == "hosp-1"
    assert paths == ["address"]


def test_a_patch_naming_another_resource_is_a_usage_error(tmp_path) -> None:
    patch = tmp_path / "patch.json"
    patch.write_text('{"device_id": "32021300041320000002", "name": "x"}')
    with pytest.raises(output.UsageError, match="ids cannot change"):
        load_patch(patch, pb.Device, id_field="device_id", id_value="32021300041320000001")
