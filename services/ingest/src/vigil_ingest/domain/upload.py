"""The upload session as pure logic: header then chunks, limits, running SHA-256, storage plan, key, retention, replays.

The servicer feeds an `UploadSession` the stream's messages in order and does the I/O the session
asks for; every refusal is a vigil_kit error naming the header field (`header.size`, ...) or the
message (`header`, `chunk`) at fault, with the rule id where the regulation's rule applies.

A session's order of work (the servicer's, around it): header → device known and active → signature
(`signing.verify`, before anything else is answered, replays included) → `decide_replay` → chunks
(container check, hash, parts) → `finish` (size and hash must match the header) → store.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from fractions import Fraction

from vigil_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, VigilError

# The upload header and its object-metadata codec are shared with the archive (re-indexing from storage).
from vigil_kit.segment_header import UploadHeader
from vigil_kit.segment_header import header_from_metadata as header_from_metadata
from vigil_kit.segment_header import object_metadata as object_metadata

from .container import Container, ContainerChecker, ContainerError, checker_for, sniff
from .signing import SegmentHeader, datetime_to_ns, format_rfc3339_ns, ns_to_datetime

MiB = 1024 * 1024
# S3 multipart rules: every part but the last is 5 MiB..5 GiB; at most 10,000 parts.
S3_MIN_PART = 5 * MiB
S3_MAX_PART = 5 * 1024 * MiB
S3_MAX_PARTS = 10_000

_CODEC = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may be, and how it is stored. The service builds it from its settings.

    The per-upload buffer is at most max(single_put_max_bytes, part_bytes) + one chunk: a segment up
    to `single_put_max_bytes` is held whole and goes up as one PUT once every byte has arrived and
    been checked (no half-stored object, and one request instead of three for the common 2 s
    segment of a few hundred kilobytes); a larger one goes up as a multipart upload of
    `part_bytes` parts while it streams.
    """

    max_segment_bytes: int = 256 * MiB
    max_chunk_bytes: int = MiB
    single_put_max_bytes: int = 8 * MiB
    part_bytes: int = 8 * MiB
    max_duration: timedelta = timedelta(minutes=10)
    # How far a segment's start may lie ahead of the service's clock: device clocks drift (GB/T 28181
    # devices sync by NTP or SIP Date); a start further ahead is a broken clock, not footage.
    max_clock_skew: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if not S3_MIN_PART <= self.part_bytes <= S3_MAX_PART:
            raise ValueError(f"part_bytes must be within S3's 5 MiB..5 GiB, got {self.part_bytes}")
        if not 0 < self.single_put_max_bytes <= S3_MAX_PART:
            raise ValueError(f"single_put_max_bytes must be within 1..5 GiB, got {self.single_put_max_bytes}")
        if self.max_chunk_bytes <= 0 or self.max_segment_bytes <= 0:
            raise ValueError("max_chunk_bytes and max_segment_bytes must be positive")


@dataclass(frozen=True)
class UploadPlan:
    """How the bytes go to storage: one PUT at the end, or a multipart upload of `part_bytes` parts."""

    size: int
    multipart: bool
    part_bytes: int  # the size of every part but the last (multipart); the whole size otherwise
    parts: int

    @property
    def buffer_bytes(self) -> int:
        """The most bytes the session holds at once (excluding the chunk in hand)."""
        return self.part_bytes


def plan_upload(size: int, limits: UploadLimits) -> UploadPlan:
    """Single PUT up to `single_put_max_bytes`; beyond, parts of `part_bytes` (grown to stay ≤ 10,000 parts)."""
    if size <= limits.single_put_max_bytes:
        return UploadPlan(size=size, multipart=False, part_bytes=size, parts=1)
    part = max(limits.part_bytes, math.ceil(size / S3_MAX_PARTS))
    return UploadPlan(size=size, multipart=True, part_bytes=part, parts=math.ceil(size / part))


