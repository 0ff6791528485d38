"""Device signatures on segment uploads (ARC-4): the canonical header encoding, Ed25519 sign/verify, key files.

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
"""

# The code lives in vigil_kit.segment_header, shared with the archive (which re-verifies stored
# objects); this module keeps ingest's names.
from vigil_kit.segment_header import (
    DOMAIN_SEPARATOR,
    MAX_SEQUENCE,
    MAX_START_NS,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    TEST_VECTOR_CANONICAL,
    TEST_VECTOR_PRIVATE_KEY_PEM,
    TEST_VECTOR_PUBLIC_KEY_B64,
    TEST_VECTOR_SEED_HEX,
    TEST_VECTOR_SIGNATURE_B64,
    DeviceKey,
    KeyFileError,
    SegmentHeader,
    datetime_to_ns,
    format_rfc3339_ns,
    generate_device_key,
    header_faults,
    load_private_key_file,
    load_private_key_pem,
    load_public_key,
    ns_to_datetime,
    parse_rfc3339_ns,
    private_key_from_seed,
    private_key_pem,
    public_key_b64,
    sign,
    timedelta_to_ns,
    verify,
)

__all__ = [
    "DOMAIN_SEPARATOR",
    "MAX_SEQUENCE",
    "MAX_START_NS",
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "TEST_VECTOR_CANONICAL",
    "TEST_VECTOR_PRIVATE_KEY_PEM",
    "TEST_VECTOR_PUBLIC_KEY_B64",
    "TEST_VECTOR_SEED_HEX",
    "TEST_VECTOR_SIGNATURE_B64",
    "DeviceKey",
    "KeyFileError",
    "SegmentHeader",
    "datetime_to_ns",
    "format_rfc3339_ns",
    "generate_device_key",
    "header_faults",
    "load_private_key_file",
    "load_private_key_pem",
    "load_public_key",
    "ns_to_datetime",
    "parse_rfc3339_ns",
    "private_key_from_seed",
    "private_key_pem",
    "public_key_b64",
    "sign",
    "timedelta_to_ns",
    "verify",
]
