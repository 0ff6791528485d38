"""Who may read the archive's index and who may place holds (ACC-2: deny by default), as pure rules.

Reading segment metadata, coverage and verification (issue: archive): ROLE_PLATFORM_ADMIN,
ROLE_AUDITOR, a principal of the device's owner unit — or a grant, which only sharing's Authorize
can tell (the servicer asks it when these rules say no). Holds (ARC-6 evidence preservation):
ROLE_PUBLIC_SECURITY_OFFICER or ROLE_PLATFORM_ADMIN. Deleting a segment by hand: the platform
administrator or the owner unit's operator, and only after expiry (ARC-2, checked separately).
"""

from __future__ import annotations

from vigil_kit.auth import Principal
from vigil_kit.errors import PermissionDenied

READ_ROLES = ("ROLE_PLATFORM_ADMIN", "ROLE_AUDITOR")
HOLD_ROLES = ("ROLE_PUBLIC_SECURITY_OFFICER", "ROLE_PLATFORM_ADMIN")
DELETE_ROLES = ("ROLE_PLATFORM_ADMIN",)
# AUD-3: services that read index metadata and coverage on their own behalf (the audit service composes
# compliance reports from GetCoverage); never footage, which only playback and export hand out.
METADATA_SERVICES = ("audit",)


def read_basis(p: Principal, owner_unit_id: str | None) -> str | None:
    """Why `p` may read a device's archive without a grant ("role" or "owner"), or None."""
    if p.has_role(*READ_ROLES):
        return "role"
    if p.service_name in METADATA_SERVICES:
        return "service"
    if owner_unit_id and p.unit == owner_unit_id and not p.is_service:
        return "owner"
    return None


def require_hold_role(p: Principal) -> None:
    if not p.has_role(*HOLD_ROLES):
        raise PermissionDenied(
            "placing or releasing a legal hold needs ROLE_PUBLIC_SECURITY_OFFICER or ROLE_PLATFORM_ADMIN",
            rule="ACC-2",
        )


def require_hold_reader(p: Principal) -> None:
    if not p.has_role(*HOLD_ROLES, "ROLE_AUDITOR"):
        raise PermissionDenied(
            "listing legal holds needs ROLE_PUBLIC_SECURITY_OFFICER, ROLE_PLATFORM_ADMIN or ROLE_AUDITOR",
            rule="ACC-2",
        )


def require_deleter(p: Principal, owner_unit_id: str) -> None:
    if p.has_role(*DELETE_ROLES):
        return
    if p.has_role("ROLE_UNIT_OPERATOR") and p.unit == owner_unit_id:
        return
    raise PermissionDenied(
        "deleting footage needs ROLE_PLATFORM_ADMIN or an operator of the owner unit", rule="ACC-2"
    )


def deny_read(p: Principal, device_id: str) -> PermissionDenied:
    return PermissionDenied(
        f"{p.name or p.id} may not read the archive of device {device_id}: not an administrator, "
        "auditor or member of the owner unit, and no grant allows it",
        rule="ACC-2",
        field="device_id",
    )
