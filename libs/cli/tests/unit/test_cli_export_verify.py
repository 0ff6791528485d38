"""`vigil export verify clip.mp4 manifest.json`: exit 0 when the clip matches its signed manifest, 1 naming what failed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from vigil_cli.main import app
from vigil_kit import merkle
from vigil_media.evidence import dumps, public_key_pem, segment_leaf, sign

runner = CliRunner()
CLIP = b"\x00\x00\x00\x18ftypisom" + b"frames" * 500


@pytest.fixture
def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    key = Ed25519PrivateKey.generate()
    segment = hashlib.sha256(b"segment").hexdigest()
    manifest = sign(
        {
            "clip": {"sha256": hashlib.sha256(CLIP).hexdigest(), "size": len(CLIP)},
            "segments": [
                {
                    "key": "segments/d/1.ts",
                    "version_id": "v1",
                    "sha256": segment,
                    "leaf_index": 0,
                    "leaf_count": 1,
                    "day_root": merkle.merkle_root([segment_leaf(segment)]).hex(),
                    "path": [],
                }
            ],
            "purpose": "case 2026-118",
        },
        key,
    )
    clip, doc, pem = tmp_path / "clip.mp4", tmp_path / "clip.manifest.json", tmp_path / "archive.pem"
    clip.write_bytes(CLIP)
    doc.write_bytes(dumps(manifest))
    pem.write_text(public_key_pem(key.public_key()))
    return clip, doc, pem


def test_a_clip_matching_its_manifest_verifies_with_exit_0(export) -> None:
    clip, doc, pem = export
    result = runner.invoke(app, ["export", "verify", str(clip), str(doc), "--key", str(pem)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output


def test_a_flipped_byte_in_the_clip_exits_1_naming_the_clip(export) -> None:
    clip, doc, pem = export
    data = bytearray(clip.read_bytes())
    data[20] ^= 0x80
    clip.write_bytes(bytes(data))
    result = runner.invoke(app, ["export", "verify", str(clip), str(doc), "--key", str(pem)])
    assert result.exit_code == 1 and "FAILED clip: sha256" in result.output


def test_a_changed_manifest_field_exits_1_naming_the_signature(export) -> None:
    clip, doc, pem = export
    manifest = json.loads(doc.read_bytes())
    manifest["purpose"] = "curiosity"
    doc.write_text(json.dumps(manifest))
    result = runner.invoke(app, ["export", "verify", str(clip), str(doc), "--key", str(pem)])
    assert result.exit_code == 1 and "FAILED signature" in result.output
