"""Signed segment headers (ARC-4): the canonical encoding, Ed25519 sign/verify, keys, the stored-object metadata codec.

Shared by ingest (which checks and stores uploads) and the archive (which re-verifies stored objects
when it re-indexes them from storage alone); pure, so neither pulls in the other's dependencies.

Every upload's header is signed by the device's registered Ed25519 key (RFC 8032, pure Ed25519, no
pre-hash, no context) over the **canonical segment header**: six lines of ASCII, each ended by one
line feed (0x0A), no carriage returns, no byte-order mark, no trailing blank line::

    vigil.ingest.v1.SegmentHeader
    <device_id>
    <sequence>
    <start_time>
    <duration_ns>
    <sha256>

1. The literal ``vigil.ingest.v1.SegmentHeader`` — a domain separator, so a signature over a segment
   header can never be replayed as a signature over anything else the same key may sign later.
2. ``device_id`` — the GB/T 28181 id exactly as registered: 20 ASCII digits.
3. ``sequence`` — the upload's ``sequence`` (uint64) in decimal, no sign, no leading zeros
   (``0`` for zero).
4. ``start_time`` — ``google.protobuf.Timestamp`` ``start_time`` as RFC 3339 in UTC with **exactly
   nine** fractional digits and an upper-case ``Z``: ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (four-digit
   year, zero-padded fields, upper-case ``T``). Nine digits are exactly the Timestamp's ``nanos``
   zero-padded, so the text is a pure function of the wire value: no rounding, and one instant has
   one spelling. Years 1970–9999 only.
5. ``duration_ns`` — ``google.protobuf.Duration`` ``duration`` as a whole number of nanoseconds
   (``seconds * 1000000000 + nanos``) in decimal, no sign, no leading zeros; it must be positive.
   Nanoseconds, not milliseconds, for the same reason: the gateway cuts at keyframes on a 90 kHz
   clock, so a duration is rarely a whole number of milliseconds, and any rounding rule is one more
   thing a third-party implementation could get subtly wrong.
6. ``sha256`` — the SHA-256 of the segment's bytes, 64 lower-case hex digits.

Why this shape: every field has a fixed, tiny alphabet (digits, hex, the RFC 3339 characters), so no
field can contain the separator and no escaping rule exists; lines are readable in logs and tests;
and any language produces it with string formatting alone — no protobuf serialisation (not canonical
across implementations), no JSON (key order, number formats), no length prefixes. Only the fields
issue-listed as the device's claims are signed: the container, codec and size are checked against
the bytes themselves (container sniffing, the byte count, the hash), and the hash binds the bytes.
Values that do not meet the format are refused, never normalised, so a signer and a verifier can
never disagree on the bytes.

The signature travels as the header's ``signature`` field: the 64 raw bytes of the Ed25519
signature (base64 where text is needed). The device's public key is registered in the registry as
base64 of its raw 32 bytes.

Test vector (the key is RFC 8032 §7.1 TEST 1, so an implementation can check its Ed25519 library
against the RFC first)::

    private key seed  9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
    public key (b64)  11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
    device_id         32020501501320000001
    sequence          42
    start_time        seconds 1795861800, nanos 40000000  (2026-11-28T10:30:00.04Z)
    duration          seconds 2, nanos 0
    sha256            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    canonical bytes   b"vigil.ingest.v1.SegmentHeader\\n32020501501320000001\\n42\\n"
                      b"2026-11-28T10:30:00.040000000Z\\n2000000000\\n"
                      b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\\n"
                      (161 bytes)
    signature (b64)   3dZVBvwyCkch5MU7Byn6wtnLGXQoryeV9Ntow6MEdOGxn6+fsRYJk3f9sskLBx/8X2c+hYsMNl4bSM4LM5qLCA==

The same key as a PKCS#8 PEM key file, and the signature reproduced with OpenSSL 3 alone::

    -----BEGIN PRIVATE KEY-----
    MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
    -----END PRIVATE KEY-----

    $ printf 'vigil.ingest.v1.SegmentHeader\\n32020501501320000001\\n42\\n2026-11-28T10:30:00.040000000Z\\n2000000000\\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\\n' > header
    $ openssl pkeyutl -sign -inkey key.pem -rawin -in header | base64 -w0

Key files are PKCS#8 PEM Ed25519 private keys, as ``openssl genpkey -algorithm ed25519`` writes them.

Stored objects carry the upload header and its signature as S3 user metadata (`object_metadata`,
`header_from_metadata`), so a stored segment can be re-verified and re-indexed from storage alone.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil_kit.errors import InvalidArgument, Unauthenticated

DOMAIN_SEPARATOR = "vigil.ingest.v1.SegmentHeader"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
MAX_SEQUENCE = 2**64 - 1  # the wire field is a uint64
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 9999-12-31T23:59:59.999999999Z: the last instant google.protobuf.Timestamp (and RFC 3339) can spell.
MAX_START_NS = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds()) * _NS + _NS - 1

_DEVICE_ID = re.compile(r"[0-9]{20}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

TEST_VECTOR_SEED_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
TEST_VECTOR_PUBLIC_KEY_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
TEST_VECTOR_CANONICAL = (
    b"vigil.ingest.v1.SegmentHeader\n"
    b"32020501501320000001\n"
    b"42\n"
    b"2026-11-28T10:30:00.040000000Z\n"
    b"2000000000\n"
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
)
TEST_VECTOR_SIGNATURE_B64 = (
    "3dZVBvwyCkch5MU7Byn6wtnLGXQoryeV9Ntow6MEdOGxn6+fsRYJk3f9sskLBx/8X2c+hYsMNl4bSM4LM5qLCA=="
)
TEST_VECTOR_PRIVATE_KEY_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    b"-----END PRIVATE KEY-----\n"
)


class KeyFileError(ValueError):
    """A key file or key string that is not an Ed25519 key in the expected encoding."""


@dataclass(frozen=True)
class SegmentHeader:
    """The signed claims of one upload. Construction refuses any value the canonical encoding cannot spell.

    Times are integers of nanoseconds so that a header read from the wire (Timestamp/Duration
    seconds + nanos) round-trips without loss; `of()` builds one from datetime/timedelta.
    """

    device_id: str
    sequence: int
    start_ns: int  # Unix time, UTC, nanoseconds: Timestamp.seconds * 1e9 + Timestamp.nanos
    duration_ns: int  # Duration.seconds * 1e9 + Duration.nanos, > 0
    sha256: str  # lower-case hex

    def __post_init__(self) -> None:
        faults = header_faults(self)
        if faults:
            field, message = faults[0]
            raise InvalidArgument(message, field=field, violations=faults[1:])

    @classmethod
    def of(
        cls,
        *,
        device_id: str,
        sequence: int,
        start: datetime,
        duration: timedelta | float,
        sha256: str,
    ) -> SegmentHeader:
        """A header from an aware datetime and a timedelta (or seconds); both at microsecond precision."""
        if not isinstance(duration, timedelta):
            duration = timedelta(seconds=duration)
        return cls(
            device_id=device_id,
            sequence=sequence,
            start_ns=datetime_to_ns(start),
            duration_ns=timedelta_to_ns(duration),
            sha256=sha256,
        )

    @property
    def start(self) -> datetime:
        """The start time as an aware UTC datetime (truncated to microseconds)."""
        return ns_to_datetime(self.start_ns)

    @property
    def end(self) -> datetime:
        return ns_to_datetime(self.start_ns + self.duration_ns)

    @property
    def duration(self) -> timedelta:
        return timedelta(microseconds=self.duration_ns // 1000)

    @property
    def start_time_text(self) -> str:
        """Line 4 of the canonical encoding: RFC 3339 UTC with exactly nine fractional digits."""
        return format_rfc3339_ns(self.start_ns)

    def canonical_bytes(self) -> bytes:
        """The exact bytes a device signs (see the module docstring)."""
        lines = (
            DOMAIN_SEPARATOR,
            self.device_id,
            str(self.sequence),
            self.start_time_text,
            str(self.duration_ns),
            self.sha256,
        )
        return "".join(f"{line}\n" for line in lines).encode("ascii")


def header_faults(header: SegmentHeader) -> list[tuple[str, str]]:
    """Every (field, problem) that keeps `header` from having a canonical encoding; empty when it has one."""
    faults: list[tuple[str, str]] = []
    if not isinstance(header.device_id, str) or not _DEVICE_ID.fullmatch(header.device_id):
        faults.append(
            ("header.device_id", f"device_id must be 20 digits (GB/T 28181), got {header.device_id!r}")
        )
    if not _is_int(header.sequence) or not 0 <= header.sequence <= MAX_SEQUENCE:
        faults.append(("header.sequence", f"sequence must be an integer 0..2^64-1, got {header.sequence!r}"))
    if not _is_int(header.start_ns) or not 0 <= header.start_ns <= MAX_START_NS:
        faults.append(
            (
                "header.start_time",
                f"start_time must lie in 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z, "
                f"got {header.start_ns!r} ns since the epoch",
            )
        )
    if not _is_int(header.duration_ns) or header.duration_ns <= 0:
        faults.append(("header.duration", f"duration must be positive, got {header.duration_ns!r} ns"))
    if not isinstance(header.sha256, str) or not _SHA256_HEX.fullmatch(header.sha256):
        faults.append(("header.sha256", f"sha256 must be 64 lower-case hex digits, got {header.sha256!r}"))
    return faults


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def datetime_to_ns(value: datetime, *, field: str = "header.start_time") -> int:
    """Nanoseconds since the Unix epoch of an aware datetime; naive datetimes are refused (no guessing)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{field} must be timezone-aware, got {value!r}", field=field)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def timedelta_to_ns(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * _NS + value.microseconds * 1000


