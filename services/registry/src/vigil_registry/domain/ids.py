"""GB/T 28181 20-digit device and platform identifiers (REG-10): parsing and positional validation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vigil_kit.errors import InvalidArgument

from .model import DEFAULT_INDUSTRY_RANGES, UnitKind

ID_LENGTH = 20

# REG-10 (GB/T 28181 Annex D): type codes, positions 11–13.
TYPE_CODES: Mapping[str, str] = {
    "111": "DVR",
    "112": "video server",
    "113": "encoder",
    "114": "decoder",
    "117": "alarm controller",
    "118": "NVR",
    "131": "camera",
    "132": "IP camera",
    "200": "central signalling server",
    "215": "business group",
    "216": "virtual organisation",
    "300": "centre user",
    "400": "terminal user",
}
# A device record in the registry is a camera: its own id carries 131/132 — including a channel of a
# 111/118 recorder, whose channel ids are camera-typed under GB/T 28181.
CAMERA_TYPE_CODES = frozenset({"131", "132"})
PLATFORM_TYPE_CODES = frozenset({"200"})
RESERVED_NETWORK_DIGIT = "9"


@dataclass(frozen=True)
class Gb28181Id:
    """A structurally valid id split into its GB/T 28181 fields (positions are 1-based, inclusive)."""

    raw: str

    @property
    def division_code(self) -> str:  # positions 1–6
        return self.raw[0:6]

    @property
    def grassroots_unit(self) -> str:  # positions 7–8
        return self.raw[6:8]

    @property
    def industry_code(self) -> str:  # positions 9–10
        return self.raw[8:10]

    @property
    def type_code(self) -> str:  # positions 11–13
        return self.raw[10:13]

    @property
    def network(self) -> str:  # position 14
        return self.raw[13]

    @property
    def serial(self) -> str:  # positions 15–20
        return self.raw[14:20]

    @property
    def type_name(self) -> str:
        return TYPE_CODES.get(self.type_code, "unknown")

    def __str__(self) -> str:
        return self.raw


def structure_faults(value: str) -> list[str]:
    """REG-10: length and digit faults; each message names the position(s) at fault."""
    faults: list[str] = []
    if len(value) != ID_LENGTH:
        faults.append(f"must be exactly {ID_LENGTH} digits, got {len(value)} characters")
    for position, char in enumerate(value, start=1):
        if not ("0" <= char <= "9"):
            faults.append(f"position {position} is {char!r}: only the digits 0–9 are allowed")
            break  # one bad character is enough to explain the refusal
    return faults


def parse(value: str, *, field: str = "device.device_id") -> Gb28181Id:
    """REG-10: the id's fields, or InvalidArgument naming the positions at fault."""
    faults = structure_faults(value)
    if faults:
        raise _error(value, faults, field)
    return Gb28181Id(value)


def in_jurisdiction(division_code: str, prefixes: Iterable[str]) -> bool:
    return any(division_code.startswith(p) for p in prefixes)


def id_faults(
    value: str,
    *,
    jurisdiction_prefixes: Iterable[str],
    allowed_types: Iterable[str] | None = CAMERA_TYPE_CODES,
    owner_kind: UnitKind | None = None,
    industry_ranges: Mapping[UnitKind, tuple[int, int]] = DEFAULT_INDUSTRY_RANGES,
) -> list[str]:
    """REG-10 (GB/T 28181): every positional fault of `value`, each naming its positions.

    Checks: 20 digits; positions 1–6 inside the platform's jurisdiction; 9–10 consistent with the
    owner's kind (when given); 11–13 a known type code, and one of `allowed_types` (when given);
    14 a network digit 0–8 (9 is reserved). Positions 7–8 and 15–20 are any digits.
    """
    faults = structure_faults(value)
    if faults:
        return faults
    gid = Gb28181Id(value)
    prefixes = tuple(jurisdiction_prefixes)
    if not in_jurisdiction(gid.division_code, prefixes):
        faults.append(
            f"positions 1–6 (division code) are {gid.division_code}: outside the platform's jurisdiction "
            f"({', '.join(prefixes)})"
        )
    if owner_kind is not None and owner_kind in industry_ranges:
        low, high = industry_ranges[owner_kind]
        if not low <= int(gid.industry_code) <= high:
            faults.append(
                f"positions 9–10 (industry code) are {gid.industry_code}: a {owner_kind.value} owner uses "
                f"{low:02d}–{high:02d}"
            )
    if gid.type_code not in TYPE_CODES:
        faults.append(f"positions 11–13 (type code) are {gid.type_code}: not a GB/T 28181 type code")
    elif allowed_types is not None and gid.type_code not in (allowed := frozenset(allowed_types)):
        faults.append(
            f"positions 11–13 (type code) are {gid.type_code} ({gid.type_name}): expected "
            f"{' or '.join(sorted(allowed))} here"
        )
    if gid.network == RESERVED_NETWORK_DIGIT:
        faults.append("position 14 (network identifier) is 9: reserved; use 0–8")
    return faults


def validate_device_id(
    value: str,
    *,
    jurisdiction_prefixes: Iterable[str],
    owner_kind: UnitKind | None = None,
    industry_ranges: Mapping[UnitKind, tuple[int, int]] = DEFAULT_INDUSTRY_RANGES,
    field: str = "device.device_id",
) -> Gb28181Id:
    """REG-10: a camera's id (type 131/132), or InvalidArgument listing every fault by position."""
    faults = id_faults(
        value,
        jurisdiction_prefixes=jurisdiction_prefixes,
        allowed_types=CAMERA_TYPE_CODES,
        owner_kind=owner_kind,
        industry_ranges=industry_ranges,
    )
    if faults:
        raise _error(value, faults, field)
    return Gb28181Id(value)


def validate_platform_id(
    value: str, *, jurisdiction_prefixes: Iterable[str], field: str = "platform_id"
) -> Gb28181Id:
    """REG-10: a platform's (central signalling server's) id, type 200."""
    faults = id_faults(value, jurisdiction_prefixes=jurisdiction_prefixes, allowed_types=PLATFORM_TYPE_CODES)
    if faults:
        raise _error(value, faults, field)
    return Gb28181Id(value)


def _error(value: str, faults: list[str], field: str) -> InvalidArgument:
    return InvalidArgument(
        f"GB/T 28181 id {value!r}: {'; '.join(faults)} (REG-10)",
        rule="REG-10",
        field=field,
        violations=[(field, f) for f in faults[1:]],
    )
