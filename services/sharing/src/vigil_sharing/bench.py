"""Benchmark figures of the sharing service: decide() throughput, Authorize latency over gRPC, revocation propagation.

- decide(): decisions per second through the servicer's own decide(), 10,000 active grants, excluding I/O.
- Authorize p99: sharing service PROCESSES (`python -m vigil_sharing`, REPLICAS of them as the chart runs, on
  one SQLite database and the bench's broker) seeded with the same 10,000 grants; a load generator in its own
  process (multiprocessing, spawn) sends Authorize at a fixed rate, open loop, round robin over the replicas,
  each call including the decision's audit commit; WhoAmI on the same replicas at the same rate, in the same
  run, is the baseline.
- Revocation propagation: a second sharing process on the same database; each grant is revoked on the first
  and Authorize is polled on the second until it denies.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil_kit.bench import BenchContext, Figure
from vigil_kit.embedded import free_port, port_open
from vigil_kit.service import run_on
from vigil_kit.settings import ServiceSettings
from vigil_sharing.domain.index import GrantIndex
from vigil_sharing.domain.model import (
    ACTION_EXPORT,
    ACTION_LIVE_VIEW,
    ACTION_PLAYBACK,
    ACTION_SUBSCRIBE_EVENTS,
    FUNDING_GOVERNMENT,
    FUNDING_PRIVATE,
    PLACE_CATEGORIES,
    ROLE_DEPARTMENT_ANALYST,
    ROLE_PARTNER,
    ROLE_PUBLIC_SECURITY_OFFICER,
    UNIT_KIND_GOVERNMENT_DEPARTMENT,
    UNIT_KIND_PARTNER,
    UNIT_KIND_PUBLIC_SECURITY_ORGAN,
    Action,
    Decision,
    DeviceFacts,
    Grant,
    PrincipalFacts,
    Purpose,
    Scope,
    TimeRange,
)
from vigil_sharing.domain.policy import decide

T0 = datetime(2026, 11, 28, tzinfo=UTC)
HOUR = timedelta(hours=1)
TARGET = 50_000.0
CATEGORIES = sorted(PLACE_CATEGORIES)
ACTION_SETS: tuple[frozenset[Action], ...] = (
    frozenset({ACTION_PLAYBACK}),
    frozenset({ACTION_PLAYBACK, ACTION_EXPORT}),
    frozenset({ACTION_LIVE_VIEW}),
    frozenset({ACTION_LIVE_VIEW, ACTION_PLAYBACK}),
    frozenset({ACTION_SUBSCRIBE_EVENTS}),
)


@dataclass
class Workload:
    """A city's worth of devices, principals and active grants, and a request mix about half of them denied."""

    index: GrantIndex
    requests: list[tuple[str, DeviceFacts | None, TimeRange | None, PrincipalFacts, datetime]]
    devices: list[DeviceFacts] = field(default_factory=list)
    principals: list[PrincipalFacts] = field(default_factory=list)

    def run(self) -> tuple[float, int]:
        """Decide every request once; (seconds, allowed count)."""
        index = self.index
        allowed = 0
        start = time.perf_counter()
        for action, device, window, principal, now in self.requests:
            if decide(action, device, window, principal, now, index).allow:
                allowed += 1
        return time.perf_counter() - start, allowed