def ns_to_datetime(ns: int) -> datetime:
    seconds, nanos = divmod(ns, _NS)
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def format_rfc3339_ns(ns: int) -> str:
    """RFC 3339 UTC with exactly nine fractional digits: 2026-11-28T10:30:00.040000000Z."""
    seconds, nanos = divmod(ns, _NS)
    t = _EPOCH + timedelta(seconds=seconds)
    # Explicit widths rather than strftime: %Y does not zero-pad years below 1000 on every platform.
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{nanos:09d}Z"


_RFC3339_NS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{9})Z")


def parse_rfc3339_ns(text: str) -> int:
    """The inverse of `format_rfc3339_ns`, accepting only that exact spelling (ValueError otherwise)."""
    match = _RFC3339_NS.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ")
    *fields, nanos = (int(g) for g in match.groups())
    return datetime_to_ns(datetime(*fields, tzinfo=UTC)) + nanos


# --- signing and verification -------------------------------------------------------------------


def sign(private_key: Ed25519PrivateKey, header: SegmentHeader) -> bytes:
    """The 64-byte Ed25519 signature of the header's canonical bytes."""
    return private_key.sign(header.canonical_bytes())


def verify(
    public_key: bytes | str | Ed25519PublicKey,
    header: SegmentHeader,
    signature: bytes | None,
    *,
    field: str = "header.signature",
) -> None:
    """ARC-4: accept only the registered key's signature over exactly this header; Unauthenticated otherwise.

    `public_key` is the registry's form (base64 of the raw 32 bytes, as str), the raw 32 bytes, or a
    key object. A device without a registered key cannot upload: that is also Unauthenticated.
    """
    if not signature:
        raise Unauthenticated(
            f"upload from device {header.device_id} carries no signature (ARC-4)", rule="ARC-4", field=field
        )
    try:
        key = load_public_key(public_key)
    except KeyFileError as e:
        raise Unauthenticated(
            f"device {header.device_id} has no usable registered public key: {e} (ARC-4)",
            rule="ARC-4",
            field=field,
        ) from None
    if len(signature) != SIGNATURE_BYTES:
        raise Unauthenticated(
            f"signature must be {SIGNATURE_BYTES} bytes of Ed25519, got {len(signature)} (ARC-4)",
            rule="ARC-4",
            field=field,
        )
    try:
        key.verify(bytes(signature), header.canonical_bytes())
    except InvalidSignature:
        raise Unauthenticated(
            f"signature does not verify with device {header.device_id}'s registered key over "
            f"the segment header (sequence {header.sequence}) (ARC-4)",
            rule="ARC-4",
            field=field,
        ) from None


