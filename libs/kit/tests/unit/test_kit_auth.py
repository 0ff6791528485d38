"""Bearer tokens: minting, verification and the principal's proto form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from vigil.common.v1 import identity_pb2
from vigil_kit import auth
from vigil_kit.errors import Unauthenticated
from vigil_kit.settings import ServiceSettings


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return auth.generate_keypair()


@pytest.fixture
def issuer(keypair) -> auth.TokenIssuer:
    return auth.TokenIssuer(keypair[0])


@pytest.fixture
def verifier(keypair) -> auth.TokenVerifier:
    return auth.TokenVerifier([keypair[1]])


def mint(issuer: auth.TokenIssuer, **overrides) -> str:
    claims = {
        "sub": "u-officer-1",
        "name": "Officer Li",
        "unit": "11310000000000000X",
        "unit_kind": "UNIT_KIND_PUBLIC_SECURITY_ORGAN",
        "roles": ["ROLE_PUBLIC_SECURITY_OFFICER"],
    }
    claims.update(overrides)
    return issuer.mint(**claims)


def test_a_minted_token_verifies_to_the_same_claims(issuer, verifier):
    verified = verifier.verify(mint(issuer, roles=["ROLE_AUDITOR", "ROLE_PUBLIC_SECURITY_OFFICER"]))

    assert verified.principal == auth.Principal(
        id="u-officer-1",
        name="Officer Li",
        unit="11310000000000000X",
        unit_kind="UNIT_KIND_PUBLIC_SECURITY_ORGAN",
        roles=frozenset({"ROLE_AUDITOR", "ROLE_PUBLIC_SECURITY_OFFICER"}),
    )
    assert verified.issuer == "vigil"
    assert verified.expires_at > datetime.now(UTC) + timedelta(hours=11)


def test_a_token_carries_the_documented_claims(issuer, keypair):
    claims = jwt.decode(mint(issuer), keypair[1], algorithms=["EdDSA"])

    assert set(claims) == {"iss", "sub", "name", "unit", "unit_kind", "roles", "iat", "exp", "jti"}
    assert claims["roles"] == ["ROLE_PUBLIC_SECURITY_OFFICER"]
    assert jwt.get_unverified_header(mint(issuer))["alg"] == "EdDSA"


def test_an_expired_token_is_refused(issuer, verifier):
    token = mint(issuer, ttl_s=60, now=datetime.now(UTC) - timedelta(hours=1))

    with pytest.raises(auth.AuthError, match="expired"):
        verifier.verify(token)


def test_a_token_signed_by_another_key_is_refused(verifier):
    foreign = auth.TokenIssuer(auth.generate_keypair()[0])

    with pytest.raises(auth.AuthError, match="trusted issuer key"):
        verifier.verify(mint(foreign))


def test_a_token_from_another_issuer_name_is_refused(keypair, verifier):
    other = auth.TokenIssuer(keypair[0], issuer="someone-else")

    with pytest.raises(auth.AuthError, match="issuer"):
        verifier.verify(mint(other))


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.AAAA"])
def test_a_missing_or_malformed_token_is_refused(verifier, token):
    with pytest.raises(auth.AuthError):
        verifier.verify(token)


def test_a_token_with_an_unknown_role_is_refused(keypair, verifier):
    private = auth.serialization.load_pem_private_key(keypair[0], password=None)
    now = int(datetime.now(UTC).timestamp())
    token = jwt.encode(
        {
            "iss": "vigil",
            "sub": "u1",
            "name": "X",
            "unit": "U",
            "unit_kind": "UNIT_KIND_ENTERPRISE",
            "roles": ["ROLE_GOD"],
            "iat": now,
            "exp": now + 60,
        },
        private,
        algorithm="EdDSA",
    )

    with pytest.raises(auth.AuthError, match="ROLE_GOD"):
        verifier.verify(token)


def test_the_issuer_refuses_to_mint_an_unknown_role(issuer):
    with pytest.raises(ValueError, match="ROLE_GOD"):
        mint(issuer, roles=["ROLE_GOD"])


def test_auth_errors_never_echo_the_token(issuer, verifier):
    token = mint(issuer, ttl_s=1, now=datetime.now(UTC) - timedelta(hours=1))
    for bad in (token, token[:-5] + "AAAAA", token + "x"):
        with pytest.raises(auth.AuthError) as caught:
            verifier.verify(bad)
        assert bad not in str(caught.value)
        assert token.split(".")[1] not in str(caught.value)


def test_auth_error_is_an_unauthenticated_error():
    assert issubclass(auth.AuthError, Unauthenticated)


def test_principal_round_trips_through_its_proto(issuer, verifier):
    principal = verifier.verify(mint(issuer, roles=["ROLE_AUDITOR", "ROLE_PARTNER"])).principal

    msg = principal.to_proto()

    assert msg.unit_kind == identity_pb2.UNIT_KIND_PUBLIC_SECURITY_ORGAN
    assert set(msg.roles) == {identity_pb2.ROLE_AUDITOR, identity_pb2.ROLE_PARTNER}
    assert auth.Principal.from_proto(msg) == principal


def test_a_service_principal_is_recognised(issuer, verifier):
    principal = verifier.verify(issuer.mint_service("registry")).principal

    assert principal.is_service
    assert principal.service_name == "registry"
    assert principal.has_role("ROLE_SERVICE", "ROLE_AUDITOR")
    assert not principal.has_role("ROLE_AUDITOR")


def test_a_person_holding_the_service_role_without_a_service_subject_is_not_a_service(issuer, verifier):
    principal = verifier.verify(mint(issuer, roles=["ROLE_SERVICE"])).principal

    assert not principal.is_service


def test_the_verifier_reads_keys_from_settings_and_key_file(tmp_path, issuer, keypair):
    second_private, second_public = auth.generate_keypair()
    key_file = tmp_path / "issuers.pem"
    key_file.write_bytes(second_public)
    settings = ServiceSettings(
        service_name="registry", auth_public_keys=[keypair[1].decode()], auth_public_keys_file=str(key_file)
    )

    verifier = auth.TokenVerifier.from_settings(settings)

    assert verifier.verify(mint(issuer)).principal.id == "u-officer-1"
    assert verifier.verify(mint(auth.TokenIssuer(second_private))).principal.id == "u-officer-1"


def test_a_verifier_trusts_every_key_in_a_concatenated_pem():
    first_private, first_public = auth.generate_keypair()
    second_private, second_public = auth.generate_keypair()
    verifier = auth.TokenVerifier([first_public + second_public])

    for private in (first_private, second_private):
        assert verifier.verify(mint(auth.TokenIssuer(private))).issuer == "vigil"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), None),
        ((("x-other", "1"),), None),
        ((("authorization", "Bearer abc.def.ghi"),), "abc.def.ghi"),
        ((("authorization", "bearer   abc"),), "abc"),
    ],
)
def test_bearer_token_is_read_from_authorization_metadata(metadata, expected):
    assert auth.bearer_token(metadata) == expected


def test_a_non_bearer_authorization_header_is_refused_without_echoing_it():
    with pytest.raises(auth.AuthError) as caught:
        auth.bearer_token((("authorization", "Basic c2VjcmV0"),))
    assert "c2VjcmV0" not in str(caught.value)


def test_current_principal_outside_a_call_raises_unauthenticated():
    with pytest.raises(Unauthenticated):
        auth.current_principal()


class FakeClock:
    """Epoch seconds that a test moves by hand (the verifier's expiry clock)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_and_answers_the_same(issuer, keypair):
    verifier = auth.TokenVerifier([keypair[1]])
    token = mint(issuer)

    first = verifier.verify(token)
    second = verifier.verify(token)

    assert verifier.cached == 1
    assert second == first


def test_a_remembered_token_is_refused_once_it_expires(issuer, keypair):
    clock = FakeClock()
    verifier = auth.TokenVerifier([keypair[1]], leeway_s=30, clock=clock)
    token = mint(issuer, ttl_s=60)
    verifier.verify(token)
    assert verifier.cached == 1

    clock.now += 60 + 30  # past exp plus the leeway

    with pytest.raises(auth.AuthError, match="expired"):
        verifier.verify(token)
    assert verifier.cached == 0


def test_a_remembered_token_is_still_accepted_within_the_leeway(issuer, keypair):
    clock = FakeClock()
    verifier = auth.TokenVerifier([keypair[1]], leeway_s=30, clock=clock)
    token = mint(issuer, ttl_s=60)
    verifier.verify(token)

    clock.now += 60 + 29

    assert verifier.verify(token).principal.id == "u-officer-1"


def test_a_foreign_signed_token_is_never_remembered(keypair):
    verifier = auth.TokenVerifier([keypair[1]])
    foreign = mint(auth.TokenIssuer(auth.generate_keypair()[0]))

    for _ in range(2):
        with pytest.raises(auth.AuthError, match="trusted issuer key"):
            verifier.verify(foreign)
    assert verifier.cached == 0


def test_a_token_with_a_tampered_signature_is_refused_after_the_genuine_one_was_remembered(issuer, keypair):
    verifier = auth.TokenVerifier([keypair[1]])
    token = mint(issuer)
    verifier.verify(token)
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"

    with pytest.raises(auth.AuthError):
        verifier.verify(tampered)
    assert verifier.cached == 1


def test_the_cache_holds_at_most_its_size_and_evicts_the_least_recently_used(issuer, keypair, monkeypatch):
    verifier = auth.TokenVerifier([keypair[1]], cache_size=3)
    tokens = [mint(issuer, sub=f"u-{i}") for i in range(5)]
    for token in tokens[:3]:
        verifier.verify(token)
    verifier.verify(tokens[0])  # used again: now the most recent
    for token in tokens[3:]:
        verifier.verify(token)  # evicts tokens[1], then tokens[2]
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token, *args, **kwargs):
        decoded.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counting_decode)

    assert verifier.cached == 3
    assert verifier.verify(tokens[0]).principal.id == "u-0"
    assert verifier.verify(tokens[4]).principal.id == "u-4"
    assert decoded == []  # both answered from the cache
    assert verifier.verify(tokens[1]).principal.id == "u-1"
    assert decoded == [tokens[1]]  # evicted, so verified again
    assert verifier.cached == 3


def test_a_verifier_without_a_cache_verifies_every_time(issuer, keypair):
    verifier = auth.TokenVerifier([keypair[1]], cache_size=0)

    verifier.verify(mint(issuer))

    assert verifier.cached == 0