def build_workload(
    *,
    t0: datetime = T0,
    grants: int = 10_000,
    principals: int = 2_000,
    devices: int = 20_000,
    requests: int = 100_000,
    seed: int = 7,
) -> Workload:
    rng = random.Random(seed)
    kinds = (
        (UNIT_KIND_GOVERNMENT_DEPARTMENT, ROLE_DEPARTMENT_ANALYST),
        (UNIT_KIND_PUBLIC_SECURITY_ORGAN, ROLE_PUBLIC_SECURITY_OFFICER),
        (UNIT_KIND_PARTNER, ROLE_PARTNER),
    )
    people = []
    for i in range(principals):
        kind, role = kinds[i % len(kinds)]
        people.append(
            PrincipalFacts(f"user:{i}", f"U{i // 4:05d}", kind, frozenset({role}), unmask_right=i % 5 == 0)
        )
    districts = [f"3202{d:02d}" for d in range(1, 13)]
    fleet = [
        DeviceFacts(
            device_id=f"320200{i:014d}",
            owner_unit=f"OWNER{i % 300:04d}",
            site_id=f"S{i // 8:05d}",
            division_code=rng.choice(districts) + f"{rng.randrange(1000):03d}",
            place_category=rng.choice(CATEGORIES),
            funding=FUNDING_GOVERNMENT if rng.random() < 0.8 else FUNDING_PRIVATE,
            secret_related=rng.random() < 0.01,
        )
        for i in range(devices)
    ]
    sites = sorted({d.site_id for d in fleet})

    issued: list[Grant] = []
    for g in range(grants):
        holder = people[g % principals]
        shape = rng.random()
        if shape < 0.6:
            scope = Scope.of(device_ids=[rng.choice(fleet).device_id for _ in range(rng.randint(1, 20))])
        elif shape < 0.8:
            scope = Scope.of(site_ids=rng.sample(sites, rng.randint(1, 3)))
        else:
            scope = Scope.of(
                division_prefixes=rng.sample(districts, rng.randint(1, 2)),
                place_categories=rng.sample(CATEGORIES, rng.randint(1, 3)),
            )
        start = rng.randint(-30 * 24, -24)
        issued.append(
            Grant(
                grant_id=f"g-{g}",
                holder_id=holder.id,
                holder_unit=holder.unit,
                purpose=Purpose.PUBLIC_ORDER,
                actions=rng.choice(ACTION_SETS),
                scope=scope,
                footage_window=TimeRange(t0 + start * HOUR, t0 + (start + rng.randint(2, 72)) * HOUR),
                valid_from=t0 - rng.randint(0, 48) * HOUR,
                valid_until=t0 + rng.randint(1, 30 * 24) * HOUR,
                agreement_ref="AGR-1" if rng.random() < 0.5 else "",
            )
        )
    index = GrantIndex(issued)
    now = t0

    def covered(g: Grant) -> DeviceFacts | None:
        """A device in the grant's scope, found by sampling (the scopes above all cover some devices)."""
        if g.scope.device_ids:
            cands = [by_id[d] for d in g.scope.device_ids]
        elif g.scope.site_ids:
            cands = [d for s in g.scope.site_ids for d in by_site[s]]
        else:
            cands = []
            for _ in range(2_000):
                d = fleet[rng.randrange(len(fleet))]
                if g.scope.covers(d):
                    cands.append(d)
                    break
        cands = [
            d for d in cands if g.scope.covers(d) and not d.secret_related and d.funding == FUNDING_GOVERNMENT
        ]
        return rng.choice(cands) if cands else None

    by_id = {d.device_id: d for d in fleet}
    by_site: dict[str, list[DeviceFacts]] = {}
    for d in fleet:
        by_site.setdefault(d.site_id, []).append(d)
    people_by_id = {p.id: p for p in people}

    mix: list[tuple[str, DeviceFacts | None, TimeRange | None, PrincipalFacts, datetime]] = []
    while len(mix) < requests:
        g = rng.choice(issued)
        holder = people_by_id[g.holder_id]
        action = rng.choice(sorted(g.actions))
        device = covered(g)
        if device is None:
            continue
        window = None
        if action in (ACTION_PLAYBACK, ACTION_EXPORT):
            assert g.footage_window is not None
            window = TimeRange(g.footage_window.start + HOUR, g.footage_window.start + 2 * HOUR)
        if len(mix) % 2 == 0:
            mix.append((action, device, window, holder, now))  # meant to be allowed
            continue
        # Meant to be denied, in the ways real refusals happen.
        how = rng.randrange(5)
        if how == 0:  # a device outside every scope the holder has
            mix.append((action, rng.choice(fleet), window, holder, now))
        elif how == 1:  # footage older than the grant's window
            old = TimeRange(t0 - 60 * 24 * HOUR, t0 - 59 * 24 * HOUR)
            mix.append((ACTION_PLAYBACK, device, old, holder, now))
        elif how == 2:  # someone else asking for the same
            mix.append((action, device, window, rng.choice(people), now))
        elif how == 3:  # after the grant expired
            mix.append((action, device, window, holder, g.valid_until + HOUR))
        else:  # a device no one has heard of
            mix.append((action, None, window, holder, now))
    return Workload(index, mix, fleet, people)


