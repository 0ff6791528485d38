"""Every bad upload gets its own status, is audited as denied, and leaves no object, event or acceptance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from prometheus_client import REGISTRY

from vigil.audit.v1 import audit_record_pb2
from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil_ingest.domain.signing import generate_device_key
from vigil_kit.errors import VigilError
from vigil_testing.calls import refused
from vigil_testing.poll import apoll_until

from .conftest import Ingest, device_id, ts_packets

MiB = 1024 * 1024


async def assert_nothing_left(ingest: Ingest, did: str) -> None:
    assert ingest.versions(f"segments/{did}/") == []
    assert ingest.open_multipart_uploads(f"segments/{did}/") == []
    assert await ingest.segment_events() == []
    assert await ingest.audits(audit_record_pb2.DECISION_ALLOWED) == []
    assert await ingest.upload_rows() == []


async def refusal_of(
    ingest: Ingest, header: pb.SegmentHeader | None, chunks: list[bytes], **kw
) -> VigilError:
    async with refused() as err:
        await ingest.upload(header, chunks, **kw)
    return err[0]


async def assert_denied_audit(ingest: Ingest, rule_id: str) -> None:
    (record,) = await ingest.audits(audit_record_pb2.DECISION_DENIED)
    assert record.action == "ingest.segment.upload"
    assert record.rule_id == rule_id


async def test_an_unknown_device_is_a_failed_precondition(ingest: Ingest) -> None:
    did = device_id(99_999)
    key = ingest.keys.setdefault(did, generate_device_key())
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data, key=key), [data])
    assert (err.code.name, err.field) == ("FAILED_PRECONDITION", "header.device_id")
    assert ingest.registry.calls == 1  # asked before refusing
    await assert_nothing_left(ingest, did)
    await assert_denied_audit(ingest, "FAILED_PRECONDITION")


async def test_an_inactive_device_is_a_failed_precondition_once_the_registry_confirms_it(
    ingest: Ingest,
) -> None:
    did = await ingest.seed_device(state="DEVICE_STATE_SUSPENDED")
    ingest.registry.devices[did] = registry_pb.Device(
        device_id=did, state=registry_pb.DEVICE_STATE_SUSPENDED, public_key=ingest.keys[did].public_key_b64
    )
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data), [data])
    assert err.code.name == "FAILED_PRECONDITION" and "SUSPENDED" in err.message
    assert ingest.registry.calls == 1
    await assert_nothing_left(ingest, did)


async def test_a_missing_signature_is_unauthenticated(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data, signature=b""), [data])
    assert (err.code.name, err.rule) == ("UNAUTHENTICATED", "ARC-4")
    await assert_nothing_left(ingest, did)
    await assert_denied_audit(ingest, "ARC-4")


async def test_a_signature_by_another_key_is_unauthenticated(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data, key=generate_device_key()), [data])
    assert (err.code.name, err.rule, err.field) == ("UNAUTHENTICATED", "ARC-4", "header.signature")
    await assert_nothing_left(ingest, did)


async def test_a_caller_of_another_unit_is_permission_denied(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data), [data], who="shop")
    assert (err.code.name, err.rule) == ("PERMISSION_DENIED", "ACC-2")
    await assert_nothing_left(ingest, did)
    await assert_denied_audit(ingest, "ACC-2")


async def test_a_stream_without_a_header_is_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    err = await refusal_of(ingest, None, [ts_packets(10)])
    assert (err.code.name, err.field) == ("INVALID_ARGUMENT", "header")
    await assert_nothing_left(ingest, did)


async def test_a_repeated_header_is_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    header = ingest.header(did, data)

    async def messages() -> AsyncIterator[pb.UploadSegmentRequest]:
        yield pb.UploadSegmentRequest(header=header)
        yield pb.UploadSegmentRequest(chunk=data[:188])
        yield pb.UploadSegmentRequest(header=header)
        yield pb.UploadSegmentRequest(chunk=data[188:])

    async with refused() as err:
        await ingest.stub().UploadSegment(messages())
    assert (err[0].code.name, err[0].field) == ("INVALID_ARGUMENT", "header")
    await assert_nothing_left(ingest, did)


async def test_a_size_over_the_maximum_is_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    err = await refusal_of(
        ingest, ingest.header(did, data, size=ingest.settings.max_segment_bytes + 1), [data]
    )
    assert (err.code.name, err.field) == ("INVALID_ARGUMENT", "header.size")
    await assert_nothing_left(ingest, did)


async def test_fewer_bytes_than_the_declared_size_are_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data, size=len(data) + 188), [data])
    assert (err.code.name, err.field) == ("INVALID_ARGUMENT", "header.size")
    await assert_nothing_left(ingest, did)


async def test_bytes_that_do_not_hash_to_the_signed_sha256_are_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    claimed = ts_packets(10)
    sent = ts_packets(10, fill=7)
    header = ingest.header(did, claimed)
    err = await refusal_of(ingest, header, [sent])
    assert (err.code.name, err.rule, err.field) == ("INVALID_ARGUMENT", "ARC-4", "header.sha256")
    await assert_nothing_left(ingest, did)
    await assert_denied_audit(ingest, "ARC-4")


async def test_bytes_that_are_not_a_video_container_are_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = b"this is a text file, not a transport stream" * 10
    err = await refusal_of(ingest, ingest.header(did, data), [data])
    assert (err.code.name, err.field) == ("INVALID_ARGUMENT", "chunk")
    assert "MPEG-TS" in err.message
    await assert_nothing_left(ingest, did)


async def test_chunks_past_the_declared_size_are_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(10)
    err = await refusal_of(ingest, ingest.header(did, data), [data, ts_packets(1)])
    assert (err.code.name, err.field) == ("INVALID_ARGUMENT", "chunk")
    await assert_nothing_left(ingest, did)


async def test_a_chunk_over_one_mebibyte_is_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(MiB // 188 + 1)
    err = await refusal_of(ingest, ingest.header(did, data), [data])
    assert (err.code.name, err.field) == ("INVALID_ARGUMENT", "chunk")
    await assert_nothing_left(ingest, did)


async def _cancel_midway(ingest: Ingest, did: str, data: bytes, sent: int, ready) -> None:
    header = ingest.header(did, data)
    hold = asyncio.Event()

    async def messages() -> AsyncIterator[pb.UploadSegmentRequest]:
        yield pb.UploadSegmentRequest(header=header)
        for i in range(0, sent, MiB):
            yield pb.UploadSegmentRequest(chunk=data[i : min(i + MiB, sent)])
        await hold.wait()  # never sends the rest

    call = ingest.stub().UploadSegment(messages())
    await apoll_until(ready, timeout=30, what="the upload under way")
    call.cancel()
    try:
        await call
    except asyncio.CancelledError:
        pass
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.CANCELLED


async def test_a_client_that_cancels_midway_leaves_nothing(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets(1000)

    async def in_flight() -> bool:
        return ingest.context is not None and _in_flight_bytes() > 0

    await _cancel_midway(ingest, did, data, 188 * 500, in_flight)
    await apoll_until(lambda: _async(_in_flight_bytes() == 0), timeout=10, what="the upload released")
    await assert_nothing_left(ingest, did)


async def test_a_client_that_cancels_a_multipart_upload_midway_leaves_no_parts(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    data = ts_packets((12 * MiB) // 188)

    async def part_stored() -> bool:
        return bool(await asyncio.to_thread(ingest.open_multipart_uploads, f"segments/{did}/"))

    await _cancel_midway(ingest, did, data, 9 * MiB, part_stored)
    await apoll_until(
        lambda: asyncio.to_thread(lambda: not ingest.open_multipart_uploads(f"segments/{did}/")),
        timeout=10,
        what="the multipart upload aborted",
    )
    await assert_nothing_left(ingest, did)


def _in_flight_bytes() -> float:
    return REGISTRY.get_sample_value("vigil_ingest_in_flight_bytes") or 0.0


async def _async(value: bool) -> bool:
    return value
