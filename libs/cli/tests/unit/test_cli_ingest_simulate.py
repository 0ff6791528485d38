"""`vigil simulate`: pacing, per-device sequencing and signing, the two pool modes, retries and counters."""

from __future__ import annotations

import asyncio
import itertools
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_cli import output
from vigil_cli.ingest_cmds import Segment, claims_of
from vigil_cli.simulate import (
    SHARED_POOL_ID,
    Pool,
    SimConfig,
    SimDevice,
    Simulator,
    due_at,
    encode_pool,
    ensure_device_key,
    first_due,
    parse_bitrate,
    percentile,
    provisioned_ids,
    read_device_file,
)
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container, checker_for
from vigil_ingest.video import decode_frames, probe, read_overlay
from vigil_kit.errors import InvalidArgument, ResourceExhausted, to_grpc_status
from vigil_testing.poll import apoll_until

NS = 1_000_000_000
IDS = ["32020501501320000001", "32020501501320000002", "32020501501320000003"]


def rpc_error(err) -> grpc.aio.AioRpcError:
    status = to_grpc_status(err)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


@dataclass
class FakeIngest:
    """Records every upload with the time it arrived; `refuse(header)` may return an error to raise."""

    refuse: object = None
    uploads: list[tuple[float, pb.SegmentHeader, bytes]] = field(default_factory=list)

    async def UploadSegment(self, requests, timeout=None) -> pb.UploadSegmentResponse:
        header, chunks = None, []
        async for message in requests:
            if message.WhichOneof("message") == "header":
                header = message.header
            else:
                chunks.append(message.chunk)
        if self.refuse is not None:
            err = self.refuse(header)
            if err is not None:
                raise err
        self.uploads.append((time.monotonic(), header, b"".join(chunks)))
        return pb.UploadSegmentResponse(segment=pb.StoredSegment(device_id=header.device_id))


def devices(n: int = 3) -> list[SimDevice]:
    return [SimDevice(i, signing.generate_device_key().private_key) for i in IDS[:n]]


def tiny_pool(ids: list[str], *, shared: bool) -> Pool:
    def seg(tag: str, k: int) -> Segment:
        return Segment.of(
            f"{tag}-{k}".encode() * 10, duration_ns=NS // 10, container=Container.MPEG_TS, codec="h264"
        )

    owners = [SHARED_POOL_ID] if shared else ids
    return Pool({o: (seg(o, 0), seg(o, 1)) for o in owners}, shared=shared)


def test_devices_are_staggered_evenly_across_one_period() -> None:
    assert [first_due(i, 4, 2.0, 100.0) for i in range(4)] == [100.0, 100.5, 101.0, 101.5]
    assert [due_at(1, 4, 2.0, 100.0, n) for n in range(3)] == [100.5, 102.5, 104.5]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([], 99)) == (50.0, 99.0, 0.0)


def test_bit_rates_read_as_people_write_them() -> None:
    assert (parse_bitrate("1M"), parse_bitrate("512k"), parse_bitrate("800000")) == (
        1_000_000,
        512_000,
        800_000,
    )


async def test_each_device_uploads_its_segments_paced_signed_and_sequenced() -> None:
    devs = devices(3)
    cfg = SimConfig(segment_seconds=0.2, segments=3, keepalive_interval_s=0)
    stub = FakeIngest()
    began = time.monotonic()
    stats = await Simulator(devs, tiny_pool(IDS, shared=False), cfg, stub).run()
    assert stats.uploaded == 9 and stats.failed_total == 0
    for dev in devs:
        mine = [(t, h, d) for t, h, d in stub.uploads if h.device_id == dev.device_id]
        assert len(mine) == 3
        seqs = [h.sequence for _, h, _ in mine]
        assert seqs == sorted(set(seqs))  # strictly increasing
        for _, header, data in mine:
            signing.verify(signing.public_key_b64(dev.key), claims_of(header), header.signature)
            assert header.sha256 == Segment.of(data, duration_ns=1, container=None, codec="").sha256
        # Real time: the third segment is not sent before two periods have passed.
        assert mine[2][0] - began >= 2 * cfg.segment_seconds - 0.02
    firsts = sorted(min(t for t, h, _ in stub.uploads if h.device_id == d.device_id) for d in devs)
    assert firsts[2] - firsts[0] >= 0.1  # staggered: 2/3 of a period between the first and the last


async def test_a_start_time_is_now_minus_the_duration_at_upload() -> None:
    stub = FakeIngest()
    cfg = SimConfig(segment_seconds=0.1, segments=1, keepalive_interval_s=0)
    before = time.time_ns()
    await Simulator(devices(1), tiny_pool(IDS[:1], shared=False), cfg, stub).run()
    header = stub.uploads[0][1]
    start = header.start_time.seconds * NS + header.start_time.nanos
    assert before - NS // 10 <= start <= time.time_ns() - NS // 10


async def test_in_shared_pool_mode_every_device_sends_the_same_bytes_under_its_own_signature() -> None:
    devs = devices(3)
    stub = FakeIngest()
    cfg = SimConfig(segment_seconds=0.1, segments=1, keepalive_interval_s=0, shared_pool=True)
    await Simulator(devs, tiny_pool(IDS, shared=True), cfg, stub).run()
    assert len({data for _, _, data in stub.uploads}) == 1
    assert len({h.signature for _, h, _ in stub.uploads}) == 3
    for dev in devs:
        header = next(h for _, h, _ in stub.uploads if h.device_id == dev.device_id)
        signing.verify(signing.public_key_b64(dev.key), claims_of(header), header.signature)


