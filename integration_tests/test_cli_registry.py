"""The registry's `vigil` subcommands against a real registry process, and `vigil up --demo` seeding the demo city."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
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
from vigil_kit.auth import TokenIssuer
from vigil_kit.embedded import EmbeddedProcess
from vigil_testing.poll import poll_until
from vigil_testing.ports import free_base_port
from vigil_testing.services import ServiceProcess

VIGIL = str(Path(sys.executable).parent / "vigil")
DIRECTORY = load_directory()
PSB = DIRECTORY.principal("officer").unit.unit_id
TRANSPORT = DIRECTORY.principal("analyst").unit.unit_id
METRO = DIRECTORY.principal("metro").unit.unit_id
# A unit this module creates (a unified social credit code with a valid check character).
HOSPITAL = "12320200466001234G"
DEMO_DEVICE_COUNT = len(demo.load_demo_city().devices)


@dataclass
class Cli:
    """The `vigil` command, in-process, pointed at the module's registry through a context file."""

    home: Path
    runner: CliRunner

    def __call__(self, *args: str, as_: str = "admin", stdin: str | None = None) -> Result:
        return self.runner.invoke(
            app, ["--as", as_, *args], env={"VIGIL_HOME": str(self.home), "VIGIL_AS": None}, input=stdin
        )

    def json(self, *args: str, as_: str = "admin") -> object:
        result = self(*args, "--json", as_=as_)
        assert result.exit_code == 0, f"vigil {' '.join(args)}: {result.output}"
        return json.loads(result.stdout)

    def write(self, name: str, value: object) -> str:
        path = self.home / name
        path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
        return str(path)


def context_for(registry: ServiceProcess, issuer: TokenIssuer, home: Path) -> Context:
    tokens = mint_principal_tokens(issuer, DIRECTORY)
    return Context(
        pid=os.getpid(),  # the context is live while this test process runs
        started_at="2025-03-01T08:00:00+00:00",
        data_dir=str(home),
        base_port=0,
        issuer="vigil",
        issuer_public_key_pem=issuer.public_key_pem.decode(),
        services=["registry"],
        endpoints={"registry": ServiceEndpoint(registry.address, registry.metrics_url)},
        broker=BrokerEndpoint(registry.kafka_bootstrap),
        s3=S3Endpoint("127.0.0.1:1", "unused", "unused"),
        principals={
            name: PrincipalEntry(t.token, t.claims, t.expires_at.isoformat()) for name, t in tokens.items()
        },
    )


@pytest.fixture(scope="module")
def cli(
    tmp_path_factory: pytest.TempPathFactory, kafka_broker: EmbeddedProcess, issuer: TokenIssuer
) -> Iterator[Cli]:
    """One registry for the module, its platform units seeded the way `vigil up` seeds them, a hospital
    unit and a road site and a hospital site created through the CLI."""
    root = tmp_path_factory.mktemp("cli-registry")
    registry = ServiceProcess(
        "registry",
        workdir=root / "registry",
        kafka_bootstrap=kafka_broker.address,
        public_keys_pem=[issuer.public_key_pem.decode()],
    )
    home = root / "home"
    home.mkdir()
    try:
        registry.start(timeout=90)
        context = context_for(registry, issuer, home)
        write_context(context, home / "context.json")
        env = demo.DemoEnv(context=context, directory=DIRECTORY, data_dir=root, log=lambda line: None)
        asyncio.run(demo.seed_platform_units(env))
        yield Cli(home=home, runner=CliRunner())
    finally:
        registry.stop()


def unit_doc() -> dict:
    return {"unit_id": HOSPITAL, "name": "Demo City First People's Hospital", "kind": "UNIT_KIND_INSTITUTION"}


def site_doc(site_id: str, **overrides: object) -> dict:
    return {
        "site_id": site_id,
        "name": f"site {site_id}",
        "division_code": "320211",
        "address": "1111 Xingyuan Rd",
        "latitude": 31.5521,
        "longitude": 120.2695,
        "place_category": "PLACE_CATEGORY_PUBLIC_SERVICES",
        "managing_unit_id": HOSPITAL,
        "funding": "FUNDING_GOVERNMENT",
        **overrides,
    }


def device_doc(serial: int, site_id: str, **overrides: object) -> dict:
    """A lawful hospital camera (industry code 56, type 132) with camelCase names, as a client may send."""
    return {
        "deviceId": f"32021100561322{serial:06d}",
        "siteId": site_id,
        "ownerUnitId": HOSPITAL,
        "name": f"hospital camera {serial}",
        "areaType": "AREA_TYPE_CORRIDOR",
        "latitude": 31.5522,
        "longitude": 120.2696,
        "directionDeg": 180,
        "captureRangeM": 30,
        "noticeSignConfirmed": True,
        "privacyMeasures": "Ward doorways masked.",
        "privacyMasks": [{"points": [{"x": 0, "y": 0}, {"x": 0.2, "y": 0}, {"x": 0.2, "y": 0.5}]}],
        **overrides,
    }


