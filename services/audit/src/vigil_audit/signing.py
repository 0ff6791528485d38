"""The log's Ed25519 signing key: from AUDIT_SIGNING_KEY_FILE, or generated once and kept in the database."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_audit.domain import sth
from vigil_audit.domain.sth import SignedTreeHead, TreeHead
from vigil_audit.store import signing_key_table

log = logging.getLogger(__name__)

_KEY_ROW = 1


@dataclass(frozen=True)
class LogKey:
    """The signing key with its public half in the forms clients want."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return sth.key_id(self.public_key)

    @property
    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def sign(self, head: TreeHead) -> SignedTreeHead:
        return sth.sign_tree_head(self.private_key, head)


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


async def load_log_key(engine: AsyncEngine, key_file: str | None) -> LogKey:
    """The configured key file's key, else the one kept in the database (generated on first start).

    Replicas starting together agree: the first insert wins and the others read it back.
    """
    if key_file:
        pem_bytes = await asyncio.to_thread(Path(key_file).read_bytes)
        key = LogKey(sth.load_private_key(pem_bytes))
        log.info("signing tree heads with the configured key", extra={"key_id": key.key_id})
        return key
    t = signing_key_table.c
    async with engine.connect() as conn:
        pem = await conn.scalar(select(t.private_key_pem).where(t.id == _KEY_ROW))
    if pem is None:
        fresh = Ed25519PrivateKey.generate()
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    insert(signing_key_table).values(
                        id=_KEY_ROW,
                        key_id=sth.key_id(fresh.public_key()),
                        private_key_pem=_pem(fresh),
                        created_at=datetime.now(UTC),
                    )
                )
            key = LogKey(fresh)
            log.warning(
                "no AUDIT_SIGNING_KEY_FILE: generated the log's signing key and stored it in the database",
                extra={"key_id": key.key_id},
            )
            return key
        except IntegrityError:
            async with engine.connect() as conn:
                pem = await conn.scalar(select(t.private_key_pem).where(t.id == _KEY_ROW))
    key = LogKey(sth.load_private_key(pem))
    log.info("signing tree heads with the key kept in the database", extra={"key_id": key.key_id})
    return key
