"""Signed evidence manifests of exported clips (ARC-4 chain of custody) and their offline verification.

A manifest is a JSON object describing one exported clip: every source segment (key, version id,
SHA-256 and its RFC 6962 inclusion path to its device-day root), the clip's SHA-256, the masking
applied, who exported it, why, when and under which grant. It is signed with Ed25519 over its
CANONICAL form: UTF-8 JSON with keys sorted at every level, no insignificant whitespace
(separators "," and ":"), non-ASCII characters kept as they are, and without the "signature"
member; the signature sits in that member as {"alg": "Ed25519", "key_id": ..., "value": base64}.
`key_id` is the lower-case hex SHA-256 of the raw 32-byte public key.

`verify_export` needs only the clip's bytes, the manifest and the archive's public key: no service.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil_kit import merkle

MANIFEST_VERSION = 1
SIGNATURE_ALG = "Ed25519"


def canonical(manifest: Mapping[str, Any]) -> bytes:
    """The signed bytes: the manifest without "signature", sorted keys, no spaces, UTF-8."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dumps(manifest: Mapping[str, Any]) -> bytes:
    """The whole manifest (signature included) in the same canonical form, as stored beside the clip."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(pem: str | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(pem, Ed25519PublicKey):
        return pem
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the archive's export key is an Ed25519 public key")
    return key


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def sign(manifest: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The manifest with its "signature" member set."""
    signed = {k: v for k, v in manifest.items() if k != "signature"}
    signed["signature"] = {
        "alg": SIGNATURE_ALG,
        "key_id": key_id(private_key.public_key()),
        "value": base64.b64encode(private_key.sign(canonical(signed))).decode("ascii"),
    }
    return signed


def segment_leaf(sha256_hex: str) -> bytes:
    """A segment's leaf in its device-day tree: SHA-256(0x00 || raw 32-byte segment sha256)."""
    return merkle.leaf_hash(bytes.fromhex(sha256_hex))


@dataclass
class Verification:
    """What a verification found: `ok` when nothing failed; `failures` name what did."""

    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_export(
    clip: bytes, manifest: Mapping[str, Any] | bytes | str, public_key: str | bytes | Ed25519PublicKey
) -> Verification:
    """Check a clip against its manifest offline: the signature, the clip's hash, every segment's proof."""
    result = Verification()
    try:
        doc = json.loads(manifest) if isinstance(manifest, (bytes, str)) else dict(manifest)
    except ValueError as exc:
        result.failures.append(f"manifest: not JSON ({exc})")
        return result
    key = load_public_key(public_key)
    sig = doc.get("signature") or {}
    if sig.get("alg") != SIGNATURE_ALG:
        result.failures.append(f"signature: algorithm {sig.get('alg')!r}, expected {SIGNATURE_ALG}")
    elif sig.get("key_id") != key_id(key):
        result.failures.append("signature: made with another key than the one given (key_id differs)")
    else:
        try:
            key.verify(base64.b64decode(sig.get("value", ""), validate=True), canonical(doc))
        except (InvalidSignature, ValueError):
            result.failures.append("signature: does not match the manifest (a field was changed)")
    declared = (doc.get("clip") or {}).get("sha256", "")
    actual = hashlib.sha256(clip).hexdigest()
    if declared != actual:
        result.failures.append(f"clip: sha256 {actual} differs from the manifest's {declared or '(none)'}")
    size = (doc.get("clip") or {}).get("size")
    if size is not None and size != len(clip):
        result.failures.append(f"clip: {len(clip)} bytes, the manifest says {size}")
    segments = doc.get("segments") or []
    if not segments:
        result.failures.append("segments: the manifest lists no source segment")
    for seg in segments:
        label = f"segment {seg.get('key')}@{seg.get('version_id')}"
        try:
            root = merkle.root_from_inclusion_proof(
                segment_leaf(seg["sha256"]),
                int(seg["leaf_index"]),
                int(seg["leaf_count"]),
                [bytes.fromhex(h) for h in seg["path"]],
            )
            expected = bytes.fromhex(seg["day_root"])
        except (KeyError, ValueError, TypeError) as exc:
            result.failures.append(f"{label}: incomplete proof ({exc})")
            continue
        if root is None or root != expected:
            result.failures.append(f"{label}: its inclusion path does not lead to day root {seg['day_root']}")
    return result
