"""`python -m vigil_kit.bench.run`: start the embedded infrastructure, run every figure, write the report."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from vigil_kit import embedded
from vigil_kit.bench import BenchContext, Figure, discover, write_report
from vigil_kit.settings import ServiceSettings


def _tansu(log_path: Path) -> AbstractContextManager[Any]:
    return embedded.tansu(log_path=log_path)


def _moto(log_path: Path) -> AbstractContextManager[Any]:
    return embedded.moto_s3(log_path=log_path)


async def run_figures(
    ctx: BenchContext,
    only: str | None,
    *,
    broker: Callable[[Path], AbstractContextManager[Any]] = _tansu,
    s3: Callable[[Path], AbstractContextManager[Any]] = _moto,
) -> list[Figure]:
    """Every figure source in turn, each on infrastructure of its own, so that no figure pays for what an
    earlier one left behind: a broker (no consumer starts behind an earlier figure's events), an S3 server
    (moto keeps objects in memory, and locked ones cannot be deleted) and a work directory, removed after
    the source with its dirty pages written out (os.sync), so that the next figure does not share the disk
    with their write-back."""
    sources = discover(only)
    if not sources:
        raise SystemExit(
            f"no benchmark figures found{f' named {only!r}' if only else ''} (entry points 'vigil.bench')"
        )
    figures: list[Figure] = []
    for name, source in sources.items():
        print(f"running {name} …", file=sys.stderr, flush=True)
        workdir = ctx.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            with (
                broker(ctx.workdir / f"tansu-{name}.log") as kafka,
                s3(ctx.workdir / f"moto-{name}.log") as storage,
            ):
                result = source(
                    replace(ctx, kafka_bootstrap=kafka.address, s3_endpoint=storage.address, workdir=workdir)
                )
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            # One source that cannot measure must not cost the report every other figure: it gets a row
            # that says so (and fails the run's exit code), and the rest still run.
            traceback.print_exc()
            figures.append(failed_figure(name, exc))
        else:
            figures.extend(result)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            os.sync()
    return figures


def failed_figure(name: str, exc: BaseException) -> Figure:
    """The report row of a figure source that raised instead of measuring."""
    detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:400]
    return Figure(f"{name}: not measured", float("nan"), None, None, "a measurement", "NO", notes=detail)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/REPORT.md", help="where to write the report")
    parser.add_argument("--only", default=None, help="run only the figure source with this entry-point name")
    args = parser.parse_args(argv)
    # A stopped run (SIGTERM, as from `kill` or a CI timeout) unwinds like Ctrl-C, so every service,
    # broker and S3 server its figures started is stopped by the code that started it, not orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    # Figures that serve a servicer in this process run it with the GIL switch interval a service process
    # has (vigil_kit.service.service_main).
    sys.setswitchinterval(ServiceSettings.model_fields["gil_switch_interval_ms"].default / 1000)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        ctx = BenchContext(kafka_bootstrap="", s3_endpoint="", workdir=Path(tmp))
        figures = asyncio.run(run_figures(ctx, args.only))
    text = write_report(figures, args.out)
    print(text)
    return 0 if all(f.meets == "yes" for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
