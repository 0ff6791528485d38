"""Signed tree heads: their canonical bytes, Ed25519 signatures and export form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil_audit.domain.sth import (
    SignedTreeHead,
    TreeHead,
    load_private_key,
    load_public_key,
    sign,
    sign_tree_head,
    verify,
)

ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
HEAD = TreeHead(8, ROOT, datetime(2025, 3, 1, 8, 30, 0, 250000, tzinfo=UTC))
KEY = Ed25519PrivateKey.generate()


def test_a_tree_head_signs_four_fixed_lines() -> None:
    assert HEAD.to_bytes() == (
        b"vigil.audit.v1.SignedTreeHead\n8\n"
        b"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328\n"
        b"2025-03-01T08:30:00.250000000Z\n"
    )


def test_a_signature_verifies_with_the_log_key() -> None:
    assert verify(KEY.public_key(), HEAD, sign(KEY, HEAD))


def test_a_signature_does_not_verify_with_another_key() -> None:
    assert not verify(Ed25519PrivateKey.generate().public_key(), HEAD, sign(KEY, HEAD))


@pytest.mark.parametrize(
    "other",
    [
        TreeHead(9, ROOT, HEAD.timestamp),
        TreeHead(8, bytes(32), HEAD.timestamp),
        TreeHead(8, ROOT, datetime(2025, 3, 1, 8, 30, 1, tzinfo=UTC)),
    ],
)
def test_a_signature_does_not_cover_a_changed_head(other: TreeHead) -> None:
    assert not verify(KEY.public_key(), other, sign(KEY, HEAD))


def test_a_truncated_signature_does_not_verify() -> None:
    assert not verify(KEY.public_key(), HEAD, sign(KEY, HEAD)[:63])


def test_the_export_form_round_trips() -> None:
    signed = sign_tree_head(KEY, HEAD)
    assert SignedTreeHead.from_dict(signed.to_dict()) == signed
    assert signed.to_dict()["timestamp"] == "2025-03-01T08:30:00.250000000Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tree_size", "8"),
        ("root_hash", ROOT.hex().upper()),
        ("timestamp", "2025-03-01T08:30:00.25Z"),
        ("signature", "zz"),
    ],
)
def test_an_export_form_that_is_not_exact_is_refused(field: str, value: str) -> None:
    data = sign_tree_head(KEY, HEAD).to_dict()
    data[field] = value
    with pytest.raises(ValueError):
        SignedTreeHead.from_dict(data)


def test_keys_load_from_pem() -> None:
    private_pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify(load_public_key(public_pem.decode()), HEAD, sign(load_private_key(private_pem), HEAD))


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError):
        TreeHead(1, ROOT, datetime(2025, 3, 1))
