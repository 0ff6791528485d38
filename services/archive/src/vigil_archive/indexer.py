"""The segment index's writer: SegmentIngested (vigil.ingest.segments.v1) → one row per object version.

Runs under vigil_kit.consumer.IdempotentConsumer: each event is applied in a transaction that also
records its id, so a redelivery after a crash changes nothing, and the (bucket, key, version) unique
key makes a second event for the same version a no-op too. Each new row publishes SegmentArchived
through the outbox in the same transaction. Segments that fall under an active legal hold get the
hold applied (S3 legal hold, ARC-6) by the `after_index` hook the holds part installs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from vigil.archive.v1 import events_pb2
from vigil.ingest.v1 import events_pb2 as ingest_events
from vigil_archive import codec, metrics, store
from vigil_archive.domain import SegmentRef
from vigil_kit import outbox, topics
from vigil_kit.cloudevents import CloudEvent
from vigil_kit.errors import InvalidArgument

log = logging.getLogger(__name__)

INDEX_GROUP = "archive-index"
SOURCE = "archive"

# Called in the indexing transaction for each newly indexed segment (e.g. to apply active holds).
AfterIndex = Callable[[AsyncSession, store.IndexedSegment], Awaitable[None]]


class Indexer:
    """The IdempotentConsumer handler that keeps the index in step with ingest."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        notifier: Callable[[], None] | None = None,
        after_index: AfterIndex | None = None,
    ) -> None:
        self.clock = clock
        self.notifier = notifier
        self.after_index = after_index

    async def handle(self, session: AsyncSession, event: CloudEvent) -> None:
        if event.type != ingest_events.SegmentIngested.DESCRIPTOR.full_name:
            return
        msg = ingest_events.SegmentIngested.FromString(event.data)
        try:
            ref = codec.segment_from_event(msg)
        except InvalidArgument as exc:
            # A malformed event cannot be indexed however often it is retried; reconciliation finds
            # the object in storage and indexes it from its stored header instead.
            log.error("segment event not indexable", extra={"event_id": event.id, "error": exc.message})
            metrics.SEGMENTS_INDEXED.labels(source="rejected").inc()
            return
        await self.index(
            session,
            ref,
            sequence=msg.sequence,
            owner_unit_id=msg.owner_unit_id,
            codec_name=msg.codec,
            container=codec.CONTAINER_NAMES.get(msg.container, ""),
            source="ingest",
        )

    async def index(
        self,
        session: AsyncSession,
        ref: SegmentRef,
        *,
        sequence: int,
        owner_unit_id: str,
        codec_name: str,
        container: str,
        source: str,
    ) -> store.IndexedSegment | None:
        """Index one object version in the caller's transaction; None when it was indexed already."""
        now = self.clock()
        added = await store.insert_segment(
            session,
            ref,
            sequence=sequence,
            owner_unit_id=owner_unit_id,
            codec=codec_name,
            container=container,
            legal_hold=False,
            source=source,
            now=now,
        )
        if not added:
            return None
        row = await store.get_segment(session, ref.key, ref.version_id)
        assert row is not None
        if self.after_index is not None:
            await self.after_index(session, row)
            row = await store.get_segment(session, ref.key, ref.version_id)
            assert row is not None
        outbox.enqueue(
            session,
            topic=topics.ARCHIVE_EVENTS,
            key=ref.device_id,
            message=events_pb2.SegmentArchived(segment=codec.segment_to_pb(row), source=source),
            source_service=SOURCE,
            subject=ref.device_id,
            notifier=self.notifier,
        )
        metrics.SEGMENTS_INDEXED.labels(source=source).inc()
        return row