def measure(workload: Workload, rounds: int = 3) -> tuple[float, float]:
    """(best decisions per second over `rounds`, fraction allowed)."""
    best, allowed = float("inf"), 0
    for _ in range(rounds):
        seconds, allowed = workload.run()
        best = min(best, seconds)
    n = len(workload.requests)
    return n / best, allowed / n


def first_decision(workload: Workload) -> Decision:
    action, device, window, principal, now = workload.requests[0]
    return decide(action, device, window, principal, now, workload.index)


async def figures(ctx: BenchContext) -> list[Figure]:
    workload = build_workload()
    rate, allowed = measure(workload)
    figures = [_decide_figure(workload, rate, allowed)]
    if ctx.kafka_bootstrap:  # the service figures run sharing processes against the bench's broker
        figures += await service_figures(ctx)
    return figures


def _decide_figure(workload: Workload, rate: float, allowed: float) -> Figure:
    return Figure.bounded(
        "sharing: decide() with 10,000 active grants",
        value=rate,
        unit="decisions/s",
        at_least=TARGET,
        notes=(
            f"one process, excluding I/O; {len(workload.requests):,} requests with footage windows over "
            f"{len(workload.index):,} grants of 2,000 principals on 20,000 devices; {allowed:.0%} allowed; "
            "best of 3 rounds"
        ),
    )


# ---- Authorize over gRPC and revocation propagation, against sharing service processes ------------------

AUTHORIZE_P99_MS = 5.0
PROPAGATION_S = 1.0
RATE = 1_000  # requests per second, open loop
# VIGIL_BENCH_SHARING_SECONDS shortens the measured load for a quick look; the report figure uses 15 s.
DURATION_S = float(os.environ.get("VIGIL_BENCH_SHARING_SECONDS", "15"))
WARMUP_S = 2.0
IN_FLIGHT = 256  # senders sharing the generator's one channel: 1,000/s stays open loop up to ~250 ms per call
# Sharing processes serving the load, as the chart's `services.sharing.replicas` runs them (each replica on the
# same database, the generator balancing round robin). One process carries 1,000 Authorize/s here at ~80 % of a
# core (its gRPC server alone ~0.5 ms of CPU per call); VIGIL_BENCH_SHARING_REPLICAS=1 measures it alone.
REPLICAS = int(os.environ.get("VIGIL_BENCH_SHARING_REPLICAS", "2"))
CALL_TIMEOUT_S = 5.0
MAX_ERROR_RATE = 0.01  # above it the run is invalid: no p99 is reported from the calls that succeeded
MIN_RATE_FRACTION = 0.95  # below it the generator did not offer the load the figure claims
REVOCATIONS = 10
OFFICER = ("user:officer", "113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")