async def test_backpressure_is_retried_and_counted_and_the_segment_still_arrives() -> None:
    refused: set[str] = set()

    def refuse_first(header):
        if header.device_id not in refused:
            refused.add(header.device_id)
            return rpc_error(ResourceExhausted("too many uploads", retry_after_s=0.01))
        return None

    stub = FakeIngest(refuse=refuse_first)
    cfg = SimConfig(segment_seconds=0.1, segments=1, keepalive_interval_s=0)
    stats = await Simulator(devices(2), tiny_pool(IDS[:2], shared=False), cfg, stub).run()
    assert (stats.uploaded, stats.retries, stats.failed_total) == (2, 2, 0)


async def test_a_refused_upload_is_counted_and_the_device_carries_on() -> None:
    # Sequences follow the clock in milliseconds, so their parity says nothing: refuse every other call.
    calls = itertools.count()
    stub = FakeIngest(refuse=lambda h: rpc_error(InvalidArgument("nope")) if next(calls) % 2 else None)
    cfg = SimConfig(segment_seconds=0.05, segments=4, keepalive_interval_s=0)
    stats = await Simulator(devices(1), tiny_pool(IDS[:1], shared=False), cfg, stub).run()
    assert (stats.uploaded, stats.failed_total) == (2, 2)
    assert stats.failures["INVALID_ARGUMENT"] == 2
    assert "nope" in stats.last_error


async def test_a_per_device_pool_shows_each_device_id_and_is_valid_h264_ts() -> None:
    cfg = SimConfig(segment_seconds=0.4, size=(256, 144), fps=10, bitrate=200_000, pool_size=2)
    with ThreadPoolExecutor(2) as executor:
        pool = await encode_pool(IDS[:2], cfg, executor=executor)
    assert set(pool.segments) == set(IDS[:2]) and not pool.shared
    for device_id in IDS[:2]:
        for k in range(2):
            seg = pool.segment(device_id, k)
            checker = checker_for(Container.MPEG_TS)
            checker.feed(seg.data)
            checker.finish()
            assert probe(seg.data).codec == "h264"
            assert seg.duration_ns == 4 * NS // 10
            assert read_overlay(decode_frames(seg.data)[0])[0] == device_id
    assert pool.segment(IDS[0], 0).data != pool.segment(IDS[0], 1).data  # consecutive times burned in
    assert pool.segment(IDS[0], 2) is pool.segment(IDS[0], 0)  # replayed in a cycle


async def test_a_shared_pool_is_encoded_once_for_every_device() -> None:
    cfg = SimConfig(
        segment_seconds=0.2, size=(128, 72), fps=10, bitrate=100_000, pool_size=1, shared_pool=True
    )
    with ThreadPoolExecutor(1) as executor:
        pool = await encode_pool(IDS, cfg, executor=executor)
    assert list(pool.segments) == [SHARED_POOL_ID]
    assert pool.segment(IDS[0], 0) is pool.segment(IDS[2], 0)


def test_device_keys_are_generated_once_as_private_pkcs8_pem(tmp_path: Path) -> None:
    key, created = ensure_device_key(tmp_path / "keys", IDS[0])
    again, created_again = ensure_device_key(tmp_path / "keys", IDS[0])
    path = tmp_path / "keys" / f"{IDS[0]}.pem"
    assert (created, created_again) == (True, False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert signing.public_key_b64(key) == signing.public_key_b64(again)


def test_a_device_file_lists_ids_with_optional_key_paths(tmp_path: Path) -> None:
    listing = tmp_path / "devices.txt"
    listing.write_text(f"# cameras\n{IDS[0]}\n\n{IDS[1]} keys/two.pem  # with its own key\n")
    assert read_device_file(listing, tmp_path / "k") == [
        (IDS[0], tmp_path / "k" / f"{IDS[0]}.pem"),
        (IDS[1], tmp_path / "keys" / "two.pem"),
    ]


def test_a_device_file_with_a_malformed_line_is_a_usage_error(tmp_path: Path) -> None:

    listing = tmp_path / "devices.txt"
    listing.write_text("12345\n")
    with pytest.raises(output.UsageError, match=r"devices\.txt:1"):
        read_device_file(listing, tmp_path)


def test_provisioned_device_ids_keep_the_template_prefix_and_never_clash_with_it() -> None:
    ids = provisioned_ids(IDS[0], 3)
    assert all(i[:14] == IDS[0][:14] and len(i) == 20 for i in ids)
    assert len(set(ids)) == 3 and IDS[0] not in ids


async def test_keepalives_are_sent_for_every_device_each_round() -> None:
    from vigil.registry.v1 import registry_service_pb2 as registry_pb

    rounds: list[list[str]] = []

    class Registry:
        async def StreamKeepalives(self, requests):
            rounds.append([r.device_id for r in requests])
            return registry_pb.StreamKeepalivesResponse(received=len(rounds[-1]))

    cfg = SimConfig(segment_seconds=0.1, segments=3, keepalive_interval_s=0.1)
    stats = await Simulator(devices(2), tiny_pool(IDS[:2], shared=False), cfg, FakeIngest(), Registry()).run()
    assert rounds and all(r == IDS[:2] for r in rounds)
    assert stats.keepalives_sent == 2 * len(rounds)


async def test_stopping_the_simulator_cancels_cleanly() -> None:
    cfg = SimConfig(segment_seconds=0.05, segments=0, keepalive_interval_s=0)
    stub = FakeIngest()
    task = asyncio.create_task(Simulator(devices(1), tiny_pool(IDS[:1], shared=False), cfg, stub).run())

    async def two_uploads() -> bool:
        return len(stub.uploads) >= 2

    await apoll_until(two_uploads, timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
