"""Ingest's pure domain: signed segment headers (ARC-4), container checks, the upload session, keys and retention.

No gRPC, protobuf, SQL or object-store imports: the servicer translates wire messages into these
types and performs the I/O the session plans. Modules: signing (the canonical header encoding,
Ed25519, key files), container (MPEG-TS / fragmented-MP4 streaming checks, sniffing), upload (the
session state machine, object key, retain-until, replay decisions, object metadata).
"""

from .container import Container, ContainerError, Mp4Checker, TsChecker, checker_for, sniff
from .signing import DeviceKey, KeyFileError, SegmentHeader, generate_device_key, sign, verify
from .upload import (
    Part,
    Received,
    Replay,
    UploadHeader,
    UploadLimits,
    UploadPlan,
    UploadSession,
    decide_replay,
    object_key,
    object_metadata,
    plan_upload,
    retain_until,
)

__all__ = [
    "Container",
    "ContainerError",
    "DeviceKey",
    "KeyFileError",
    "Mp4Checker",
    "Part",
    "Received",
    "Replay",
    "SegmentHeader",
    "TsChecker",
    "UploadHeader",
    "UploadLimits",
    "UploadPlan",
    "UploadSession",
    "checker_for",
    "decide_replay",
    "generate_device_key",
    "object_key",
    "object_metadata",
    "plan_upload",
    "retain_until",
    "sign",
    "sniff",
    "verify",
]
