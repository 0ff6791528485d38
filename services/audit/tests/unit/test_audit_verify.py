"""Verifying an audit log export: a clean export passes, and each kind of tampering names the first bad leaf."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vigil_audit.domain.leaf import canonical_record, leaf_bytes, record_leaf_hash
from vigil_audit.domain.sth import SignedTreeHead, TreeHead, sign_tree_head
from vigil_audit.domain.verify import (
    FailureKind,
    VerifyReport,
    entry_line_bytes,
    tree_head_line_bytes,
    verify_export,
    verify_lines,
)
from vigil_kit.merkle import Frontier, leaf_hash

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
COUNT = 40
HEAD_SIZES = (10, 20, 33, 40)


def _record(i: int) -> dict:
    return canonical_record(
        {
            "record_id": f"0190f5c2-7a00-7000-8000-{i:012x}",
            "time": START + timedelta(seconds=i),
            "source_service": "archive",
            "actor": {
                "id": f"u-{i % 3}",
                "name": "张三",
                "unit": "11330100MB0000001X",
                "roles": ["ROLE_AUDITOR"],
            },
            "action": "archive.playback.manifest",
            "resources": {"device_ids": [f"cam-{i}"]},
            "decision": "DECISION_ALLOWED",
            "attributes": {"segments": str(i)},
        }
    )


def _build(count: int = COUNT, head_sizes: tuple[int, ...] = HEAD_SIZES) -> tuple[list[bytes], list[bytes]]:
    """(tree head lines, entry lines) of a log of ``count`` records, as the exporter writes them."""
    frontier, entries, heads = Frontier(), [], []
    for i in range(count):
        leaf = leaf_bytes(_record(i))
        digest = leaf_hash(leaf)
        frontier.append(digest)
        entries.append(entry_line_bytes(i, digest, leaf))
        if i + 1 in head_sizes:
            head = TreeHead(i + 1, frontier.root(), START + timedelta(seconds=i, milliseconds=500))
            heads.append(tree_head_line_bytes(sign_tree_head(KEY, head)))
    return heads, entries


HEADS, ENTRIES = _build()


def _verify_both_ways(lines: list[bytes], key: Ed25519PrivateKey = KEY) -> VerifyReport:
    """Verify through the fast line path and the parsed-object path; both must agree."""
    public = key.public_key()
    fast = verify_lines([line + b"\n" for line in lines], public)
    parsed = verify_export((json.loads(line) for line in lines), public)
    assert fast == parsed
    return fast


def _edit_record(line: bytes, change: Callable[[dict], None], *, rehash: bool = False) -> bytes:
    obj = json.loads(line)
    change(obj["record"])
    if rehash:
        obj["leaf_hash"] = record_leaf_hash(obj["record"]).hex()
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def test_an_untouched_export_verifies_up_to_its_last_tree_head() -> None:
    report = _verify_both_ways(HEADS + ENTRIES)
    assert report.ok, report.failure
    assert (report.entries, report.tree_heads, report.verified_size) == (COUNT, len(HEAD_SIZES), COUNT)


def test_tree_heads_given_beside_the_export_count_as_if_they_came_first() -> None:
    heads = [SignedTreeHead.from_dict(json.loads(line)["tree_head"]) for line in HEADS]
    report = verify_lines(ENTRIES, KEY.public_key(), tree_heads=heads)
    assert report.ok and report.verified_size == COUNT


def test_a_record_in_another_but_equivalent_spelling_still_verifies() -> None:
    def respell(record: dict) -> None:
        record["reason"] = ""
        record["time"] = record.pop("time")  # moves the key last: no longer canonical order

    lines = HEADS + ENTRIES
    lines[len(HEADS) + 7] = _edit_record(lines[len(HEADS) + 7], respell)
    assert _verify_both_ways(lines).ok


def test_an_edited_record_is_named_by_its_leaf_index() -> None:
    lines = HEADS + ENTRIES
    lines[len(HEADS) + 17] = _edit_record(lines[len(HEADS) + 17], lambda r: r.update(action="archive.export"))
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.LEAF_HASH_MISMATCH, 17)


def test_an_edited_record_with_a_recomputed_leaf_hash_is_pinned_to_its_tree_head_interval() -> None:
    lines = HEADS + ENTRIES
    lines[len(HEADS) + 17] = _edit_record(
        lines[len(HEADS) + 17], lambda r: r["actor"].update(name="李四"), rehash=True
    )
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    # Leaves 0..9 are proven by the head at 10; the head at 20 catches the change in 10..19.
    assert (failure.kind, failure.leaf_index, failure.tree_size) == (FailureKind.ROOT_MISMATCH, 10, 20)


def test_a_deleted_record_is_named_as_the_missing_leaf() -> None:
    lines = HEADS + ENTRIES
    del lines[len(HEADS) + 17]
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.MISSING_LEAF, 17)


def test_several_deleted_records_are_named_from_the_first_missing_leaf() -> None:
    lines = HEADS + ENTRIES
    del lines[len(HEADS) + 17 : len(HEADS) + 20]
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.MISSING_LEAF, 17)
    assert "17..19" in failure.reason


@pytest.mark.parametrize(("first", "second"), [(12, 25), (5, 6), (38, 39)])
def test_two_swapped_records_are_named_by_the_first_displaced_leaf(first: int, second: int) -> None:
    lines = HEADS + ENTRIES
    a, b = len(HEADS) + first, len(HEADS) + second
    lines[a], lines[b] = lines[b], lines[a]
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.OUT_OF_ORDER, first)


def test_swapped_records_with_renumbered_indexes_fail_at_the_covering_tree_head() -> None:
    swapped = ENTRIES.copy()
    swapped[3], swapped[4] = swapped[4], swapped[3]
    renumbered = []
    for i, line in enumerate(swapped):
        obj = json.loads(line)
        obj["leaf_index"] = i
        renumbered.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
    failure = _verify_both_ways(HEADS + renumbered).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index, failure.tree_size) == (FailureKind.ROOT_MISMATCH, 0, 10)


def test_a_duplicated_record_is_named_where_it_repeats() -> None:
    lines = HEADS + ENTRIES
    lines.insert(len(HEADS) + 9, lines[len(HEADS) + 8])
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.OUT_OF_ORDER, 9)


def test_a_truncated_export_names_the_first_leaf_cut_off() -> None:
    lines = (HEADS + ENTRIES)[:-5]
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index, failure.tree_size) == (FailureKind.TRUNCATED, 35, 40)


def test_deleting_the_last_record_is_a_truncation_at_that_leaf() -> None:
    failure = _verify_both_ways((HEADS + ENTRIES)[:-1]).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.TRUNCATED, 39)


def test_the_wrong_public_key_fails_on_the_first_tree_head() -> None:
    failure = _verify_both_ways(HEADS + ENTRIES, key=OTHER_KEY).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index, failure.tree_size) == (FailureKind.BAD_SIGNATURE, None, 10)


def test_an_edited_tree_head_fails_its_signature() -> None:
    obj = json.loads(HEADS[1])
    obj["tree_head"]["tree_size"] = 21
    lines = [HEADS[0], json.dumps(obj).encode(), *HEADS[2:], *ENTRIES]
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.tree_size) == (FailureKind.BAD_SIGNATURE, 21)


def test_entries_beyond_the_last_tree_head_are_not_proven() -> None:
    heads, entries = _build(head_sizes=(10, 20))
    failure = _verify_both_ways(heads + entries).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.UNSIGNED_LEAVES, 20)


def test_an_export_without_a_tree_head_proves_nothing() -> None:
    failure = _verify_both_ways(ENTRIES).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.NO_TREE_HEAD, 0)


def test_a_tree_head_after_the_entries_it_covers_is_refused() -> None:
    failure = _verify_both_ways(ENTRIES[:15] + HEADS[:1] + ENTRIES[15:]).failure
    assert failure is not None
    assert (failure.kind, failure.tree_size) == (FailureKind.LATE_TREE_HEAD, 10)


def test_a_tree_head_right_after_the_entries_it_covers_is_checked() -> None:
    heads, entries = _build(count=10, head_sizes=(10,))
    assert _verify_both_ways(entries + heads).ok


def test_two_signed_heads_for_one_size_with_different_roots_are_reported() -> None:
    forged = sign_tree_head(KEY, TreeHead(10, b"\x07" * 32, START))
    lines = [*HEADS, tree_head_line_bytes(forged), *ENTRIES]
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.tree_size) == (FailureKind.CONFLICTING_TREE_HEADS, 10)


def test_an_empty_log_verifies_against_its_signed_empty_head() -> None:
    heads, entries = _build(count=0, head_sizes=(0,))
    heads = [tree_head_line_bytes(sign_tree_head(KEY, TreeHead(0, Frontier().root(), START)))]
    report = _verify_both_ways(heads + entries)
    assert report.ok and report.verified_size == 0


def test_a_line_that_is_not_json_is_named_at_the_leaf_it_replaces() -> None:
    lines = HEADS + ENTRIES
    lines[len(HEADS) + 4] = b'{"leaf_index":4,'
    failure = verify_lines(lines, KEY.public_key()).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.MALFORMED, 4)


def test_a_record_with_an_unknown_field_is_malformed_at_its_leaf() -> None:
    lines = HEADS + ENTRIES
    lines[len(HEADS) + 4] = _edit_record(lines[len(HEADS) + 4], lambda r: r.update(colour="red"))
    failure = _verify_both_ways(lines).failure
    assert failure is not None
    assert (failure.kind, failure.leaf_index) == (FailureKind.MALFORMED, 4)


def test_entry_lines_in_the_exporters_exact_form_are_checked_without_parsing(monkeypatch) -> None:
    import vigil_audit.domain.verify as verify_module

    parsed: list[bytes] = []
    real_loads = json.loads

    def counting_loads(text, *args, **kwargs):
        parsed.append(text)
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(verify_module.json, "loads", counting_loads)
    assert verify_lines(HEADS + ENTRIES, KEY.public_key()).ok
    assert len(parsed) == len(HEADS)