@dataclass(frozen=True)
class Part:
    """Bytes to store: part `number` (1-based) of a multipart upload, or the whole object (number 1)."""

    number: int
    data: bytes

    def checksum_sha256_b64(self) -> str:
        """The part's SHA-256 as S3's x-amz-checksum-sha256 wants it (base64 of the digest)."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode("ascii")


@dataclass(frozen=True)
class Received:
    """A complete, checked upload: its size and hash (equal to the header's) and the parts still to store."""

    size: int
    sha256: str
    sha256_b64: str  # base64 of the digest: the x-amz-checksum-sha256 of a single PUT
    parts: tuple[Part, ...]  # single PUT: the whole object; multipart: the last part(s)
    multipart: bool


class State(Enum):
    AWAITING_HEADER = "awaiting header"
    RECEIVING = "receiving"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass
class UploadSession:
    """One upload's state machine. Pure: no clock (`now` is passed in), no I/O.

    `header()` once, then `chunk()` for each chunk (it returns multipart parts as they fill), then
    `finish()`. Any refusal leaves the session FAILED; later calls refuse again with the first error.
    """

    limits: UploadLimits = field(default_factory=UploadLimits)
    state: State = State.AWAITING_HEADER
    upload: UploadHeader | None = None
    plan: UploadPlan | None = None
    received: int = 0
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)
    _checker: ContainerChecker | None = field(default=None, repr=False)
    _buffer: list[bytes] = field(default_factory=list, repr=False)
    _buffered: int = 0
    _next_part: int = 1
    _failure: VigilError | None = None

    # -- messages ---------------------------------------------------------------------------------

    def header(self, upload: UploadHeader, *, now: datetime) -> UploadPlan:
        """Accept the first message; refuse a repeated header and any header the limits do not allow."""
        if self.state is not State.AWAITING_HEADER:
            raise self._fail(
                InvalidArgument(
                    "the header was already sent: an upload has exactly one header, first", field="header"
                )
            )
        try:
            check_header(upload, self.limits, now=now)
        except VigilError as e:
            raise self._fail(e) from None
        assert upload.container is not None  # check_header refuses a missing container
        self.upload = upload
        self.plan = plan_upload(upload.size, self.limits)
        self._checker = checker_for(upload.container)
        self.state = State.RECEIVING
        return self.plan

    def chunk(self, data: bytes | bytearray | memoryview) -> list[Part]:
        """Accept one chunk; return the multipart parts it completed (always empty for a single PUT)."""
        self._expect_receiving()
        assert self.upload is not None and self.plan is not None and self._checker is not None
        if len(data) > self.limits.max_chunk_bytes:
            raise self._fail(
                InvalidArgument(
                    f"a chunk is at most {self.limits.max_chunk_bytes} bytes, got {len(data)}", field="chunk"
                )
            )
        if self.received + len(data) > self.upload.size:
            raise self._fail(
                InvalidArgument(
                    f"bytes past the declared size: header.size is {self.upload.size}, "
                    f"{self.received + len(data)} bytes arrived",
                    field="chunk",
                )
            )
        try:
            self._checker.feed(data)
        except ContainerError as e:
            raise self._fail(self._explain(e, data)) from None
        self._hash.update(data)
        self.received += len(data)
        self._buffer.append(bytes(data))
        self._buffered += len(data)
        parts: list[Part] = []
        # Emit only full parts while more bytes are due, so the last part is never empty.
        while (
            self.plan.multipart
            and self._buffered >= self.plan.part_bytes
            and self.received < self.upload.size
        ):
            parts.append(self._take(self.plan.part_bytes))
        return parts

    def finish(self) -> Received:
        """The client closed its stream: every declared byte must have arrived, be well formed and hash right."""
        self._expect_receiving()
        assert self.upload is not None and self.plan is not None and self._checker is not None
        if self.received != self.upload.size:
            raise self._fail(
                InvalidArgument(
                    f"size mismatch: header.size is {self.upload.size}, {self.received} bytes arrived",
                    field="header.size",
                )
            )
        try:
            self._checker.finish()
        except ContainerError as e:
            raise self._fail(e) from None
        digest = self._hash.digest()
        if digest.hex() != self.upload.sha256:
            raise self._fail(
                InvalidArgument(
                    f"hash mismatch: header.sha256 is {self.upload.sha256}, the bytes that arrived hash to "
                    f"{digest.hex()} (ARC-4)",
                    rule="ARC-4",
                    field="header.sha256",
                )
            )
        parts: list[Part] = []
        while self._buffered:
            parts.append(self._take(min(self._buffered, self.plan.part_bytes)))
        self.state = State.COMPLETE
        return Received(
            size=self.received,
            sha256=digest.hex(),
            sha256_b64=base64.b64encode(digest).decode("ascii"),
            parts=tuple(parts),
            multipart=self.plan.multipart,
        )

    # -- internals --------------------------------------------------------------------------------

    def _take(self, n: int) -> Part:
        joined = b"".join(self._buffer)
        data, rest = joined[:n], joined[n:]
        self._buffer = [rest] if rest else []
        self._buffered = len(rest)
        part = Part(self._next_part, data)
        self._next_part += 1
        return part

    def _expect_receiving(self) -> None:
        if self.state is State.AWAITING_HEADER:
            raise self._fail(
                InvalidArgument(
                    "the header is missing: the first message of an upload must be its header", field="header"
                )
            )
        if self.state is State.FAILED:
            assert self._failure is not None
            raise self._failure
        if self.state is State.COMPLETE:
            raise FailedPrecondition("the upload is already complete", field="chunk")

    def _fail(self, error: VigilError) -> VigilError:
        self.state = State.FAILED
        self._failure = self._failure or error
        self._buffer.clear()
        self._buffered = 0
        return error

    def _explain(self, error: ContainerError, data: bytes | bytearray | memoryview) -> ContainerError:
        """At byte 0, say what the bytes look like instead, when they look like the other container."""
        if error.offset != 0 or self.received != 0:
            return error
        looks = sniff(data)
        if looks is None or looks is error.container:
            return error
        error.message = f"{error.message} (the bytes look like {looks.label}: check header.container)"
        error.args = (error.message,)
        return error


