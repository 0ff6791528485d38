"""The seeding hook `vigil up` runs once all services are SERVING: platform steps always, demo with --demo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vigil_cli import demo
from vigil_cli.context import Context
from vigil_cli.identity import load_directory


@pytest.fixture
def env_and_log() -> tuple[demo.DemoEnv, list[str]]:
    lines: list[str] = []
    ctx = Context.__new__(Context)  # the steps here never read the context
    return demo.DemoEnv(context=ctx, directory=load_directory(), data_dir=Path("."), log=lines.append), lines


@dataclass
class Recorder:
    ran: list[str] = field(default_factory=list)
    simulator_started: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()

    async def demo_step(env: demo.DemoEnv) -> None:
        rec.ran.append("demo-step")

    async def simulator(env: demo.DemoEnv) -> None:
        rec.ran.append("simulator")
        rec.simulator_started.set()
        await asyncio.Event().wait()

    # The registry's seeding steps need a running stack (integration_tests/test_cli_registry.py).
    monkeypatch.setattr(demo, "PLATFORM_STEPS", [demo.report_principals])
    monkeypatch.setattr(demo, "DEMO_STEPS", [demo_step])
    monkeypatch.setattr(demo, "DEMO_SIMULATORS", [simulator])
    return rec


async def test_without_demo_only_the_platform_steps_run(env_and_log, recorder) -> None:
    env, lines = env_and_log
    assert await demo.seed(env, demo=False) == []
    assert recorder.ran == []
    assert any("officer" in line for line in lines)


async def test_with_demo_the_demo_steps_run_and_simulators_start_until_cancelled(
    env_and_log, recorder
) -> None:
    env, _ = env_and_log
    tasks = await demo.seed(env, demo=True)
    await asyncio.wait_for(recorder.simulator_started.wait(), 5)
    assert recorder.ran == ["demo-step", "simulator"]
    assert not tasks[0].done()
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
