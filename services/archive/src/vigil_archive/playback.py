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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive import codec, store
from vigil_archive.api import ArchiveBase, AuditedRead, PageQuery
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


# (url, start, end), the times as (seconds, nanos) since the epoch (codec.driver_seconds).
Span = tuple[str, tuple[int, int], tuple[int, int]]


def hls_playlist(entries: Sequence[PlaylistEntry], *, live: bool, media_sequence: int = 0) -> str:
    """An HLS media playlist (RFC 8216): VOD with an end tag, or a live sliding window without one.

    A gap between two segments is marked with EXT-X-DISCONTINUITY, so players do not stitch
    footage from either side of a recording gap as if it were continuous (ARC-5).
    """
    spans = [(e.url, codec.driver_seconds(e.start), codec.driver_seconds(e.end)) for e in entries]
    return hls_playlist_of(spans, live=live, media_sequence=media_sequence)


def hls_playlist_of(spans: Sequence[Span], *, live: bool, media_sequence: int = 0) -> str:
    """hls_playlist from (url, start, end) spans in integer time: a manifest's hundreds of entries are
    formatted without a datetime each."""
    micros = [(end[0] - start[0]) * 1_000_000 + (end[1] - start[1]) // 1000 for _, start, end in spans]
    target = max((math.ceil(m / 1_000_000) for m in micros), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if not live:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    previous_end: tuple[int, int] | None = None
    for (url, start, end), micro in zip(spans, micros, strict=True):
        if previous_end is not None and start > previous_end:
            lines.append("#EXT-X-DISCONTINUITY")
        # RFC 3339 in UTC to the millisecond (truncated, as datetime.isoformat does).
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start[0]))
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp}.{start[1] // 1_000_000:03d}Z")
        lines.append(f"#EXTINF:{micro / 1_000_000:.3f},")
        lines.append(url)
        previous_end = end
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
            masks = await self._masks_for(answer, request.device_id)
            query = PageQuery(
                request.device_id, start, end, self._viewing_setting("max_manifest_segments", 50_000)
            )
            # The segments are read in the transaction that commits the access's audit record.
            record, rows = await self._record_access(
                p, action, request.device_id, (start, end), answer, masks, query
            )
            return await self._manifest(record, answer, rows, masks, live=False)

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
            masks = await self._masks_for(answer, request.device_id)
            record, _ = await self._record_access(
                p, action, request.device_id, (start, end), answer, masks, None, segments=len(rows)
            )
            return await self._manifest(record, answer, rows, masks, live=True)

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

    async def _masks_for(
        self, answer: sharing_pb.AuthorizeResponse, device_id: str
    ) -> Sequence[Sequence[tuple[float, float]]]:
        # REG-5: a principal without the unmask right sees the device's footage masked (the masks as
        # the registry has them now); with no masks, or the right, the originals are presigned.
        return () if answer.unmasked_allowed else await self._masks(device_id)

    async def _record_access(
        self,
        p: Principal,
        action: str,
        device_id: str,
        footage: tuple[datetime, datetime],
        answer: sharing_pb.AuthorizeResponse,
        masks: Sequence[Any],
        query: PageQuery | None,
        *,
        segments: int = 0,
    ) -> tuple[Any, list[Any]]:
        """Commit the access's audit record (ACC-1), with the read of `query` in its transaction when given
        (the record then counts the segments read; otherwise `segments`)."""
        record = self.audit_record(
            p,
            action,
            resources={"device_ids": [device_id], "grant_ids": [answer.grant_id]},
            footage=footage,
            grant_id=answer.grant_id,
            rule_id=answer.rule,
            attributes={"segments": str(segments), "masked": str(bool(masks)).lower()},
        )
        read = await self.audited_read(
            AuditedRead(record, query, count_attribute="segments" if query else "")
        )
        return record, read.rows

    async def _manifest(
        self,
        record: Any,
        answer: sharing_pb.AuthorizeResponse,
        rows: Sequence[Any],
        masks: Sequence[Any],
        *,
        live: bool,
    ) -> pb.PlaybackManifest:
        """The manifest of `rows` (store.PAGE_COLUMNS), once the access's audit record is committed."""
        masked = bool(masks)
        ttl = timedelta(seconds=self._viewing_setting("presign_ttl_s", 300))
        now = self.clock()
        # Only now, with the access on the record, are footage read and URLs made (ACC-1).
        if masked:
            renditions = self._masked_renditions()
            stored = await renditions.for_rows([_row_view(r) for r in rows], masks)
            urls = await asyncio.to_thread(renditions.presign, stored, ttl)
        else:
            # Signing is CPU work on values in hand (no I/O): a thread hand-off would only add to it.
            urls = self._presign(rows, ttl)
        times = codec.DriverTimes()
        spans = [(u, times(r[3]), times(r[4])) for u, r in zip(urls, rows, strict=True)]
        media_sequence = int(rows[0][2]) if live and rows else 0
        msg = pb.PlaybackManifest(
            playlist=hls_playlist_of(spans, live=live, media_sequence=media_sequence),
            expire_time=codec.ts(now + ttl),
            audit_record_id=record.record_id,
            grant_id=answer.grant_id,
            masked=masked,
            urls=urls,
        )
        codec.add_segments(msg.segments, rows, times=times)
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
            by_bucket.setdefault(r[5], []).append(i)
        for bucket, indices in by_bucket.items():  # one signing pass per bucket (nearly always just one)
            signed = presigner.get_many(
                bucket, [(rows[i][6], rows[i][7]) for i in indices], expires=ttl, now=now
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


def _row_view(row: Any) -> SimpleNamespace:
    """An index row (store.PAGE_COLUMNS) with its times as UTC datetimes, for the renditions' work."""
    view = SimpleNamespace(**row._mapping)
    for name in ("start_time", "end_time", "retain_until"):
        setattr(view, name, codec.driver_datetime(getattr(view, name)))
    return view
