"""Who may read and change the registry (ACC-2, 799 Art. 16: least privilege, deny by default).

| principal                                   | reads                                  | changes                         |
|---------------------------------------------|----------------------------------------|---------------------------------|
| ROLE_PLATFORM_ADMIN                         | everything                             | everything (units only by them) |
| ROLE_PUBLIC_SECURITY_OFFICER                | everything                             | records filings                 |
| ROLE_AUDITOR, ROLE_SERVICE                  | everything                             | nothing                         |
| ROLE_UNIT_OPERATOR                          | its own unit, the sites it manages or  | sites it manages, its unit's    |
|                                             | builds at, its unit's devices/filings  | devices (REG-3), its filings    |
| anyone of the device's own unit             | —                                      | keepalives (REG-11)             |
| any other role (analyst, partner, contractor)| nothing (PERMISSION_DENIED, ACC-2)    | nothing                         |

Which unit a change may be made for is the domain's REG-3 rule (check_caller_acts_for); this module
only decides which roles may ask at all, and how far a unit operator's reads reach.
"""

from __future__ import annotations

from vigil_kit.auth import Principal
from vigil_kit.errors import PermissionDenied

ADMIN = "ROLE_PLATFORM_ADMIN"
OFFICER = "ROLE_PUBLIC_SECURITY_OFFICER"
AUDITOR = "ROLE_AUDITOR"
SERVICE = "ROLE_SERVICE"
OPERATOR = "ROLE_UNIT_OPERATOR"

READ_ALL_ROLES = (ADMIN, OFFICER, AUDITOR, SERVICE)
WRITE_ROLES = (ADMIN, OPERATOR)
FILING_ROLES = (ADMIN, OFFICER, OPERATOR)

ALL = None  # a read scope covering every unit


def read_scope(p: Principal, what: str) -> str | None:
    """ALL (None) for the read-everything roles; the caller's unit id for a unit operator; otherwise
    PERMISSION_DENIED (ACC-2)."""
    if p.has_role(*READ_ALL_ROLES):
        return ALL
    if p.has_role(OPERATOR) and p.unit:
        return p.unit
    raise PermissionDenied(f"ACC-2 (799 Art. 16): {_who(p)} may not read the registry's {what}", rule="ACC-2")


def require_read_all(p: Principal, what: str) -> None:
    if not p.has_role(*READ_ALL_ROLES):
        raise PermissionDenied(f"ACC-2 (799 Art. 16): {_who(p)} may not read {what}", rule="ACC-2")


def require_writer(p: Principal, what: str) -> None:
    """Changes come from a platform administrator or a unit operator (who then acts for its own unit)."""
    if not p.has_role(*WRITE_ROLES):
        raise PermissionDenied(f"ACC-2 (799 Art. 16): {_who(p)} may not change {what}", rule="ACC-2")


def require_filing_role(p: Principal, unit_id: str) -> None:
    """REG-7: the filing number is recorded by an administrator, the public security organ that issued
    it, or an operator of the filing unit."""
    if p.has_role(ADMIN, OFFICER):
        return
    if p.has_role(OPERATOR) and p.unit == unit_id:
        return
    raise PermissionDenied(
        f"ACC-2 (799 Art. 16): {_who(p)} may not record filings of unit {unit_id}",
        rule="ACC-2",
        field="unit_id",
    )


def _who(p: Principal) -> str:
    roles = ", ".join(sorted(p.roles)) or "no role"
    return f"{p.id} ({roles})"
