"""Identity: Ed25519 keys, EdDSA bearer tokens (mint and verify), and the principal of the current call."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil.common.v1 import identity_pb2
from vigil_kit.errors import Unauthenticated

if TYPE_CHECKING:
    from vigil_kit.settings import ServiceSettings

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
DEFAULT_ISSUER = "vigil"
SERVICE_ROLE = "ROLE_SERVICE"
SERVICE_PREFIX = "service:"

# The names a token may carry; anything else is refused (deny by default).
KNOWN_ROLES: frozenset[str] = frozenset(n for n in identity_pb2.Role.keys() if n != "ROLE_UNSPECIFIED")
KNOWN_UNIT_KINDS: frozenset[str] = frozenset(identity_pb2.UnitKind.keys())

# Verified tokens remembered per verifier (a city's active principals and services fit many times over).
TOKEN_CACHE_SIZE = 4096

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class AuthError(Unauthenticated):
    """A bearer token is missing, malformed, expired, foreign-signed or carries unacceptable claims.

    Messages describe what is wrong and never include the token itself.
    """


@dataclass(frozen=True)
class Principal:
    """The verified identity behind a call (the token's claims). unit_kind and roles are proto enum names."""

    id: str
    name: str
    unit: str
    unit_kind: str
    roles: frozenset[str]

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds at least one of `roles`."""
        return any(r in self.roles for r in roles)

    @property
    def is_service(self) -> bool:
        return SERVICE_ROLE in self.roles and self.id.startswith(SERVICE_PREFIX)

    @property
    def service_name(self) -> str | None:
        """The service a service principal stands for ("registry" for sub "service:registry"), else None."""
        return self.id.removeprefix(SERVICE_PREFIX) if self.is_service else None

    def to_proto(self) -> identity_pb2.Principal:
        return identity_pb2.Principal(
            id=self.id,
            name=self.name,
            unit=self.unit,
            unit_kind=identity_pb2.UnitKind.Value(self.unit_kind or "UNIT_KIND_UNSPECIFIED"),
            roles=[identity_pb2.Role.Value(r) for r in sorted(self.roles)],
        )

    @classmethod
    def from_proto(cls, msg: identity_pb2.Principal) -> Principal:
        return cls(
            id=msg.id,
            name=msg.name,
            unit=msg.unit,
            unit_kind=identity_pb2.UnitKind.Name(msg.unit_kind),
            roles=frozenset(
                identity_pb2.Role.Name(r) for r in msg.roles if r != identity_pb2.ROLE_UNSPECIFIED
            ),
        )


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed verification: who it names, who issued it and until when it is valid."""

    principal: Principal
    issuer: str
    expires_at: datetime
    issued_at: datetime | None = None
    token_id: str = ""


def generate_keypair() -> tuple[bytes, bytes]:
    """A new Ed25519 issuer key: (private key as PKCS8 PEM, public key as SPKI PEM)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _check_claims(unit_kind: object, roles: object) -> tuple[str, frozenset[str]]:
    """Validate unit_kind and roles names; raises ValueError naming the bad value."""
    if not isinstance(unit_kind, str) or unit_kind not in KNOWN_UNIT_KINDS:
        raise ValueError(f"unknown unit_kind {unit_kind!r}")
    if not isinstance(roles, list | tuple | set | frozenset) or not all(isinstance(r, str) for r in roles):
        raise ValueError("roles must be a list of role names")
    unknown = sorted(set(roles) - KNOWN_ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}")
    return unit_kind, frozenset(roles)


class TokenIssuer:
    """Mints EdDSA bearer tokens (used by `vigil up` for dev identities and service tokens)."""

    def __init__(self, private_key_pem: bytes | str, issuer: str = DEFAULT_ISSUER) -> None:
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the token issuer key must be an Ed25519 private key")
        self._key = key
        self.issuer = issuer

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(
        self,
        *,
        sub: str,
        name: str,
        unit: str,
        unit_kind: str,
        roles: Iterable[str],
        ttl_s: int = 43200,
        now: datetime | None = None,
    ) -> str:
        """A signed token with claims iss, sub, name, unit, unit_kind, roles, iat, exp, jti."""
        role_list = sorted(set(roles))
        _check_claims(unit_kind, role_list)
        if not sub:
            raise ValueError("a token needs a subject (sub)")
        issued = (now or datetime.now(UTC)).astimezone(UTC)
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "name": name,
            "unit": unit,
            "unit_kind": unit_kind,
            "roles": role_list,
            "iat": int(issued.timestamp()),
            "exp": int((issued + timedelta(seconds=ttl_s)).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def mint_service(self, service: str, *, unit: str = "", ttl_s: int = 43200) -> str:
        """A service's own token: sub "service:<name>", ROLE_SERVICE."""
        return self.mint(
            sub=f"{SERVICE_PREFIX}{service}",
            name=f"vigil-{service}",
            unit=unit,
            unit_kind="UNIT_KIND_UNSPECIFIED",
            roles=[SERVICE_ROLE],
            ttl_s=ttl_s,
        )


def load_public_keys(pems: Iterable[str | bytes]) -> list[Ed25519PublicKey]:
    """Parse PEM text (each item may hold several concatenated keys) into Ed25519 public keys."""
    keys: list[Ed25519PublicKey] = []
    for item in pems:
        data = item.encode() if isinstance(item, str) else item
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise ValueError("no PEM public key found in the configured issuer keys")
        for block in blocks:
            key = serialization.load_pem_public_key(block)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("issuer public keys must be Ed25519")
            keys.append(key)
    return keys


class TokenVerifier:
    """Verifies bearer tokens against the trusted issuers' Ed25519 public keys.

    A token that passed is remembered (by its SHA-256, at most `cache_size` of them, least recently used
    evicted) until it expires, so a principal's repeated calls skip the signature check. What the cache
    answers is exactly what verification would: only tokens that passed it are remembered, the trusted keys
    and issuer cannot change afterwards, and expiry — the one check whose answer changes with time — is
    re-checked on every hit with the same clock and leeway.
    """

    def __init__(
        self,
        public_keys_pem: Sequence[str | bytes],
        issuer: str = DEFAULT_ISSUER,
        leeway_s: int = 30,
        *,
        cache_size: int = TOKEN_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = load_public_keys(public_keys_pem)
        self.issuer = issuer
        self.leeway_s = leeway_s
        self._clock = clock
        self._cache_size = max(0, cache_size)
        # digest → (verified token, the first instant (epoch s) at which it counts as expired)
        self._cache: OrderedDict[bytes, tuple[VerifiedToken, float]] = OrderedDict()
        self._lock = threading.Lock()
        if not self._keys:
            logger.warning("no token issuer public keys configured: every authenticated call will be refused")

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenVerifier:
        pems: list[str | bytes] = list(settings.auth_public_keys)
        if settings.auth_public_keys_file:
            pems.append(Path(settings.auth_public_keys_file).read_bytes())
        return cls(pems, issuer=settings.auth_issuer)

    @property
    def cached(self) -> int:
        """How many verified tokens are remembered now."""
        return len(self._cache)

    def verify(self, token: str | None) -> VerifiedToken:
        """The verified claims of `token`; raises AuthError for anything unacceptable."""
        if not token:
            raise AuthError("missing bearer token")
        if not self._cache_size:
            return self._verify(token)[0]
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                if self._clock() < hit[1]:
                    self._cache.move_to_end(key)
                    return hit[0]
                del self._cache[key]  # expired: verification below refuses it
        verified, expired_at = self._verify(token)
        with self._lock:
            self._cache[key] = (verified, expired_at)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verified

    def _verify(self, token: str) -> tuple[VerifiedToken, float]:
        """Full verification: (the verified token, the instant from which it counts as expired)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed bearer token") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError(f"bearer token must be signed with {ALGORITHM}")
        claims = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    issuer=self.issuer,
                    leeway=self.leeway_s,
                    # Expiry is checked below with this verifier's clock, the same check a cache hit makes.
                    options={"require": ["iss", "sub", "exp", "iat"], "verify_exp": False},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # try the next trusted key
            except jwt.InvalidIssuerError:
                raise AuthError("bearer token was not issued by a trusted issuer") from None
            except jwt.MissingRequiredClaimError as exc:
                raise AuthError(f"bearer token lacks the {exc.claim!r} claim") from None
            except jwt.ImmatureSignatureError:
                raise AuthError("bearer token is not valid yet") from None
            except jwt.PyJWTError:
                raise AuthError("malformed bearer token") from None
        if claims is None:
            raise AuthError("bearer token is not signed by a trusted issuer key")
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise AuthError("malformed bearer token")
        expired_at = float(exp) + self.leeway_s
        if self._clock() >= expired_at:
            raise AuthError("bearer token has expired")
        try:
            unit_kind, roles = _check_claims(
                claims.get("unit_kind", "UNIT_KIND_UNSPECIFIED"), claims.get("roles", [])
            )
        except ValueError as exc:
            raise AuthError(f"bearer token claims refused: {exc}") from None
        for name in ("sub", "name", "unit"):
            if not isinstance(claims.get(name, ""), str):
                raise AuthError(f"bearer token claim {name!r} must be a string")
        principal = Principal(
            id=claims["sub"],
            name=claims.get("name", ""),
            unit=claims.get("unit", ""),
            unit_kind=unit_kind,
            roles=roles,
        )
        verified = VerifiedToken(
            principal=principal,
            issuer=claims["iss"],
            expires_at=datetime.fromtimestamp(exp, UTC),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            token_id=str(claims.get("jti", "")),
        )
        return verified, expired_at


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token from an `authorization: Bearer <token>` metadata entry, or None if absent."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("authorization metadata must be 'Bearer <token>'")
        return token.strip()
    return None


_current: contextvars.ContextVar[VerifiedToken | None] = contextvars.ContextVar("vigil_token", default=None)


def current_token() -> VerifiedToken:
    """The verified token of the call being served; raises Unauthenticated outside an authenticated call."""
    verified = _current.get()
    if verified is None:
        raise Unauthenticated("no authenticated principal for this call")
    return verified


def current_principal() -> Principal:
    """The principal of the call being served (set by the server's auth interceptor)."""
    return current_token().principal


def set_current_token(verified: VerifiedToken | None) -> contextvars.Token:
    """Bind a verified token to the current context (the interceptor's job; tests and workers may use it)."""
    return _current.set(verified)


def reset_current_token(reset: contextvars.Token) -> None:
    _current.reset(reset)