@pytest.fixture(scope="module")
def hospital(cli: Cli) -> str:
    """The hospital unit and its site, created through `vigil units create` and `vigil sites create`."""
    unit = cli("units", "create", "-f", cli.write("unit.json", unit_doc()))
    assert unit.exit_code == 0, unit.output
    site = cli("sites", "create", "-f", "-", stdin=json.dumps(site_doc("hosp-1")))
    assert site.exit_code == 0, site.output
    return "hosp-1"


def test_the_platform_seeding_creates_every_principals_unit(cli: Cli) -> None:
    units = {u["unit_id"]: u for u in cli.json("units", "list")}
    assert {u.unit_id for u in DIRECTORY.units} <= set(units)
    assert units[PSB]["kind"] == "UNIT_KIND_PUBLIC_SECURITY_ORGAN"


def test_a_unit_created_from_a_file_reads_back_as_canonical_json(cli: Cli, hospital: str) -> None:
    unit = cli.json("units", "get", HOSPITAL)
    assert {k: unit[k] for k in ("unit_id", "name", "kind")} == unit_doc()


def test_a_registered_device_reads_back_lists_and_activates(cli: Cli, hospital: str) -> None:
    registered = cli("devices", "register", "-f", cli.write("device.json", device_doc(1, hospital)))
    assert registered.exit_code == 0, registered.output
    device_id = device_doc(1, hospital)["deviceId"]

    got = cli.json("devices", "get", device_id)
    assert got["device_id"] == device_id and got["state"] == "DEVICE_STATE_REGISTERED"
    assert got["area_type"] == "AREA_TYPE_CORRIDOR" and got["retention_days"] == 30
    assert "deviceId" not in got

    listed = cli("devices", "list", "--site", hospital)
    assert listed.exit_code == 0 and device_id in listed.stdout and "REGISTERED" in listed.stdout

    activated = cli("devices", "activate", device_id)
    assert activated.exit_code == 0, activated.output
    assert activated.stdout.strip() == f"device {device_id}: DEVICE_STATE_ACTIVE"
    active = cli.json("devices", "list", "--state", "ACTIVE", "--division", "320211")
    assert device_id in [d["device_id"] for d in active]


def test_a_keepalive_reports_the_device_active_with_its_deadline(cli: Cli, hospital: str) -> None:
    device = device_doc(2, hospital)
    assert cli("devices", "register", "-f", cli.write("d2.json", device)).exit_code == 0
    assert cli("devices", "activate", device["deviceId"]).exit_code == 0
    reply = cli.json("devices", "keepalive", device["deviceId"])
    assert reply["state"] == "DEVICE_STATE_ACTIVE" and reply["offline_deadline"]


def test_a_patch_updates_only_its_fields_and_moving_an_active_device_needs_a_work_order(
    cli: Cli, hospital: str
) -> None:
    device = device_doc(3, hospital)
    assert cli("devices", "register", "-f", cli.write("d3.json", device)).exit_code == 0
    assert cli("devices", "activate", device["deviceId"]).exit_code == 0
    patch = cli.write("aim.json", {"direction_deg": 90})

    refused = cli("devices", "update", device["deviceId"], "-f", patch)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("FAILED_PRECONDITION [REG-12]:")

    moved = cli.json("devices", "update", device["deviceId"], "-f", patch, "--work-order", "WO-2025-031")
    assert moved["direction_deg"] == 90 and moved["name"] == device["name"]


def test_a_device_in_a_forbidden_place_is_refused_naming_reg_1(cli: Cli, hospital: str) -> None:
    path = cli.write("bath.json", device_doc(4, hospital, areaType="AREA_TYPE_PUBLIC_BATH"))
    result = cli("devices", "register", "-f", path)
    assert result.exit_code == 1
    assert "[REG-1]" in result.stderr and result.stdout == ""


def test_an_operator_cannot_build_for_another_unit(cli: Cli, hospital: str) -> None:
    result = cli("devices", "register", "-f", cli.write("metro.json", device_doc(5, hospital)), as_="metro")
    assert result.exit_code == 1
    assert result.stderr.startswith("PERMISSION_DENIED [REG-3]:")


def test_import_keeps_the_valid_lines_and_reports_the_fitting_room_line_with_reg_1(
    cli: Cli, hospital: str
) -> None:
    lines = [json.dumps(device_doc(100 + i, hospital)) for i in range(1, 13)]
    lines[4] = json.dumps(device_doc(105, hospital, areaType="AREA_TYPE_FITTING_ROOM"))
    path = cli.write("devices.jsonl", "\n".join(lines) + "\n")

    result = cli("devices", "import", path, "--concurrency", "4")

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert len(errors) == 1
    assert errors[0].startswith("line 5: ") and "[REG-1]" in errors[0]
    assert "imported 11 of 12 devices; 1 failed" in result.stderr
    kept = {d["device_id"] for d in cli.json("devices", "list", "--site", hospital)}
    assert {device_doc(100 + i, hospital)["deviceId"] for i in range(1, 13) if i != 5} <= kept
    assert device_doc(105, hospital)["deviceId"] not in kept


