"""The audit log's Merkle tree against the RFC 6962 reference vectors and the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil_kit.merkle import (
    EMPTY_ROOT,
    Frontier,
    InMemoryNodeStore,
    MissingNodeError,
    NodeId,
    append_leaves,
    consistency_plan,
    consistency_proof,
    frontier_ids,
    inclusion_plan,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_at,
    root_from_inclusion_proof,
    split_point,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962 reference vectors (as published with the Certificate Transparency and transparency-dev
# Merkle tree implementations): eight leaves, the root of every prefix, and some proofs.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (leaf index, tree size) -> audit path
INCLUSION = {
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
# (old size, new size) -> consistency proof
CONSISTENCY = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (6, 7): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _unhex(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


@pytest.fixture(scope="module")
def vector_store() -> InMemoryNodeStore:
    store = InMemoryNodeStore()
    store.append(leaf_hash(data) for data in LEAVES)
    return store


# A direct transcription of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 (recursive, over lists of leaf hashes).
def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = split_point(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = split_point(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [ref_mth(d)]
    k = split_point(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], whole), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


MAX_SIZE = 300
RANDOM_LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_SIZE)]


@pytest.fixture(scope="module")
def big_store() -> InMemoryNodeStore:
    store = InMemoryNodeStore()
    store.append(RANDOM_LEAVES)
    return store


def _flip(proof: list[bytes], element: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[element])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:element], bytes(changed), *proof[element + 1 :]]


def test_leaf_and_node_hashes_use_the_rfc_domain_prefixes() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()


def test_the_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert merkle_root([]).hex() == ROOTS[0]
    assert Frontier().root().hex() == ROOTS[0]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_reference_leaves_match_the_rfc_vectors(size: int) -> None:
    assert merkle_root(leaf_hash(data) for data in LEAVES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_historical_roots_read_from_the_store_match_the_rfc_vectors(
    vector_store: InMemoryNodeStore, size: int
) -> None:
    assert root_at(vector_store, size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_proofs_match_the_rfc_vectors_and_verify(
    vector_store: InMemoryNodeStore, index: int, size: int
) -> None:
    proof = inclusion_proof(vector_store, index, size)
    assert _hexes(proof) == INCLUSION[(index, size)]
    assert verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new"), sorted(CONSISTENCY))
def test_consistency_proofs_match_the_rfc_vectors_and_verify(
    vector_store: InMemoryNodeStore, old: int, new: int
) -> None:
    proof = consistency_proof(vector_store, old, new)
    assert _hexes(proof) == CONSISTENCY[(old, new)]
    assert verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), proof)


def _corrupted_inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    yield "index - 1", (leaf, index - 1, size, proof, root)
    yield "index + 1", (leaf, index + 1, size, proof, root)
    yield "index ^ 2", (leaf, index ^ 2, size, proof, root)
    yield "size * 2", (leaf, index, size * 2, proof, root)
    yield "size // 2", (leaf, index, size // 2, proof, root)
    yield "wrong leaf", (leaf_hash(b"wrong"), index, size, proof, root)
    yield "empty root", (leaf, index, size, proof, EMPTY_ROOT)
    yield "some root", (leaf, index, size, proof, SOME_HASH)
    yield "trailing garbage", (leaf, index, size, [*proof, b""], root)
    yield "trailing root", (leaf, index, size, [*proof, root], root)
    yield "preceding garbage", (leaf, index, size, [b"", *proof], root)
    yield "preceding root", (leaf, index, size, [root, *proof], root)
    for i in range(len(proof)):
        yield f"proof[{i}] bit flipped", (leaf, index, size, _flip(proof, i, 3), root)
    if proof:
        yield "removed component", (leaf, index, size, proof[:-1], root)
    if len(proof) > 1:
        yield "inserted component", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)


@pytest.mark.parametrize(("index", "size"), [k for k in sorted(INCLUSION) if k != (0, 1)])
def test_corrupted_reference_inclusion_proofs_do_not_verify(index: int, size: int) -> None:
    proof, root, leaf = _unhex(INCLUSION[(index, size)]), bytes.fromhex(ROOTS[size]), leaf_hash(LEAVES[index])
    accepted = [
        desc
        for desc, args in _corrupted_inclusion_probes(index, size, proof, root, leaf)
        if verify_inclusion(*args)
    ]
    assert accepted == []


def _corrupted_consistency_probes(old: int, new: int, root1: bytes, root2: bytes, proof: list[bytes]):
    yield "old - 1", (old - 1, new, root1, root2, proof)
    yield "old + 1", (old + 1, new, root1, root2, proof)
    yield "old ^ 2", (old ^ 2, new, root1, root2, proof)
    yield "new * 2", (old, new * 2, root1, root2, proof)
    yield "new // 2", (old, new // 2, root1, root2, proof)
    yield "wrong old root", (old, new, SOME_HASH, root2, proof)
    yield "wrong new root", (old, new, root1, SOME_HASH, proof)
    yield "swapped roots", (old, new, root2, root1, proof)
    yield "empty proof", (old, new, root1, root2, [])
    yield "trailing garbage", (old, new, root1, root2, [*proof, b""])
    yield "trailing old root", (old, new, root1, root2, [*proof, root1])
    yield "trailing new root", (old, new, root1, root2, [*proof, root2])
    yield "preceding garbage", (old, new, root1, root2, [b"", *proof])
    yield "preceding old root", (old, new, root1, root2, [root1, *proof])
    yield "preceding new root", (old, new, root1, root2, [root2, *proof])
    yield "preceding proof[0]", (old, new, root1, root2, [proof[0], *proof])
    yield "truncated", (old, new, root1, root2, proof[:-1])
    for i in range(len(proof)):
        yield f"proof[{i}] bit flipped", (old, new, root1, root2, _flip(proof, i, 4))


@pytest.mark.parametrize(("old", "new"), [k for k in sorted(CONSISTENCY) if CONSISTENCY[k]])
def test_corrupted_reference_consistency_proofs_do_not_verify(old: int, new: int) -> None:
    proof = _unhex(CONSISTENCY[(old, new)])
    root1, root2 = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    accepted = [
        desc
        for desc, args in _corrupted_consistency_probes(old, new, root1, root2, proof)
        if verify_consistency(*args)
    ]
    assert accepted == []


@pytest.mark.parametrize(
    ("old", "new", "root1", "root2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, SOME_HASH, [], True),
        (1, 1, SOME_HASH, SOME_HASH, [], True),
        (1, 0, SOME_HASH, SOME_HASH, [], False),
        (2, 1, SOME_HASH, SOME_HASH, [], False),
        (1, 2, SOME_HASH, EMPTY_ROOT, [], False),
        (0, 0, EMPTY_ROOT, SOME_HASH, [], False),
        (1, 1, EMPTY_ROOT, SOME_HASH, [], False),
        (0, 1, SOME_HASH, SOME_HASH, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_trivial_consistency_cases_follow_the_rfc(
    old: int, new: int, root1: bytes, root2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert verify_consistency(old, new, root1, root2, proof) is ok


@pytest.mark.parametrize(
    ("index", "size", "root", "leaf"),
    [(0, 0, b"", SOME_HASH), (0, 1, b"", SOME_HASH), (1, 0, EMPTY_ROOT, SOME_HASH), (2, 1, EMPTY_ROOT, b"")],
)
def test_inclusion_with_an_impossible_index_or_hash_does_not_verify(
    index: int, size: int, root: bytes, leaf: bytes
) -> None:
    assert not verify_inclusion(leaf, index, size, [], root)


# Node layouts from the transparency-dev proof tests (there listed bottom-up with "rehash" ranges).
@pytest.mark.parametrize(
    ("index", "size", "elements"),
    [
        (0, 7, [[(0, 1)], [(1, 1)], [(1, 2), (0, 6)]]),
        (4, 7, [[(0, 5)], [(0, 6)], [(2, 0)]]),
        (6, 7, [[(1, 2)], [(2, 0)]]),
        (3, 5, [[(0, 2)], [(1, 0)], [(0, 4)]]),
        (10, 15, [[(0, 11)], [(1, 4)], [(1, 6), (0, 14)], [(3, 0)]]),
        (81, 95, [[(0, 80)], [(1, 41)], [(2, 21)], [(2, 22), (1, 46), (0, 94)], [(4, 4)], [(6, 0)]]),
    ],
)
def test_inclusion_plans_name_the_stored_subtrees_of_the_reference_layouts(
    index: int, size: int, elements: list[list[tuple[int, int]]]
) -> None:
    plan = inclusion_plan(index, size)
    assert [[tuple(n) for n in element] for element in plan.elements] == elements


@pytest.mark.parametrize(
    ("old", "new", "elements"),
    [
        (1, 2, [[(0, 1)]]),
        (2, 8, [[(1, 1)], [(2, 1)]]),
        (3, 7, [[(0, 2)], [(0, 3)], [(1, 0)], [(1, 2), (0, 6)]]),
        (4, 7, [[(1, 2), (0, 6)]]),
        (5, 7, [[(0, 4)], [(0, 5)], [(0, 6)], [(2, 0)]]),
        (7, 8, [[(0, 6)], [(0, 7)], [(1, 2)], [(2, 0)]]),
        (24, 31, [[(3, 2)], [(2, 6), (1, 14), (0, 30)], [(4, 0)]]),
        (
            81,
            95,
            [[(0, 80)], [(0, 81)], [(1, 41)], [(2, 21)], [(2, 22), (1, 46), (0, 94)], [(4, 4)], [(6, 0)]],
        ),
    ],
)
def test_consistency_plans_name_the_stored_subtrees_of_the_reference_layouts(
    old: int, new: int, elements: list[list[tuple[int, int]]]
) -> None:
    plan = consistency_plan(old, new)
    assert [[tuple(n) for n in element] for element in plan.elements] == elements


def test_a_proof_at_a_million_leaves_needs_only_a_few_dozen_stored_nodes() -> None:
    size = 1_000_003
    for index in (0, 1, 524_287, 524_288, 999_999, 1_000_002):
        assert len(inclusion_plan(index, size).node_ids) <= 2 * size.bit_length()
    for old in (1, 3, 524_288, 777_777, 1_000_002):
        assert len(consistency_plan(old, size).node_ids) <= 2 * size.bit_length()
    assert len(frontier_ids(size)) == size.bit_count()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_inclusion_proof_equals_the_rfc_path_and_verifies(big_store: InMemoryNodeStore, data) -> None:
    size = data.draw(st.integers(1, MAX_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(big_store, index, size)
    leaves = RANDOM_LEAVES[:size]
    root = ref_mth(leaves)
    assert proof == ref_path(index, leaves)
    assert root_at(big_store, size) == root
    assert verify_inclusion(leaves[index], index, size, proof, root)
    assert root_from_inclusion_proof(leaves[index], index, size, proof) == root


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_an_inclusion_proof_with_one_flipped_bit_does_not_verify(big_store: InMemoryNodeStore, data) -> None:
    size = data.draw(st.integers(2, MAX_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(big_store, index, size)
    element = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    root = root_at(big_store, size)
    assert not verify_inclusion(RANDOM_LEAVES[index], index, size, _flip(proof, element, bit), root)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_consistency_proof_equals_the_rfc_proof_and_verifies(
    big_store: InMemoryNodeStore, data
) -> None:
    new = data.draw(st.integers(1, MAX_SIZE), label="new")
    old = data.draw(st.integers(1, new), label="old")
    proof = consistency_proof(big_store, old, new)
    assert proof == ref_subproof(old, RANDOM_LEAVES[:new], True)
    assert verify_consistency(old, new, root_at(big_store, old), root_at(big_store, new), proof)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_consistency_proof_with_one_flipped_bit_does_not_verify(big_store: InMemoryNodeStore, data) -> None:
    new = data.draw(st.integers(2, MAX_SIZE), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    proof = consistency_proof(big_store, old, new)
    element = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    roots = root_at(big_store, old), root_at(big_store, new)
    assert not verify_consistency(old, new, *roots, _flip(proof, element, bit))


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.integers(0, 40), max_size=7))
def test_appending_in_batches_through_the_frontier_equals_full_recomputation(batches: list[int]) -> None:
    frontier, stored, position = Frontier(), {}, 0
    for count in batches:
        result = append_leaves(frontier, RANDOM_LEAVES[position : position + count])
        position += count
        assert result.size == position
        assert result.root == ref_mth(RANDOM_LEAVES[:position])
        for node in result.nodes:
            assert node.id not in stored, "each completed node is emitted exactly once"
            stored[node.id] = node.hash
        frontier = result.frontier
    # Every perfect subtree inside [0, size) is stored, with the RFC hash of its leaves.
    assert len(stored) == 2 * position - position.bit_count()
    for (level, index), digest in stored.items():
        begin, end = NodeId(level, index).begin, NodeId(level, index).end
        assert end <= position
        assert digest == ref_mth(RANDOM_LEAVES[begin:end])


def test_appending_does_not_change_the_frontier_it_was_given() -> None:
    frontier = append_leaves(Frontier(), RANDOM_LEAVES[:5]).frontier
    before = frontier.hashes
    append_leaves(frontier, RANDOM_LEAVES[5:9])
    assert frontier.size == 5
    assert frontier.hashes == before


def test_a_frontier_rebuilt_from_stored_nodes_continues_the_same_tree(big_store: InMemoryNodeStore) -> None:
    rebuilt = Frontier.from_nodes(77, big_store.get_nodes(frontier_ids(77)))
    result = append_leaves(rebuilt, RANDOM_LEAVES[77:200])
    assert result.root == root_at(big_store, 200)


def test_a_proof_beyond_the_stored_tree_reports_the_missing_node(vector_store: InMemoryNodeStore) -> None:
    with pytest.raises(MissingNodeError):
        inclusion_proof(vector_store, 3, 9)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (-1, 3)])
def test_an_inclusion_proof_for_a_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_plan(index, size)


@pytest.mark.parametrize(("old", "new"), [(5, 4), (-1, 3)])
def test_a_consistency_proof_to_a_smaller_tree_is_refused(old: int, new: int) -> None:
    with pytest.raises(ValueError):
        consistency_plan(old, new)


def test_a_leaf_hash_of_the_wrong_length_cannot_be_appended() -> None:
    with pytest.raises(ValueError):
        append_leaves(Frontier(), [b"short"])
