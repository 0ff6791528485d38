"""REG-10: GB/T 28181 ids are parsed by position and every fault names the positions at fault."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil_kit.errors import InvalidArgument
from vigil_registry.domain import ids
from vigil_registry.domain.model import UnitKind

JURISDICTION = ("3202",)


def fixed(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


@st.composite
def valid_camera_ids(draw, kind: UnitKind = UnitKind.ENTERPRISE) -> str:
    low, high = ids.DEFAULT_INDUSTRY_RANGES[kind]
    return (
        "3202"
        + draw(fixed(2))
        + draw(fixed(2))
        + f"{draw(st.integers(low, high)):02d}"
        + draw(st.sampled_from(sorted(ids.CAMERA_TYPE_CODES)))
        + draw(st.sampled_from("012345678"))
        + draw(fixed(6))
    )


def test_parse_splits_an_id_into_its_positions() -> None:
    gid = ids.parse("32020501501320000042")
    assert (gid.division_code, gid.grassroots_unit, gid.industry_code) == ("320205", "01", "50")
    assert (gid.type_code, gid.network, gid.serial, gid.type_name) == ("132", "0", "000042", "IP camera")


@given(valid_camera_ids(kind=UnitKind.ENTERPRISE))
def test_any_well_formed_camera_id_in_the_jurisdiction_is_accepted(value: str) -> None:
    assert ids.id_faults(value, jurisdiction_prefixes=JURISDICTION, owner_kind=UnitKind.ENTERPRISE) == []
    assert str(ids.validate_device_id(value, jurisdiction_prefixes=JURISDICTION)) == value


@given(st.text(alphabet="0123456789", max_size=40).filter(lambda s: len(s) != 20))
def test_an_id_of_any_other_length_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        ids.parse(value)
    assert err.value.rule == "REG-10"
    assert "exactly 20 digits" in err.value.message


@given(valid_camera_ids(), st.integers(0, 19), st.sampled_from("aZ -+x."))
def test_a_non_digit_anywhere_is_refused_naming_its_position(value: str, index: int, bad: str) -> None:
    mutated = value[:index] + bad + value[index + 1 :]
    with pytest.raises(InvalidArgument) as err:
        ids.parse(mutated)
    assert f"position {index + 1} is {bad!r}" in err.value.message
    assert err.value.field == "device.device_id"


@given(valid_camera_ids(), fixed(6).filter(lambda d: not d.startswith("3202")))
def test_a_division_code_outside_the_jurisdiction_is_refused(value: str, division: str) -> None:
    faults = ids.id_faults(division + value[6:], jurisdiction_prefixes=JURISDICTION)
    assert faults == [
        f"positions 1–6 (division code) are {division}: outside the platform's jurisdiction (3202)"
    ]


def test_unknown_type_code_names_positions_11_to_13() -> None:
    with pytest.raises(InvalidArgument) as err:
        ids.validate_device_id("32020501509990000001", jurisdiction_prefixes=JURISDICTION)
    assert "positions 11–13 (type code) are 999: not a GB/T 28181 type code" in err.value.message


@pytest.mark.parametrize("type_code", ["111", "118", "200", "300", "400"])
def test_a_device_record_with_a_non_camera_type_code_is_refused(type_code: str) -> None:
    faults = ids.id_faults(f"3202050150{type_code}0000001", jurisdiction_prefixes=JURISDICTION)
    assert len(faults) == 1
    assert faults[0].startswith(f"positions 11–13 (type code) are {type_code}")
    assert "expected 131 or 132" in faults[0]


@pytest.mark.parametrize("type_code", ["131", "132"])
def test_camera_and_ip_camera_type_codes_are_accepted_for_devices(type_code: str) -> None:
    assert ids.id_faults(f"3202050150{type_code}0000001", jurisdiction_prefixes=JURISDICTION) == []


def test_network_digit_9_is_reserved() -> None:
    faults = ids.id_faults("32020501501329000001", jurisdiction_prefixes=JURISDICTION)
    assert faults == ["position 14 (network identifier) is 9: reserved; use 0–8"]


@given(st.sampled_from("012345678"))
def test_network_digits_0_to_8_are_accepted(network: str) -> None:
    value = f"3202050150132{network}000001"
    assert ids.id_faults(value, jurisdiction_prefixes=JURISDICTION) == []


@pytest.mark.parametrize(
    ("kind", "industry", "ok"),
    [
        (UnitKind.GOVERNMENT_DEPARTMENT, "00", True),
        (UnitKind.GOVERNMENT_DEPARTMENT, "39", True),
        (UnitKind.GOVERNMENT_DEPARTMENT, "40", False),
        (UnitKind.PUBLIC_SECURITY_ORGAN, "03", True),
        (UnitKind.PUBLIC_SECURITY_ORGAN, "51", False),
        (UnitKind.ENTERPRISE, "51", True),
        (UnitKind.ENTERPRISE, "39", False),
        (UnitKind.INSTITUTION, "79", True),
        (UnitKind.INSTITUTION, "80", False),
        (UnitKind.INDIVIDUAL, "85", True),
        (UnitKind.INDIVIDUAL, "50", False),
        (UnitKind.PARTNER, "90", True),
        (UnitKind.PARTNER, "00", False),
    ],
)
def test_industry_code_must_fit_the_owners_kind(kind: UnitKind, industry: str, ok: bool) -> None:
    faults = ids.id_faults(
        f"32020501{industry}1320000001", jurisdiction_prefixes=JURISDICTION, owner_kind=kind
    )
    if ok:
        assert faults == []
    else:
        assert len(faults) == 1
        assert faults[0].startswith(
            f"positions 9–10 (industry code) are {industry}: a {kind.value} owner uses"
        )


def test_every_fault_of_one_id_is_reported_with_the_first_as_the_message() -> None:
    with pytest.raises(InvalidArgument) as err:
        ids.validate_device_id(
            "11000001001119000001", jurisdiction_prefixes=JURISDICTION, owner_kind=UnitKind.ENTERPRISE
        )
    message = err.value.message
    for positions in ("positions 1–6", "positions 9–10", "positions 11–13", "position 14"):
        assert positions in message
    assert len(err.value.violations) == 3


def test_a_platform_id_must_carry_type_200() -> None:
    assert (
        ids.validate_platform_id("32020000002000000001", jurisdiction_prefixes=JURISDICTION).type_code
        == "200"
    )
    with pytest.raises(InvalidArgument, match="expected 200"):
        ids.validate_platform_id("32020000001320000001", jurisdiction_prefixes=JURISDICTION)
