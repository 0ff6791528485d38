"""vigil.audit.v1.ComplianceService (AUD-3): composes the report from the log, the registry and the archive.

The registry's GetComplianceSummary (REG-2/5/6/7/11) and ListDevices, and the archive's GetCoverage
(ARC-5), are called with the audit service's own token, never recomputed here; the log is read through
:mod:`vigil_audit.compliance.logreads`; :mod:`vigil_audit.compliance.rules` decides what is a finding.
A source that cannot be read leaves a note in the report (incomplete, not clean) rather than failing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.audit.v1 import compliance_service_pb2 as pb
from vigil.audit.v1 import compliance_service_pb2_grpc
from vigil.common.v1 import time_range_pb2
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil_audit.compliance import metrics, rules
from vigil_audit.compliance.logreads import LogReads
from vigil_audit.compliance.rules import DeviceCoverage, Finding, Thresholds
from vigil_audit.store import LogStore
from vigil_kit.auth import current_principal
from vigil_kit.errors import InvalidArgument, PermissionDenied
from vigil_kit.grpc_client import make_channel

log = logging.getLogger(__name__)

SERVICE_NAME = "vigil.audit.v1.ComplianceService"
READER_ROLES = ("ROLE_AUDITOR", "ROLE_PLATFORM_ADMIN", "ROLE_PUBLIC_SECURITY_OFFICER")
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
DEVICES_PAGE = 1000
# Registry actions whose records show a device's or site's registered facts (a registry finding's evidence).
DEVICE_FACT_ACTIONS = (
    "registry.device.register",
    "registry.device.update",
    "registry.device.activate",
    "registry.device.suspend",
)
SITE_FACT_ACTIONS = ("registry.site.create", "registry.site.update", *DEVICE_FACT_ACTIONS)
OFFLINE_ACTIONS = ("registry.device.offline",)
UPLOAD_ACTION = "ingest.segment.upload"
# Gaps per device whose bordering uploads are cited as evidence.
GAPS_CITED = 3


def _us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def _ts(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


@dataclass(frozen=True)
class Upstreams:
    """Where the registry and archive are and the token to call them with (the audit service's own)."""

    registry_addr: str
    archive_addr: str
    token: Callable[[], str] | str
    timeout_s: float = 30.0
    coverage_concurrency: int = 16
    max_items: int = 1000


class ComplianceServicer(compliance_service_pb2_grpc.ComplianceServiceServicer):
    def __init__(
        self,
        store: LogStore,
        upstreams: Upstreams,
        thresholds: Thresholds,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.reads = LogReads(store.reader or store.engine)
        self.up = upstreams
        self.t = thresholds
        self.clock = clock

    async def GetComplianceReport(
        self, request: pb.GetComplianceReportRequest, context: object
    ) -> pb.ComplianceReport:
        p = current_principal()
        if not p.has_role(*READER_ROLES):
            raise PermissionDenied(
                "compliance reports need ROLE_AUDITOR, ROLE_PLATFORM_ADMIN or ROLE_PUBLIC_SECURITY_OFFICER",
                rule="AUD-3",
            )
        now = self.clock()
        start_us, end_us = self._range(request, now)
        return await self.report(start_us, end_us, now)

    def _range(self, request: pb.GetComplianceReportRequest, now: datetime) -> tuple[int, int]:
        r = request.range
        end_us = _us(r.end_time) if r.HasField("end_time") else int(now.timestamp() * 1_000_000)
        start_us = (
            _us(r.start_time)
            if r.HasField("start_time")
            else end_us - int(DEFAULT_RANGE.total_seconds() * 1_000_000)
        )
        if start_us >= end_us:
            raise InvalidArgument("range.start_time must be before range.end_time", field="range.start_time")
        if end_us - start_us > MAX_RANGE.total_seconds() * 1_000_000:
            raise InvalidArgument(f"a report covers at most {MAX_RANGE.days} days", field="range")
        return start_us, end_us

    async def report(self, start_us: int, end_us: int, now: datetime) -> pb.ComplianceReport:
        """The report over [start_us, end_us): every finding, counts, charts' data and notes."""
        began = time.perf_counter()
        now_us = int(now.timestamp() * 1_000_000)
        notes: list[str] = []
        # The registry and the archive are asked while the log is scanned.
        upstream = asyncio.create_task(self._upstream(start_us, min(end_us, now_us), notes))
        try:
            grants = rules.grants_from_records(
                await self.reads.records_of(rules.GRANT_ACTIONS, before_us=end_us)
            )
            log_rules = rules.LogRules(self.t, grants, start_us, end_us)
            async with aclosing(self.reads.scan(rules.SCAN_FILTER, start_us, end_us)) as pages:
                async for page, unread in pages:
                    add = log_rules.add
                    for rec in page:
                        add(rec)
                    log_rules.count_unread(unread)
            findings = log_rules.findings()
            for f in findings:
                if f.kind == rules.ACCESS_OUTSIDE_GRANT:
                    grant = grants.get(f.subject_ids[0]) if f.subject_ids else None
                    # The grant's own records belong to the evidence: what the access was measured against.
                    for rid in (grant.approve_record_id, grant.end_record_id) if grant else ():
                        if rid and rid not in f.evidence:
                            f.evidence.append(rid)
        except BaseException:
            upstream.cancel()
            raise
        summary, coverage = await upstream
        uncited = 0
        if summary is not None:
            found, missing = await self._registry_findings(summary)
            findings += found
            uncited += missing
        found, missing = await self._coverage_findings(coverage, now_us)
        findings += found
        uncited += missing
        if uncited:
            # The log lags the actions it records by a moment: say so rather than cite less in silence.
            notes.append(
                f"{uncited} record{'s' if uncited != 1 else ''} a finding cites {'are' if uncited != 1 else 'is'}"
                " not in the log yet; compose the report again shortly"
            )
        findings.sort(key=lambda f: (list(rules.RULES).index(f.kind), f.subject_ids))
        out = pb.ComplianceReport(
            range=time_range_pb2.TimeRange(start_time=_ts(start_us), end_time=_ts(end_us)),
            generate_time=_ts(now_us),
            findings=[_finding_pb(f) for f in findings],
            records_scanned=log_rules.scanned,
            log_size=await self.store.size(),
            notes=notes,
        )
        counted = rules.counts(findings)
        out.counts.extend(
            pb.FindingCount(kind=pb.FindingKind.Value(f"FINDING_KIND_{k}"), rule_id=rules.RULES[k], count=n)
            for k, n in counted.items()
        )
        out.coverage.extend(
            pb.CategoryCoverage(
                place_category=c.place_category,
                device_count=c.device_count,
                percent_covered=c.percent_covered,
                devices_with_gaps=c.devices_with_gaps,
            )
            for c in rules.coverage_by_category(coverage)
        )
        out.access_buckets.extend(
            _ts(start_us + i * log_rules.bucket_us) for i in range(self.t.access_buckets)
        )
        out.access.extend(
            pb.DepartmentAccess(unit=unit or "(no unit)", counts=series)
            for unit, series in log_rules.access_series().items()
        )
        if summary is not None:
            out.device_count = summary.device_count
            out.active_device_count = summary.active_device_count
            out.site_count = summary.site_count
        seconds = time.perf_counter() - began
        metrics.publish(counted, seconds)
        log.info(
            "compliance report composed",
            extra={"findings": len(findings), "records": log_rules.scanned, "seconds": round(seconds, 3)},
        )
        return out

    # ------------------------------------------------------------------------------- registry + archive

    async def _upstream(
        self, start_us: int, end_us: int, notes: list[str]
    ) -> tuple[rpb.ComplianceSummary | None, list[DeviceCoverage]]:
        summary: rpb.ComplianceSummary | None = None
        devices: list[rpb.Device] = []
        try:
            async with make_channel(
                self.up.registry_addr, token=self.up.token, default_timeout_s=self.up.timeout_s
            ) as channel:
                stub = rpb_grpc.RegistryServiceStub(channel)
                summary = await stub.GetComplianceSummary(
                    rpb.GetComplianceSummaryRequest(max_items=self.up.max_items)
                )
                token = ""
                while True:
                    page = await stub.ListDevices(
                        rpb.ListDevicesRequest(page_size=DEVICES_PAGE, page_token=token)
                    )
                    devices += [d for d in page.devices if d.state != rpb.DEVICE_STATE_DECOMMISSIONED]
                    token = page.next_page_token
                    if not token:
                        break
        except grpc.RpcError as e:
            notes.append(f"registry: {e.code().name}: {e.details()}")  # type: ignore[attr-defined]
        if not devices or end_us <= start_us:
            return summary, []
        return summary, await self._coverage(devices, start_us, end_us, notes)

    async def _coverage(
        self, devices: list[rpb.Device], start_us: int, end_us: int, notes: list[str]
    ) -> list[DeviceCoverage]:
        window = time_range_pb2.TimeRange(start_time=_ts(start_us), end_time=_ts(end_us))
        failed: dict[str, int] = {}
        async with make_channel(
            self.up.archive_addr, token=self.up.token, default_timeout_s=self.up.timeout_s
        ) as channel:
            call = apb_grpc.ArchiveServiceStub(channel).GetCoverage
            got: list[DeviceCoverage | None] = [None] * len(devices)
            todo = iter(enumerate(devices))
            category = rpb.PlaceCategory.Name

            async def worker() -> None:
                # A fixed set of callers taking the next device (not a task per device): at most
                # coverage_concurrency calls in flight.
                for i, d in todo:
                    try:
                        c = await call(apb.GetCoverageRequest(device_id=d.device_id, range=window))
                    except grpc.RpcError as e:
                        code = e.code().name  # type: ignore[attr-defined]
                        failed[code] = failed.get(code, 0) + 1
                        continue
                    got[i] = DeviceCoverage(
                        d.device_id,
                        category(d.site.place_category),
                        d.retention_days,
                        c.percent_covered,
                        _us(c.earliest) if c.HasField("earliest") else None,
                        _us(c.latest) if c.HasField("latest") else None,
                        tuple((_us(g.start_time), _us(g.end_time)) for g in c.gaps),
                    )

            await asyncio.gather(*(worker() for _ in range(min(self.up.coverage_concurrency, len(devices)))))
        for code, n in sorted(failed.items()):
            notes.append(f"archive coverage of {n} device{'s' if n != 1 else ''}: {code}")
        return [c for c in got if c is not None]

    async def _coverage_findings(
        self, coverage: list[DeviceCoverage], now_us: int
    ) -> tuple[list[Finding], int]:
        """The coverage findings, and how many of the records they cite the log does not hold yet."""
        # ARC-3: a hold keeps footage lawfully; only devices that would otherwise be past expiry are looked up.
        expiring = [c for c in coverage if rules.past_expiry(c, now_us, self.t)]
        held = await self.reads.held_devices(c.device_id for c in expiring)
        if held:
            coverage = [
                DeviceCoverage(**{**c.__dict__, "on_hold": True}) if c.device_id in held else c
                for c in coverage
            ]
        found = rules.coverage_findings(coverage, now_us, self.t)
        by_device = {c.device_id: c for c in coverage}
        # The uploads bordering each cited gap, and the oldest upload of footage kept past expiry: looked
        # up together, then cited in this order per finding.
        asked: list[tuple[Finding, tuple[str, int | None, int | None]]] = []
        for f in found:
            c = by_device[f.subject_ids[0]]
            if f.kind == rules.RECORDING_GAP:
                for gap in rules.interior_gaps(c)[:GAPS_CITED]:
                    asked.append((f, (c.device_id, gap[0], None)))
                    asked.append((f, (c.device_id, None, gap[1])))
            elif f.kind == rules.FOOTAGE_PAST_EXPIRY and c.earliest_us is not None:
                asked.append((f, (c.device_id, None, c.earliest_us)))
        edges = await self.reads.footage_edges(UPLOAD_ACTION, [edge for _, edge in asked])
        for (f, _), rid in zip(asked, edges, strict=True):
            if rid and rid not in f.evidence:
                f.evidence.append(rid)
        return found, sum(1 for rid in edges if not rid)

    async def _registry_findings(self, s: rpb.ComplianceSummary) -> tuple[list[Finding], int]:
        """The registry's findings, and how many of the records they cite the log does not hold yet."""

        def gaps(items: list[rpb.DeviceGap]) -> list[rules.DeviceGap]:
            return [rules.DeviceGap(d.device_id, d.site_id, d.owner_unit_id) for d in items]

        found = rules.registry_findings(
            missing_measures=gaps(list(s.devices_missing_privacy_measures)),
            missing_sign=gaps(list(s.devices_missing_notice_sign)),
            sites_without_device=[
                rules.SiteGap(g.site_id, g.name, rpb.PlaceCategory.Name(g.place_category))
                for g in s.sites_without_active_device
            ],
            overdue=[rules.OverdueFiling(f.unit_id, f.site_id, f.due_on) for f in s.overdue_filings],
            offline=[
                rules.Outage(o.device_id, o.site_id, _us(o.outage) if o.HasField("outage") else None)
                for o in s.offline_devices
            ],
            t=self.t,
        )
        # Evidence: the log's latest record of the facts each finding is about.
        devices = {f.subject_ids[0] for f in found if f.subject_kind == "device"}
        sites = {f.subject_ids[-1] for f in found if f.subject_kind in ("site", "filing")}
        device_facts = await self.reads.latest_naming("device", devices, DEVICE_FACT_ACTIONS)
        offline = await self.reads.latest_naming("device", devices, OFFLINE_ACTIONS)
        site_facts = await self.reads.latest_naming("site", sites, SITE_FACT_ACTIONS)
        missing = 0
        for f in found:
            if f.subject_kind == "device":
                cited = [device_facts.get(f.subject_ids[0])]
                if f.kind in (rules.DEVICE_OFFLINE, rules.OUTAGE_OVER_LIMIT):
                    cited.insert(0, offline.get(f.subject_ids[0]))
            else:
                cited = [site_facts.get(f.subject_ids[-1])]
            f.evidence.extend(r for r in cited if r)
            missing += sum(1 for r in cited if not r)
        return found, missing


def _finding_pb(f: Finding) -> pb.Finding:
    msg = pb.Finding(
        kind=pb.FindingKind.Value(f"FINDING_KIND_{f.kind}"),
        rule_id=f.rule,
        severity=pb.Severity.Value(f"SEVERITY_{f.severity}"),
        subject_kind=f.subject_kind,
        subject_ids=list(f.subject_ids),
        summary=f.summary,
        evidence_record_ids=f.evidence,
        count=f.count,
    )
    if f.first_us is not None:
        msg.first_time.CopyFrom(_ts(f.first_us))
    if f.last_us is not None:
        msg.last_time.CopyFrom(_ts(f.last_us))
    return msg


def compliance_binding(settings: object, store: LogStore) -> object:
    """The ComplianceService binding for the audit process (settings: the audit service's Settings)."""
    from vigil_audit.compliance.settings import ComplianceSettings
    from vigil_kit.grpc_server import ServiceBinding

    cfg = ComplianceSettings()
    upstreams = Upstreams(
        registry_addr=settings.registry_addr,  # type: ignore[attr-defined]
        archive_addr=settings.archive_addr,  # type: ignore[attr-defined]
        token=settings.service_token.get_secret_value(),  # type: ignore[attr-defined]
        timeout_s=cfg.call_timeout_s,
        coverage_concurrency=cfg.coverage_concurrency,
        max_items=cfg.max_items,
    )
    return ServiceBinding(
        name=SERVICE_NAME,
        servicer=ComplianceServicer(store, upstreams, cfg.thresholds()),
        add_to_server=compliance_service_pb2_grpc.add_ComplianceServiceServicer_to_server,
    )
