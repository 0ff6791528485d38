"""ExportClip (ACC-1, ACC-5, REG-5, ARC-4): one MP4 of a device's footage in the evidence bucket, with a signed manifest.

The order is the rule, as for playback: sharing's Authorize(ACTION_EXPORT) decides for the caller,
then the export's audit record (purpose, footage, grant, masking) is committed, and only then is a
byte of footage read. Each source segment is read by version id and its SHA-256 checked against the
index (ARC-4: integrity is re-verified on every export); its RFC 6962 inclusion path to its
device-day root goes into the manifest. The segments are joined into one MP4 — packets copied
unchanged when no frame has to change, otherwise decoded and re-encoded (libx264, preset from
ARCHIVE_X264_PRESET) with the device's privacy masks filled (REG-5, unless the caller may see
unmasked video) and, for a public export, faces and licence plates blurred on every frame (ACC-5).
The clip and its manifest (vigil_media.evidence: canonical JSON, Ed25519-signed by the archive's
key) are stored in bucket vigil-evidence under COMPLIANCE retention for ARCHIVE_EXPORT_RETENTION_DAYS,
then a ClipExported event and a completion audit record are written in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import events_pb2
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive import codec, dayroots, store
from vigil_archive.integrity import _day_root
from vigil_archive.playback import Viewing
from vigil_archive.renditions import put_locked, read_verified
from vigil_kit import cloudevents, merkle, objectstore
from vigil_kit.auth import Principal, current_principal
from vigil_kit.errors import FailedPrecondition, InvalidArgument, NotFound
from vigil_media import evidence, video
from vigil_media.deidentify import FACE_CASCADE, PLATE_CASCADE, Deidentifier
from vigil_media.masks import PrivacyMasker

log = logging.getLogger(__name__)

ACTION = "archive.clip.export"
DONE_ACTION = "archive.clip.exported"


@dataclass(frozen=True)
class ExportKeyPair:
    """The archive's Ed25519 key that signs evidence manifests."""

    private_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return evidence.key_id(self.private_key.public_key())

    @property
    def public_key_pem(self) -> str:
        return evidence.public_key_pem(self.private_key.public_key())


def load_export_key(key_file: str | None) -> ExportKeyPair:
    """ARCHIVE_SIGNING_KEY_FILE's key (PKCS#8 PEM); unset: a key generated now, its public half logged."""
    if key_file:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("ARCHIVE_SIGNING_KEY_FILE must hold an Ed25519 private key (PKCS#8 PEM)")
        pair = ExportKeyPair(key)
        log.info("signing evidence manifests with the configured key", extra={"key_id": pair.key_id})
        return pair
    pair = ExportKeyPair(Ed25519PrivateKey.generate())
    # The public half is no secret: logged so manifests signed by this process can be verified.
    log.warning(
        "no ARCHIVE_SIGNING_KEY_FILE: generated an evidence-signing key for this process",
        extra={"key_id": pair.key_id, "public_key_pem": pair.public_key_pem},
    )
    return pair


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _principal_json(p: Principal) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "unit": p.unit, "unit_kind": p.unit_kind, "roles": sorted(p.roles)}


