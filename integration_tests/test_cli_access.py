"""`vigil access …` on the real stack (registry and sharing processes, the real broker): the analyst requests
playback → cannot approve it → an officer approves → `access check` allows that device and no other → revoke
→ `access check` is denied within 1 s."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.registry.v1 import registry_service_pb2_grpc as reg_grpc
from vigil_cli.identity import load_directory
from vigil_kit.auth import TokenIssuer
from vigil_testing.cli import Cli
from vigil_testing.cli import cli_for as shared_cli_for
from vigil_testing.poll import poll_until
from vigil_testing.services import ServiceProcess, start_together

DIRECTORY = load_directory()
# A unit and site this module creates (a unified social credit code with a valid check character).
HOSPITAL = "12320200MB0000003X"


def cli_for(registry: ServiceProcess, sharing: ServiceProcess, issuer: TokenIssuer, home: Path) -> Cli:
    return shared_cli_for({"registry": registry, "sharing": sharing}, issuer, home)


def hospital_cameras(registry: ServiceProcess, issuer: TokenIssuer) -> tuple[str, str]:
    """A hospital unit and site, and two of its cameras, active (as the platform administrator)."""
    token = issuer.mint(**DIRECTORY.principal("admin").claims())
    serial = secrets.randbelow(10**5)
    ids = (f"32020501501320{serial:06d}", f"32020501501320{serial + 1:06d}")
    with grpc.insecure_channel(registry.address) as channel:
        reg = reg_grpc.RegistryServiceStub(channel)
        md = (("authorization", f"Bearer {token}"),)
        reg.CreateUnit(
            reg_pb.CreateUnitRequest(
                unit=reg_pb.Unit(
                    unit_id=HOSPITAL, name="First People's Hospital", kind=identity_pb2.UNIT_KIND_INSTITUTION
                )
            ),
            metadata=md,
        )
        reg.CreateSite(
            reg_pb.CreateSiteRequest(
                site=reg_pb.Site(
                    site_id="hosp-1",
                    name="First People's Hospital",
                    division_code="320205",
                    place_category=reg_pb.PLACE_CATEGORY_PUBLIC_SERVICES,
                    managing_unit_id=HOSPITAL,
                    funding=reg_pb.FUNDING_GOVERNMENT,
                )
            ),
            metadata=md,
        )
        for n, device_id in enumerate(ids):
            reg.RegisterDevice(
                reg_pb.RegisterDeviceRequest(
                    device=reg_pb.Device(
                        device_id=device_id,
                        site_id="hosp-1",
                        owner_unit_id=HOSPITAL,
                        name=f"Entrance {n}",
                        area_type=reg_pb.AREA_TYPE_ENTRANCE,
                        latitude=31.57,
                        longitude=120.3,
                        direction_deg=90,
                        capture_range_m=20,
                        notice_sign_confirmed=True,
                        privacy_measures="ward windows masked",
                    )
                ),
                metadata=md,
            )
            reg.ActivateDevice(reg_pb.ActivateDeviceRequest(device_id=device_id), metadata=md)
    return ids


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_analysts_playback_request_approved_by_an_officer_allows_one_device_until_revoked(
    vigil_service, issuer: TokenIssuer, tmp_path: Path
) -> None:
    registry = vigil_service("registry", start=False)
    sharing = vigil_service(
        "sharing", start=False, REGISTRY_ADDR=registry.address, SERVICE_TOKEN=issuer.mint_service("sharing")
    )
    start_together(registry, sharing)
    granted, other = hospital_cameras(registry, issuer)
    cli = cli_for(registry, sharing, issuer, tmp_path / "home")
    now = datetime.now(UTC).replace(microsecond=0)
    request = cli.write(
        "request.json",
        {
            "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
            "legalBasis": "congestion study, Renmin Rd",
            "scope": {"device_ids": [granted]},
            "actions": ["ACTION_PLAYBACK"],
            "footage_window": {"start_time": _rfc3339(now - timedelta(days=1)), "end_time": _rfc3339(now)},
            "valid_until": _rfc3339(now + timedelta(days=7)),
        },
    )

    created = cli("access", "request", "-f", request, as_="analyst")
    assert created.exit_code == 0, created.output
    request_id = created.stdout.strip()
    assert len(request_id.splitlines()) == 1 and len(request_id) == 36  # only the new id (a UUID)

    own = cli("access", "approve", request_id, as_="analyst")
    assert own.exit_code == 1
    assert own.stderr.startswith("PERMISSION_DENIED [ACC-3]:"), own.stderr

    approved = cli("access", "approve", request_id, "--reason", "lawful study", as_="officer")
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.strip() == f"{request_id} APPROVED"

    window = ("--from", _rfc3339(now - timedelta(hours=3)), "--to", _rfc3339(now - timedelta(hours=1)))
    allowed = cli("access", "check", granted, "--action", "playback", *window, as_="analyst")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.startswith("ALLOWED [ACC-3]:") and request_id in allowed.stdout

    elsewhere = cli("access", "check", other, "--action", "ACTION_PLAYBACK", *window, as_="analyst")
    assert elsewhere.exit_code == 1
    assert elsewhere.stderr.startswith("PERMISSION_DENIED [ACC-2]:"), elsewhere.stderr
    unheard = cli("access", "check", "32020501501320999999", "--action", "live_view", as_="analyst")
    assert unheard.exit_code == 1 and unheard.stderr.startswith("PERMISSION_DENIED")

    revoked = cli("access", "revoke", request_id, "--reason", "study over", as_="officer")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.strip() == f"{request_id} REVOKED"
    revoked_at = time.monotonic()

    def denied() -> bool:
        return cli("access", "check", granted, "--action", "playback", *window, as_="analyst").exit_code == 1

    poll_until(denied, timeout=5, interval=0.02, what="the revoked grant to be denied")
    assert time.monotonic() - revoked_at <= 1.0

    listed = cli("access", "list", "--state", "revoked", "--json", as_="officer")
    assert listed.exit_code == 0, listed.output
    assert [r["request_id"] for r in json.loads(listed.stdout)] == [request_id]
