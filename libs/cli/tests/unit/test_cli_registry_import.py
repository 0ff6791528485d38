"""`vigil devices import`: JSONL line parsing, batches through ImportDevices, per-line error reports."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_cli.registry_cmds import LineError, import_devices, numbered_lines, parse_import_line
from vigil_kit.errors import InvalidArgument, PermissionDenied, to_status_proto

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


def refused_batch(total: int, problems: dict[int, list[tuple[str, str]]]) -> grpc.aio.AioRpcError:
    """What ImportDevices answers when devices of a call are refused: every violation, field by index."""
    listed = [(f"devices[{i}].{f}", d) for i, found in sorted(problems.items()) for f, d in found]
    return rich_error(
        InvalidArgument(
            f"{len(problems)} of {total} devices refused, so none was registered",
            rule="REG-1",
            field=listed[0][0],
            violations=listed,
        )
    )


class FakeImport:
    """ImportDevices as the registry answers it: all or nothing, refusing fitting rooms and toilets."""

    def __init__(self) -> None:
        self.registered: list[str] = []
        self.calls: list[list[str]] = []

    async def __call__(self, devices: list[pb.Device]) -> None:
        self.calls.append([d.device_id for d in devices])
        problems: dict[int, list[tuple[str, str]]] = {}
        for i, d in enumerate(devices):
            if d.area_type == pb.AREA_TYPE_FITTING_ROOM:
                problems[i] = [("area_type", "INVALID_ARGUMENT [REG-1]: a fitting room is forbidden")]
            if d.area_type == pb.AREA_TYPE_TOILET:
                problems[i] = [
                    ("area_type", "INVALID_ARGUMENT [REG-1]: a toilet is forbidden"),
                    ("name", "INVALID_ARGUMENT: a device needs a name"),
                ]
        if problems:
            raise refused_batch(len(devices), problems)
        self.registered += [d.device_id for d in devices]


async def test_refused_lines_are_reported_with_status_and_rule_and_the_rest_are_registered() -> None:
    fake = FakeImport()
    lines = [
        line(device_id="32021300041320000001"),
        line(device_id="32021300041320000002", area_type="AREA_TYPE_FITTING_ROOM"),
        "not json",
        line(device_id="32021300041320000004"),
    ]
    report = await import_devices(numbered_lines(lines), fake, batch_size=10)

    assert sorted(fake.registered) == ["32021300041320000001", "32021300041320000004"]
    assert (report.total, report.imported, report.failed) == (4, 2, 2)
    assert str(report.errors[0]) == "line 2: INVALID_ARGUMENT [REG-1]: a fitting room is forbidden"
    assert report.errors[1].line == 3
    assert report.summary() == "imported 2 of 4 devices; 2 failed"


async def test_a_refused_batch_is_sent_again_without_its_refused_devices() -> None:
    fake = FakeImport()
    lines = [line(device_id=f"320213000413200000{i:02d}") for i in range(1, 6)]
    lines[1] = line(device_id="32021300041320000002", area_type="AREA_TYPE_TOILET")
    report = await import_devices(numbered_lines(lines), fake, batch_size=5)

    assert fake.calls[1] == [f"320213000413200000{i:02d}" for i in (1, 3, 4, 5)]
    assert fake.registered == fake.calls[1]
    (error,) = report.errors
    assert str(error) == (
        "line 2: INVALID_ARGUMENT [REG-1]: a toilet is forbidden; INVALID_ARGUMENT: a device needs a name"
    )


async def test_devices_go_in_batches_of_the_given_size() -> None:
    fake = FakeImport()
    lines = [line(device_id=f"320213000413200{i:05d}") for i in range(7)]
    report = await import_devices(numbered_lines(lines), fake, batch_size=3)
    assert [len(c) for c in fake.calls] == [3, 3, 1] and report.imported == 7


async def test_a_refusal_of_the_whole_call_is_reported_for_each_of_its_lines() -> None:
    async def denied(devices: list[pb.Device]) -> None:
        err = PermissionDenied("unit operators of another unit may not register here", rule="REG-3")
        status = to_status_proto(err)
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
            details=err.message,
        )

    report = await import_devices(numbered_lines([line(), line()]), denied)
    assert [e.line for e in report.errors] == [1, 2]
    assert all(e.error.startswith("PERMISSION_DENIED [REG-3]: ") for e in report.errors)
    assert report.imported == 0


async def test_no_more_than_the_given_number_of_calls_are_in_flight() -> None:
    in_flight = 0
    peak = 0
    limit_reached = asyncio.Event()
    release = asyncio.Event()

    async def import_batch(devices: list[pb.Device]) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            limit_reached.set()
        await release.wait()
        in_flight -= 1

    lines = [line(device_id=f"320213000413200{i:05d}") for i in range(20)]
    task = asyncio.create_task(
        import_devices(numbered_lines(lines), import_batch, batch_size=2, concurrency=3)
    )
    await asyncio.wait_for(limit_reached.wait(), 5)
    for _ in range(50):  # every chance for a fourth call to start, were the bound not kept
        await asyncio.sleep(0)
    assert in_flight == 3
    release.set()
    report = await task
    assert peak == 3 and report.imported == 20


async def test_progress_is_reported_once_per_line() -> None:
    done: list[int] = []

    async def import_batch(devices: list[pb.Device]) -> None:
        return None

    await import_devices(
        numbered_lines([line(), "", "x", line()]), import_batch, on_done=lambda: done.append(1)
    )
    assert len(done) == 3
