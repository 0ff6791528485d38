"""The registry subcommands against a fake RegistryService: the requests they send, their output, their errors."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from typer.testing import CliRunner

from vigil.registry.v1 import registry_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    write_context,
)
from vigil_cli.main import app
from vigil_kit.embedded import free_port
from vigil_kit.errors import FailedPrecondition, InvalidArgument, NotFound, VigilError, to_grpc_status

runner = CliRunner()
DEVICE_ID = "32021300041320000001"
# The fake serves at most this many items per page, whatever the client asks, so listing must follow pages.
FAKE_PAGE = 2


@dataclass
class FakeRegistry(pb_grpc.RegistryServiceServicer):
    """Just enough of the registry to watch what the CLI sends."""

    requests: list[object] = field(default_factory=list)
    devices: dict[str, pb.Device] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _refuse(self, context: grpc.ServicerContext, err: VigilError) -> None:
        context.abort_with_status(to_grpc_status(err))

    def RegisterDevice(self, request, context):
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            time.sleep(0.01)  # a registration's service time, so concurrent calls overlap
            device = request.device
            if device.area_type == pb.AREA_TYPE_FITTING_ROOM:
                self._refuse(
                    context,
                    InvalidArgument(
                        "REG-1: installing a device in AREA_TYPE_FITTING_ROOM is forbidden",
                        rule="REG-1",
                        field="device.area_type",
                    ),
                )
            with self.lock:
                self.devices[device.device_id] = pb.Device(
                    device_id=device.device_id, name=device.name, state=pb.DEVICE_STATE_REGISTERED
                )
            return self.devices[device.device_id]
        finally:
            with self.lock:
                self.in_flight -= 1

    def ImportDevices(self, request, context):
        """All or nothing, as the registry: a refused device refuses the call, listed by its index."""
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            time.sleep(0.01)  # a batch's service time, so concurrent calls overlap
            refused = [
                (
                    f"devices[{i}].area_type",
                    "INVALID_ARGUMENT [REG-1]: REG-1: installing a device in "
                    "AREA_TYPE_FITTING_ROOM is forbidden",
                )
                for i, d in enumerate(request.devices)
                if d.area_type == pb.AREA_TYPE_FITTING_ROOM
            ]
            if refused:
                self._refuse(
                    context,
                    InvalidArgument(
                        f"{len(refused)} of {len(request.devices)} devices refused, so none was registered",
                        rule="REG-1",
                        field=refused[0][0],
                        violations=refused,
                    ),
                )
            out = [
                pb.Device(device_id=d.device_id, name=d.name, state=pb.DEVICE_STATE_REGISTERED)
                for d in request.devices
            ]
            with self.lock:
                self.devices.update({d.device_id: d for d in out})
            return pb.ImportDevicesResponse(devices=out)
        finally:
            with self.lock:
                self.in_flight -= 1

    def GetDevice(self, request, context):
        if request.device_id not in self.devices:
            self._refuse(context, NotFound(f"no device {request.device_id}"))
        return self.devices[request.device_id]

    def ListDevices(self, request, context):
        self.requests.append(request)
        ids = sorted(i for i in self.devices if i > request.page_token)
        page = ids[:FAKE_PAGE]
        more = len(ids) > FAKE_PAGE
        return pb.ListDevicesResponse(
            devices=[self.devices[i] for i in page], next_page_token=page[-1] if more else ""
        )

    def UpdateDevice(self, request, context):
        self.requests.append(request)
        return pb.Device(device_id=request.device.device_id, state=pb.DEVICE_STATE_ACTIVE)

    def ActivateDevice(self, request, context):
        self._refuse(
            context,
            FailedPrecondition(
                'REG-6 (799 Art. 13): a public-place device cannot go active without a confirmed "monitored '
                'area" notice sign',
                rule="REG-6",
                field="device.notice_sign_confirmed",
            ),
        )


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    pb_grpc.add_RegistryServiceServicer_to_server(registry, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    write_context(
        Context(
            pid=os.getpid(),
            started_at="2025-03-01T08:00:00+00:00",
            data_dir=str(tmp_path),
            base_port=port - 1,
            issuer="vigil",
            issuer_public_key_pem="",
            services=["registry"],
            endpoints={"registry": ServiceEndpoint(f"127.0.0.1:{port}", "")},
            broker=BrokerEndpoint("127.0.0.1:1"),
            s3=S3Endpoint("127.0.0.1:1", "vigil", "unused"),
            principals={"admin": PrincipalEntry("not-checked-here", {}, "2025-03-01T20:00:00+00:00")},
        ),
        tmp_path / "context.json",
    )
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    monkeypatch.delenv("VIGIL_AS", raising=False)
    try:
        yield registry
    finally:
        server.stop(None)


def device_line(number: int, **overrides: object) -> str:
    return json.dumps(
        {
            "device_id": f"320213000413200{number:05d}",
            "name": f"camera {number}",
            "area_type": "AREA_TYPE_ROADWAY",
        }
        | overrides
    )


def test_update_sends_the_patch_fields_as_the_mask_with_the_work_order(fake, tmp_path) -> None:
    patch = tmp_path / "patch.json"
    patch.write_text('{"directionDeg": 90, "notice_sign_confirmed": false}')
    result = runner.invoke(
        app, ["devices", "update", DEVICE_ID, "-f", str(patch), "--work-order", "WO-7", "--json"]
    )
    assert result.exit_code == 0, result.output
    sent = fake.requests[-1]
    assert list(sent.update_mask.paths) == ["direction_deg", "notice_sign_confirmed"]
    assert sent.device.device_id == DEVICE_ID and sent.device.direction_deg == 90
    assert sent.work_order_ref == "WO-7"
    assert json.loads(result.stdout)["state"] == "DEVICE_STATE_ACTIVE"


def test_a_refusal_prints_status_rule_and_message_on_stderr_and_exits_1(fake) -> None:
    result = runner.invoke(app, ["devices", "activate", DEVICE_ID])
    assert result.exit_code == 1
    assert result.stderr.startswith("FAILED_PRECONDITION [REG-6]: REG-6 (799 Art. 13)")
    assert result.stdout == ""


def test_list_json_follows_every_page_and_prints_an_array_of_devices(fake) -> None:
    for i in range(5):
        fake.devices[f"3202130004132000000{i}"] = pb.Device(device_id=f"3202130004132000000{i}")
    result = runner.invoke(app, ["devices", "list", "--state", "active", "--division", "3202", "--json"])
    assert result.exit_code == 0, result.output
    assert [d["device_id"] for d in json.loads(result.stdout)] == sorted(fake.devices)
    assert len(fake.requests) == 3
    assert all(r.state == pb.DEVICE_STATE_ACTIVE and r.division_prefix == "3202" for r in fake.requests)


def test_list_with_an_unknown_state_is_a_usage_error(fake) -> None:
    result = runner.invoke(app, ["devices", "list", "--state", "sleeping"])
    assert result.exit_code == 2
    assert "ACTIVE" in result.stderr


def test_import_keeps_the_valid_lines_reports_each_bad_one_and_exits_1(fake, tmp_path) -> None:
    lines = [device_line(i) for i in range(1, 41)]
    lines[9] = device_line(10, area_type="AREA_TYPE_FITTING_ROOM")
    lines[19] = "{not json"
    path = tmp_path / "devices.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = runner.invoke(app, ["devices", "import", str(path), "--concurrency", "4", "--batch-size", "5"])

    assert result.exit_code == 1
    assert len(fake.devices) == 38
    assert (
        "line 10: INVALID_ARGUMENT [REG-1]: REG-1: installing a device in AREA_TYPE_FITTING_ROOM"
        in result.stderr
    )
    assert "line 20: INVALID_ARGUMENT: not JSON" in result.stderr
    assert "imported 38 of 40 devices; 2 failed" in result.stderr
    assert 1 < fake.peak_in_flight <= 4


def test_import_of_a_clean_file_exits_0_with_the_count(fake, tmp_path) -> None:
    path = tmp_path / "devices.jsonl"
    path.write_text("\n".join(device_line(i) for i in range(1, 6)) + "\n\n")
    result = runner.invoke(app, ["devices", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported 5 of 5 devices; 0 failed" in result.stdout


def test_get_json_prints_the_device_itself(fake) -> None:
    fake.devices[DEVICE_ID] = pb.Device(device_id=DEVICE_ID, name="gate", state=pb.DEVICE_STATE_ACTIVE)
    result = runner.invoke(app, ["devices", "get", DEVICE_ID, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "device_id": DEVICE_ID,
        "name": "gate",
        "state": "DEVICE_STATE_ACTIVE",
    }


def test_import_reads_stdin_given_a_dash(fake) -> None:
    result = runner.invoke(
        app, ["devices", "import", "-"], input="\n".join(device_line(i) for i in range(1, 4))
    )
    assert result.exit_code == 0, result.output
    assert len(fake.devices) == 3
