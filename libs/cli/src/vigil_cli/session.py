"""Per-invocation CLI state: which dev principal speaks (`--as`), and channels to the running stack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import typer

from vigil_cli.context import Context, ContextError, context_path, load_context
from vigil_cli.output import fail

S = TypeVar("S")
T = TypeVar("T")


@dataclass
class Session:
    principal: str
    home: Path

    @property
    def context_file(self) -> Path:
        return context_path(self.home)

    def context(self) -> Context:
        """The running stack's context, or exit 1 with one line saying there is none."""
        try:
            return load_context(self.context_file)
        except ContextError as exc:
            fail(str(exc))

    def channel(self, service: str, *, context: Context | None = None) -> grpc.aio.Channel:
        """An authenticated channel to `service` as the chosen principal (use with `async with`)."""
        from vigil_kit.grpc_client import make_channel

        ctx = context or self.context()
        try:
            token = ctx.token_for(self.principal)
            address = ctx.endpoints[service].grpc
        except ContextError as exc:
            fail(str(exc))
        except KeyError:
            fail(f"the running stack has no service {service!r}")
        return make_channel(address, token=token)


def session(ctx: typer.Context) -> Session:
    found = ctx.find_object(Session)
    if found is None:  # a subcommand invoked without the app's callback (tests calling it directly)
        from vigil_cli.context import vigil_home
        from vigil_cli.identity import DEFAULT_PRINCIPAL

        found = Session(principal=DEFAULT_PRINCIPAL, home=vigil_home())
    return found


def call_service(
    ctx: typer.Context,
    service: str,
    stub_type: Callable[[grpc.aio.Channel], S],
    body: Callable[[S], Awaitable[T]],
) -> T:
    """Run `body` with a stub of `service` as the chosen principal; RPC errors exit 1 (output.run)."""
    from vigil_cli.output import run

    s = session(ctx)
    context = s.context()

    async def go() -> T:
        async with s.channel(service, context=context) as channel:
            return await body(stub_type(channel))

    return run(go())
