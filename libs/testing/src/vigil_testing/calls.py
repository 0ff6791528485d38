"""Helpers for tests that call Vigil services over gRPC: expected refusals and in-process start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from vigil_kit.embedded import port_open
from vigil_kit.errors import VigilError, from_rpc_error


@contextlib.asynccontextmanager
async def refused() -> AsyncIterator[list[VigilError]]:
    """`async with refused() as err:` — the call inside must fail; err[0] is the error it carried."""
    caught: list[VigilError] = []
    try:
        yield caught
    except grpc.aio.AioRpcError as e:
        caught.append(from_rpc_error(e))
    else:
        raise AssertionError("the call was expected to be refused")


async def service_started(task: asyncio.Task, port: int) -> bool:
    """For apoll_until: True once an in-process service listens; its start-up failure is raised at once."""
    if task.done():
        task.result()
    return port_open("127.0.0.1", port)
