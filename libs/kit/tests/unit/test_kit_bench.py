"""The benchmark report: machine facts first, then one table with the fixed columns."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from vigil_kit.bench import Figure, discover, render, write_report


def test_a_figure_meets_its_target_only_at_or_above_the_ratio() -> None:
    assert Figure.measured("f", value=50, baseline=100, min_ratio=0.5, unit="events/s").meets == "yes"
    assert Figure.measured("f", value=49, baseline=100, min_ratio=0.5, unit="events/s").meets == "NO"


def test_report_has_machine_facts_then_one_table(tmp_path) -> None:
    figures = [
        Figure.measured("relay", value=60_000, baseline=100_000, min_ratio=0.5, unit="events/s"),
        Figure("latency", value=0.012, baseline=None, ratio=None, target="≤ 0.05 s", meets="yes", unit="s"),
    ]
    text = write_report(figures, tmp_path / "bench" / "REPORT.md")
    assert (tmp_path / "bench" / "REPORT.md").read_text() == text
    lines = text.splitlines()
    header = lines.index("| figure | value | baseline | ratio | target | meets |")
    facts = "\n".join(lines[:header])
    for fact in ("CPU:", "cores", "Memory:", "Python:", "OS:", "Date:", "aiokafka"):
        assert fact in facts
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1:] == [
        "| relay | 60,000 events/s | 100,000 events/s | 0.60× | ≥ 0.5× | yes |",
        "| latency | 0.012 s | — | — | ≤ 0.05 s | yes |",
    ]
    assert sum(line.startswith("|---") for line in lines) == 1


def test_render_is_stable_for_a_given_time() -> None:
    when = datetime(2025, 1, 1, tzinfo=UTC)
    assert "2025-01-01 00:00 UTC" in render([], now=when)


def test_the_kit_registers_its_outbox_figure() -> None:
    assert "outbox" in discover()


def test_bounded_figure_meets_an_upper_bound_and_refuses_above_it():
    ok = Figure.bounded("list p99", value=12.0, unit="ms", at_most=20.0, baseline=3.0)
    late = Figure.bounded("list p99", value=25.0, unit="ms", at_most=20.0)
    assert (ok.meets, ok.target, ok.ratio) == ("yes", "≤ 20 ms", 4.0)
    assert late.meets == "NO"


def test_bounded_figure_meets_a_lower_bound_and_refuses_below_it():
    assert Figure.bounded("keepalives", value=6000, unit="/s", at_least=5000).meets == "yes"
    assert Figure.bounded("keepalives", value=4000, unit="/s", at_least=5000).meets == "NO"


async def test_a_source_that_raises_gets_a_failed_row_and_the_others_still_run(monkeypatch, tmp_path) -> None:
    from vigil_kit.bench import BenchContext, Figure
    from vigil_kit.bench import run as bench_run

    def broken(ctx: BenchContext) -> list[Figure]:
        raise RuntimeError("the service did not start")

    async def fine(ctx: BenchContext) -> list[Figure]:
        (ctx.workdir / "data").write_bytes(b"left behind")
        told = f"{ctx.kafka_bootstrap} {ctx.s3_endpoint} {ctx.workdir.name}"
        return [Figure.bounded("fine", value=1.0, at_most=2.0, unit="s", notes=told)]

    monkeypatch.setattr(bench_run, "discover", lambda only: {"broken": broken, "fine": fine})
    started: list[str] = []

    def server(port: int):
        @contextmanager
        def start(log_path: Path):
            started.append(log_path.name)
            yield SimpleNamespace(address=f"127.0.0.1:{port + len(started)}")

        return start

    ctx = BenchContext(kafka_bootstrap="", s3_endpoint="", workdir=tmp_path)
    figures = await bench_run.run_figures(ctx, None, broker=server(9000), s3=server(7000))
    assert [f.figure for f in figures] == ["broken: not measured", "fine"]
    # A broker, an S3 server and a work directory of its own for each source, and the source is told them.
    assert started == ["tansu-broken.log", "moto-broken.log", "tansu-fine.log", "moto-fine.log"]
    assert figures[1].notes == "127.0.0.1:9003 127.0.0.1:7004 fine"
    assert figures[0].meets == "NO" and "the service did not start" in figures[0].notes
    # Each work directory is removed once its source is done, whether it measured or raised.
    assert not (tmp_path / "fine").exists() and not (tmp_path / "broken").exists()
