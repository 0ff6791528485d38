"""Signed tree heads of the audit log (AUD-1): their canonical bytes, Ed25519 signing and verification.

A tree head says "the log had ``tree_size`` leaves with root ``root_hash`` at ``timestamp``". The log's
Ed25519 key signs these exact ASCII bytes (four lines, each ending in ``\\n``)::

    vigil.audit.v1.SignedTreeHead
    <tree_size in decimal, no leading zeros>
    <root_hash as 64 lowercase hex digits>
    <timestamp, RFC 3339 UTC with nine fractional digits>

The first line separates these signatures from anything else the key could ever sign. In an export a
signed tree head is the object ``{"tree_size": n, "root_hash": hex, "timestamp": text, "signature":
hex of the 64-byte Ed25519 signature}`` (:meth:`SignedTreeHead.to_dict`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil_audit.domain.leaf import format_time
from vigil_kit.merkle import HASH_SIZE

DOMAIN_LINE = "vigil.audit.v1.SignedTreeHead"
SIGNATURE_SIZE = 64

_TIMESTAMP_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6})000Z", re.ASCII)
_HEX_RE = re.compile(r"[0-9a-f]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The log's size and root at one moment (timestamps are kept to the microsecond)."""

    tree_size: int
    root_hash: bytes
    timestamp: datetime

    def __post_init__(self) -> None:
        if self.tree_size < 0:
            raise ValueError(f"tree size {self.tree_size} is negative")
        if len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"a root hash is {HASH_SIZE} bytes")
        if self.timestamp.tzinfo is None:
            raise ValueError("a tree head's timestamp must carry its time zone")

    def to_bytes(self) -> bytes:
        """The canonical bytes the log signs (see the module docstring)."""
        return (
            f"{DOMAIN_LINE}\n{self.tree_size}\n{self.root_hash.hex()}\n{format_time(self.timestamp)}\n"
        ).encode("ascii")


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A tree head with the log's Ed25519 signature over :meth:`TreeHead.to_bytes`."""

    head: TreeHead
    signature: bytes

    @property
    def tree_size(self) -> int:
        return self.head.tree_size

    @property
    def root_hash(self) -> bytes:
        return self.head.root_hash

    def to_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.head.tree_size,
            "root_hash": self.head.root_hash.hex(),
            "timestamp": format_time(self.head.timestamp),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedTreeHead:
        """Read the export form; raises ValueError on anything that is not exactly it."""
        try:
            size, root, stamp, signature = (
                data["tree_size"],
                data["root_hash"],
                data["timestamp"],
                data["signature"],
            )
        except KeyError as exc:
            raise ValueError(f"a signed tree head lacks {exc.args[0]!r}") from None
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("tree_size is an integer")
        match = _TIMESTAMP_RE.fullmatch(stamp) if isinstance(stamp, str) else None
        if match is None:
            raise ValueError(f"timestamp {stamp!r} is not RFC 3339 UTC to the microsecond, as nine digits")
        return cls(
            TreeHead(size, _unhex(root, "root_hash"), datetime.fromisoformat(match[1]).replace(tzinfo=UTC)),
            _unhex(signature, "signature"),
        )


def _unhex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not _HEX_RE.fullmatch(value):
        raise ValueError(f"{name} is lowercase hex")
    return bytes.fromhex(value)


def sign(private_key: Ed25519PrivateKey, head: TreeHead) -> bytes:
    """The log's Ed25519 signature over the tree head's canonical bytes."""
    return private_key.sign(head.to_bytes())


def verify(public_key: Ed25519PublicKey, head: TreeHead, signature: bytes) -> bool:
    """Whether ``signature`` is the log key's signature over this tree head."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        public_key.verify(signature, head.to_bytes())
    except InvalidSignature:
        return False
    return True


def sign_tree_head(private_key: Ed25519PrivateKey, head: TreeHead) -> SignedTreeHead:
    return SignedTreeHead(head, sign(private_key, head))


def load_private_key(pem: bytes | str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PKCS#8 PEM (as ``vigil_kit.auth.generate_keypair`` makes)."""
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the audit log signs with an Ed25519 key")
    return key


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    """An Ed25519 public key from SubjectPublicKeyInfo PEM."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the audit log's public key is an Ed25519 key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a log key: SHA-256 of its raw 32 bytes, first 16 hex digits."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