@dataclass
class LoadResult:
    """What the load generator saw over the measured (post-warm-up) part of a run.

    `latencies_ms` run from each call's SCHEDULED start (so a generator or service that falls behind shows
    up in the figure rather than silently lowering the rate); `service_ms` from when it was actually sent.
    """

    latencies_ms: list[float]
    sent: int
    errors: int
    allowed: int
    seconds: float
    error_codes: dict[str, int] = field(default_factory=dict)
    service_ms: list[float] = field(default_factory=list)
    warmup_errors: int = 0
    max_lag_ms: float = 0.0
    cpu_busy: float = 0.0  # the generator's CPU seconds per wall second over the whole run

    def p(self, q: float, which: str = "latencies_ms") -> float:
        ordered = sorted(getattr(self, which))
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("inf")

    @property
    def rate(self) -> float:
        """Calls per second actually sent over the measured part."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 1.0

    def valid(self, rate: float) -> bool:
        """Few enough errors, and the offered rate reached, for a percentile of this run to mean anything."""
        return self.sent > 0 and self.error_rate <= MAX_ERROR_RATE and self.rate >= MIN_RATE_FRACTION * rate

    def summary(self) -> str:
        codes = ", ".join(f"{k} {v:,}" for k, v in sorted(self.error_codes.items())) or "none"
        return (
            f"{self.sent:,} calls at {self.rate:,.0f}/s, {self.errors:,} errors ({self.error_rate:.1%}; {codes}), "
            f"{self.warmup_errors:,} in warm-up, sender lag max {self.max_lag_ms:.1f} ms, "
            f"generator CPU {self.cpu_busy:.0%} of a core"
        )


def load_generate(
    address: str,
    method: str,
    requests: list[tuple[int, bytes]],
    tokens: list[str],
    rate: float,
    warmup_s: float,
) -> LoadResult:
    """Runs in its own process: sends `requests` (token index, serialized request) at `rate`/s, open loop (a
    call starts at its scheduled time whether or not earlier ones have answered), and times each call."""
    # On the services' event loop: a client built on the kit runs as they do. Its clock is time.perf_counter().
    loop = ServiceSettings.model_fields["event_loop"].default
    return run_on(loop, _load(address, method, requests, tokens, rate, warmup_s))


def balanced_target(addresses: list[str]) -> str:
    """One gRPC target naming every replica (`ipv4:` with several addresses), for round-robin balancing."""
    return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)


async def _load(
    address: str,
    method: str,
    requests: list[tuple[int, bytes]],
    tokens: list[str],
    rate: float,
    warmup_s: float,
) -> LoadResult:
    import grpc

    from vigil.identity.v1 import identity_service_pb2 as id_pb
    from vigil.sharing.v1 import sharing_service_pb2 as pb

    reply_type = pb.AuthorizeResponse if method.endswith("/Authorize") else id_pb.WhoAmIResponse
    # One long-lived channel for the whole run (one HTTP/2 connection per replica, calls spread round robin
    # over them, as a client of a headless Service does), connected before the clock starts.
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.lb_policy_name", "round_robin")]
    ) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        call = channel.unary_unary(
            method, request_serializer=None, response_deserializer=reply_type.FromString
        )
        metadata = [(("authorization", f"Bearer {t}"),) for t in tokens]
        latencies: list[float] = []
        service: list[float] = []
        codes: dict[str, int] = {}
        warm = min(len(requests), int(warmup_s * rate))
        state = {"next": 0, "errors": 0, "warm_errors": 0, "allowed": 0, "lag": 0.0, "last_send": 0.0}
        cpu0 = time.process_time()
        t0 = time.perf_counter() + 0.05

        async def sender() -> None:
            # Open loop with IN_FLIGHT senders: each takes the next slot of the fixed schedule and waits for
            # its time. Latency runs from the slot, so if every sender is busy the wait is counted, not hidden.
            while state["next"] < len(requests):
                i = state["next"]
                state["next"] = i + 1
                token, body = requests[i]
                scheduled = t0 + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = time.perf_counter()
                if i >= warm:
                    state["lag"] = max(state["lag"], sent - scheduled)
                    state["last_send"] = sent
                try:
                    reply = await call(body, metadata=metadata[token], timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as e:
                    if i >= warm:
                        state["errors"] += 1
                        codes[e.code().name] = codes.get(e.code().name, 0) + 1
                    else:
                        state["warm_errors"] += 1
                    continue
                if i >= warm:
                    done = time.perf_counter()
                    latencies.append((done - scheduled) * 1000)
                    service.append((done - sent) * 1000)
                    state["allowed"] += bool(getattr(reply, "allowed", False))

        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        measured_from = t0 + warm / rate
        return LoadResult(
            latencies_ms=latencies,
            sent=len(requests) - warm,
            errors=int(state["errors"]),
            allowed=int(state["allowed"]),
            # sent calls span (n - 1) slots of 1/rate from the first measured slot to the last send
            seconds=max(0.0, state["last_send"] - measured_from) + 1 / rate,
            error_codes=codes,
            service_ms=service,
            warmup_errors=int(state["warm_errors"]),
            max_lag_ms=state["lag"] * 1000,
            cpu_busy=(time.process_time() - cpu0) / max(1e-9, time.perf_counter() - t0),
        )


class SharingProcess:
    """`python -m vigil_sharing` on loopback with the given database and broker; stopped with SIGTERM."""

    def __init__(
        self,
        ctx: BenchContext,
        name: str,
        database_url: str,
        public_key_pem: str,
        token: str,
        registry_addr: str,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.log = ctx.workdir / f"{name}.log"
        env = {
            **os.environ,
            "SHARING_GRPC_HOST": "127.0.0.1",
            "SHARING_GRPC_PORT": str(self.port),
            "SHARING_METRICS_PORT": str(self.metrics_port),
            "SHARING_DATABASE_URL": database_url,
            "SHARING_KAFKA_BOOTSTRAP": ctx.kafka_bootstrap,
            "SHARING_AUTH_PUBLIC_KEYS": json.dumps([public_key_pem]),
            "SHARING_SERVICE_TOKEN": token,
            # A stand-in registry that knows no device: the bench's devices are all in the database already,
            # and the "device no one has heard of" requests get the registry's real answer, NOT_FOUND.
            "SHARING_REGISTRY_ADDR": registry_addr,
            "SHARING_LOG_LEVEL": "WARNING",
        }
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vigil_sharing"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    async def wait_serving(self, timeout_s: float = 90.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sharing exited with {self.proc.returncode}; see {self.log}")
            if port_open("127.0.0.1", self.port):
                async with grpc.aio.insecure_channel(self.address) as channel:
                    try:
                        reply = await health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=2
                        )
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            return
                    except grpc.aio.AioRpcError:
                        pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"sharing not SERVING within {timeout_s} s; see {self.log}")

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The service's /metrics as {(sample name, sorted labels): value}."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        def fetch() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
                return r.read().decode()

        text = await asyncio.to_thread(fetch)
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the service process has used (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_messages(self, top: int = 3) -> str:
        """The most frequent WARNING-or-worse log messages of the process (its log dies with the workdir)."""
        counts: dict[str, int] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if entry.get("level") in ("DEBUG", "INFO"):
                    continue
                msg = f"{entry.get('level')} {entry.get('message')}"
            except (ValueError, AttributeError):
                msg = line[:120]
            counts[msg] = counts.get(msg, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return "; ".join(f"{n}× {m!r}" for m, n in ranked) or "none"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _grant_message(g: Grant, created: datetime) -> object:
    from vigil.common.v1 import identity_pb2
    from vigil.sharing.v1 import sharing_service_pb2 as pb
    from vigil_sharing import codec

    msg = pb.AccessRequest(
        request_id=g.grant_id,
        requester=identity_pb2.Principal(id=g.holder_id, unit=g.holder_unit),
        purpose=pb.Purpose.Value(g.purpose.value),
        legal_basis="bench",
        scope=codec.scope(g.scope),
        actions=[pb.Action.Value(a.value) for a in sorted(g.actions)],
        valid_from=codec.ts(g.valid_from),
        valid_until=codec.ts(g.valid_until),
        create_time=codec.ts(created),
        decide_time=codec.ts(created),
        state=pb.REQUEST_STATE_APPROVED,
        required_approvals=1,
        approvals=[pb.Approval(principal_id=OFFICER[0], unit=OFFICER[1], approve_time=codec.ts(created))],
        decided_by=OFFICER[0],
        agreement_ref=g.agreement_ref,
    )
    if g.footage_window is not None:
        msg.footage_window.CopyFrom(codec.time_range(g.footage_window))
    return msg


async def seed_database(url: str, workload: Workload, now: datetime) -> None:
    """Migrations, then the workload's devices and its grants as APPROVED requests."""
    from vigil_kit import db, migrations
    from vigil_sharing import app, store

    engine = db.create_engine(url)
    try:
        await migrations.upgrade(engine, app.MIGRATIONS)
        sessions = db.session_factory(engine)
        grants = workload.index.grants()
        for chunk in range(0, len(grants), 1000):
            async with sessions.begin() as session:
                for g in grants[chunk : chunk + 1000]:
                    await store.insert_request(session, _grant_message(g, now))  # type: ignore[arg-type]
        devices = workload.devices
        for chunk in range(0, len(devices), 2000):
            async with sessions.begin() as session:
                for d in devices[chunk : chunk + 2000]:
                    await store.put_device(session, d, now)
    finally:
        await engine.dispose()


