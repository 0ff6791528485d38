"""Whether object storage itself enforces retention (ARC-2): the start-up probe and the cleaning of old probes.

ARC-2 asks that storage refuse early deletion, not only the application. At start the archive reads
the segments bucket's object-lock configuration, writes a small probe object under COMPLIANCE
retention a few seconds ahead, and tries to delete that *version*: a refusal (and the version still
there) means storage enforces object lock. Where it does not, the archive says so loudly (an ERROR
log, the `vigil_archive_object_lock_enforced` gauge at 0, GetStorageStatus) and keeps serving: the
application's own refusals (DeleteSegment, the sweeper's date check) still hold. Probes whose
retention has passed are removed later by version id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from vigil_archive import metrics
from vigil_kit import cloudevents

log = logging.getLogger(__name__)

PROBE_PREFIX = "_probe/object-lock/"
PROBE_BODY = b"vigil object-lock probe\n"


@dataclass(frozen=True)
class LockStatus:
    """The outcome of the object-lock check; `checked_at` is None until a check has run."""

    enforced: bool
    detail: str
    checked_at: datetime | None = None


NOT_CHECKED = LockStatus(False, "object lock not checked yet (the check runs once the buckets exist)")


def _ceil_second(t: datetime) -> datetime:
    # S3 keeps retain-until dates to the second; rounding up never makes the probe's lock shorter.
    return t if t.microsecond == 0 else t.replace(microsecond=0) + timedelta(seconds=1)


class ObjectLockCheck:
    """Worker: checks object-lock enforcement once at start, then removes expired probes now and then."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        probe_retention: timedelta = timedelta(seconds=3),
        clean_interval_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.probe_retention = probe_retention
        self.clean_interval_s = clean_interval_s
        # Storage compares retain-until with its own wall clock, so the probe's date is a real one.
        self.clock = clock
        self.status = NOT_CHECKED
        self._stop = asyncio.Event()

    # --- the check ---------------------------------------------------------------------------------

    async def check(self) -> LockStatus:
        """Run the probe, record the result (gauge, log) and return it. Connection errors propagate."""
        enforced, detail = await asyncio.to_thread(self._probe)
        self.status = LockStatus(enforced, detail, self.clock())
        metrics.OBJECT_LOCK_ENFORCED.set(1 if enforced else 0)
        if enforced:
            log.info("object storage enforces object lock", extra={"bucket": self.bucket, "detail": detail})
        else:
            # Loud on purpose: retention now rests on the application alone (ARC-2).
            log.error(
                "OBJECT STORAGE DOES NOT ENFORCE OBJECT LOCK: retention is enforced by the archive only",
                extra={"bucket": self.bucket, "detail": detail},
            )
        return self.status

    def _probe(self) -> tuple[bool, str]:
        try:
            config = self.client.get_object_lock_config(self.bucket)
        except S3Error as exc:
            return False, f"bucket {self.bucket} has no readable object-lock configuration ({exc.code})"
        key = f"{PROBE_PREFIX}{cloudevents.new_event_id()}"
        until = _ceil_second(self.clock() + self.probe_retention)
        try:
            put = self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(PROBE_BODY),
                len(PROBE_BODY),
                content_type="text/plain",
                # S3 wants a checksum on a PUT under object lock.
                metadata={
                    "x-amz-sdk-checksum-algorithm": "SHA256",
                    "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(PROBE_BODY).digest()).decode(),
                },
                retention=Retention(COMPLIANCE, until),
            )
        except S3Error as exc:
            return False, f"a PUT with COMPLIANCE retention was refused ({exc.code}: {exc.message})"
        if not put.version_id:
            return False, f"bucket {self.bucket} returned no version id: versioning is off"
        try:
            self.client.remove_object(self.bucket, key, version_id=put.version_id)
        except S3Error as exc:
            # Refused: make sure the version really survived (a refusal that deleted anyway is no lock).
            try:
                self.client.stat_object(self.bucket, key, version_id=put.version_id)
            except S3Error:
                return False, f"the versioned delete answered {exc.code} but the probe version is gone"
            mode = getattr(config, "mode", None) or "no default retention"
            return True, (
                f"versioned DELETE of a locked probe refused ({exc.code}); bucket lock configuration: {mode}"
            )
        return False, (
            f"a versioned DELETE of a probe under COMPLIANCE retention until {until.isoformat()} succeeded"
        )

    # --- cleaning --------------------------------------------------------------------------------------

    async def clean_probes(self) -> int:
        """Remove probe versions whose retention has passed; returns how many were removed."""
        return await asyncio.to_thread(self._clean)

    def _clean(self) -> int:
        removed = 0
        now = self.clock()
        for obj in self.client.list_objects(
            self.bucket, prefix=PROBE_PREFIX, recursive=True, include_version=True
        ):
            if not obj.object_name or not obj.version_id:
                continue
            if not obj.is_delete_marker:
                until = self._retain_until(obj)
                if until is None or now < until:
                    continue
            try:
                self.client.remove_object(self.bucket, obj.object_name, version_id=obj.version_id)
                removed += 1
            except S3Error as exc:
                log.warning(
                    "could not remove an object-lock probe",
                    extra={"key": obj.object_name, "version_id": obj.version_id, "error": exc.code},
                )
        return removed

    def _retain_until(self, obj: Any) -> datetime | None:
        # Read from the version's headers: some S3 servers answer GetObjectRetention oddly.
        try:
            stat = self.client.stat_object(self.bucket, obj.object_name, version_id=obj.version_id)
            header = stat.metadata.get("x-amz-object-lock-retain-until-date")
            if header:
                return datetime.fromisoformat(header.replace("Z", "+00:00"))
        except S3Error:
            return None
        # No retention on it: a probe that storage accepted without a lock.
        return obj.last_modified

    # --- worker ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Check once (a failure is retried by the service's worker supervisor), then clean now and then."""
        self._stop.clear()
        if self.status.checked_at is None:
            await self.check()
        while not self._stop.is_set():
            try:
                removed = await self.clean_probes()
                if removed:
                    log.info("removed expired object-lock probes", extra={"count": removed})
            except S3Error as exc:
                log.warning("cleaning object-lock probes failed", extra={"error": exc.code})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.clean_interval_s)

    def stop(self) -> None:
        self._stop.set()
