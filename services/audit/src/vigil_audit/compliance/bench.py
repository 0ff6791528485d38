"""Benchmark figure of the compliance report (AUD-3): report time over 1,000,000 audit records and 10,000 devices.

The log's tables are filled directly: each record goes through the log's own leaf encoding
(vigil_audit.store.prepare_leaf) and is bulk-inserted with its query columns and id references, as the
writer would append it. Stubbed: the Merkle nodes and tree heads (the report never reads them), and the
registry and archive, which are in-process gRPC stand-ins answering GetComplianceSummary, ListDevices
(10,000 devices) and GetCoverage (one gap per tenth device) at once, so the figure is the audit
service's own cost of composing the report, including its 10,000 GetCoverage round trips.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil_audit.app import MIGRATIONS
from vigil_audit.compliance.rules import Thresholds
from vigil_audit.compliance.service import ComplianceServicer, Upstreams
from vigil_audit.store import (
    _LEAF_COLUMNS,
    LogStore,
    _bulk_insert,
    leaves_table,
    prepare_leaf,
    read_engine,
    refs_table,
    state_table,
)
from vigil_kit.audit import build_record
from vigil_kit.auth import Principal
from vigil_kit.bench import BenchContext, Figure
from vigil_kit.db import create_engine
from vigil_kit.embedded import free_port
from vigil_kit.migrations import upgrade

RECORDS = 1_000_000
DEVICES = 10_000
END = datetime(2026, 11, 28, tzinfo=UTC)
START = END - timedelta(days=30)
BATCH = 20_000


def _ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


class _Registry(rpb_grpc.RegistryServiceServicer):
    def __init__(self, devices: int) -> None:
        self.devices = [
            rpb.Device(
                device_id=f"3202050150132{i:07d}",
                site_id=f"site-{i // 10}",
                retention_days=30,
                state=rpb.DEVICE_STATE_ACTIVE,
                site=rpb.SiteFacts(place_category=1 + i % 8),
            )
            for i in range(devices)
        ]

    async def GetComplianceSummary(self, request, context):
        gaps = [
            rpb.DeviceGap(device_id=d.device_id, site_id=d.site_id, rule="REG-6") for d in self.devices[:50]
        ]
        return rpb.ComplianceSummary(
            devices_missing_notice_sign_count=len(gaps),
            devices_missing_notice_sign=gaps,
            device_count=len(self.devices),
            active_device_count=len(self.devices),
            site_count=len(self.devices) // 10,
        )

    async def ListDevices(self, request, context):
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        return rpb.ListDevicesResponse(
            devices=self.devices[start:end], next_page_token=str(end) if end < len(self.devices) else ""
        )


class _Archive(apb_grpc.ArchiveServiceServicer):
    # The answers' times, built once: the stand-in's own cost is not the figure's.
    EARLIEST, LATEST = _ts(START), _ts(END)
    GAP = apb.Gap(start_time=_ts(START + timedelta(days=3)), end_time=_ts(START + timedelta(days=3, hours=1)))

    async def GetCoverage(self, request, context):
        c = apb.Coverage(
            device_id=request.device_id, percent_covered=99.0, earliest=self.EARLIEST, latest=self.LATEST
        )
        if int(request.device_id[-4:]) % 10 == 0:
            c.gaps.append(self.GAP)
        return c


def _records(n: int, devices: int, rng: random.Random):
    units = [f"113202000{u:09d}" for u in range(20)]
    people = [
        Principal(
            f"user:{p}",
            f"user {p}",
            units[p % 20],
            "UNIT_KIND_GOVERNMENT_DEPARTMENT",
            frozenset({"ROLE_DEPARTMENT_ANALYST"}),
        )
        for p in range(1000)
    ]
    span = (END - START).total_seconds()
    for i in range(n):
        when = START + timedelta(seconds=span * i / n)
        who = people[rng.randrange(len(people))]
        device = f"3202050150132{rng.randrange(devices):07d}"
        roll = rng.random()
        if roll < 0.6:
            action, kw = "archive.playback.manifest", {"attributes": {"segments": "30"}}
        elif roll < 0.85:
            action, kw = "ingest.segment.upload", {}
        elif roll < 0.95:
            action, kw = "video.playback", {}
        elif roll < 0.999:
            action, kw = "registry.device.update", {}
        else:
            action, kw = "registry.device.register", {"rule_id": "REG-1"}
        yield build_record(
            actor=who,
            action=action,
            source_service=action.split(".")[0],
            decision="denied" if action == "registry.device.register" else "allowed",
            resources={"device_ids": [device]},
            footage=(when - timedelta(minutes=5), when),
            now=when,
            **kw,
        )


async def _fill(store: LogStore, n: int, devices: int) -> None:
    rng = random.Random(9)
    rows, refs, index = [], [], 0
    for record in _records(n, devices, rng):
        p = prepare_leaf(record)
        rows.append((index, *p.row))
        refs.extend((kind, ref, index) for kind, ref in p.refs)
        index += 1
        if len(rows) >= BATCH or index == n:
            async with store.engine.begin() as conn:
                await conn.execute(state_table.update().values(tree_size=index))
                await _bulk_insert(conn, leaves_table, _LEAF_COLUMNS, rows)
                await _bulk_insert(conn, refs_table, ("kind", "ref_id", "leaf_index"), refs)
            rows, refs = [], []


async def figures(ctx: BenchContext) -> list[Figure]:
    n = int(os.environ.get("VIGIL_BENCH_COMPLIANCE_RECORDS", RECORDS))
    devices = int(os.environ.get("VIGIL_BENCH_COMPLIANCE_DEVICES", DEVICES))
    engine = create_engine(f"sqlite+aiosqlite:///{ctx.workdir / 'compliance-audit.db'}")
    await upgrade(engine, MIGRATIONS)
    store = LogStore(engine, read_engine(engine))
    await _fill(store, n, devices)
    server = grpc.aio.server()
    rpb_grpc.add_RegistryServiceServicer_to_server(_Registry(devices), server)
    apb_grpc.add_ArchiveServiceServicer_to_server(_Archive(), server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    try:
        address = f"127.0.0.1:{port}"
        servicer = ComplianceServicer(
            store, Upstreams(address, address, token="bench", coverage_concurrency=32), Thresholds()
        )
        began = time.perf_counter()
        cpu = time.process_time()
        report = await servicer.report(
            int(START.timestamp() * 1_000_000), int(END.timestamp() * 1_000_000), END + timedelta(hours=1)
        )
        seconds, cpu_s = time.perf_counter() - began, time.process_time() - cpu
    finally:
        await server.stop(0)
        await store.reader.dispose()  # type: ignore[union-attr]
        await engine.dispose()
    return [
        Figure.bounded(
            "compliance report: 1 M audit records, 10,000 devices",
            value=seconds,
            unit="s",
            at_most=30.0,
            notes=(
                f"{n:,} records in the log ({report.records_scanned:,} scanned), {devices:,} devices, "
                f"{len(report.findings):,} findings; {cpu_s:.1f} s CPU in this process (stand-ins included); "
                "registry and archive are in-process stand-ins, Merkle nodes not written"
            ),
        )
    ]