def check_header(upload: UploadHeader, limits: UploadLimits, *, now: datetime) -> None:
    """Everything about a header that needs no device, key or storage: container, codec, size, times."""
    if upload.container is None:
        raise InvalidArgument(
            "header.container is required: MPEG-TS or fragmented MP4", field="header.container"
        )
    if not isinstance(upload.codec, str) or not _CODEC.fullmatch(upload.codec):
        raise InvalidArgument(
            f"header.codec must name the codec in lower case (e.g. 'h264'), got {upload.codec!r}",
            field="header.codec",
        )
    if upload.size <= 0:
        raise InvalidArgument(f"header.size must be positive, got {upload.size}", field="header.size")
    if upload.size > limits.max_segment_bytes:
        raise InvalidArgument(
            f"header.size {upload.size} exceeds the maximum segment size of {limits.max_segment_bytes} bytes",
            field="header.size",
        )
    if upload.segment.duration > limits.max_duration:
        raise InvalidArgument(
            f"header.duration {upload.segment.duration} exceeds the maximum of {limits.max_duration}",
            field="header.duration",
        )
    latest = datetime_to_ns(now + limits.max_clock_skew, field="now")
    if upload.segment.start_ns > latest:
        raise InvalidArgument(
            f"header.start_time {format_rfc3339_ns(upload.segment.start_ns)} lies in the future "
            f"(more than {limits.max_clock_skew} ahead of {now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}): "
            "check the device's clock",
            field="header.start_time",
        )


# --- where and how long it is stored -------------------------------------------------------------


def key_time(start_ns: int) -> str:
    """The {start} of an object key: ISO 8601 basic format, UTC, milliseconds (truncated): 20261128T103000.040Z."""
    t = ns_to_datetime(start_ns)
    return f"{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}Z"


def object_key(segment: SegmentHeader, container: Container) -> str:
    """`segments/{device_id}/{yyyy}/{mm}/{dd}/{start}-{sequence}.{ts|mp4}`, the date parts being the start's UTC date.

    Keys sort by time within a device and day, so a listing by prefix is a timeline. The sequence
    keeps two segments starting in the same millisecond apart; the database, not the key, enforces
    one stored segment per (device, sequence).
    """
    t = ns_to_datetime(segment.start_ns)
    return (
        f"segments/{segment.device_id}/{t:%Y}/{t:%m}/{t:%d}/"
        f"{key_time(segment.start_ns)}-{segment.sequence}.{container.extension}"
    )


DEFAULT_MIN_LOCK = timedelta(hours=1)
_DAY_NS = 86_400 * 1_000_000_000


def retain_until(
    segment: SegmentHeader,
    retention_days: float | None,
    *,
    now: datetime,
    min_remaining: timedelta = DEFAULT_MIN_LOCK,
) -> datetime:
    """ARC-1/ARC-2: the object-lock retain-until date — the segment's start plus the device's retention.

    Counted from the start (capture) time, because the regulation keeps *footage* for N days, i.e.
    N days from when it was recorded; it is also a pure function of the signed header, so a replay,
    a re-index from storage and a test all compute the same date. Since capture precedes ingest,
    this is never shorter than the law asks. Footage uploaded late (a camera's backlog after an
    outage) is locked until at least `now + min_remaining`: S3 refuses a retain-until in the past,
    and the archive's expiry (ARC-3) then removes it with an audit record rather than it landing
    unlocked. Rounded up to the whole second (S3's precision), so rounding never shortens it.
    `retention_days` is the registry's resolved value; fractions of a day are allowed.
    """
    if retention_days is None or not math.isfinite(retention_days) or retention_days <= 0:
        raise FailedPrecondition(
            f"device {segment.device_id} has no resolved retention period (got {retention_days!r}) (ARC-1)",
            rule="ARC-1",
            field="device.retention_days",
        )
    until_ns = segment.start_ns + math.ceil(Fraction(retention_days) * _DAY_NS)
    floor_ns = datetime_to_ns(now + min_remaining, field="now")
    until_ns = max(until_ns, floor_ns)
    return ns_to_datetime(-(-until_ns // 1_000_000_000) * 1_000_000_000)


# --- idempotency ----------------------------------------------------------------------------------


class Replay(Enum):
    NEW = "new"  # store it
    REPLAY = "replay"  # already stored with these bytes: answer with the first result


def decide_replay(segment: SegmentHeader, stored_sha256: str | None) -> Replay:
    """ARC-4: a stored (device, sequence) with the same hash is a replay; with another hash, refused.

    `stored_sha256` is the hash recorded for this device and sequence, or None if none is stored.
    A different hash would replace an original, which ARC-4 forbids: ALREADY_EXISTS, so a gateway
    can tell it from a transient failure and move on to a fresh sequence.
    """
    if stored_sha256 is None:
        return Replay.NEW
    if stored_sha256 == segment.sha256:
        return Replay.REPLAY
    raise AlreadyExists(
        f"device {segment.device_id} already stored sequence {segment.sequence} with sha256 {stored_sha256}; "
        f"originals are immutable, so different bytes ({segment.sha256}) cannot replace it (ARC-4)",
        rule="ARC-4",
        field="header.sequence",
    )
