"""The `vigil` command in-process, pointed at a test's service processes through a context file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from vigil_kit.auth import TokenIssuer
from vigil_testing.services import ServiceProcess


@dataclass
class Cli:
    """`cli("segments", "list", ID, as_="admin")` runs `vigil --as admin segments list ID`."""

    home: Path
    runner: CliRunner

    def __call__(self, *args: str, as_: str = "admin") -> Result:
        from vigil_cli.main import app

        return self.runner.invoke(
            app, ["--as", as_, *args], env={"VIGIL_HOME": str(self.home), "VIGIL_AS": None}
        )

    def write(self, name: str, value: object) -> str:
        path = self.home / name
        path.write_text(json.dumps(value), encoding="utf-8")
        return str(path)


def cli_for(
    services: Mapping[str, ServiceProcess],
    issuer: TokenIssuer,
    home: Path,
    *,
    s3: tuple[str, str, str] = ("127.0.0.1:1", "unused", "unused"),
) -> Cli:
    """A context file naming `services` (name → process) with the dev principals' tokens, and its Cli.

    `s3` is (address, access key, secret key) for commands that read storage themselves.
    """
    from vigil_cli.context import (
        BrokerEndpoint,
        Context,
        PrincipalEntry,
        S3Endpoint,
        ServiceEndpoint,
        write_context,
    )
    from vigil_cli.identity import load_directory, mint_principal_tokens

    tokens = mint_principal_tokens(issuer, load_directory())
    first = next(iter(services.values()))
    context = Context(
        pid=os.getpid(),  # the context is live while this test process runs
        started_at="2025-03-01T08:00:00+00:00",
        data_dir=str(home),
        base_port=0,
        issuer="vigil",
        issuer_public_key_pem=issuer.public_key_pem.decode(),
        services=list(services),
        endpoints={name: ServiceEndpoint(p.address, p.metrics_url) for name, p in services.items()},
        broker=BrokerEndpoint(first.kafka_bootstrap),
        s3=S3Endpoint(*s3),
        principals={
            name: PrincipalEntry(t.token, t.claims, t.expires_at.isoformat()) for name, t in tokens.items()
        },
    )
    home.mkdir(parents=True, exist_ok=True)
    write_context(context, home / "context.json")
    return Cli(home=home, runner=CliRunner())