def test_a_site_patch_changes_the_site(cli: Cli, hospital: str) -> None:
    site = cli("sites", "create", "-f", cli.write("s2.json", site_doc("hosp-2")))
    assert site.exit_code == 0, site.output
    updated = cli.json("sites", "update", "hosp-2", "-f", cli.write("sp.json", {"address": "2 Xingyuan Rd"}))
    assert updated["address"] == "2 Xingyuan Rd" and updated["name"] == "site hosp-2"


def test_a_filing_is_recorded_read_back_and_exported_as_the_dossier(cli: Cli, hospital: str) -> None:
    device = device_doc(6, hospital)
    assert cli("devices", "register", "-f", cli.write("d6.json", device)).exit_code == 0
    assert cli("devices", "activate", device["deviceId"]).exit_code == 0
    due = cli.json("filings", "list", "--unit", HOSPITAL, "--site", hospital)
    assert [f["state"] for f in due] == ["FILING_STATE_DUE"]

    recorded = cli.json("filings", "record", HOSPITAL, hospital, "--number", "JSGA-320211-0042")
    assert recorded["state"] == "FILING_STATE_FILED" and recorded["filing_number"] == "JSGA-320211-0042"
    assert cli.json("filings", "get", HOSPITAL, hospital)["state"] == "FILING_STATE_FILED"

    exported = cli("filings", "export", HOSPITAL, hospital)
    assert exported.exit_code == 0, exported.output
    dossier = json.loads(exported.stdout)
    assert dossier["credit_code"] == HOSPITAL and dossier["device_count"] >= 1


def test_the_summary_counts_the_registry_and_prints_a_table(cli: Cli, hospital: str) -> None:
    summary = cli.json("registry", "summary")
    listed = cli.json("devices", "list")
    assert summary["device_count"] == len(listed)
    assert summary["active_device_count"] == sum(1 for d in listed if d["state"] == "DEVICE_STATE_ACTIVE")
    table = cli("registry", "summary")
    assert table.exit_code == 0 and "REG-2 mandatory sites without an active device" in table.stdout


# ---- `vigil up --demo` ----------------------------------------------------------------------------


@dataclass
class DemoStack:
    """`vigil up --demo` in its own session (so teardown can stop the whole group) with a private home."""

    env: dict[str, str]
    out: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, attempts: int = 3) -> None:
        """Start on a free port block; another process on this shared machine may take a port between
        the check and the bind, so a start refused for a busy port is retried on another block."""
        for _ in range(attempts):
            with open(self.out, "wb") as f:
                self.proc = subprocess.Popen(
                    [VIGIL, "up", "--demo", "--base-port", str(free_base_port())],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started = poll_until(
                lambda: self.context_file.exists() or self.proc.poll() is not None,
                timeout=120,
                interval=0.2,
                what="vigil up to write its context or exit",
            )
            if started and self.proc.poll() is None:
                return
            if "ports not free" not in self.log():
                break
        raise AssertionError(f"vigil up --demo did not start:\n{self.log()}")

    @property
    def context_file(self) -> Path:
        return Path(self.env["VIGIL_HOME"]) / "context.json"

    def log(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def demo_stack(tmp_path: Path) -> Iterator[DemoStack]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_AS"} | {"VIGIL_HOME": str(home)}
    stack = DemoStack(env=env, out=tmp_path / "vigil-up.out")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_vigil_up_demo_seeds_the_demo_city_with_every_device_active(demo_stack: DemoStack) -> None:
    # `vigil up` writes its context once every service is SERVING; seeding starts then.
    cli = Cli(home=Path(demo_stack.env["VIGIL_HOME"]), runner=CliRunner())

    def demo_city_active_and_alive() -> list[dict] | None:
        result = cli("devices", "list", "--division", "3202", "--json")
        if result.exit_code != 0:
            return None
        devices = json.loads(result.stdout)
        # ACTIVE, and each heard from at least once: the keepalive simulator is running.
        ok = [d for d in devices if d["state"] == "DEVICE_STATE_ACTIVE" and d.get("last_keepalive_time")]
        return devices if len(ok) == DEMO_DEVICE_COUNT else None

    devices = poll_until(
        demo_city_active_and_alive, timeout=60, interval=0.2, what="every demo device ACTIVE with a keepalive"
    )
    city = demo.load_demo_city()
    assert {d["device_id"] for d in devices} == {d.device_id for d in city.devices}
    assert {d["site_id"] for d in devices} == {s.site_id for s in city.sites}
    assert f"demo: {DEMO_DEVICE_COUNT} of {DEMO_DEVICE_COUNT} devices active" in demo_stack.log()

    states = [f["state"] for f in cli.json("filings", "list")]
    assert states.count("FILING_STATE_FILED") == len(city.filings)
    assert "FILING_STATE_OVERDUE" in states
