"""`vigil ingest upload` and `vigil simulate` against real registry and ingest processes and an S3 server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from minio import Minio
from typer.testing import CliRunner, Result

from vigil_cli import demo
from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    write_context,
)
from vigil_cli.identity import load_directory, mint_principal_tokens
from vigil_cli.main import app
from vigil_ingest.video import encode_segment
from vigil_kit import embedded
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import EmbeddedProcess
from vigil_kit.objectstore import SEGMENTS_BUCKET
from vigil_testing.poll import poll_until
from vigil_testing.services import ServiceProcess

DIRECTORY = load_directory()
CITY = demo.load_demo_city()
S3_KEYS = ("vigil", "vigil-secret")  # the services' default S3 credentials, which moto accepts


@dataclass
class Stack:
    home: Path
    keys: Path
    s3: Minio
    runner: CliRunner

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            app, ["--as", "admin", *args], env={"VIGIL_HOME": str(self.home), "VIGIL_AS": None}
        )

    def objects(self, device_id: str) -> list[str]:
        return [
            o.object_name
            for o in self.s3.list_objects(SEGMENTS_BUCKET, prefix=f"segments/{device_id}/", recursive=True)
        ]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_broker: EmbeddedProcess, issuer: TokenIssuer
) -> Iterator[Stack]:
    """Registry and ingest processes, an S3 server of this module's own (so listings count only its
    uploads), and the demo city seeded the way `vigil up --demo` seeds it: devices registered with
    keys under <data dir>/keys, and activated."""
    root = tmp_path_factory.mktemp("cli-ingest")
    home = root / "home"
    home.mkdir()
    keys = [issuer.public_key_pem.decode()]
    s3 = embedded.moto_s3(log_path=root / "s3.log")
    registry = ServiceProcess(
        "registry", workdir=root / "registry", kafka_bootstrap=kafka_broker.address, public_keys_pem=keys
    )
    ingest = ServiceProcess(
        "ingest",
        workdir=root / "ingest",
        kafka_bootstrap=kafka_broker.address,
        public_keys_pem=keys,
        s3_endpoint=s3.address,
        settings={"REGISTRY_ADDR": registry.address, "SERVICE_TOKEN": issuer.mint_service("ingest")},
    )
    try:
        s3.start()
        registry.start(timeout=90)
        ingest.start(timeout=90)
        tokens = mint_principal_tokens(issuer, DIRECTORY)
        context = Context(
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(),
            data_dir=str(home),
            base_port=0,
            issuer="vigil",
            issuer_public_key_pem=issuer.public_key_pem.decode(),
            services=["registry", "ingest"],
            endpoints={
                "registry": ServiceEndpoint(registry.address, registry.metrics_url),
                "ingest": ServiceEndpoint(ingest.address, ingest.metrics_url),
            },
            broker=BrokerEndpoint(kafka_broker.address),
            s3=S3Endpoint(s3.address, *S3_KEYS),
            principals={
                n: PrincipalEntry(t.token, t.claims, t.expires_at.isoformat()) for n, t in tokens.items()
            },
        )
        write_context(context, home / "context.json")
        env = demo.DemoEnv(context=context, directory=DIRECTORY, data_dir=home, log=lambda line: None)

        async def seed() -> None:
            await demo.seed_platform_units(env)
            for step in (
                demo.seed_demo_units,
                demo.seed_demo_sites,
                demo.seed_demo_devices,
                demo.register_demo_device_keys,
                demo.activate_demo_devices,
            ):
                await step(env)

        asyncio.run(seed())
        client = Minio(s3.address, access_key=S3_KEYS[0], secret_key=S3_KEYS[1], secure=False)
        poll_until(lambda: client.bucket_exists(SEGMENTS_BUCKET), timeout=30, what="segments bucket")
        yield Stack(home=home, keys=home / "keys", s3=client, runner=CliRunner())
    finally:
        ingest.stop()
        registry.stop()
        s3.stop()


def key_of(stack: Stack, device_id: str) -> str:
    return str(stack.keys / f"{device_id}.pem")


def test_demo_seeding_leaves_a_private_key_file_per_demo_device(stack: Stack) -> None:
    for device in CITY.devices:
        path = stack.keys / f"{device.device_id}.pem"
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert path.stat().st_mode & 0o777 == 0o600


def test_uploading_a_pyav_encoded_file_stores_exactly_its_bytes(stack: Stack, tmp_path: Path) -> None:
    device_id = CITY.devices[0].device_id
    clip = tmp_path / "clip.ts"
    clip.write_bytes(encode_segment(device_id, datetime.now(UTC), 2.0, 10, (256, 144), 300_000))
    result = stack("ingest", "upload", device_id, str(clip), "--key", key_of(stack, device_id), "--json")
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)["segment"]
    assert stored["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert stored["codec"] == "h264" and stored["container"] == "CONTAINER_MPEG_TS"
    body = stack.s3.get_object(stored["bucket"], stored["key"], version_id=stored["version_id"])
    try:
        assert body.read() == clip.read_bytes()
    finally:
        body.close()
        body.release_conn()


def test_uploading_a_file_that_is_not_video_shows_the_server_refusal(stack: Stack, tmp_path: Path) -> None:
    device_id = CITY.devices[1].device_id
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"minutes of the meeting\n" * 100)
    result = stack("ingest", "upload", device_id, str(junk), "--key", key_of(stack, device_id))
    assert result.exit_code == 1
    assert "sending it anyway" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("INVALID_ARGUMENT")
    assert stack.objects(device_id) == []


def test_uploading_with_another_device_key_is_refused_as_unauthenticated(
    stack: Stack, tmp_path: Path
) -> None:
    device_id, other = CITY.devices[2].device_id, CITY.devices[3].device_id
    clip = tmp_path / "clip.ts"
    clip.write_bytes(encode_segment(device_id, datetime.now(UTC), 1.0, 10, (256, 144), 300_000))
    result = stack("ingest", "upload", device_id, str(clip), "--key", key_of(stack, other))
    assert result.exit_code == 1
    assert "UNAUTHENTICATED [ARC-4]" in result.stderr
    assert stack.objects(device_id) == []


def test_simulating_three_devices_uploads_their_segments(stack: Stack) -> None:
    devices = [d.device_id for d in CITY.devices[4:7]]
    listing = stack.home / "three.txt"
    listing.write_text("".join(f"{d}\n" for d in devices))
    result = stack(
        "simulate",
        "--devices",
        "3",
        "--device-ids",
        str(listing),
        "--segments",
        "2",
        "--segment-seconds",
        "1",
        "--resolution",
        "256x144",
        "--bitrate",
        "200k",
        "--pool-size",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["uploaded"], summary["failures"]) == (6, {}), summary
    assert summary["keepalives_sent"] >= 3
    assert "per-device pool" in result.stderr
    for device_id in devices:
        assert len(stack.objects(device_id)) == 2


def test_simulating_from_a_shared_pool_uploads_for_every_device(stack: Stack) -> None:
    devices = [d.device_id for d in CITY.devices[7:9]]
    listing = stack.home / "two.txt"
    listing.write_text("".join(f"{d}\n" for d in devices))
    result = stack(
        "simulate",
        "--device-ids",
        str(listing),
        "--pool",
        "--segments",
        "1",
        "--segment-seconds",
        "1",
        "--resolution",
        "128x72",
        "--bitrate",
        "100k",
        "--pool-size",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert "shared pool" in result.stderr
    assert json.loads(result.stdout)["uploaded"] == 2
    for device_id in devices:
        assert len(stack.objects(device_id)) == 1
