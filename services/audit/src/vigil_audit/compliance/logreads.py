"""Read-only queries of the audit log's tables the compliance report needs (it never writes the log)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_audit.compliance.rules import Rec, record_from_fields
from vigil_audit.store import leaves_table, refs_table

L, R = leaves_table.c, refs_table.c
# Leaves per page of a scan: one page's decoding holds the event loop for a few milliseconds at most.
PAGE = 5000
# Ids per IN (...) list: under SQLite's default limit of host parameters.
CHUNK = 500


class LogReads:
    """Queries through the audit service's read engine (see vigil_audit.store.read_engine)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def scan(self, actions: Iterable[str], start_us: int, end_us: int) -> AsyncIterator[list[Rec]]:
        """Records of the given actions whose time lies in [start_us, end_us), a page at a time.

        Per action, by the (action, leaf_index) index with a keyset on leaf_index: no sort, no
        transaction held between pages (the log is append-only, so a later page only sees more).
        """
        for action in sorted(actions):
            after = -1
            while True:
                stmt = (
                    select(L.leaf_index, L.leaf)
                    .where(
                        L.action == action, L.leaf_index > after, L.time_us >= start_us, L.time_us < end_us
                    )
                    .order_by(L.leaf_index)
                    .limit(PAGE)
                )
                async with self.engine.connect() as conn:
                    rows = (await conn.execute(stmt)).all()
                if not rows:
                    break
                after = int(rows[-1][0])
                loads = json.loads
                yield [record_from_fields(loads(r[1])) for r in rows]
                if len(rows) < PAGE:
                    break
                await asyncio.sleep(0)  # let the log's appends and other calls run between pages

    async def records_of(self, actions: Iterable[str], *, before_us: int) -> list[Rec]:
        """Every record of the given actions before a time (e.g. grant approvals and revocations)."""
        stmt = (
            select(L.leaf).where(L.action.in_(sorted(actions)), L.time_us < before_us).order_by(L.leaf_index)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [record_from_fields(json.loads(r[0])) for r in rows]

    async def latest_naming(
        self, kind: str, ids: Iterable[str], actions: Sequence[str], *, before_us: int | None = None
    ) -> dict[str, str]:
        """For each id, the record id of the latest record of one of `actions` that names it."""
        wanted = sorted({i for i in ids if i})
        best: dict[str, tuple[int, str]] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            stmt = (
                select(R.ref_id, L.leaf_index, L.record_id)
                .select_from(refs_table.join(leaves_table, L.leaf_index == R.leaf_index))
                .where(R.kind == kind, R.ref_id.in_(chunk), L.action.in_(list(actions)))
            )
            if before_us is not None:
                stmt = stmt.where(L.time_us < before_us)
            async with self.engine.connect() as conn:
                for ref_id, index, record_id in (await conn.execute(stmt)).all():
                    if ref_id not in best or index > best[ref_id][0]:
                        best[ref_id] = (int(index), record_id)
        return {k: v[1] for k, v in best.items()}

    async def footage_edge(
        self, device_id: str, action: str, *, ends_by_us: int | None = None, starts_from_us: int | None = None
    ) -> str | None:
        """The record of `action` naming the device whose footage ends last by `ends_by_us`, or starts
        first from `starts_from_us`: the uploads on either side of a recording gap."""
        r = refs_table.alias("r")
        stmt = (
            select(L.record_id)
            .select_from(leaves_table.join(r, and_(r.c.leaf_index == L.leaf_index, r.c.kind == "device")))
            .where(r.c.ref_id == device_id, L.action == action, L.footage_start_us.is_not(None))
        )
        if ends_by_us is not None:
            stmt = stmt.where(L.footage_end_us <= ends_by_us).order_by(L.footage_end_us.desc())
        else:
            stmt = stmt.where(L.footage_start_us >= starts_from_us).order_by(L.footage_start_us)
        async with self.engine.connect() as conn:
            return await conn.scalar(stmt.limit(1))

    async def held_devices(self, device_ids: Iterable[str]) -> set[str]:
        """ARC-6: devices named by a hold the log shows placed and not released."""
        wanted = sorted(set(device_ids))
        if not wanted:
            return set()
        held: dict[str, set[str]] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            stmt = (
                select(R.ref_id, L.leaf)
                .select_from(refs_table.join(leaves_table, L.leaf_index == R.leaf_index))
                .where(R.kind == "device", R.ref_id.in_(chunk), L.action == "archive.hold.place")
            )
            async with self.engine.connect() as conn:
                for device_id, leaf in (await conn.execute(stmt)).all():
                    fields = json.loads(leaf)
                    if fields.get("decision") != "DECISION_ALLOWED":
                        continue
                    for hold in (fields.get("resources") or {}).get("hold_ids", ()):
                        held.setdefault(hold, set()).add(device_id)
        if not held:
            return set()
        released: set[str] = set()
        holds = sorted(held)
        for start in range(0, len(holds), CHUNK):
            stmt = (
                select(R.ref_id, L.leaf)
                .select_from(refs_table.join(leaves_table, L.leaf_index == R.leaf_index))
                .where(
                    R.kind == "hold",
                    R.ref_id.in_(holds[start : start + CHUNK]),
                    L.action == "archive.hold.release",
                )
            )
            async with self.engine.connect() as conn:
                for hold, leaf in (await conn.execute(stmt)).all():
                    if json.loads(leaf).get("decision") == "DECISION_ALLOWED":
                        released.add(hold)
        return {d for hold, devices in held.items() if hold not in released for d in devices}
