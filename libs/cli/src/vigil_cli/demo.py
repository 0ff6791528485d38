"""What `vigil up` seeds once the stack is SERVING: the platform's own units always, the demo city with --demo.

Later issues extend the two step lists: a step is an async function of DemoEnv that seeds through
the services' RPCs (with a dev principal's token from the context); a simulator is an async
function that runs until `vigil up` stops (it is cancelled then).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from vigil_cli.context import Context
from vigil_cli.identity import DevDirectory

logger = logging.getLogger(__name__)


@dataclass
class DemoEnv:
    context: Context
    directory: DevDirectory
    data_dir: Path
    # One line of progress for the person watching `vigil up`.
    log: Callable[[str], None] = field(default=lambda line: logger.info("%s", line))


Step = Callable[[DemoEnv], Awaitable[None]]
Simulator = Callable[[DemoEnv], Awaitable[None]]


async def report_principals(env: DemoEnv) -> None:
    """The six dev principals exist in every run; their units come from data/principals.json."""
    names = ", ".join(f"{p.name} ({p.unit.name})" for p in env.directory.principals)
    env.log(f"dev principals ready: {names}")


# Run on every `vigil up`, after all services are SERVING (the registry's unit seeding joins here).
PLATFORM_STEPS: list[Step] = [report_principals]
# Run with --demo only, after PLATFORM_STEPS: the demo city's sites, devices and so on.
DEMO_STEPS: list[Step] = []
# Started with --demo after DEMO_STEPS; cancelled when `vigil up` stops.
DEMO_SIMULATORS: list[Simulator] = []


async def seed(env: DemoEnv, *, demo: bool) -> list[asyncio.Task[None]]:
    """Run the seeding steps in order; return the started simulator tasks (the caller cancels them)."""
    for step in PLATFORM_STEPS:
        await step(env)
    if not demo:
        return []
    for step in DEMO_STEPS:
        await step(env)
    if not DEMO_STEPS:
        env.log("demo: nothing to seed yet besides the dev principals")
    tasks = []
    for sim in DEMO_SIMULATORS:
        task = asyncio.create_task(sim(env), name=getattr(sim, "__name__", "simulator"))
        task.add_done_callback(lambda t: _report_end(env, t))
        tasks.append(task)
    return tasks


def _report_end(env: DemoEnv, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        env.log(f"demo: simulator {task.get_name()} stopped: {task.exception()!r}")
