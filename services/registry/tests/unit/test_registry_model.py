"""The domain model: enum values are the wire's enum names, and the domain imports no transport or storage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vigil_registry.domain as domain
from vigil_registry.domain.model import (
    FORBIDDEN_AREA_TYPES,
    AreaType,
    DeviceState,
    FilingState,
    Funding,
    PlaceCategory,
    PrivacyMask,
    UnitKind,
)

DOMAIN_DIR = Path(domain.__file__).parent
FORBIDDEN_IMPORTS = (
    "grpc",
    "google.protobuf",
    "vigil.",
    "aiokafka",
    "sqlalchemy",
    "minio",
    "asyncpg",
    "aiosqlite",
)


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [
        (UnitKind, "UNIT_KIND_"),
        (PlaceCategory, "PLACE_CATEGORY_"),
        (AreaType, "AREA_TYPE_"),
        (Funding, "FUNDING_"),
        (DeviceState, "DEVICE_STATE_"),
        (FilingState, "FILING_STATE_"),
    ],
)
def test_enum_values_are_the_prefixed_proto_names_of_their_members(enum, prefix: str) -> None:
    assert all(member.value == prefix + member.name for member in enum)
    assert enum(prefix + "UNSPECIFIED").name == "UNSPECIFIED"


def test_the_forbidden_area_types_are_the_eight_of_the_regulation() -> None:
    assert {a.name for a in FORBIDDEN_AREA_TYPES} == {
        "HOTEL_GUEST_ROOM",
        "DORMITORY_ROOM",
        "PUBLIC_BATH",
        "TOILET",
        "CHANGING_ROOM",
        "NURSING_ROOM",
        "FITTING_ROOM",
        "PRIVATE_SPACE_VIEW",
    }


def test_mask_area_is_the_polygon_area() -> None:
    assert PrivacyMask.of((0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)).area() == pytest.approx(0.25)


@pytest.mark.parametrize("path", sorted(DOMAIN_DIR.glob("*.py")), ids=lambda p: p.name)
def test_the_domain_imports_no_transport_or_storage(path: Path) -> None:
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    assert [m for m in names if any(m == f.rstrip(".") or m.startswith(f) for f in FORBIDDEN_IMPORTS)] == []
