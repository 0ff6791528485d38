"""`vigil segments …`, `vigil archive …` and `vigil holds …` against real registry, ingest and archive
processes, the broker and S3: footage uploaded through ingest is listed, its coverage shown, its integrity
verified, and held; another unit is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from vigil_ingest.domain.signing import generate_device_key
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import EmbeddedProcess
from vigil_testing.cli import Cli, cli_for
from vigil_testing.platform import (
    Uploader,
    admin_token,
    gateway_token,
    new_device_id,
    register_active_device,
    ts_payload,
)
from vigil_testing.poll import poll_until
from vigil_testing.services import ServiceProcess

pytestmark = pytest.mark.slow

SEGMENTS = 5


@dataclass
class Footage:
    cli: Cli
    device_id: str
    start: datetime
    versions: list[str]
    payloads: list[bytes]

    def window(self) -> list[str]:
        end = self.start + timedelta(seconds=2 * SEGMENTS)
        return ["--from", self.start.isoformat(), "--to", end.isoformat()]


@pytest.fixture(scope="module")
def footage(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_broker: EmbeddedProcess,
    s3_server: EmbeddedProcess,
    issuer: TokenIssuer,
) -> Iterator[Footage]:
    root = tmp_path_factory.mktemp("cli-archive")
    keys = [issuer.public_key_pem.decode()]

    def service(name: str, **settings: object) -> ServiceProcess:
        return ServiceProcess(
            name,
            workdir=root / name,
            kafka_bootstrap=kafka_broker.address,
            public_keys_pem=keys,
            s3_endpoint=s3_server.address if name in ("ingest", "archive") else None,
            settings={"SERVICE_TOKEN": issuer.mint_service(name), **settings},
        )

    registry = service("registry", JURISDICTION_PREFIXES='["3202"]')
    ingest = service("ingest", REGISTRY_ADDR=registry.address)
    sharing = service("sharing", REGISTRY_ADDR=registry.address)
    archive = service("archive", REGISTRY_ADDR=registry.address, SHARING_ADDR=sharing.address)
    with contextlib.ExitStack() as stack:
        for process in (registry, ingest, sharing, archive):
            stack.enter_context(process)
        device_id = new_device_id()
        key = generate_device_key()
        uploader = Uploader(ingest.address, gateway_token(issuer), device_id, key)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

        async def upload() -> list[str]:
            await register_active_device(registry.address, admin_token(issuer), device_id, key.public_key_b64)
            return [
                (
                    await uploader.upload(ts_payload(i), start + timedelta(seconds=2 * i), i + 1)
                ).segment.version_id
                for i in range(SEGMENTS)
            ]

        versions = asyncio.run(upload())
        cli = cli_for(
            {"registry": registry, "ingest": ingest, "sharing": sharing, "archive": archive},
            issuer,
            root / "home",
        )
        found = Footage(cli, device_id, start, versions, [ts_payload(i) for i in range(SEGMENTS)])
        poll_until(
            lambda: (
                len(json.loads(cli("segments", "list", device_id, *found.window(), "--json").stdout or "[]"))
                == SEGMENTS
            ),
            timeout=30,
            what="segments indexed",
        )
        yield found


def test_segments_list_json_shows_every_version_with_lowercase_hex_sha256(footage: Footage) -> None:
    result = footage.cli("segments", "list", footage.device_id, *footage.window(), "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [s["version_id"] for s in listed] == footage.versions
    assert all(len(s["sha256"]) == 64 and s["sha256"] == s["sha256"].lower() for s in listed)


def test_segments_list_of_another_units_device_is_refused_with_the_rule(footage: Footage) -> None:
    result = footage.cli("segments", "list", footage.device_id, as_="metro")
    assert result.exit_code == 1
    assert "PERMISSION_DENIED [ACC-2]" in result.stderr


def test_archive_coverage_shows_the_share_covered_and_the_gap_after_the_footage(footage: Footage) -> None:
    end = footage.start + timedelta(seconds=4 * SEGMENTS)
    result = footage.cli(
        "archive",
        "coverage",
        footage.device_id,
        "--from",
        footage.start.isoformat(),
        "--to",
        end.isoformat(),
        "--json",
    )
    assert result.exit_code == 0, result.output
    cov = json.loads(result.stdout)
    assert cov["percent_covered"] == 50.0
    assert cov["gap_count"] == "1"


def test_a_backwards_window_is_a_usage_error(footage: Footage) -> None:
    result = footage.cli(
        "segments",
        "list",
        footage.device_id,
        "--from",
        footage.start.isoformat(),
        "--to",
        footage.start.isoformat(),
    )
    assert result.exit_code == 2


def test_an_analyst_with_an_approved_grant_plays_back_and_downloads_exactly_the_stored_bytes(
    footage: Footage, tmp_path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    request = footage.cli.write(
        "request.json",
        {
            "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
            "legalBasis": "congestion study, Renmin Rd",
            "scope": {"device_ids": [footage.device_id]},
            "actions": ["ACTION_PLAYBACK"],
            "footage_window": {
                "start_time": (now - timedelta(days=1)).isoformat(),
                "end_time": now.isoformat(),
            },
            "valid_until": (now + timedelta(days=7)).isoformat(),
        },
    )
    created = footage.cli("access", "request", "-f", request, as_="analyst")
    assert created.exit_code == 0, created.output
    approved = footage.cli("access", "approve", created.stdout.strip(), as_="officer")
    assert approved.exit_code == 0, approved.output
    out = tmp_path / "clip.ts"
    result = footage.cli("playback", footage.device_id, *footage.window(), "-o", str(out), as_="analyst")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("#EXTM3U") and result.stdout.count("X-Amz-Expires") == SEGMENTS
    assert out.read_bytes() == b"".join(footage.payloads)


def test_playback_by_an_operator_of_another_unit_is_refused(footage: Footage) -> None:
    result = footage.cli("playback", footage.device_id, *footage.window(), as_="metro")
    assert result.exit_code == 1
    assert result.stderr.startswith("PERMISSION_DENIED")