def _authorize_body(action: str, device: DeviceFacts | None, window: TimeRange | None) -> bytes:
    from vigil.sharing.v1 import sharing_service_pb2 as pb
    from vigil_sharing import codec

    msg = pb.AuthorizeRequest(
        action=pb.Action.Value(action), device_id=device.device_id if device else "32020099999999999999"
    )
    if window is not None:
        msg.footage_window.CopyFrom(codec.time_range(window))
    return msg.SerializeToString()


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def server_side(before: Scrape, after: Scrape, method: str) -> str:
    """Server-side handling time of `method` between two scrapes (vigil_grpc_server_handling_seconds): calls,
    mean, and the bucket bound holding the p50 and the p99."""
    service, name = method.lstrip("/").split("/")
    want = {"grpc_service": service, "grpc_method": name}

    def delta(sample: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for (n, labels), v in after.items():
            d = dict(labels)
            if n == sample and all(d.get(k) == x for k, x in want.items()):
                out[d.get("le", "")] = out.get(d.get("le", ""), 0.0) + v - before.get((n, labels), 0.0)
        return out

    count = sum(delta("vigil_grpc_server_handling_seconds_count").values())
    total = sum(delta("vigil_grpc_server_handling_seconds_sum").values())
    if not count:
        return f"server side {name}: no calls recorded"
    buckets = sorted(
        ((float(le), n) for le, n in delta("vigil_grpc_server_handling_seconds_bucket").items()),
        key=lambda b: b[0],
    )

    def bound(q: float) -> str:
        for le, n in buckets:
            if n >= q * count:
                return f"≤ {le * 1000:g} ms" if le != float("inf") else "> 30 s"
        return "?"

    return (
        f"server side {name}: {count:,.0f} calls, mean {total / count * 1000:.2f} ms, p50 {bound(0.5)}, "
        f"p99 {bound(0.99)}"
    )


def audit_batches(before: Scrape, after: Scrape) -> str:
    """Group commits of decision audit records between two scrapes: commits and mean records per commit."""
    key = "vigil_sharing_decision_audit_batch_size"
    commits = after.get((f"{key}_count", ()), 0.0) - before.get((f"{key}_count", ()), 0.0)
    records = after.get((f"{key}_sum", ()), 0.0) - before.get((f"{key}_sum", ()), 0.0)
    failures = after.get(("vigil_sharing_decision_audit_failures_total", ()), 0.0) - before.get(
        ("vigil_sharing_decision_audit_failures_total", ()), 0.0
    )
    direct, fallbacks = (
        sum(v for (name, _), v in after.items() if name == key)
        - sum(v for (name, _), v in before.items() if name == key)
        for key in ("vigil_outbox_direct_published_total", "vigil_outbox_direct_fallbacks_total")
    )
    mean = records / commits if commits else 0.0
    return (
        f"audit group commits {commits:,.0f} (mean {mean:.1f} records each; {direct:,.0f} records acknowledged "
        f"by the broker directly, {fallbacks:,.0f} sent to the outbox instead), {failures:,.0f} audit failures"
    )


def _load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def _run_load(
    processes: list[SharingProcess], method: str, requests: list[tuple[int, bytes]], tokens: list[str]
) -> tuple[LoadResult, str]:
    """One generator run in its own (spawned) process against SERVING replicas, with what the replicas
    themselves measured over the same run (CPU and metrics summed over them)."""
    for process in processes:
        await process.wait_serving()
    before = _merged([await p.scrape() for p in processes])
    cpu0, wall0 = sum(p.cpu_seconds() for p in processes), time.monotonic()
    loop = asyncio.get_running_loop()
    target = balanced_target([p.address for p in processes])
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = await loop.run_in_executor(
            pool, load_generate, target, method, requests, tokens, RATE, WARMUP_S
        )
    busy = (sum(p.cpu_seconds() for p in processes) - cpu0) / (time.monotonic() - wall0)
    after = _merged([await p.scrape() for p in processes])
    seen = f"service CPU {busy:.0%} of a core (all replicas); " + server_side(before, after, method)
    if method.endswith("/Authorize"):
        seen += "; " + audit_batches(before, after)
    return result, f"{seen} (incl. warm-up); load average {_load_average()} after"


def _merged(scrapes: list[Scrape]) -> Scrape:
    """Several processes' /metrics as one: counters, sums and histogram buckets add up."""
    out: Scrape = {}
    for scrape in scrapes:
        for key, value in scrape.items():
            out[key] = out.get(key, 0.0) + value
    return out


async def _unknown_device_registry() -> tuple[object, str]:
    """A registry on loopback whose GetDevice answers NOT_FOUND, as the real one does for an unknown device
    (with nothing listening, each such Authorize would instead wait out a failing connection)."""
    import grpc

    async def get_device(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such device")
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "vigil.registry.v1.RegistryService",
                {"GetDevice": grpc.unary_unary_rpc_method_handler(get_device)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def service_figures(ctx: BenchContext) -> list[Figure]:
    """Authorize p99 at RATE/s (WhoAmI beside it) and revocation propagation between two processes."""
    from vigil_kit.auth import TokenIssuer, generate_keypair

    private, public = generate_keypair()
    issuer = TokenIssuer(private)
    now = datetime.now(UTC).replace(microsecond=0)
    workload = build_workload(t0=now, requests=int(RATE * (DURATION_S + WARMUP_S)))
    url = f"sqlite+aiosqlite:///{ctx.workdir / 'sharing-bench.db'}"
    await seed_database(url, workload, now)

    # Tokens are minted once, by the issuer whose public key the service trusts, valid for the whole run,
    # and shared by every call of their principal (Authorize decides for the caller, so one per principal).
    token_of: dict[str, int] = {}
    tokens: list[str] = []
    load: list[tuple[int, bytes]] = []
    for action, device, window, who, _ in workload.requests:
        if who.id not in token_of:
            token_of[who.id] = len(tokens)
            tokens.append(
                issuer.mint(
                    sub=who.id,
                    name=who.id,
                    unit=who.unit,
                    unit_kind=who.unit_kind,
                    roles=who.roles,
                    ttl_s=3600,
                )
            )
        load.append((token_of[who.id], _authorize_body(action, device, window)))

    service_token = issuer.mint_service("sharing")
    load_before = _load_average()
    registry = await _unknown_device_registry()
    started: list[SharingProcess] = []

    def start(name: str) -> SharingProcess:
        started.append(SharingProcess(ctx, name, url, public.decode(), service_token, registry[1]))
        return started[-1]

    try:
        serving = [start(f"sharing-{i + 1}") for i in range(REPLICAS)]
        # The baseline first, on idle replicas, so that it does not inherit Authorize's backlog.
        whoami, whoami_seen = await _run_load(
            serving, "/vigil.identity.v1.IdentityService/WhoAmI", [(0, b"")] * len(load), tokens[:1]
        )
        authorize, authorize_seen = await _run_load(
            serving, "/vigil.sharing.v1.SharingService/Authorize", load, tokens
        )
        log_first = serving[0].log_messages()
        second = serving[1] if len(serving) > 1 else start("sharing-2")
        await second.wait_serving()
        lags = await revocation_lags(serving[0].address, second.address, issuer, workload, now)
    finally:
        for process in started:
            process.stop()
        await registry[0].stop(None)

    lags.sort()
    valid = authorize.valid(RATE) and whoami.valid(RATE)
    verdict = (
        "p99 from the scheduled start of each call"
        if valid
        else f"INVALID RUN (more than {MAX_ERROR_RATE:.0%} errors or under {MIN_RATE_FRACTION:.0%} of the rate): "
        "no percentile reported"
    )
    nan = float("nan")
    return [
        Figure.bounded(
            "sharing: Authorize p99 over gRPC incl. audit commit, 1,000 req/s",
            value=authorize.p(0.99) if valid else nan,
            unit="ms",
            at_most=AUTHORIZE_P99_MS,
            baseline=whoami.p(0.99) if valid else None,
            notes=(
                f"{verdict}. service: {REPLICAS} `python -m vigil_sharing` replica process(es) on one database "
                f"(SQLite WAL; decisions' audit records published to the bench broker, acks=all, before each answer; "
                f"the outbox relay for the rest) holding {len(workload.index):,} active grants; "
                f"load: its own process (multiprocessing spawn), one channel balancing round robin over the "
                f"replicas, {IN_FLIGHT} senders, open loop at {RATE:,}/s for {DURATION_S:g} s after "
                f"{WARMUP_S:g} s warm-up, {CALL_TIMEOUT_S:g} s deadline. Authorize: {authorize.summary()}; "
                f"p50 {authorize.p(0.5):.2f} ms, p99.9 {authorize.p(0.999):.2f} ms, p99 from send "
                f"{authorize.p(0.99, 'service_ms'):.2f} ms, "
                f"{authorize.allowed / max(1, len(authorize.latencies_ms)):.0%} allowed; {authorize_seen}. "
                f"Baseline WhoAmI on the same replicas at the same rate just before: {whoami.summary()}; "
                f"p50 {whoami.p(0.5):.2f} ms, p99 {whoami.p(0.99):.2f} ms; {whoami_seen}. "
                f"First replica's log warnings: {log_first}. Load average {load_before} before (machine shared)"
            ),
        ),
        Figure.bounded(
            "sharing: revocation propagation to another process's cache",
            value=lags[-1],
            unit="s",
            at_most=PROPAGATION_S,
            notes=(
                f"max over {len(lags)} revocations (p50 {lags[len(lags) // 2]:.3f} s): two sharing processes on one "
                "SQLite database and the bench broker; revoked on the first, Authorize polled every ~5 ms on the "
                "second until it denies (vigil.sharing.events.v1 via the outbox relay)"
            ),
        ),
    ]


async def revocation_lags(
    first: str, second: str, issuer: object, workload: Workload, now: datetime
) -> list[float]:
    """Seconds from RevokeGrant returning on `first` to Authorize denying on `second`, per revocation."""
    import grpc

    from vigil.sharing.v1 import sharing_service_pb2 as pb
    from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
    from vigil_sharing import codec

    analyst = issuer.mint(  # type: ignore[attr-defined]
        sub="user:analyst",
        name="analyst",
        unit="113202000142871537",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_DEPARTMENT_ANALYST"],
    )
    officer = issuer.mint(  # type: ignore[attr-defined]
        sub=OFFICER[0],
        name="officer",
        unit=OFFICER[1],
        unit_kind=OFFICER[2],
        roles=["ROLE_PUBLIC_SECURITY_OFFICER"],
    )
    as_analyst = (("authorization", f"Bearer {analyst}"),)
    as_officer = (("authorization", f"Bearer {officer}"),)
    plain = [d for d in workload.devices if d.funding == FUNDING_GOVERNMENT and not d.secret_related]
    footage = TimeRange(now - 24 * HOUR, now)
    read = codec.time_range(TimeRange(now - 3 * HOUR, now - HOUR))
    lags: list[float] = []
    async with grpc.aio.insecure_channel(first) as one, grpc.aio.insecure_channel(second) as two:
        a, b = pb_grpc.SharingServiceStub(one), pb_grpc.SharingServiceStub(two)
        for k in range(REVOCATIONS):
            device = plain[k * 97 % len(plain)]
            created = await a.CreateAccessRequest(
                pb.CreateAccessRequestRequest(
                    access_request=pb.AccessRequest(
                        purpose=pb.PURPOSE_TRAFFIC_MANAGEMENT,
                        legal_basis="bench",
                        scope=pb.Scope(device_ids=[device.device_id]),
                        actions=[pb.ACTION_PLAYBACK],
                        footage_window=codec.time_range(footage),
                        valid_until=codec.ts(now + 24 * HOUR),
                    )
                ),
                metadata=as_analyst,
            )
            await a.ApproveAccessRequest(
                pb.ApproveAccessRequestRequest(request_id=created.request_id), metadata=as_officer
            )
            ask = pb.AuthorizeRequest(
                action=pb.ACTION_PLAYBACK, device_id=device.device_id, footage_window=read
            )
            await _until(b, ask, as_analyst, allowed=True, timeout_s=10.0)
            await a.RevokeGrant(pb.RevokeGrantRequest(grant_id=created.request_id), metadata=as_officer)
            revoked = time.perf_counter()
            await _until(b, ask, as_analyst, allowed=False, timeout_s=10.0)
            lags.append(time.perf_counter() - revoked)
    return lags


async def _until(stub: object, ask: object, metadata: object, *, allowed: bool, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        reply = await stub.Authorize(ask, metadata=metadata, timeout=5.0)  # type: ignore[attr-defined]
        if reply.allowed == allowed:
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"Authorize did not turn {'allowed' if allowed else 'denied'} within {timeout_s} s")
