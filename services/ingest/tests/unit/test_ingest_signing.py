"""The canonical segment-header encoding, its published test vector, and Ed25519 sign/verify (ARC-4)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vigil_ingest.domain import signing
from vigil_ingest.domain.signing import KeyFileError, SegmentHeader
from vigil_kit.errors import InvalidArgument, Unauthenticated

VECTOR = SegmentHeader(
    device_id="32020501501320000001",
    sequence=42,
    start_ns=1_795_861_800 * 10**9 + 40_000_000,
    duration_ns=2 * 10**9,
    sha256=hashlib.sha256(b"").hexdigest(),
)


@pytest.fixture(scope="module")
def vector_key():
    return signing.private_key_from_seed(bytes.fromhex(signing.TEST_VECTOR_SEED_HEX))


def test_the_test_vector_header_encodes_to_the_published_bytes() -> None:
    assert VECTOR.canonical_bytes() == signing.TEST_VECTOR_CANONICAL
    assert len(signing.TEST_VECTOR_CANONICAL) == 161


def test_the_test_vector_key_is_rfc_8032_test_1() -> None:
    # RFC 8032 §7.1 TEST 1 public key, so implementers can check their Ed25519 library first.
    rfc_public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert base64.b64decode(signing.TEST_VECTOR_PUBLIC_KEY_B64) == rfc_public


def test_the_test_vector_signature_is_the_published_one(vector_key) -> None:
    signature = signing.sign(vector_key, VECTOR)
    assert base64.b64encode(signature).decode() == signing.TEST_VECTOR_SIGNATURE_B64
    assert signing.public_key_b64(vector_key) == signing.TEST_VECTOR_PUBLIC_KEY_B64


def test_the_published_signature_verifies_with_the_registered_base64_key() -> None:
    signature = base64.b64decode(signing.TEST_VECTOR_SIGNATURE_B64)
    signing.verify(signing.TEST_VECTOR_PUBLIC_KEY_B64, VECTOR, signature)


def test_the_documentation_publishes_the_same_vector() -> None:
    from vigil_kit import segment_header

    doc = segment_header.__doc__ or ""
    for text in (
        signing.TEST_VECTOR_SEED_HEX,
        signing.TEST_VECTOR_PUBLIC_KEY_B64,
        signing.TEST_VECTOR_SIGNATURE_B64,
        "2026-11-28T10:30:00.040000000Z",
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g",
    ):
        assert text in doc


def test_the_test_vector_pem_key_file_loads_to_the_same_key(tmp_path) -> None:
    path = tmp_path / "device.pem"
    path.write_bytes(signing.TEST_VECTOR_PRIVATE_KEY_PEM)
    key = signing.load_private_key_file(path)
    assert signing.public_key_b64(key) == signing.TEST_VECTOR_PUBLIC_KEY_B64


@pytest.mark.parametrize(
    "change",
    [
        {"device_id": "32020501501320000002"},
        {"sequence": 43},
        {"start_ns": VECTOR.start_ns + 1},
        {"duration_ns": VECTOR.duration_ns + 1},
        {"sha256": hashlib.sha256(b"x").hexdigest()},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_signature_is_refused_when_any_signed_field_changes(vector_key, change) -> None:
    signature = signing.sign(vector_key, VECTOR)
    altered = dataclasses.replace(VECTOR, **change)
    with pytest.raises(Unauthenticated) as caught:
        signing.verify(signing.public_key_b64(vector_key), altered, signature)
    assert (caught.value.rule, caught.value.field) == ("ARC-4", "header.signature")


def test_a_signature_by_another_key_is_refused(vector_key) -> None:
    other = signing.generate_device_key()
    signature = signing.sign(other.private_key, VECTOR)
    with pytest.raises(Unauthenticated, match="does not verify"):
        signing.verify(signing.public_key_b64(vector_key), VECTOR, signature)


def test_a_missing_signature_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="no signature") as caught:
        signing.verify(signing.TEST_VECTOR_PUBLIC_KEY_B64, VECTOR, b"")
    assert caught.value.rule == "ARC-4"


def test_a_signature_of_the_wrong_length_is_refused(vector_key) -> None:
    signature = signing.sign(vector_key, VECTOR)
    with pytest.raises(Unauthenticated, match="64 bytes"):
        signing.verify(signing.TEST_VECTOR_PUBLIC_KEY_B64, VECTOR, signature[:-1])


def test_a_device_without_a_usable_registered_key_cannot_upload(vector_key) -> None:
    signature = signing.sign(vector_key, VECTOR)
    with pytest.raises(Unauthenticated, match="no usable registered public key"):
        signing.verify("", VECTOR, signature)


def test_verify_accepts_the_key_as_raw_bytes_base64_or_pem(vector_key) -> None:
    signature = signing.sign(vector_key, VECTOR)
    public = vector_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for form in (raw, base64.b64encode(raw).decode(), pem, pem.decode(), public):
        signing.verify(form, VECTOR, signature)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"device_id": "3202050150132000001"}, "header.device_id"),
        ({"device_id": "3202050150132000000a"}, "header.device_id"),
        ({"sequence": -1}, "header.sequence"),
        ({"sequence": 2**64}, "header.sequence"),
        ({"sequence": True}, "header.sequence"),
        ({"start_ns": -1}, "header.start_time"),
        ({"start_ns": signing.MAX_START_NS + 1}, "header.start_time"),
        ({"duration_ns": 0}, "header.duration"),
        ({"sha256": VECTOR.sha256.upper()}, "header.sha256"),
        ({"sha256": VECTOR.sha256[:-1]}, "header.sha256"),
    ],
)
def test_a_header_the_encoding_cannot_spell_is_refused_not_normalised(change, field) -> None:
    with pytest.raises(InvalidArgument) as caught:
        dataclasses.replace(VECTOR, **change)
    assert caught.value.field == field


def test_the_start_time_always_has_nine_fractional_digits() -> None:
    on_the_second = dataclasses.replace(VECTOR, start_ns=1_795_861_800 * 10**9)
    assert on_the_second.start_time_text == "2026-11-28T10:30:00.000000000Z"
    last = dataclasses.replace(VECTOR, start_ns=signing.MAX_START_NS)
    assert last.start_time_text == "9999-12-31T23:59:59.999999999Z"
    assert dataclasses.replace(VECTOR, start_ns=0).start_time_text == "1970-01-01T00:00:00.000000000Z"


def test_a_header_from_datetimes_counts_in_utc_nanoseconds() -> None:
    cst = timezone(timedelta(hours=8))
    header = SegmentHeader.of(
        device_id=VECTOR.device_id,
        sequence=42,
        start=datetime(2026, 11, 28, 18, 30, 0, 40_000, tzinfo=cst),
        duration=2.0,
        sha256=VECTOR.sha256,
    )
    assert header == VECTOR
    assert header.start == datetime(2026, 11, 28, 10, 30, 0, 40_000, tzinfo=UTC)
    assert header.duration == timedelta(seconds=2)


def test_a_naive_start_time_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        SegmentHeader.of(
            device_id=VECTOR.device_id,
            sequence=1,
            start=datetime(2026, 1, 1),
            duration=2,
            sha256=VECTOR.sha256,
        )


def test_a_generated_device_key_round_trips_through_its_pem() -> None:
    key = signing.generate_device_key()
    loaded = signing.load_private_key_pem(key.private_pem)
    assert signing.public_key_b64(loaded) == key.public_key_b64
    assert key.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_key_file_holding_another_algorithm_is_refused(tmp_path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "ec.pem"
    path.write_bytes(pem)
    with pytest.raises(KeyFileError, match="expected an Ed25519 private key"):
        signing.load_private_key_file(path)


def test_a_key_file_that_is_not_pem_is_refused_naming_the_file(tmp_path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match=r"garbage\.pem"):
        signing.load_private_key_file(path)


def test_a_missing_key_file_is_refused_naming_the_file(tmp_path) -> None:
    with pytest.raises(KeyFileError, match=r"absent\.pem"):
        signing.load_private_key_file(tmp_path / "absent.pem")


def test_a_public_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        signing.load_public_key(base64.b64encode(bytes(31)).decode())


def test_the_start_time_text_parses_back_to_the_same_nanosecond() -> None:
    for ns in (0, VECTOR.start_ns, 1_795_861_800_123_456_789, signing.MAX_START_NS):
        assert signing.parse_rfc3339_ns(signing.format_rfc3339_ns(ns)) == ns


@pytest.mark.parametrize(
    "text",
    ["2026-11-28T10:30:00.04Z", "2026-11-28T10:30:00.040000000+00:00", "2026-11-28t10:30:00.040000000z"],
)
def test_only_the_canonical_start_time_spelling_parses(text) -> None:
    with pytest.raises(ValueError):
        signing.parse_rfc3339_ns(text)
