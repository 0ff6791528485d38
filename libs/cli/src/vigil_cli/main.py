"""The `vigil` command: the typer app, its global options, and the foundation subcommands."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from vigil.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from vigil_cli.access_cmds import add_access_commands
from vigil_cli.archive_cmds import add_archive_commands
from vigil_cli.audit_cmds import audit_app
from vigil_cli.compliance_cmds import compliance_app
from vigil_cli.context import ContextError, load_context, vigil_home
from vigil_cli.export_cmds import export_app
from vigil_cli.gateway import gateway
from vigil_cli.identity import DEFAULT_PRINCIPAL, SERVICES, load_directory
from vigil_cli.ingest_cmds import ingest_app
from vigil_cli.output import (
    EXIT_ERROR,
    EXIT_OK,
    JsonFlag,
    err_console,
    print_json,
    print_message,
    print_table,
    run,
)
from vigil_cli.registry_cmds import add_registry_commands
from vigil_cli.session import Session, session
from vigil_cli.simulate import simulate
from vigil_cli.up import DEFAULT_BASE_PORT, PORT_LAYOUT_HELP, grpc_channel, health_status, run_up
from vigil_kit.embedded import port_open

app = typer.Typer(
    name="vigil",
    help="Vigil: run and use the city's public-safety video platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
add_registry_commands(app)
add_access_commands(app)
add_archive_commands(app)
app.add_typer(audit_app)
app.add_typer(compliance_app)
app.add_typer(ingest_app)
app.add_typer(export_app)


def _principal_names() -> list[str]:
    return load_directory().names()


def _check_principal(name: str) -> str:
    names = _principal_names()
    if name not in names:
        raise typer.BadParameter(f"unknown dev principal {name!r}; choose one of {', '.join(names)}")
    return name


@app.callback()
def main(
    ctx: typer.Context,
    as_: Annotated[
        str,
        typer.Option(
            "--as",
            envvar="VIGIL_AS",
            callback=_check_principal,
            help="Dev principal to act as: admin, officer, analyst, metro, partner or auditor.",
        ),
    ] = DEFAULT_PRINCIPAL,
) -> None:
    ctx.obj = Session(principal=as_, home=vigil_home())


@app.command(
    help=f"Start the broker, S3 and the five services, and supervise them until Ctrl-C. {PORT_LAYOUT_HELP}"
)
def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed the demo city once everything is SERVING.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            file_okay=False,
            help="Databases and logs (default $VIGIL_HOME/data; VIGIL_HOME defaults to ~/.vigil). "
            "Databases are reset at every start, since the broker and S3 keep memory only.",
        ),
    ] = None,
    base_port: Annotated[
        int, typer.Option("--base-port", min=1024, max=65535 - 21, help="First port of the block Vigil uses.")
    ] = DEFAULT_BASE_PORT,
    log_level: Annotated[str, typer.Option("--log-level", help="The services' log level.")] = "INFO",
) -> None:
    home = vigil_home()
    code = run_up(
        home=home,
        data_dir=(data_dir or home / "data").expanduser(),
        base_port=base_port,
        demo_mode=demo,
        log_level=log_level.upper(),
    )
    raise typer.Exit(code)


async def _statuses(endpoints: dict[str, str]) -> dict[str, str]:
    async def one(address: str) -> str:
        async with grpc_channel(address) as channel:
            return await health_status(channel, timeout_s=2.0)

    results = await asyncio.gather(*(one(address) for address in endpoints.values()))
    return dict(zip(endpoints, results, strict=True))


@app.command(help="Show every service's health; exit 0 only when all are SERVING.")
def status(
    ctx: typer.Context,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            metavar="SECONDS",
            help="Wait up to SECONDS for the stack: its context file to appear and every service to be SERVING.",
        ),
    ] = 0.0,
    json_output: JsonFlag = False,
) -> None:
    s = session(ctx)
    deadline = time.monotonic() + wait
    statuses: dict[str, str] = dict.fromkeys(SERVICES, "NOT_SERVING")
    context = None
    problem = ""
    while True:
        try:
            context = load_context(s.context_file)
        except ContextError as exc:
            problem = str(exc)
            context = None
        if context is not None:
            statuses = asyncio.run(_statuses({name: ep.grpc for name, ep in context.endpoints.items()}))
            problem = ""
        if all(v == "SERVING" for v in statuses.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)

    if json_output:
        print_json(statuses)
    else:
        rows = []
        for name, state in statuses.items():
            ep = context.endpoints.get(name) if context else None
            rows.append((name, ep.grpc if ep else "", ep.metrics if ep else "", state))
        if context is not None:
            for what, address in (("kafka broker", context.broker.bootstrap), ("s3", context.s3.endpoint)):
                host, _, port = address.rpartition(":")
                rows.append((what, address, "", "LISTENING" if port_open(host, int(port)) else "UNREACHABLE"))
        print_table(None, ("service", "gRPC address", "metrics", "health"), rows)
    if problem:
        err_console.print(problem, markup=False, soft_wrap=True)
    ok = all(v == "SERVING" for v in statuses.values())
    raise typer.Exit(EXIT_OK if ok else EXIT_ERROR)


@app.command(help="Ask the registry who the chosen principal (--as) is, and print the verified claims.")
def whoami(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    s = session(ctx)
    context = s.context()

    async def call() -> identity_service_pb2.WhoAmIResponse:
        async with s.channel("registry", context=context) as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            return await stub.WhoAmI(identity_service_pb2.WhoAmIRequest())

    reply = run(call())
    if json_output:
        print_message(reply)
        return
    from vigil.common.v1 import identity_pb2

    p = reply.principal
    units = {u.unit_id: u.name for u in load_directory().units}
    unit = f"{p.unit} ({units[p.unit]})" if p.unit in units else p.unit
    rows = [
        ("principal", p.id),
        ("name", p.name),
        ("unit", unit),
        ("unit kind", identity_pb2.UnitKind.Name(p.unit_kind)),
        ("roles", ", ".join(identity_pb2.Role.Name(r) for r in p.roles)),
        ("issuer", reply.issuer),
        (
            "expires",
            reply.expire_time.ToDatetime().isoformat() + "Z" if reply.HasField("expire_time") else "",
        ),
        ("answered by", reply.service),
    ]
    print_table(f"whoami (--as {s.principal})", ("claim", "value"), rows)


# Registered last so that `vigil --help` lists them after the foundation's commands.
app.command(help="Simulate cameras uploading real, signed H.264 segments in real time, with live counters.")(
    simulate
)
app.command(
    help="Pull RTSP cameras, cut their streams at keyframes into MPEG-TS segments, sign and upload them."
)(gateway)
