"""The README's tour, run as written against `vigil up --demo`: every line's command succeeds (or is
refused, for a `# ✗` line) and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vigil_testing.poll import poll_until
from vigil_testing.ports import free_base_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VIGIL = str(Path(sys.executable).parent / "vigil")


@dataclass(frozen=True)
class Step:
    command: list[str]
    refused: bool
    expect: str


def tour_steps(readme: str) -> list[Step]:
    """The lines of the README's ```sh tour block: `vigil …   # → text` or `vigil …   # ✗ text`."""
    block = re.search(r"```sh tour\n(.*?)```", readme, re.S)
    assert block, "the README has no ```sh tour block"
    steps = []
    for line in block.group(1).splitlines():
        match = re.match(r"(.*?)\s+#\s+([→✗])\s+(.*)$", line.strip())
        assert match, f"a tour line must end with '# → output' or '# ✗ refusal': {line!r}"
        command, sign, expect = match.groups()
        words = shlex.split(command)
        assert words[0] == "vigil", line
        steps.append(Step(words[1:], sign == "✗", expect.strip()))
    return steps


def test_the_tour_block_parses_into_commands_with_expectations() -> None:
    steps = tour_steps((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(steps) >= 8
    assert any(s.refused for s in steps) and all(s.expect for s in steps)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "VIGIL_HOME": str(home)}
    base = free_base_port()
    with open(tmp_path / "up.out", "wb") as out:
        proc = subprocess.Popen(
            [VIGIL, "up", "--demo", "--base-port", str(base)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        up = subprocess.run(
            [VIGIL, "status", "--wait", "120"], env=env, capture_output=True, text=True, timeout=180
        )
        assert up.returncode == 0, up.stdout + up.stderr + (tmp_path / "up.out").read_text(errors="replace")
        yield tmp_path, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_the_readme_tour_runs_as_written(demo: tuple[Path, dict[str, str]]) -> None:
    cwd, env = demo
    steps = tour_steps((ROOT / "README.md").read_text(encoding="utf-8"))

    def run(step: Step) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VIGIL, *step.command], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
        )

    # The demo's simulated cameras need a moment before the first segments are archived.
    first = next(s for s in steps if "segments" in s.command and not s.refused)

    def archived() -> bool:
        result = run(first)
        return result.returncode == 0 and first.expect in result.stdout

    poll_until(archived, timeout=120, interval=1, what="the demo's first archived segments")
    for step in steps:
        result = run(step)
        where = f"vigil {shlex.join(step.command)}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
        if step.refused:
            assert result.returncode == 1, where
            assert step.expect in result.stderr, where
        else:
            assert result.returncode == 0, where
            assert step.expect in result.stdout, where
