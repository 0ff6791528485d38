"""Device signatures on segment uploads (ARC-4): ingest's names for vigil_kit.segment_header.

The canonical segment header, its Ed25519 signature, the published test vector and the key-file format
are documented (and implemented) in vigil_kit.segment_header, which the archive shares to re-verify
stored objects.
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
