"""Playback and live view (ACC-1, REG-5): HLS playlists of presigned, version-pinned segment URLs.

The order is the rule: sharing decides (Authorize, for the caller), the archive commits its own
audit record of the access, and only then are URLs presigned and returned — a failure at any step
returns no URL. URLs name the object *version* the index holds, so a newer PUT over the key (which
S3 accepts) is never what a viewer sees (ARC-4). A principal without the unmask right, on a device
with privacy masks, gets URLs of masked renditions of the same versions (vigil_archive.renditions).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive import codec, store
from vigil_archive.api import ArchiveBase
from vigil_archive.renditions import MaskedRenditions
from vigil_kit.auth import Principal, current_principal
from vigil_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from vigil_kit.objectstore import Presigner

HLS_CONTENT_TYPE = "application/vnd.apple.mpegurl"


@dataclass(frozen=True)
class PlaylistEntry:
    url: str
    start: datetime
    end: datetime


def hls_playlist(entries: Sequence[PlaylistEntry], *, live: bool, media_sequence: int = 0) -> str:
    """An HLS media playlist (RFC 8216): VOD with an end tag, or a live sliding window without one.

    A gap between two segments is marked with EXT-X-DISCONTINUITY, so players do not stitch
    footage from either side of a recording gap as if it were continuous (ARC-5).
    """
    target = max((math.ceil((e.end - e.start).total_seconds()) for e in entries), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if not live:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    previous_end: datetime | None = None
    for e in entries:
        if previous_end is not None and e.start > previous_end:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(
            f"#EXT-X-PROGRAM-DATE-TIME:{e.start.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}"
        )
        lines.append(f"#EXTINF:{(e.end - e.start).total_seconds():.3f},")
        lines.append(e.url)
        previous_end = e.end
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class Viewing(ArchiveBase):
    """GetPlaybackManifest and GetLiveManifest."""

    async def GetPlaybackManifest(
        self, request: pb.GetPlaybackManifestRequest, context: object
    ) -> pb.PlaybackManifest:
        p = current_principal()
        resources = {"device_ids": [request.device_id]}
        action = "archive.playback.manifest"
        async with self.refusals_audited(p, action, resources):
            if not request.device_id:
                raise InvalidArgument("device_id is required", field="device_id")
            if not request.HasField("range"):
                raise InvalidArgument("range is required: the footage to be played back", field="range")
            start, end = self.read_range(request.range, True)
            window = self._viewing_setting("max_playback_window", timedelta(hours=24))
            if end - start > window:
                raise InvalidArgument(
                    f"range is {end - start}, longer than the {window} one manifest may cover", field="range"
                )
            answer = await self._authorize(p, sharing_pb.ACTION_PLAYBACK, request.device_id, start, end)
            async with self.read_sessions() as s:
                rows = await store.find_rows(
                    s,
                    request.device_id,
                    start,
                    end,
                    limit=self._viewing_setting("max_manifest_segments", 50_000),
                    max_segment=self.deps.max_segment,
                )
            return await self._manifest(p, action, request.device_id, (start, end), answer, rows, live=False)

    async def GetLiveManifest(
        self, request: pb.GetLiveManifestRequest, context: object
    ) -> pb.PlaybackManifest:
        p = current_principal()
        resources = {"device_ids": [request.device_id]}
        action = "archive.live.manifest"
        async with self.refusals_audited(p, action, resources):
            if not request.device_id:
                raise InvalidArgument("device_id is required", field="device_id")
            now = self.clock()
            count = self._viewing_setting("live_window_segments", 6)
            async with self.read_sessions() as s:
                rows = await store.newest_rows(s, request.device_id, count)
            start = rows[0].start_time if rows else now
            end = max(now, rows[-1].end_time) if rows else now + timedelta(seconds=1)
            answer = await self._authorize(p, sharing_pb.ACTION_LIVE_VIEW, request.device_id, start, end)
            return await self._manifest(p, action, request.device_id, (start, end), answer, rows, live=True)

    # --- the steps ------------------------------------------------------------------------------

    def _viewing_setting(self, name: str, default: Any) -> Any:
        return self.deps.extra.get(name, default)

    async def _authorize(
        self, p: Principal, action: int, device_id: str, start: datetime, end: datetime
    ) -> sharing_pb.AuthorizeResponse:
        """Sharing's decision for the caller (ACC-2/ACC-3); deny by default when there is none."""
        if self.deps.grant_check is None:
            raise PermissionDenied("no sharing service is configured to decide access", rule="ACC-2")
        answer = await self.deps.grant_check(p, device_id, start, end, action=action)
        if answer is None or not answer.allowed:
            reason = answer.reason if answer is not None else "sharing gave no decision"
            rule = (answer.rule if answer is not None else "") or "ACC-2"
            raise PermissionDenied(
                f"access to device {device_id} refused: {reason}", rule=rule, field="device_id"
            )
        return answer

    async def _manifest(
        self,
        p: Principal,
        action: str,
        device_id: str,
        footage: tuple[datetime, datetime],
        answer: sharing_pb.AuthorizeResponse,
        rows: Sequence[Any],
        *,
        live: bool,
    ) -> pb.PlaybackManifest:
        # REG-5: a principal without the unmask right sees the device's footage masked (the masks as
        # the registry has them now); with no masks, or the right, the originals are presigned.
        masks = () if answer.unmasked_allowed else await self._masks(device_id)
        masked = bool(masks)
        ttl = timedelta(seconds=self._viewing_setting("presign_ttl_s", 300))
        now = self.clock()
        async with self.sessions.begin() as s:
            record_id = self.audit(
                s,
                p,
                action,
                resources={"device_ids": [device_id], "grant_ids": [answer.grant_id]},
                footage=footage,
                grant_id=answer.grant_id,
                rule_id=answer.rule,
                attributes={"segments": str(len(rows)), "masked": str(masked).lower()},
            )
        # Only now, with the access on the record, are footage read and URLs made (ACC-1).
        if masked:
            renditions = self._masked_renditions()
            stored = await renditions.for_rows(rows, masks)
            urls = await asyncio.to_thread(renditions.presign, stored, ttl)
        else:
            urls = await asyncio.to_thread(self._presign, rows, ttl)
        entries = [PlaylistEntry(u, r.start_time, r.end_time) for u, r in zip(urls, rows, strict=True)]
        media_sequence = int(rows[0].sequence) if live and rows else 0
        msg = pb.PlaybackManifest(
            playlist=hls_playlist(entries, live=live, media_sequence=media_sequence),
            expire_time=codec.ts(now + ttl),
            audit_record_id=record_id,
            grant_id=answer.grant_id,
            masked=masked,
            segments=[codec.segment_row_to_pb(r) for r in rows],
            urls=urls,
        )
        return msg

    def _presign(self, rows: Sequence[Any], ttl: timedelta) -> list[str]:
        client = self.deps.minio
        if client is None:
            raise FailedPrecondition("the archive has no object storage configured", field="device_id")
        presigner = self.deps.extra.get("presigner")
        if presigner is None:
            presigner = self.deps.extra["presigner"] = Presigner(client)
        now = self.clock()
        urls = [""] * len(rows)
        by_bucket: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_bucket.setdefault(r.bucket, []).append(i)
        for bucket, indices in by_bucket.items():  # one signing pass per bucket (nearly always just one)
            signed = presigner.get_many(
                bucket, [(rows[i].key, rows[i].version_id) for i in indices], expires=ttl, now=now
            )
            for i, url in zip(indices, signed, strict=True):
                urls[i] = url
        return urls

    async def _masks(self, device_id: str) -> Sequence[Sequence[tuple[float, float]]]:
        """The device's privacy-mask polygons (normalised frame coordinates) as the registry has them."""
        lookup = self.deps.extra.get("device_masks")
        if lookup is None:
            # Not knowing the device's masks, the archive cannot mask: refuse rather than show what
            # masks may hide (deny by default).
            raise FailedPrecondition(
                f"the archive cannot learn device {device_id}'s privacy masks, and the caller may not "
                "see unmasked video",
                rule="REG-5",
                field="device_id",
            )
        return await lookup(device_id)  # type: ignore[operator,no-any-return]

    def _masked_renditions(self) -> MaskedRenditions:
        made = self.deps.extra.get("masked_renditions")
        if made is None:
            if self.deps.minio is None:
                raise FailedPrecondition("the archive has no object storage configured", field="device_id")
            made = MaskedRenditions(self.deps.minio)
            self.deps.extra["masked_renditions"] = made
        return made  # type: ignore[return-value]