class Exports(Viewing):
    """ExportClip and GetExportKey."""

    def _export_setting(self, name: str, default: Any) -> Any:
        return self.deps.extra.get(name, default)

    def _export_key(self) -> ExportKeyPair:
        key = self.deps.extra.get("export_key")
        if key is None:
            key = load_export_key(None)
            self.deps.extra["export_key"] = key
        return key  # type: ignore[return-value]

    async def GetExportKey(self, request: pb.GetExportKeyRequest, context: object) -> pb.ExportKey:
        key = self._export_key()
        return pb.ExportKey(public_key_pem=key.public_key_pem, key_id=key.key_id)

    async def ExportClip(
        self, request: pb.ExportClipRequest, context: object
    ) -> AsyncIterator[pb.ExportProgress]:
        p = current_principal()
        resources = {"device_ids": [request.device_id]}
        async with self.refusals_audited(p, ACTION, resources, purpose=request.purpose):
            if not request.device_id:
                raise InvalidArgument("device_id is required", field="device_id")
            if not request.HasField("range"):
                raise InvalidArgument("range is required: the footage to be exported", field="range")
            if not request.purpose.strip():
                raise InvalidArgument(
                    "purpose is required: why the footage leaves the archive", field="purpose"
                )
            start, end = self.read_range(request.range, True)
            window = timedelta(seconds=self._export_setting("max_export_window_s", 3600.0))
            if end - start > window:
                raise InvalidArgument(
                    f"range is {end - start}, longer than the {window} one export may cover", field="range"
                )
            answer = await self._authorize(p, sharing_pb.ACTION_EXPORT, request.device_id, start, end)
            limit = self._export_setting("max_export_segments", 2000)
            async with self.sessions() as s:
                rows = await store.find_rows(
                    s, request.device_id, start, end, limit=limit + 1, max_segment=self.deps.max_segment
                )
            if not rows:
                raise NotFound(f"no footage of device {request.device_id} in the range", field="range")
            if len(rows) > limit:
                raise InvalidArgument(
                    f"the range holds more than the {limit} segments one export may join", field="range"
                )
            masks = () if answer.unmasked_allowed else await self._masks(request.device_id)
            export_id = cloudevents.new_event_id()
            # ACC-1: the export is on the record before a byte of footage is read.
            async with self.sessions.begin() as s:
                record_id = self.audit(
                    s,
                    p,
                    ACTION,
                    resources={"device_ids": [request.device_id], "grant_ids": [answer.grant_id]},
                    footage=(start, end),
                    purpose=request.purpose,
                    grant_id=answer.grant_id,
                    rule_id="ACC-5" if request.public else answer.rule,
                    attributes={
                        "export_id": export_id,
                        "segments": str(len(rows)),
                        "masked": str(bool(masks)).lower(),
                        "public": str(request.public).lower(),
                    },
                )
            total = len(rows)
            yield pb.ExportProgress(stage=pb.EXPORT_STAGE_AUTHORIZED, segments_total=total)
            async for item in self._export(
                p, request, export_id, (start, end), answer, record_id, rows, masks
            ):
                yield item

    async def _export(
        self,
        p: Principal,
        request: pb.ExportClipRequest,
        export_id: str,
        footage: tuple[datetime, datetime],
        answer: sharing_pb.AuthorizeResponse,
        record_id: str,
        rows: Sequence[Any],
        masks: Sequence[Sequence[tuple[float, float]]],
    ) -> AsyncIterator[pb.ExportProgress]:
        client = self.deps.minio
        if client is None:
            raise FailedPrecondition("the archive has no object storage configured", field="device_id")
        total = len(rows)
        proofs = await self._proofs(request.device_id, rows)
        with tempfile.TemporaryDirectory(prefix="vigil-export-") as tmp:
            sources: list[Path] = []
            for i, row in enumerate(rows):
                data = await asyncio.to_thread(
                    read_verified, client, row.bucket, row.key, row.version_id, row.sha256
                )
                path = Path(tmp) / f"{i:06d}.{row.container or 'ts'}"
                await asyncio.to_thread(path.write_bytes, data)
                sources.append(path)
                yield pb.ExportProgress(
                    stage=pb.EXPORT_STAGE_READING, segments_done=i + 1, segments_total=total
                )
            clip_path = Path(tmp) / "clip.mp4"
            preset = self._export_setting("x264_preset", "veryfast")
            crf = self._export_setting("x264_crf", 20)
            ops: list[Any] = []
            if masks:
                ops.append(PrivacyMasker.of(masks))
            blur = Deidentifier() if request.public else None
            if blur is not None:
                ops.append(blur)
            result: video.Result | None = None
            async for item in _run_with_progress(
                lambda progress: (
                    video.transform(
                        sources,
                        clip_path,
                        ops=ops,
                        container="mp4",
                        options=video.EncodeOptions(preset=preset, crf=crf),
                        progress=progress,
                    )
                    if ops
                    else video.join(sources, clip_path, container="mp4", progress=progress)
                )
            ):
                if isinstance(item, video.Result):
                    result = item
                else:
                    yield pb.ExportProgress(
                        stage=pb.EXPORT_STAGE_ENCODING,
                        segments_done=item.segments_done,
                        segments_total=total,
                        frames=item.frames,
                    )
            assert result is not None
            clip = await asyncio.to_thread(clip_path.read_bytes)
        now = self.clock()
        retain_until = (now + timedelta(days=self._export_setting("export_retention_days", 730))).replace(
            microsecond=0
        )
        bucket = objectstore.EVIDENCE_BUCKET
        key = f"exports/{request.device_id}/{export_id}.mp4"
        sha = hashlib.sha256(clip).hexdigest()
        version = await asyncio.to_thread(
            put_locked, client, bucket, key, clip, retain_until=retain_until, content_type="video/mp4"
        )
        masking: dict[str, Any] = {
            "privacy_masks_applied": bool(masks),
            "privacy_masks": [[[x, y] for x, y in poly] for poly in masks],
            "unmasked_allowed": answer.unmasked_allowed,
            "public": request.public,
            "faces_and_plates_blurred": blur is not None,
            "encoder": f"libx264 preset {preset} crf {crf}" if ops else "stream copy (no frame changed)",
        }
        if blur is not None:
            masking["detector"] = f"OpenCV {cv2.__version__} Haar cascades {FACE_CASCADE}, {PLATE_CASCADE}"
            masking["face_detections"] = blur.faces
            masking["plate_detections"] = blur.plates
        manifest = evidence.sign(
            {
                "version": evidence.MANIFEST_VERSION,
                "export_id": export_id,
                "device_id": request.device_id,
                "range": {"start": _iso(footage[0]), "end": _iso(footage[1])},
                "clip": {
                    "bucket": bucket,
                    "key": key,
                    "version_id": version,
                    "sha256": sha,
                    "size": len(clip),
                    "container": "mp4",
                    "frames": result.frames,
                    "duration_s": round(result.duration_s, 3),
                    "retain_until": _iso(retain_until),
                },
                "segments": proofs,
                "masking": masking,
                "exported_by": _principal_json(p),
                "purpose": request.purpose,
                "grant_id": answer.grant_id,
                "audit_record_id": record_id,
                "exported_at": _iso(now),
            },
            self._export_key().private_key,
        )
        manifest_bytes = evidence.dumps(manifest)
        manifest_key = f"exports/{request.device_id}/{export_id}.manifest.json"
        manifest_version = await asyncio.to_thread(
            put_locked,
            client,
            bucket,
            manifest_key,
            manifest_bytes,
            retain_until=retain_until,
            content_type="application/json",
        )
        done = pb.ExportedClip(
            export_id=export_id,
            device_id=request.device_id,
            range=codec.time_range(*footage),
            bucket=bucket,
            key=key,
            version_id=version,
            sha256=sha,
            size=len(clip),
            manifest_key=manifest_key,
            manifest_version_id=manifest_version,
            manifest=manifest_bytes,
            masked=bool(masks),
            public=request.public,
            retain_until=codec.ts(retain_until),
            audit_record_id=record_id,
            grant_id=answer.grant_id,
            segment_count=total,
        )
        async with self.sessions.begin() as s:
            self.event(
                s,
                request.device_id,
                events_pb2.ClipExported(
                    clip=done, exported_by=p.id, purpose=request.purpose, export_time=codec.ts(now)
                ),
            )
            self.audit(
                s,
                p,
                DONE_ACTION,
                resources={"device_ids": [request.device_id], "grant_ids": [answer.grant_id]},
                footage=footage,
                purpose=request.purpose,
                grant_id=answer.grant_id,
                rule_id="ACC-5" if request.public else "ARC-4",
                attributes={
                    "export_id": export_id,
                    "clip": f"{bucket}/{key}@{version}",
                    "sha256": sha,
                    "masked": str(bool(masks)).lower(),
                    "public": str(request.public).lower(),
                    "faces_and_plates_blurred": str(blur is not None).lower(),
                },
            )
        log.info(
            "exported a clip",
            extra={"export_id": export_id, "device_id": request.device_id, "segments": total, "sha256": sha},
        )
        reply = pb.ExportedClip()
        reply.CopyFrom(done)
        reply.url = await asyncio.to_thread(
            client.presigned_get_object,
            bucket,
            key,
            expires=timedelta(seconds=self._viewing_setting("presign_ttl_s", 300)),
            version_id=version,
        )
        yield pb.ExportProgress(
            stage=pb.EXPORT_STAGE_STORED,
            segments_done=total,
            segments_total=total,
            frames=result.frames,
            done=reply,
        )

    async def _proofs(self, device_id: str, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """Each row's inclusion path to its device-day root, refused when a recorded root disagrees (ARC-4)."""
        by_day: dict[str, list[Any]] = {}
        for row in rows:
            by_day.setdefault(store.day_of(row.start_time), []).append(row)
        out: dict[int, dict[str, Any]] = {}
        async with self.sessions.begin() as s:
            for day, day_rows in by_day.items():
                computed, _recorded, matches = await _day_root(s, device_id, day, self.clock())
                if not matches:
                    raise FailedPrecondition(
                        f"device {device_id}'s day {day} root recomputed from the index differs from the "
                        "recorded one: the export is refused until the integrity finding is resolved",
                        rule="ARC-4",
                        field="range",
                    )
                tree = merkle.InMemoryNodeStore()
                tree.append(dayroots.leaf_of(leaf.ref.sha256) for leaf in computed.leaves)
                index_of = {leaf.row_id: i for i, leaf in enumerate(computed.leaves)}
                for row in day_rows:
                    i = index_of[row.id]
                    out[row.id] = {
                        "key": row.key,
                        "version_id": row.version_id,
                        "sha256": row.sha256,
                        "size": int(row.size),
                        "start": _iso(row.start_time),
                        "end": _iso(row.end_time),
                        "day": day,
                        "leaf_index": i,
                        "leaf_count": computed.leaf_count,
                        "day_root": computed.root.hex(),
                        "path": [h.hex() for h in merkle.inclusion_proof(tree, i, tree.size)],
                    }
        return [out[row.id] for row in rows]


async def _run_with_progress(
    work: Callable[[Callable[[video.Progress], None]], video.Result],
) -> AsyncIterator[video.Progress | video.Result]:
    """Run blocking `work(progress)` in a thread, yielding its progress reports and then its result."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[video.Progress | None] = asyncio.Queue()

    def report(progress: video.Progress) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, progress)

    def run() -> video.Result:
        try:
            return work(report)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        while (item := await queue.get()) is not None:
            yield item
        yield await task
    finally:
        if not task.done():
            await asyncio.wait({task})
