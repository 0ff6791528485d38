"""The context file `vigil up` writes to $VIGIL_HOME/context.json and every other subcommand reads."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONTEXT_VERSION = 1


def vigil_home() -> Path:
    """$VIGIL_HOME, default ~/.vigil."""
    return Path(os.environ.get("VIGIL_HOME") or "~/.vigil").expanduser()


def context_path(home: Path | None = None) -> Path:
    return (home or vigil_home()) / "context.json"


class ContextError(Exception):
    """No usable context: `vigil up` is not running (or has not finished starting)."""


@dataclass
class ServiceEndpoint:
    grpc: str
    metrics: str
    pid: int | None = None


@dataclass
class BrokerEndpoint:
    bootstrap: str
    pid: int | None = None


@dataclass
class S3Endpoint:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    secure: bool = False
    pid: int | None = None


@dataclass
class PrincipalEntry:
    token: str
    claims: dict[str, Any]
    expires_at: str  # RFC 3339


@dataclass
class Context:
    """What a running `vigil up` tells the other subcommands (file mode 0600: it holds tokens)."""

    pid: int
    started_at: str
    data_dir: str
    base_port: int
    issuer: str
    issuer_public_key_pem: str
    services: list[str]
    endpoints: dict[str, ServiceEndpoint]
    broker: BrokerEndpoint
    s3: S3Endpoint
    principals: dict[str, PrincipalEntry]
    demo: bool = False
    version: int = CONTEXT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Context:
        if data.get("version") != CONTEXT_VERSION:
            raise ContextError(f"context file version {data.get('version')!r} is not {CONTEXT_VERSION}")
        return cls(
            pid=data["pid"],
            started_at=data["started_at"],
            data_dir=data["data_dir"],
            base_port=data["base_port"],
            issuer=data["issuer"],
            issuer_public_key_pem=data["issuer_public_key_pem"],
            services=list(data["services"]),
            endpoints={k: ServiceEndpoint(**v) for k, v in data["endpoints"].items()},
            broker=BrokerEndpoint(**data["broker"]),
            s3=S3Endpoint(**data["s3"]),
            principals={k: PrincipalEntry(**v) for k, v in data["principals"].items()},
            demo=data.get("demo", False),
            extra=data.get("extra", {}),
        )

    def token_for(self, name: str) -> str:
        try:
            return self.principals[name].token
        except KeyError:
            raise ContextError(f"the running stack has no dev principal {name!r}") from None


def write_context(ctx: Context, path: Path | None = None) -> Path:
    """Write atomically with mode 0600 (a reader never sees a half-written or world-readable file)."""
    path = path or context_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(ctx.to_dict(), f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)  # O_CREAT's mode is filtered by the umask; be explicit
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def remove_context(path: Path | None = None, *, pid: int | None = None) -> None:
    """Remove the context file, but only if it belongs to `pid` (when given): another `vigil up`
    may have replaced it."""
    path = path or context_path()
    if pid is not None:
        try:
            owner = json.loads(path.read_text(encoding="utf-8")).get("pid")
        except (OSError, ValueError):
            return
        if owner != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def load_context(path: Path | None = None, *, require_live: bool = True) -> Context:
    path = path or context_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextError(f"no running stack: {path} does not exist (start one with `vigil up`)") from None
    except (OSError, ValueError) as exc:
        raise ContextError(f"cannot read {path}: {exc}") from None
    try:
        ctx = Context.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ContextError(f"{path} is not a vigil context file ({exc})") from None
    if require_live and not pid_alive(ctx.pid):
        raise ContextError(f"{path} is stale: `vigil up` (pid {ctx.pid}) is no longer running")
    return ctx


def wait_for_context(path: Path | None = None, *, timeout_s: float = 0.0, interval_s: float = 0.2) -> Context:
    """load_context, retrying until it succeeds or `timeout_s` passes (then raising its error)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return load_context(path)
        except ContextError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval_s)
