"""Dev identity for `vigil up`: the demo units and principals, and the tokens minted for them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from vigil_kit.identifiers import validate_uscc

SERVICES = ("registry", "ingest", "archive", "sharing", "audit")

# Dev tokens outlive a working day; `vigil up` again mints fresh ones.
TOKEN_TTL_S = 12 * 3600

DEFAULT_PRINCIPAL = "admin"


@dataclass(frozen=True)
class Unit:
    unit_id: str
    name: str
    kind: str


@dataclass(frozen=True)
class DevPrincipal:
    """A dev principal: `name` is what `vigil --as NAME` takes; `id` is the token's `sub`."""

    name: str
    id: str
    display_name: str
    unit: Unit
    roles: tuple[str, ...]

    def claims(self) -> dict[str, Any]:
        """The identity claims a token for this principal carries (besides iss/iat/exp/jti)."""
        return {
            "sub": self.id,
            "name": self.display_name,
            "unit": self.unit.unit_id,
            "unit_kind": self.unit.kind,
            "roles": list(self.roles),
        }


@dataclass(frozen=True)
class DevDirectory:
    """The demo units and the dev principals that belong to them (from data/principals.json)."""

    division_code: str
    units: tuple[Unit, ...]
    principals: tuple[DevPrincipal, ...]

    @property
    def operator_unit(self) -> Unit:
        """The platform operator's unit (the admin's), which the services' own tokens name."""
        return self.principal(DEFAULT_PRINCIPAL).unit

    def names(self) -> list[str]:
        return [p.name for p in self.principals]

    def principal(self, name: str) -> DevPrincipal:
        for p in self.principals:
            if p.name == name:
                return p
        raise KeyError(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DevDirectory:
        units = tuple(Unit(u["unit_id"], u["name"], u["kind"]) for u in data["units"])
        by_id = {u.unit_id: u for u in units}
        for unit in units:
            validate_uscc(unit.unit_id)
        principals = tuple(
            DevPrincipal(
                name=p["name"],
                id=p["id"],
                display_name=p["display_name"],
                unit=by_id[p["unit_id"]],
                roles=tuple(p["roles"]),
            )
            for p in data["principals"]
        )
        return cls(division_code=data["division_code"], units=units, principals=principals)


def load_directory() -> DevDirectory:
    text = resources.files("vigil_cli").joinpath("data", "principals.json").read_text(encoding="utf-8")
    return DevDirectory.from_dict(json.loads(text))


@dataclass(frozen=True)
class MintedToken:
    token: str
    claims: dict[str, Any]
    expires_at: datetime


def _mint(issuer: Any, claims: Mapping[str, Any], ttl_s: int, now: datetime) -> MintedToken:
    token = issuer.mint(
        sub=claims["sub"],
        name=claims["name"],
        unit=claims["unit"],
        unit_kind=claims["unit_kind"],
        roles=claims["roles"],
        ttl_s=ttl_s,
        now=now,
    )
    return MintedToken(token=token, claims=dict(claims), expires_at=now + timedelta(seconds=ttl_s))


def mint_principal_tokens(
    issuer: Any, directory: DevDirectory, *, ttl_s: int = TOKEN_TTL_S, now: datetime | None = None
) -> dict[str, MintedToken]:
    """One token per dev principal, keyed by the principal's `--as` name. `issuer` is a
    vigil_kit.auth.TokenIssuer."""
    now = now or datetime.now(UTC)
    return {p.name: _mint(issuer, p.claims(), ttl_s, now) for p in directory.principals}


def service_claims(service: str, directory: DevDirectory) -> dict[str, Any]:
    unit = directory.operator_unit
    return {
        "sub": f"service:{service}",
        "name": f"vigil-{service}",
        "unit": unit.unit_id,
        "unit_kind": unit.kind,
        "roles": ["ROLE_SERVICE"],
    }


def mint_service_tokens(
    issuer: Any,
    directory: DevDirectory,
    services: Iterable[str] = SERVICES,
    *,
    ttl_s: int = TOKEN_TTL_S,
    now: datetime | None = None,
) -> dict[str, MintedToken]:
    """One token per service (sub "service:<name>", ROLE_SERVICE), in the platform operator's unit."""
    now = now or datetime.now(UTC)
    return {s: _mint(issuer, service_claims(s, directory), ttl_s, now) for s in services}
