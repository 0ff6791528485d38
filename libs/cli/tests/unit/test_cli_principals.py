"""The dev principals' data file: valid unit codes, the six principals with the roles and unit kinds
the platform's rules expect, and tokens that verify with the issuer's key."""

from __future__ import annotations

import pytest

from vigil.common.v1 import identity_pb2
from vigil_cli.identity import SERVICES, load_directory, mint_principal_tokens, mint_service_tokens
from vigil_kit.auth import TokenIssuer, TokenVerifier, generate_keypair
from vigil_kit.identifiers import validate_uscc

EXPECTED = {
    "admin": ("ROLE_PLATFORM_ADMIN", None),
    "officer": ("ROLE_PUBLIC_SECURITY_OFFICER", "UNIT_KIND_PUBLIC_SECURITY_ORGAN"),
    "analyst": ("ROLE_DEPARTMENT_ANALYST", "UNIT_KIND_GOVERNMENT_DEPARTMENT"),
    "metro": ("ROLE_UNIT_OPERATOR", "UNIT_KIND_ENTERPRISE"),
    "partner": ("ROLE_PARTNER", "UNIT_KIND_PARTNER"),
    "auditor": ("ROLE_AUDITOR", "UNIT_KIND_GOVERNMENT_DEPARTMENT"),
}


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    private_pem, _ = generate_keypair()
    return TokenIssuer(private_pem)


def test_every_demo_unit_has_a_valid_unified_social_credit_code_in_the_demo_city() -> None:
    directory = load_directory()
    for unit in directory.units:
        validate_uscc(unit.unit_id)
        assert unit.unit_id[2:6] == "3202", unit


def test_demo_unit_codes_are_unique() -> None:
    ids = [u.unit_id for u in load_directory().units]
    assert len(ids) == len(set(ids))


def test_the_six_dev_principals_have_the_expected_roles_and_unit_kinds() -> None:
    directory = load_directory()
    assert directory.names() == list(EXPECTED)
    for name, (role, kind) in EXPECTED.items():
        principal = directory.principal(name)
        assert principal.roles == (role,)
        if kind:
            assert principal.unit.kind == kind


def test_dev_principals_use_only_known_role_and_unit_kind_names() -> None:
    for principal in load_directory().principals:
        identity_pb2.UnitKind.Value(principal.unit.kind)
        for role in principal.roles:
            identity_pb2.Role.Value(role)


def test_principal_tokens_verify_with_the_issuer_key_and_carry_the_principal_claims(
    issuer: TokenIssuer,
) -> None:
    directory = load_directory()
    verifier = TokenVerifier([issuer.public_key_pem])
    for name, minted in mint_principal_tokens(issuer, directory).items():
        principal = verifier.verify(minted.token).principal
        expected = directory.principal(name)
        assert principal.id == expected.id
        assert principal.unit == expected.unit.unit_id
        assert principal.unit_kind == expected.unit.kind
        assert principal.roles == frozenset(expected.roles)


def test_service_tokens_name_the_service_with_the_service_role(issuer: TokenIssuer) -> None:
    verifier = TokenVerifier([issuer.public_key_pem])
    for service, minted in mint_service_tokens(issuer, load_directory()).items():
        principal = verifier.verify(minted.token).principal
        assert principal.id == f"service:{service}"
        assert principal.roles == frozenset({"ROLE_SERVICE"})
    assert set(mint_service_tokens(issuer, load_directory())) == set(SERVICES)


def test_dev_tokens_are_valid_for_twelve_hours(issuer: TokenIssuer) -> None:
    verifier = TokenVerifier([issuer.public_key_pem])
    minted = mint_principal_tokens(issuer, load_directory())["officer"]
    verified = verifier.verify(minted.token)
    lifetime = verified.expires_at - verified.issued_at
    assert lifetime.total_seconds() == 12 * 3600
