"""`vigil devices import`: JSONL line parsing, per-line error reports, bounded concurrency."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_cli.registry_cmds import LineError, import_devices, numbered_lines, parse_import_line
from vigil_kit.errors import InvalidArgument, to_status_proto

DEVICE = {
    "device_id": "32021300041320000001",
    "site_id": "rd-1",
    "owner_unit_id": "113202000142871537",
    "name": "Zhongshan Rd northbound",
    "area_type": "AREA_TYPE_ROADWAY",
}


def line(**overrides: object) -> str:
    return json.dumps({**DEVICE, **overrides})


def rich_error(err: InvalidArgument) -> grpc.aio.AioRpcError:
    """What a grpc.aio call raises for a Vigil refusal: the rich status in the trailing metadata."""
    status = to_status_proto(err)
    return grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        details=err.message,
    )


def test_a_line_in_either_naming_style_parses_to_a_device() -> None:
    parsed = parse_import_line(
        1, json.dumps({"deviceId": DEVICE["device_id"], "areaType": "AREA_TYPE_ROADWAY"})
    )
    assert isinstance(parsed, pb.Device)
    assert parsed.device_id == DEVICE["device_id"] and parsed.area_type == pb.AREA_TYPE_ROADWAY


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{broken", "not JSON"),
        ("[1, 2]", "one JSON object"),
        ('{"device_id": "1", "colour": "red"}', "colour"),
        ('{"area_type": "AREA_TYPE_NOWHERE"}', "AREA_TYPE_NOWHERE"),
    ],
)
def test_a_malformed_line_is_refused_locally_as_invalid_argument(text: str, expected: str) -> None:
    parsed = parse_import_line(7, text)
    assert isinstance(parsed, LineError)
    assert str(parsed).startswith("line 7: INVALID_ARGUMENT: ")
    assert expected in str(parsed)


def test_blank_lines_are_skipped_but_still_counted_in_line_numbers() -> None:
    assert list(numbered_lines(["a\n", "\n", "  \n", "b\n"])) == [(1, "a\n"), (4, "b\n")]


async def test_refused_lines_are_reported_with_status_and_rule_and_the_rest_are_registered() -> None:
    registered: list[str] = []

    async def register(device: pb.Device) -> pb.Device:
        if device.area_type == pb.AREA_TYPE_FITTING_ROOM:
            raise rich_error(
                InvalidArgument("installing a device in a fitting room is forbidden", rule="REG-1")
            )
        registered.append(device.device_id)
        return device

    lines = [
        line(device_id="32021300041320000001"),
        line(device_id="32021300041320000002", area_type="AREA_TYPE_FITTING_ROOM"),
        "not json",
        line(device_id="32021300041320000004"),
    ]
    report = await import_devices(numbered_lines(lines), register, concurrency=2)

    assert sorted(registered) == ["32021300041320000001", "32021300041320000004"]
    assert (report.total, report.imported, report.failed) == (4, 2, 2)
    assert str(report.errors[0]) == (
        "line 2: INVALID_ARGUMENT [REG-1]: installing a device in a fitting room is forbidden"
    )
    assert report.errors[1].line == 3
    assert report.summary() == "imported 2 of 4 devices; 2 failed"


async def test_no_more_than_the_given_number_of_registrations_are_in_flight() -> None:
    in_flight = 0
    peak = 0
    limit_reached = asyncio.Event()
    release = asyncio.Event()

    async def register(device: pb.Device) -> pb.Device:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            limit_reached.set()
        await release.wait()
        in_flight -= 1
        return device

    lines = [line(device_id=f"320213000413200{i:05d}") for i in range(20)]
    task = asyncio.create_task(import_devices(numbered_lines(lines), register, concurrency=3))
    await asyncio.wait_for(limit_reached.wait(), 5)
    for _ in range(50):  # every chance for a fourth call to start, were the bound not kept
        await asyncio.sleep(0)
    assert in_flight == 3
    release.set()
    report = await task
    assert peak == 3 and report.imported == 20


async def test_progress_is_reported_once_per_line() -> None:
    done: list[int] = []

    async def register(device: pb.Device) -> pb.Device:
        return device

    await import_devices(numbered_lines([line(), "", "x", line()]), register, on_done=lambda: done.append(1))
    assert len(done) == 3
