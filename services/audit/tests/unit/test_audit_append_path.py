"""The writer's fast paths: lean Kafka decoding, heads and lease in the append, proofs in one read."""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil_audit import app
from vigil_audit import store as store_module
from vigil_audit import writer as writer_module
from vigil_audit.domain.sth import TreeHead
from vigil_audit.signing import LogKey
from vigil_audit.store import LogStore, PreparedLeaf, prepare_leaf, read_engine
from vigil_kit import db, merkle, migrations
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal
from vigil_kit.cloudevents import headers_for
from vigil_kit.merkle import Frontier

ACTOR = Principal(id="u-1", name="Li", unit="U", unit_kind="UNIT_KIND_ENTERPRISE", roles=frozenset())
NOW_MS = 1_750_000_000_000
LEASE_MS = 60_000
KEY = LogKey(Ed25519PrivateKey.generate())


def record(i: int = 0):
    return build_record(
        actor=ACTOR,
        action="archive.export",
        source_service="archive",
        decision="allowed",
        resources={"device_ids": [f"cam-{i}"]},
        now=datetime(2025, 3, 1, tzinfo=UTC),
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[LogStore]:
    engine = db.create_engine(database_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    reader = read_engine(engine)
    try:
        yield LogStore(engine, reader)
    finally:
        if reader is not engine:
            await reader.dispose()
        await engine.dispose()


def kafka_record(headers: list[tuple[str, bytes | None]], value: bytes, key: bytes = b"k") -> ConsumerRecord:
    return ConsumerRecord("t", 0, 7, 0, 0, key, value, None, len(key), len(value), tuple(headers))


def variants() -> list[ConsumerRecord]:
    """A good record and one of each kind the writer must reject (or parse the general way)."""
    r = record()
    good = headers_for(r, source_service="archive", subject=r.record_id, event_id=r.record_id)
    value = r.SerializeToString()

    def without(name: str) -> list[tuple[str, bytes | None]]:
        return [(k, v) for k, v in good if k != name]

    def replaced(name: str, new: bytes | None) -> list[tuple[str, bytes | None]]:
        return [(k, new if k == name else v) for k, v in good]

    return [
        kafka_record(good, value),
        kafka_record(without("ce_id"), value),
        kafka_record(without("ce_source"), value),
        kafka_record(without("ce_type"), value),
        kafka_record(without("ce_time"), value),
        kafka_record(replaced("ce_time", b"not a time"), value),
        kafka_record(replaced("ce_type", b"vigil.other.v1.Thing"), value),
        kafka_record(replaced("ce_type", None), value),
        kafka_record(good, b"\xff\xff\xff"),
        kafka_record(good, record().SerializeToString()[:0]),
        kafka_record([*good, ("ce_type", b"vigil.other.v1.Thing")], value),
    ]


def test_the_lean_decoding_of_a_kafka_record_gives_the_general_path_s_verdict() -> None:
    outcomes = [
        (writer_module.prepare_record(raw), writer_module._prepare_general(raw)) for raw in variants()
    ]
    assert [lean == general for lean, general in outcomes] == [True] * len(outcomes)
    assert isinstance(outcomes[0][0], PreparedLeaf) and outcomes[0][0].record_id
    rejected = [isinstance(lean, writer_module.Rejected) for lean, _ in outcomes[1:]]
    assert rejected.count(False) == 1  # only the record without ce_time is a leaf


def test_a_batch_prepared_in_an_encode_worker_is_the_batch_prepared_on_the_loop() -> None:
    raws = variants()
    wire = [
        writer_module.WireRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, r.headers)
        for r in raws
    ]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        in_worker = pool.submit(writer_module.prepare_records, wire).result(timeout=120)
    assert in_worker == writer_module.prepare_records(raws)
    assert len(in_worker[0]) == 2 and len(in_worker[1]) == len(raws) - 2


async def test_a_record_the_writer_remembers_is_skipped_as_a_duplicate(store: LogStore) -> None:
    a, b = prepare_leaf(record(1)), prepare_leaf(record(2))
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    out = await store.append(
        writer_id="w1",
        frontier=Frontier(),
        leaves=[a, b],
        next_offset=2,
        now_ms=NOW_MS,
        lease_ms=LEASE_MS,
        recent={a.record_id},
    )
    assert (out.appended, out.duplicates, out.appended_ids) == (1, 1, (b.record_id,))


async def test_a_head_signed_in_the_append_is_stored_with_the_batch_and_is_the_latest(
    store: LogStore,
) -> None:
    batch = [prepare_leaf(record(i)) for i in range(3)]
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    out = await store.append(
        writer_id="w1",
        frontier=Frontier(),
        leaves=batch,
        next_offset=3,
        now_ms=NOW_MS,
        lease_ms=LEASE_MS,
        sign=lambda f: KEY.sign(TreeHead(f.size, f.root(), datetime.now(UTC))),
        key_id=KEY.key_id,
    )
    stored = await store.tree_head(3)
    assert out.head is not None and stored is not None
    assert (stored[0], stored[1]) == (out.head, KEY.key_id)
    assert stored[0].root_hash == merkle.merkle_root([leaf.leaf_hash for leaf in batch])
    assert await store.latest_tree_head() == stored
    # A reader that does not hold the lease reads the same head from the database.
    assert await LogStore(store.engine, store.reader).latest_tree_head() == stored


async def test_one_read_gives_an_inclusion_proof_against_the_latest_head(store: LogStore) -> None:
    batch = [prepare_leaf(record(i)) for i in range(11)]
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    out = await store.append(
        writer_id="w1", frontier=Frontier(), leaves=batch, next_offset=11, now_ms=NOW_MS, lease_ms=LEASE_MS
    )
    await store.add_tree_head(
        KEY.sign(TreeHead(11, out.result.root, datetime(2025, 3, 1, tzinfo=UTC))), KEY.key_id
    )
    # A store that is not the writer: everything comes from the database.
    reader = LogStore(store.engine, store.reader)
    for found in (
        await reader.latest_inclusion(record_id=batch[6].record_id),
        await reader.latest_inclusion(leaf_index=6),
    ):
        assert found.entry is not None and found.head is not None
        assert (found.entry.leaf_index, found.entry.leaf) == (6, batch[6].leaf)
        assert found.head == await store.tree_head(11)
        assert found.head[0].head.timestamp == datetime(2025, 3, 1, tzinfo=UTC)
        proof = merkle.inclusion_plan(6, 11).assemble(found.hashes)
        assert merkle.verify_inclusion(batch[6].leaf_hash, 6, 11, proof, out.result.root)


async def test_one_read_tells_an_unknown_record_and_an_unsigned_log_apart(store: LogStore) -> None:
    leaf = prepare_leaf(record())
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    await store.append(
        writer_id="w1", frontier=Frontier(), leaves=[leaf], next_offset=1, now_ms=NOW_MS, lease_ms=LEASE_MS
    )
    missing = await store.latest_inclusion(record_id="no-such-record")
    unsigned = await store.latest_inclusion(record_id=leaf.record_id)
    assert (missing.entry, unsigned.entry is not None, unsigned.head, unsigned.hashes) == (
        None,
        True,
        None,
        {},
    )


async def test_a_proof_read_sees_a_head_signed_after_the_previous_read(store: LogStore) -> None:
    batch = [prepare_leaf(record(i)) for i in range(3)]
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    out = await store.append(
        writer_id="w1", frontier=Frontier(), leaves=batch, next_offset=3, now_ms=NOW_MS, lease_ms=LEASE_MS
    )
    reader = LogStore(store.engine, store.reader)
    try:
        assert (await reader.latest_inclusion(leaf_index=2)).head is None
        await store.add_tree_head(KEY.sign(TreeHead(3, out.result.root, datetime.now(UTC))), KEY.key_id)
        found = await reader.latest_inclusion(leaf_index=2)
        assert found.head is not None and found.head[0].tree_size == 3
        assert found.plan is not None
        assert merkle.verify_inclusion(
            batch[2].leaf_hash, 2, 3, found.plan.assemble(found.hashes), out.result.root
        )
    finally:
        reader.close()


async def test_a_batch_larger_than_one_multi_row_insert_is_stored_whole(store: LogStore) -> None:
    # More than one multi-row INSERT of leaves on SQLite, with a shorter last one.
    n = db.SQLITE_MAX_PARAMS // len(store_module._LEAF_COLUMNS) + 7
    batch = [prepare_leaf(record(i)) for i in range(n)]
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    out = await store.append(
        writer_id="w1", frontier=Frontier(), leaves=batch, next_offset=n, now_ms=NOW_MS, lease_ms=LEASE_MS
    )
    assert out.appended == n and await store.count_leaves() == n
    entries = await store.entries(start=0, end=None, limit=n + 1)
    assert [e.leaf for e in entries] == [leaf.leaf for leaf in batch]
    assert (await store.load_frontier(n)).root() == out.result.root
    for index in (0, 499, 500, n - 8, n - 7, n - 1):
        plan = merkle.inclusion_plan(index, n)
        proof = plan.assemble(await store.nodes(plan.node_ids))
        assert merkle.verify_inclusion(batch[index].leaf_hash, index, n, proof, out.result.root)


async def test_one_proof_read_gives_the_audit_path_of_every_leaf_at_every_tree_size(store: LogStore) -> None:
    # The read fetches the nodes before it knows the leaf index (one round trip on PostgreSQL), so it
    # must cover merkle.inclusion_plan for any leaf and size: right edges, odd sizes, powers of two.
    batch = [prepare_leaf(record(i)) for i in range(19)]
    assert await store.acquire_lease("w1", NOW_MS, LEASE_MS)
    frontier = Frontier()
    reader = LogStore(store.engine, store.reader)
    try:
        for size in range(1, len(batch) + 1):
            out = await store.append(
                writer_id="w1",
                frontier=frontier,
                leaves=batch[size - 1 : size],
                next_offset=size,
                now_ms=NOW_MS,
                lease_ms=LEASE_MS,
            )
            frontier = out.result.frontier
            await store.add_tree_head(
                KEY.sign(TreeHead(size, frontier.root(), datetime.now(UTC))), KEY.key_id
            )
            # The writer's store knows the latest head (the size is given); a reader's reads it too.
            for index, source in ((i, s) for i in range(size) for s in (store, reader)):
                found = await source.latest_inclusion(leaf_index=index)
                assert found.plan is not None and found.head is not None
                assert found.head[0].tree_size == size
                proof = found.plan.assemble(found.hashes)
                assert merkle.verify_inclusion(batch[index].leaf_hash, index, size, proof, frontier.root())
    finally:
        reader.close()
