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
