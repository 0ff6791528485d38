"""The decide() benchmark's workload is what its figure claims: active grants and about half the requests denied."""

from __future__ import annotations

import asyncio
from pathlib import Path

from vigil_kit.bench import BenchContext
from vigil_sharing import bench

BUILD = bench.build_workload


def small() -> bench.Workload:
    return BUILD(grants=300, principals=60, devices=600, requests=2_000)


def test_the_workload_files_every_grant_in_the_index() -> None:
    assert len(small().index) == 300


def test_about_half_of_the_workloads_requests_are_denied() -> None:
    rate, allowed = bench.measure(small(), rounds=1)
    assert 0.45 <= allowed <= 0.6
    assert rate > 0


def test_the_workload_is_the_same_for_the_same_seed() -> None:
    assert small().requests[:50] == small().requests[:50]


def test_the_figure_reports_decisions_per_second_against_the_absolute_target(monkeypatch) -> None:
    monkeypatch.setattr(bench, "build_workload", small)
    ctx = BenchContext(kafka_bootstrap="", s3_endpoint="", workdir=Path("."))
    (figure,) = asyncio.run(bench.figures(ctx))
    assert (figure.unit, figure.target) == ("decisions/s", "≥ 50,000 decisions/s")


def result(*, sent: int = 1_000, errors: int = 0, seconds: float = 1.0) -> bench.LoadResult:
    return bench.LoadResult([1.0] * (sent - errors), sent, errors, 0, seconds, {"DEADLINE_EXCEEDED": errors})


def test_a_load_run_with_more_than_one_percent_errors_is_invalid() -> None:
    assert result(errors=10).valid(1_000)
    assert not result(errors=11).valid(1_000)


def test_a_load_run_that_fell_short_of_the_offered_rate_is_invalid() -> None:
    assert not result(seconds=2.0).valid(1_000)


def test_the_server_side_summary_reads_the_handling_histogram_between_two_scrapes() -> None:
    labels = (("grpc_method", "WhoAmI"), ("grpc_service", "vigil.identity.v1.IdentityService"))
    name = "vigil_grpc_server_handling_seconds"

    def scrape(n: float) -> dict:
        return {
            (f"{name}_count", labels): n,
            (f"{name}_sum", labels): n * 0.002,
            (f"{name}_bucket", (*labels, ("le", "0.001"))): 0.0,
            (f"{name}_bucket", (*labels, ("le", "0.0025"))): n,
            (f"{name}_bucket", (*labels, ("le", "+Inf"))): n,
        }

    seen = bench.server_side(scrape(5), scrape(105), "/vigil.identity.v1.IdentityService/WhoAmI")
    assert seen == "server side WhoAmI: 100 calls, mean 2.00 ms, p50 ≤ 2.5 ms, p99 ≤ 2.5 ms"


def test_the_generator_balances_over_every_replica_with_one_target() -> None:
    assert bench.balanced_target(["127.0.0.1:5001"]) == "127.0.0.1:5001"
    assert bench.balanced_target(["127.0.0.1:5001", "127.0.0.1:5002"]) == "ipv4:127.0.0.1:5001,127.0.0.1:5002"


def test_replicas_metrics_add_up() -> None:
    key = ("vigil_grpc_server_handling_seconds_count", (("grpc_method", "Authorize"),))
    other = ("vigil_sharing_decision_audit_batch_size_count", ())
    merged = bench._merged([{key: 3.0, other: 1.0}, {key: 4.0}])
    assert merged == {key: 7.0, other: 1.0}
