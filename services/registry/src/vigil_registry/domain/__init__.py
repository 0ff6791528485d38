"""The registry's pure domain: the regulation's rules (REG-1..REG-12, ARC-1) and use-cases, no I/O.

Modules: model (dataclasses, enums, policy), rules (per-rule checks returning Violations), ids
(GB/T 28181 ids), keepalive (REG-11), filing (REG-7), usecases (what the servicer calls).
"""

from .model import (
    Actor,
    AreaType,
    Caller,
    Clock,
    Device,
    DeviceState,
    Filing,
    FilingFacts,
    FilingState,
    ForbiddenPlace,
    Funding,
    PlaceCategory,
    Point,
    PrivacyMask,
    RegistryPolicy,
    Site,
    Unit,
    UnitKind,
    utc_now,
)
from .rules import Violation, raise_first

__all__ = [
    "Actor",
    "AreaType",
    "Caller",
    "Clock",
    "Device",
    "DeviceState",
    "Filing",
    "FilingFacts",
    "FilingState",
    "ForbiddenPlace",
    "Funding",
    "PlaceCategory",
    "Point",
    "PrivacyMask",
    "RegistryPolicy",
    "Site",
    "Unit",
    "UnitKind",
    "Violation",
    "raise_first",
    "utc_now",
]
