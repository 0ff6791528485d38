"""The log's SQL store: batches append once, only the lease holder appends, stored nodes give RFC proofs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from vigil_audit import app
from vigil_audit.store import LeaseLost, LogStore, prepare_leaf
from vigil_kit import db, merkle, migrations
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal
from vigil_kit.merkle import Frontier

ACTOR = Principal(id="u-1", name="Li", unit="U", unit_kind="UNIT_KIND_ENTERPRISE", roles=frozenset())
NOW_MS = 1_750_000_000_000
LEASE_MS = 5000


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[LogStore]:
    engine = db.create_engine(database_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    try:
        yield LogStore(engine)
    finally:
        await engine.dispose()


def leaves(n: int):
    return [
        prepare_leaf(
            build_record(
                actor=ACTOR,
                action="archive.export",
                source_service="archive",
                decision="allowed",
                resources={"devices": [f"cam-{i}"]},
                now=datetime(2025, 3, 1, tzinfo=UTC),
            )
        )
        for i in range(n)
    ]


async def append(store: LogStore, frontier: Frontier, batch, writer: str = "w1", offset: int = 0):
    assert await store.acquire_lease(writer, NOW_MS, LEASE_MS)
    return await store.append(
        writer_id=writer,
        frontier=frontier,
        leaves=batch,
        next_offset=offset,
        now_ms=NOW_MS,
        lease_ms=LEASE_MS,
    )


async def test_a_record_delivered_twice_in_a_batch_and_again_later_is_appended_once(store: LogStore) -> None:
    a, b, c = leaves(3)
    first = await append(store, Frontier(), [a, b, a], offset=3)
    second = await append(store, first.result.frontier, [b, c], offset=5)
    assert (first.appended, first.duplicates, second.appended, second.duplicates) == (2, 1, 1, 1)
    state = await store.state()
    assert (state.tree_size, state.next_offset, await store.count_leaves()) == (3, 5, 3)
    assert [e.leaf for e in await store.entries(start=0, end=None, limit=10)] == [a.leaf, b.leaf, c.leaf]


async def test_a_second_writer_cannot_take_the_lease_before_it_expires(store: LogStore) -> None:
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    assert not await store.acquire_lease("w2", NOW_MS + LEASE_MS - 1, LEASE_MS)
    assert await store.acquire_lease("w2", NOW_MS + LEASE_MS + 1, LEASE_MS)


async def test_a_writer_whose_lease_was_taken_over_cannot_append(store: LogStore) -> None:
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    assert await store.acquire_lease("w2", NOW_MS + LEASE_MS + 1, LEASE_MS)
    with pytest.raises(LeaseLost):
        await store.append(
            writer_id="w1",
            frontier=Frontier(),
            leaves=leaves(1),
            next_offset=1,
            now_ms=NOW_MS,
            lease_ms=LEASE_MS,
        )
    assert await store.count_leaves() == 0


async def test_a_writer_behind_the_stored_tree_cannot_append(store: LogStore) -> None:
    first = await append(store, Frontier(), leaves(2))
    assert first.result.size == 2
    with pytest.raises(LeaseLost):
        await append(store, Frontier(), leaves(1))  # built on size 0, but the log has 2
    assert await store.size() == 2


async def test_stored_nodes_give_inclusion_and_consistency_proofs_for_every_size(store: LogStore) -> None:
    batch = leaves(13)
    frontier = Frontier()
    for chunk in (batch[:5], batch[5:6], batch[6:]):
        frontier = (await append(store, frontier, chunk)).result.frontier
    hashes = [leaf.leaf_hash for leaf in batch]
    for size in range(1, 14):
        root = merkle.merkle_root(hashes[:size])
        assert (await store.load_frontier(size)).root() == root
        for index in range(size):
            plan = merkle.inclusion_plan(index, size)
            proof = plan.assemble(await store.nodes(plan.node_ids))
            assert merkle.verify_inclusion(hashes[index], index, size, proof, root)
        plan = merkle.consistency_plan(size, 13)
        proof = plan.assemble(await store.nodes(plan.node_ids))
        assert merkle.verify_consistency(size, 13, root, frontier.root(), proof)


async def test_the_log_migration_downgrades_to_the_kit_tables(database_url: str) -> None:
    def downgrade(connection) -> list[str]:
        cfg = Config()
        cfg.set_main_option("script_location", str(app.MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")
        return sa.inspect(connection).get_table_names()

    engine = db.create_engine(database_url)
    try:
        await migrations.upgrade(engine, app.MIGRATIONS)
        assert await migrations.current_revision(engine) == "0002"
        async with engine.begin() as conn:
            tables = await conn.run_sync(downgrade)
        assert await migrations.current_revision(engine) == "0001"
        assert not [t for t in tables if t.startswith("audit_")]
    finally:
        await engine.dispose()