# --- keys -----------------------------------------------------------------------------------------


def load_public_key(value: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    """An Ed25519 public key from raw 32 bytes, base64 of them (str), or SPKI PEM (bytes or str)."""
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, str):
        if value.lstrip().startswith("-----BEGIN"):
            return _public_from_pem(value.encode("ascii"))
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError("public key is not valid base64") from None
    elif value.lstrip().startswith(b"-----BEGIN"):
        return _public_from_pem(value)
    if len(value) != PUBLIC_KEY_BYTES:
        raise KeyFileError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(value)}")
    return Ed25519PublicKey.from_public_bytes(bytes(value))


def _public_from_pem(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise KeyFileError(f"not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def load_private_key_pem(pem: bytes | str, password: bytes | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from PKCS#8 PEM (`openssl genpkey -algorithm ed25519`)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"not a PKCS#8 PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def load_private_key_file(path: str | Path, password: bytes | None = None) -> Ed25519PrivateKey:
    """Read a key file (PKCS#8 PEM Ed25519); KeyFileError names the file when it is anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    try:
        return load_private_key_pem(data, password)
    except KeyFileError as e:
        raise KeyFileError(f"{path}: {e}") from None


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: the same bytes `openssl genpkey -algorithm ed25519` writes."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The registry's form of a device key: base64 of the raw 32-byte public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """The key for a 32-byte RFC 8032 seed (test vectors, deterministic simulators)."""
    return Ed25519PrivateKey.from_private_bytes(seed)


@dataclass(frozen=True)
class DeviceKey:
    """A fresh device key: the PEM to keep on the device and the base64 public key to register."""

    private_key: Ed25519PrivateKey
    private_pem: bytes
    public_key_b64: str


def generate_device_key() -> DeviceKey:
    key = Ed25519PrivateKey.generate()
    return DeviceKey(key, private_key_pem(key), public_key_b64(key))


# --- containers and the upload header -------------------------------------------------------------


class Container(StrEnum):
    """A segment's container. The value is the FFmpeg/PyAV format name used to write it."""

    MPEG_TS = "mpegts"
    FMP4 = "mp4"

    @property
    def extension(self) -> str:
        """The object key's suffix."""
        return "ts" if self is Container.MPEG_TS else "mp4"

    @property
    def content_type(self) -> str:
        return "video/mp2t" if self is Container.MPEG_TS else "video/mp4"

    @property
    def label(self) -> str:
        return "MPEG-TS" if self is Container.MPEG_TS else "fragmented MP4"


@dataclass(frozen=True)
class UploadHeader:
    """The first message of an upload: the signed claims plus what the bytes are said to be."""

    segment: SegmentHeader
    container: Container | None
    codec: str
    size: int
    signature: bytes = b""

    @property
    def device_id(self) -> str:
        return self.segment.device_id

    @property
    def sequence(self) -> int:
        return self.segment.sequence

    @property
    def sha256(self) -> str:
        return self.segment.sha256


# --- object metadata: the header travels with the object ------------------------------------------

_META = "x-amz-meta-vigil-"


def object_metadata(upload: UploadHeader) -> dict[str, str]:
    """S3 user metadata carrying the signed header and its signature, so storage alone can re-index a segment.

    Values are ASCII (S3 metadata is sent as HTTP headers); the start time is the canonical
    encoding's line, so `verify` can be re-run on a stored object at any time.
    """
    segment = upload.segment
    assert upload.container is not None
    return {
        f"{_META}device-id": segment.device_id,
        f"{_META}sequence": str(segment.sequence),
        f"{_META}start-time": segment.start_time_text,
        f"{_META}duration-ns": str(segment.duration_ns),
        f"{_META}sha256": segment.sha256,
        f"{_META}container": upload.container.value,
        f"{_META}codec": upload.codec,
        f"{_META}size": str(upload.size),
        f"{_META}signature": base64.b64encode(upload.signature).decode("ascii"),
    }


def header_from_metadata(metadata: Mapping[str, str]) -> UploadHeader:
    """The upload header stored by `object_metadata` (keys case-insensitive, as HTTP delivers them)."""
    meta = {k.lower(): v for k, v in metadata.items()}
    try:
        segment = SegmentHeader(
            device_id=meta[f"{_META}device-id"],
            sequence=int(meta[f"{_META}sequence"]),
            start_ns=parse_rfc3339_ns(meta[f"{_META}start-time"]),
            duration_ns=int(meta[f"{_META}duration-ns"]),
            sha256=meta[f"{_META}sha256"],
        )
        return UploadHeader(
            segment=segment,
            container=Container(meta[f"{_META}container"]),
            codec=meta[f"{_META}codec"],
            size=int(meta[f"{_META}size"]),
            signature=base64.b64decode(meta[f"{_META}signature"], validate=True),
        )
    except (KeyError, ValueError) as e:
        raise InvalidArgument(
            f"object metadata does not hold a segment header: {e}", field="metadata"
        ) from None
