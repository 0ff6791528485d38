"""`vigil ingest upload` and the shared upload client: signed headers, sequences, probing, chunking, retries."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_cli import ingest_cmds
from vigil_cli.context import BrokerEndpoint, Context, S3Endpoint, ServiceEndpoint, write_context
from vigil_cli.ingest_cmds import (
    RetryPolicy,
    Segment,
    Sequencer,
    claims_of,
    probe_file,
    reserve_sequence,
    send_segment,
    signed_header,
    upload_with_retry,
)
from vigil_cli.main import app
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container
from vigil_ingest.video import encode_segment
from vigil_kit.errors import InvalidArgument, ResourceExhausted, to_grpc_status

DEVICE = "32020501501320000001"
KEY = signing.load_private_key_pem(signing.TEST_VECTOR_PRIVATE_KEY_PEM)
NS = 1_000_000_000


def rpc_error(err) -> grpc.aio.AioRpcError:
    """The error a client sees when the service raises `err` (rich details in the trailers)."""
    status = to_grpc_status(err)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


@dataclass
class FakeIngest:
    """An IngestService stub that reads the whole client stream, and fails the first calls if told."""

    failures: list[Exception] = field(default_factory=list)
    calls: list[tuple[pb.SegmentHeader, list[bytes]]] = field(default_factory=list)

    async def UploadSegment(self, requests, timeout=None) -> pb.UploadSegmentResponse:
        header, chunks = None, []
        async for message in requests:
            if message.WhichOneof("message") == "header":
                header = message.header
            else:
                chunks.append(message.chunk)
        self.calls.append((header, chunks))
        if self.failures:
            raise self.failures.pop(0)
        return pb.UploadSegmentResponse(
            segment=pb.StoredSegment(
                device_id=header.device_id, sequence=header.sequence, sha256=header.sha256
            )
        )


def segment(data: bytes = b"\x47" * 188 * 4) -> Segment:
    return Segment.of(data, duration_ns=2 * NS, container=Container.MPEG_TS, codec="h264")


def test_a_signed_header_verifies_with_the_device_public_key() -> None:
    header = signed_header(
        KEY, device_id=DEVICE, sequence=7, start_ns=1_795_861_800_040_000_000, segment=segment()
    )
    signing.verify(signing.TEST_VECTOR_PUBLIC_KEY_B64, claims_of(header), header.signature)
    assert header.container == pb.CONTAINER_MPEG_TS
    assert header.size == 188 * 4
    assert (header.start_time.seconds, header.start_time.nanos) == (1_795_861_800, 40_000_000)
    assert (header.duration.seconds, header.duration.nanos) == (2, 0)


def test_a_signed_header_does_not_verify_once_any_signed_claim_changes() -> None:
    header = signed_header(KEY, device_id=DEVICE, sequence=7, start_ns=1_795_861_800 * NS, segment=segment())
    header.sequence = 8
    with pytest.raises(Exception, match="ARC-4"):
        signing.verify(signing.TEST_VECTOR_PUBLIC_KEY_B64, claims_of(header), header.signature)


def test_the_test_vector_header_is_signed_to_the_documented_signature() -> None:
    empty = Segment.of(b"", duration_ns=2 * NS, container=Container.MPEG_TS, codec="h264")
    header = signed_header(
        KEY, device_id=DEVICE, sequence=42, start_ns=1_795_861_800_040_000_000, segment=empty
    )
    import base64

    assert base64.b64encode(header.signature).decode() == signing.TEST_VECTOR_SIGNATURE_B64


def test_sequences_strictly_increase_even_when_start_times_repeat_or_go_back() -> None:
    seq = Sequencer()
    starts = [5_000 * 1_000_000, 5_000 * 1_000_000, 4_000 * 1_000_000, 9_000 * 1_000_000]
    got = [seq.next(s) for s in starts]
    assert got == [5_000, 5_001, 5_002, 9_000]


def test_reserved_sequences_move_forward_across_invocations_and_are_recorded(tmp_path: Path) -> None:
    start = 1_795_861_800 * NS
    first = reserve_sequence(tmp_path, DEVICE, start)
    second = reserve_sequence(tmp_path, DEVICE, start)  # same start: still a fresh number
    assert first == start // 1_000_000
    assert second == first + 1
    assert (tmp_path / "sequences" / DEVICE).read_text().strip() == str(second)


async def test_an_upload_sends_the_header_first_then_chunks_of_at_most_the_limit() -> None:
    data = os.urandom(2500)
    stub = FakeIngest()
    header = signed_header(
        KEY, device_id=DEVICE, sequence=1, start_ns=1_795_861_800 * NS, segment=segment(data)
    )
    await send_segment(stub, header, data, chunk_bytes=1000)
    sent_header, chunks = stub.calls[0]
    assert sent_header == header
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert b"".join(chunks) == data


async def test_resource_exhausted_is_retried_after_the_retry_info_delay_with_the_identical_upload() -> None:
    data = b"\x47" * 188
    stub = FakeIngest(failures=[rpc_error(ResourceExhausted("busy", retry_after_s=0.25))] * 2)
    header = signed_header(
        KEY, device_id=DEVICE, sequence=1, start_ns=1_795_861_800 * NS, segment=segment(data)
    )
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    reply = await upload_with_retry(stub, header, data, sleep=sleep)
    assert reply.segment.sequence == 1
    assert slept == [0.25, 0.25]
    assert all(h == header and b"".join(c) == data for h, c in stub.calls)
    assert len(stub.calls) == 3


async def test_a_refusal_about_the_upload_itself_is_not_retried() -> None:
    stub = FakeIngest(failures=[rpc_error(InvalidArgument("not a video", field="chunk"))])
    header = signed_header(KEY, device_id=DEVICE, sequence=1, start_ns=1_795_861_800 * NS, segment=segment())

    async def sleep(s: float) -> None:
        raise AssertionError("no retry expected")

    with pytest.raises(grpc.RpcError) as caught:
        await upload_with_retry(stub, header, segment().data, sleep=sleep)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(stub.calls) == 1


def test_retries_stop_after_the_policy_attempts() -> None:
    err = rpc_error(ResourceExhausted("busy", retry_after_s=0.1))
    policy = RetryPolicy(attempts=3)
    assert [policy.delay(err, a) for a in (1, 2, 3)] == [0.1, 0.1, None]


def test_probing_a_pyav_segment_finds_container_codec_and_duration() -> None:
    data = encode_segment(DEVICE, datetime.now(UTC), 1.0, 10, (128, 72), 200_000)
    probed = probe_file(data, "clip.ts")
    assert (probed.container, probed.codec, probed.problem) == (Container.MPEG_TS, "h264", "")
    assert probed.duration_s == pytest.approx(1.0, abs=0.01)


def test_probing_a_file_that_is_not_video_guesses_so_the_server_can_refuse_it() -> None:
    probed = probe_file(b"%PDF-1.7 definitely not video" * 10, "report.pdf")
    assert probed.container is Container.MPEG_TS
    assert probed.codec == "unknown"
    assert probed.duration_s > 0
    assert probed.problem


# ---- the command, with the upload call replaced ------------------------------------------------


@pytest.fixture
def cli_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, list[tuple[pb.SegmentHeader, bytes]]]:
    """A context whose ingest endpoint is never dialled: the upload call is captured instead."""
    from vigil_cli.identity import load_directory, mint_principal_tokens
    from vigil_kit.auth import TokenIssuer, generate_keypair

    issuer = TokenIssuer(generate_keypair()[0])
    tokens = mint_principal_tokens(issuer, load_directory())
    from vigil_cli.context import PrincipalEntry

    ctx = Context(
        pid=os.getpid(),
        started_at="2025-03-01T08:00:00+00:00",
        data_dir=str(tmp_path),
        base_port=0,
        issuer="vigil",
        issuer_public_key_pem=issuer.public_key_pem.decode(),
        services=["ingest"],
        endpoints={
            "ingest": ServiceEndpoint("127.0.0.1:1", ""),
            "registry": ServiceEndpoint("127.0.0.1:1", ""),
        },
        broker=BrokerEndpoint("127.0.0.1:1"),
        s3=S3Endpoint("127.0.0.1:1", "x", "y"),
        principals={
            n: PrincipalEntry(t.token, t.claims, t.expires_at.isoformat()) for n, t in tokens.items()
        },
    )
    write_context(ctx, tmp_path / "context.json")
    sent: list[tuple[pb.SegmentHeader, bytes]] = []

    async def fake_upload(stub, header, data, **kw) -> pb.UploadSegmentResponse:
        kw["on_chunk"](len(data))
        sent.append((header, data))
        return pb.UploadSegmentResponse(
            segment=pb.StoredSegment(device_id=header.device_id, sequence=header.sequence)
        )

    monkeypatch.setattr(ingest_cmds, "upload_with_retry", fake_upload)
    key = tmp_path / "device.pem"
    key.write_bytes(signing.TEST_VECTOR_PRIVATE_KEY_PEM)
    return tmp_path, sent


def invoke(home: Path, *args: str):
    return CliRunner().invoke(app, list(args), env={"VIGIL_HOME": str(home), "VIGIL_AS": None})


def test_the_upload_command_derives_every_header_field_from_the_file(cli_home) -> None:
    home, sent = cli_home
    clip = home / "clip.ts"
    clip.write_bytes(encode_segment(DEVICE, datetime.now(UTC), 1.0, 10, (128, 72), 200_000))
    before = time.time_ns()
    result = invoke(home, "ingest", "upload", DEVICE, str(clip), "--key", str(home / "device.pem"), "--json")
    assert result.exit_code == 0, result.output
    header, data = sent[0]
    assert data == clip.read_bytes()
    signing.verify(signing.TEST_VECTOR_PUBLIC_KEY_B64, claims_of(header), header.signature)
    assert (header.container, header.codec) == (pb.CONTAINER_MPEG_TS, "h264")
    assert header.duration.seconds == 1 and header.duration.nanos == 0
    start_ns = header.start_time.seconds * NS + header.start_time.nanos
    assert before - 2 * NS <= start_ns <= time.time_ns() - NS  # now minus the duration
    assert header.sequence == start_ns // 1_000_000


def test_successive_uploads_get_increasing_sequences(cli_home) -> None:
    home, sent = cli_home
    clip = home / "clip.ts"
    clip.write_bytes(encode_segment(DEVICE, datetime.now(UTC), 0.5, 10, (128, 72), 200_000))
    start = "2026-01-01T00:00:00Z"
    for _ in range(2):
        result = invoke(
            home, "ingest", "upload", DEVICE, str(clip), "--key", str(home / "device.pem"), "--start", start
        )
        assert result.exit_code == 0, result.output
    assert sent[1][0].sequence == sent[0][0].sequence + 1


def test_a_file_that_is_not_video_still_goes_to_the_server(cli_home) -> None:
    home, sent = cli_home
    junk = home / "notes.txt"
    junk.write_bytes(b"hello, not a video\n" * 50)
    result = invoke(home, "ingest", "upload", DEVICE, str(junk), "--key", str(home / "device.pem"))
    assert result.exit_code == 0, result.output
    header, data = sent[0]
    assert data == junk.read_bytes()
    assert header.codec == "unknown"
    assert "sending it anyway" in result.stderr


def test_a_key_file_that_is_not_an_ed25519_pem_is_a_usage_error(cli_home) -> None:
    home, sent = cli_home
    bad = home / "bad.pem"
    bad.write_text("not a key")
    clip = home / "clip.ts"
    clip.write_bytes(b"\x47" * 188)
    result = invoke(home, "ingest", "upload", DEVICE, str(clip), "--key", str(bad))
    assert result.exit_code == 2
    assert sent == []
