"""Read-only queries of the audit log's tables the compliance report needs (it never writes the log)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vigil_audit.codec import MAX_US, MIN_US
from vigil_audit.compliance import rules
from vigil_audit.compliance.rules import Rec, record_from_fields
from vigil_audit.store import leaves_table, refs_table

L, R = leaves_table.c, refs_table.c
# Leaves per page of a scan: one page's decoding holds the event loop for a few tens of milliseconds.
PAGE = 5000
# Ids per IN (...) list: under SQLite's default limit of host parameters.
CHUNK = 500
# Footage-edge lookups per statement (each a scalar subquery): one round trip instead of one per gap.
EDGES_PER_QUERY = 100
# What a leaf's canonical text (JCS: no whitespace, keys as written) holds when the record is a refusal,
# or names a grant. No string value can hold them (its quotes are escaped), an attribute so named can:
# they only narrow the rows a scan reads, and the rules still decide on the decoded record.
_LEAF_MARKS = {rules.REFUSED: b'"decision":"DECISION_DENIED"', rules.NAMING_GRANT: b'"grant_id":'}
# A scan's page, through the driver: SQLAlchemy's row objects would cost more than decoding the leaf,
# and would outlive the garbage collector's young passes (see LogReads.scan). The query columns stand
# for the record's id, times and actor, so only the rest is decoded from the leaf. By the
# (action, leaf_index) index: a keyset on leaf_index, no sort. Where the rules need only some records
# of the action, those whose leaf holds the mark (SQLite's LIKE does not match inside a BLOB: instr).
_PAGE_SQL = (
    "SELECT leaf_index, record_id, time_us, actor_id, footage_start_us, footage_end_us, leaf "
    f"FROM {leaves_table.name} WHERE action = {{0}} AND time_us >= {{1}} AND time_us < {{2}} "
    "AND leaf_index <= {3} AND leaf_index > {4}{5} ORDER BY leaf_index LIMIT " + str(PAGE)
)
_SQLITE_PAGE = _PAGE_SQL.format("?", "?", "?", "?", "?", "")
_SQLITE_MARKED_PAGE = _PAGE_SQL.format("?", "?", "?", "?", "?", " AND instr(leaf, ?) > 0")
_PG_PAGE = _PAGE_SQL.format("$1", "$2", "$3", "$4", "$5", "")
_PG_MARKED_PAGE = _PAGE_SQL.format("$1", "$2", "$3", "$4", "$5", " AND position($6 in leaf) > 0")
_raw_decode = json.JSONDecoder().raw_decode  # json.loads' own parser, without its encoding detection


def record_from_row(row: Sequence[Any]) -> Rec:
    """A Rec from a scan row (_PAGE_SQL's columns): the query columns plus the leaf's other fields.

    The same Rec as record_from_fields of the parsed leaf (a unit test holds them equal): the columns
    are what the log's writer extracted from the record it encoded (vigil_audit.store.prepare_leaf),
    with an open footage bound (MIN_US/MAX_US there) a missing one here.
    """
    _, record_id, time_us, actor_id, start, end, leaf = row
    r = _raw_decode(bytes(leaf).decode())[0]
    get = r.get
    actor = get("actor")
    res = get("resources")
    return Rec(
        record_id,
        time_us,
        get("action", ""),
        get("decision", ""),
        get("rule_id", ""),
        actor_id or "",
        actor.get("unit", "") if actor else "",
        tuple(res.get("device_ids", ())) if res else (),
        tuple(res.get("unit_ids", ())) if res else (),
        get("grant_id", ""),
        get("request_id", ""),
        None if start is None or start == MIN_US else start,
        None if end is None or end == MAX_US else end,
        get("attributes") or {},
    )


# The uploads naming a device, built once: one statement holds a hundred lookups made from it.
_R = refs_table.alias("r")
_EDGE = (
    select(L.record_id)
    .select_from(leaves_table.join(_R, and_(_R.c.leaf_index == L.leaf_index, _R.c.kind == "device")))
    .where(L.footage_start_us.is_not(None))
)


def _edge_stmt(
    action: str, device_id: str, ends_by_us: int | None, starts_from_us: int | None
) -> Select[Any]:
    stmt = _EDGE.where(_R.c.ref_id == device_id, L.action == action)
    if ends_by_us is not None:
        # Ties broken by the later record, so the answer does not depend on the query plan.
        stmt = stmt.where(L.footage_end_us <= ends_by_us).order_by(
            L.footage_end_us.desc(), L.leaf_index.desc()
        )
    else:
        stmt = stmt.where(L.footage_start_us >= starts_from_us).order_by(L.footage_start_us, L.leaf_index)
    return stmt.limit(1)


class LogReads:
    """Queries through the audit service's read engine (see vigil_audit.store.read_engine)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def scan(
        self, filters: dict[str, str], start_us: int, end_us: int
    ) -> AsyncIterator[tuple[Iterator[Rec], int]]:
        """The records of the given actions whose time lies in [start_us, end_us), a page at a time, each
        with how many records of the range the page stands for unread (see rules.SCAN_FILTER).

        `filters` maps an action to the rules' need of its records (rules.EVERY/REFUSED/NAMING_GRANT):
        of an action only some of whose records matter, the others are counted in SQL, not read. No
        transaction is held between pages. Bounded by the log's size when the scan starts, so the
        counts and the pages see the same records. The next page is read while this one is decoded.
        """
        async with self.engine.connect() as conn:
            top = await conn.scalar(select(func.max(L.leaf_index)))
        if top is None:
            return
        for action in sorted(filters):
            mark = _LEAF_MARKS.get(filters[action])
            total = None
            if mark is not None:
                async with self.engine.connect() as conn:
                    total = int(
                        await conn.scalar(
                            select(func.count()).where(
                                L.action == action,
                                L.time_us >= start_us,
                                L.time_us < end_us,
                                L.leaf_index <= top,
                            )
                        )
                    )
                if not total:
                    continue
            read = 0
            async for rows in self._pages((action, start_us, end_us, top), mark):
                read += len(rows)
                # Decoded as the caller takes them: each record is garbage as soon as the rules have
                # read it, where a page of them would outlive collections and fill the collector's
                # older generations (whose full passes cost seconds over a million records).
                yield map(record_from_row, rows), 0
                await asyncio.sleep(0)  # let the log's appends and other calls run between pages
            if total is not None and total > read:
                yield iter(()), total - read

    async def _pages(self, args: tuple[Any, ...], mark: bytes | None) -> AsyncIterator[Sequence[Any]]:
        """The pages of _PAGE_SQL, each read (on the driver's thread) while the last is used."""
        pg = self.engine.dialect.name == "postgresql"
        if pg:
            sql = _PG_PAGE if mark is None else _PG_MARKED_PAGE
        else:
            sql = _SQLITE_PAGE if mark is None else _SQLITE_MARKED_PAGE
        tail = () if mark is None else (mark,)

        async def fetch(after: int) -> Sequence[Any]:
            async with self.engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                if pg:
                    return await driver.fetch(sql, *args, after, *tail)
                async with driver.execute(sql, (*args, after, *tail)) as cursor:
                    return await cursor.fetchall()

        pending: asyncio.Future[Sequence[Any]] | None = asyncio.ensure_future(fetch(-1))
        try:
            while pending is not None:
                rows = await pending
                pending = None
                if len(rows) == PAGE:
                    pending = asyncio.ensure_future(fetch(int(rows[-1][0])))
                if rows:
                    yield rows
        finally:
            if pending is not None:
                pending.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await pending

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

    async def footage_edges(
        self, action: str, edges: Sequence[tuple[str, int | None, int | None]]
    ) -> list[str | None]:
        """Per (device_id, ends_by_us, starts_from_us): the record of `action` naming the device whose
        footage ends last by `ends_by_us` (when given), else starts first from `starts_from_us`: the
        uploads on either side of a recording gap. Many per statement, one scalar subquery each."""
        out: list[str | None] = []
        for start in range(0, len(edges), EDGES_PER_QUERY):
            chunk = edges[start : start + EDGES_PER_QUERY]
            stmt = select(*(_edge_stmt(action, *e).scalar_subquery() for e in chunk))
            async with self.engine.connect() as conn:
                out.extend((await conn.execute(stmt)).one())
        return out

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
