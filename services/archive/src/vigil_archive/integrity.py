"""Integrity (ARC-4): VerifySegments, GetSegmentProof, device-day roots, the scrubber, reconciliation.

VerifySegments re-checks one device's segments in a range against storage (each version re-hashed
by version id, newer versions of its key looked for) and recomputes the range's device-day roots
from the index, comparing each with the recorded one. One call re-hashes at most
`verify_max_segments` segments and `verify_max_bytes` bytes; a range holding more is refused with
INVALID_ARGUMENT naming `range` (narrow it), so a call's cost is bounded and the scrubber covers the
whole archive in the background. GetSegmentProof answers a segment's RFC 6962 inclusion path in its
device-day root. The workers: day roots (`dayroots`), the scrubber (`scrubber`), reconciliation
(`reconciler`).
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil_archive import codec, dayroots, store
from vigil_archive.api import ArchiveBase
from vigil_archive.dayroots import DayRootWorker
from vigil_archive.domain import ScrubPolicy
from vigil_archive.reconciler import Reconciler, RegistryLookup, registry_client
from vigil_archive.scrubber import Scrubber
from vigil_archive.verification import Finding, StorageChecker, record_and_report
from vigil_kit.auth import current_principal
from vigil_kit.errors import InvalidArgument, NotFound
from vigil_kit.grpc_client import ServiceStub

VERIFY_ACTION = "archive.segments.verify"
PROOF_ACTION = "archive.segment.proof"
VERIFY_CONCURRENCY = 8
DETECTED_BY = "verify"
DEFAULT_VERIFY_MAX_SEGMENTS = 5000
DEFAULT_VERIFY_MAX_BYTES = 4 * 1024**3


class Integrity(ArchiveBase):
    """The servicer's integrity part."""

    day_roots: DayRootWorker | None = None
    scrubber: Scrubber | None = None
    reconciler: Reconciler | None = None
    verify_max_segments: int = DEFAULT_VERIFY_MAX_SEGMENTS
    verify_max_bytes: int = DEFAULT_VERIFY_MAX_BYTES

    @property
    def storage_checker(self) -> StorageChecker:
        return StorageChecker(self.deps.minio)

    def workers(self, settings: Any, indexer: Any) -> list[tuple[str, Any]]:
        self.verify_max_segments = settings.verify_max_segments
        self.verify_max_bytes = settings.verify_max_bytes
        self.day_roots = DayRootWorker(self.sessions, self.clock, interval_s=settings.root_interval_s)
        self.scrubber = Scrubber(
            self,
            self.sessions,
            self.storage_checker,
            self.clock,
            policy=ScrubPolicy(
                per_tick=settings.scrub_per_tick,
                random_share=settings.scrub_random_share,
                max_bytes=settings.scrub_max_bytes,
            ),
            interval_s=settings.scrub_interval_s,
            rng=random.Random(),
        )
        registry = self.deps.extra.get("registry")  # the service's one registry client (app.build)
        if not isinstance(registry, ServiceStub):
            registry = registry_client(settings)
        self.reconciler = Reconciler(
            self,
            self.sessions,
            self.deps.minio,
            indexer,
            RegistryLookup(registry),
            self.clock,
            interval_s=settings.reconcile_interval_s,
            settle=timedelta(seconds=settings.reconcile_settle_s),
            max_discrepancies=settings.reconcile_max_discrepancies,
        )
        return [
            *super().workers(settings, indexer),
            ("day-roots", self.day_roots),
            ("integrity-scrubber", self.scrubber),
            ("reconciliation", self.reconciler),
        ]

    async def VerifySegments(
        self, request: pb.VerifySegmentsRequest, context: object
    ) -> pb.VerifySegmentsResponse:
        p = current_principal()
        resources = {"device_ids": [request.device_id]}
        async with self.refusals_audited(p, VERIFY_ACTION, resources):
            start, end = self.read_range(request.range, request.HasField("range"))
            basis = await self.authorize_read(p, request.device_id, start, end)
            segments = await self._segments_to_verify(request.device_id, start, end)
            checker = self.storage_checker
            findings: list[Finding] = []
            # A few objects at a time: each check is two round trips to storage and a streamed hash.
            gate = asyncio.Semaphore(VERIFY_CONCURRENCY)

            async def check(seg: store.IndexedSegment) -> list[Finding]:
                async with gate:
                    return await checker.check(seg.ref, detected_by=DETECTED_BY)

            for found in await asyncio.gather(*(check(seg) for seg in segments)):
                findings += found
            days = sorted({store.day_of(seg.ref.start) for seg in segments})
            now = self.clock()
            roots: list[pb.DayRoot] = []
            async with self.sessions.begin() as s:
                for day in days:
                    root, finding = await self._check_day(s, request.device_id, day)
                    roots.append(root)
                    if finding is not None:
                        findings.append(finding)
                new = await record_and_report(s, self, findings, detected_by=DETECTED_BY, actor=p, now=now)
                self.audit(
                    s,
                    p,
                    VERIFY_ACTION,
                    resources=resources,
                    footage=(start, end),
                    grant_id=basis.removeprefix("grant:") if basis.startswith("grant:") else "",
                    rule_id="ARC-4",
                    attributes={
                        "basis": basis.split(":")[0],
                        "checked": str(len(segments)),
                        "findings": str(len(findings)),
                        "new_findings": str(new),
                        "ok": str(not findings).lower(),
                    },
                )
        return pb.VerifySegmentsResponse(
            checked=len(segments), findings=[f.to_pb() for f in findings], day_roots=roots, ok=not findings
        )

    async def _segments_to_verify(self, device_id: str, start: Any, end: Any) -> list[store.IndexedSegment]:
        """The range's segments, refused with INVALID_ARGUMENT [range] past the per-call bounds."""
        out: list[store.IndexedSegment] = []
        total = 0
        async with self.sessions() as s:
            async for seg in store.stream_segments(
                s, device_id, start, end, max_segment=self.deps.max_segment
            ):
                out.append(seg)
                total += seg.ref.size
                if len(out) > self.verify_max_segments or total > self.verify_max_bytes:
                    raise InvalidArgument(
                        f"the range holds more than one call re-hashes (at most {self.verify_max_segments} "
                        f"segments and {self.verify_max_bytes} bytes): verify a narrower range",
                        field="range",
                    )
        return out

    async def _check_day(self, s: Any, device_id: str, day: str) -> tuple[pb.DayRoot, Finding | None]:
        """Recompute the day's root from the index; a recorded, clean root that differs is a finding.

        A dirty or absent root is recorded now (that is the worker's job done early); a clean recorded
        root is never overwritten here, so a mismatch keeps failing verification until the day changes.
        """
        computed, recorded, matches = await _day_root(s, device_id, day, self.clock())
        finding = None
        if not matches:
            assert recorded is not None
            finding = Finding(
                device_id,
                pb.VIOLATION_KIND_DAY_ROOT_MISMATCH,
                f"dayroot/{device_id}/{day}",
                recorded.root.hex(),
                f"device {device_id} day {day}: the index now gives root {computed.root.hex()} over "
                f"{computed.leaf_count} segments, {recorded.root.hex()} over {recorded.leaf_count} was "
                "recorded: the index changed without a recorded change (ARC-4)",
            )
        return (
            pb.DayRoot(
                device_id=device_id,
                day=day,
                leaf_count=computed.leaf_count,
                root=computed.root,
                verified=matches,
            ),
            finding,
        )

    async def GetSegmentProof(self, request: pb.GetSegmentProofRequest, context: object) -> pb.SegmentProof:
        p = current_principal()
        resources = {"segments": [f"{request.key}@{request.version_id}"]}
        async with self.refusals_audited(p, PROOF_ACTION, resources):
            if not request.key:
                raise InvalidArgument("key is required", field="key")
            async with self.sessions() as s:
                seg = await store.get_segment(s, request.key, request.version_id)
            if seg is None:
                raise NotFound(
                    f"no indexed segment {request.key}@{request.version_id or '(latest)'}",
                    field="version_id" if request.version_id else "key",
                )
            ref = seg.ref
            resources = {"device_ids": [ref.device_id], "segments": [ref.label()]}
            basis = await self.authorize_read(p, ref.device_id, ref.start, ref.end)
            day = store.day_of(ref.start)
            async with self.sessions.begin() as s:
                computed, _recorded, matches = await _day_root(s, ref.device_id, day, self.clock())
                leaves, root = computed.leaves, computed.root
                index = next(i for i, leaf in enumerate(leaves) if leaf.row_id == seg.row_id)
                path = dayroots.inclusion_path(leaves, index)
                self.audit(
                    s,
                    p,
                    PROOF_ACTION,
                    resources=resources,
                    footage=(ref.start, ref.end),
                    grant_id=basis.removeprefix("grant:") if basis.startswith("grant:") else "",
                    attributes={"basis": basis.split(":")[0], "day": day},
                )
        return pb.SegmentProof(
            segment=codec.segment_to_pb(seg),
            day_root=pb.DayRoot(
                device_id=ref.device_id, day=day, leaf_count=len(leaves), root=root, verified=matches
            ),
            leaf_index=index,
            path=path,
        )


async def _day_root(
    s: Any, device_id: str, day: str, now: Any
) -> tuple[dayroots.ComputedRoot, store.DayRootRow | None, bool]:
    """(the root the index gives now, the recorded one, whether they agree).

    A dirty or absent recorded root is recomputed and recorded first (it agrees by definition).
    """
    recorded = await store.get_day_root(s, device_id, day)
    if recorded is None or recorded.dirty:
        return await dayroots.recompute(s, device_id, day, now), recorded, True
    computed = await dayroots.compute(s, device_id, day)
    return computed, recorded, computed.root == recorded.root
