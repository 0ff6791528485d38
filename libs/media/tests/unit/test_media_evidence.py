"""Evidence manifests: a signed manifest verifies offline; a flipped clip byte or a changed field does not."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil_kit import merkle
from vigil_media.evidence import canonical, dumps, public_key_pem, segment_leaf, sign, verify_export

CLIP = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4


def _manifest(key: Ed25519PrivateKey) -> dict:
    hashes = [hashlib.sha256(f"segment {i}".encode()).hexdigest() for i in range(5)]
    tree = merkle.InMemoryNodeStore()
    tree.append(segment_leaf(h) for h in hashes)
    root = merkle.root_at(tree, 5)
    segments = [
        {
            "key": f"segments/d/{i}.ts",
            "version_id": f"v{i}",
            "sha256": h,
            "leaf_index": i,
            "leaf_count": 5,
            "day_root": root.hex(),
            "path": [p.hex() for p in merkle.inclusion_proof(tree, i, 5)],
        }
        for i, h in enumerate(hashes[1:4], start=1)
    ]
    body = {
        "version": 1,
        "clip": {"sha256": hashlib.sha256(CLIP).hexdigest(), "size": len(CLIP)},
        "segments": segments,
        "purpose": "incident 2026-118, Renmin Rd — 人民路",
        "masking": {"privacy_masks": True, "faces_and_plates": False},
    }
    return sign(body, key)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_the_canonical_form_sorts_keys_has_no_spaces_and_leaves_out_the_signature() -> None:
    assert canonical({"b": 1, "a": {"d": [1, 2], "c": "é"}, "signature": {"x": 1}}) == (
        '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )


def test_a_signed_manifest_verifies_against_its_clip(key) -> None:
    manifest = _manifest(key)
    result = verify_export(CLIP, dumps(manifest), public_key_pem(key.public_key()))
    assert result.ok, result.failures


def test_a_flipped_byte_in_the_clip_fails_naming_the_clip(key) -> None:
    tampered = bytearray(CLIP)
    tampered[100] ^= 0x01
    result = verify_export(bytes(tampered), _manifest(key), key.public_key())
    assert not result.ok and [f.split(":")[0] for f in result.failures] == ["clip"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("purpose",), "curiosity"),
        (("masking", "privacy_masks"), False),
        (("segments", 0, "version_id"), "v9"),
    ],
)
def test_a_changed_manifest_field_fails_the_signature(key, path, value) -> None:
    manifest = copy.deepcopy(_manifest(key))
    target = manifest
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    result = verify_export(CLIP, json.dumps(manifest), key.public_key())
    assert not result.ok and any(f.startswith("signature") for f in result.failures)


def test_a_segment_whose_hash_is_not_on_its_day_path_fails_naming_the_segment(key) -> None:
    manifest = _manifest(key)
    manifest["segments"][1]["sha256"] = hashlib.sha256(b"other").hexdigest()
    manifest = sign(manifest, key)  # even re-signed by the right key, the proof does not hold
    result = verify_export(CLIP, manifest, key.public_key())
    assert result.failures == [
        f"segment segments/d/2.ts@v2: its inclusion path does not lead to day root "
        f"{manifest['segments'][1]['day_root']}"
    ]


def test_a_manifest_signed_by_another_key_fails(key) -> None:
    result = verify_export(CLIP, _manifest(key), Ed25519PrivateKey.generate().public_key())
    assert not result.ok and "another key" in result.failures[0]
