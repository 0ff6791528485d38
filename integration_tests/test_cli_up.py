"""`vigil up` on the real stack: all SERVING, whoami, restart after SIGKILL, clean stop, broker loss."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vigil_testing.poll import poll_until
from vigil_testing.ports import free_base_port

SERVICES = ("registry", "ingest", "archive", "sharing", "audit")
VIGIL = str(Path(sys.executable).parent / "vigil")
# `vigil up` itself gives up after 60 s; the margin covers a machine shared with other test runs.
UP_TIMEOUT_S = 120


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@dataclass
class Stack:
    """A `vigil up` in its own session (so teardown can kill the whole group) with a private home."""

    home: Path
    proc: subprocess.Popen
    out_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "VIGIL_HOME": str(self.home)}

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VIGIL, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def context(self) -> dict:
        return json.loads((self.home / "context.json").read_text())

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_until_up(self) -> None:
        result = self.cli("status", "--wait", str(UP_TIMEOUT_S), "--json", timeout=UP_TIMEOUT_S + 30)
        assert result.returncode == 0, (
            f"stack did not come up: {result.stdout}{result.stderr}\n{self.output()}"
        )

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


def start_stack(tmp_path: Path) -> Stack:
    home = tmp_path / "vigil-home"
    home.mkdir()
    out_path = tmp_path / "vigil-up.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [VIGIL, "up", "--base-port", str(free_base_port())],
            env={**os.environ, "VIGIL_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Stack(home=home, proc=proc, out_path=out_path)


@pytest.fixture
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Stack]]:
    stacks: list[Stack] = []

    def make() -> Stack:
        stack = start_stack(tmp_path_factory.mktemp("stack"))
        stacks.append(stack)
        stack.wait_until_up()
        return stack

    yield make
    for stack in stacks:
        stack.kill_group()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("shared-stack"))
    try:
        running.wait_until_up()
        yield running
    finally:
        running.kill_group()


def test_vigil_status_json_reports_all_five_services_serving(stack: Stack) -> None:
    result = stack.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == dict.fromkeys(SERVICES, "SERVING")


def test_every_process_of_the_stack_stays_in_vigil_ups_process_group(stack: Stack) -> None:
    ctx = stack.context()
    pids = [ep["pid"] for ep in ctx["endpoints"].values()] + [ctx["broker"]["pid"], ctx["s3"]["pid"]]
    assert ctx["pid"] == stack.proc.pid
    assert {os.getpgid(pid) for pid in pids} == {stack.proc.pid}


def test_context_file_is_private_and_names_endpoints_and_principals(stack: Stack) -> None:
    path = stack.home / "context.json"
    assert path.stat().st_mode & 0o777 == 0o600
    ctx = stack.context()
    assert set(ctx["endpoints"]) == set(SERVICES)
    assert set(ctx["principals"]) == {"admin", "officer", "analyst", "metro", "partner", "auditor"}
    assert "BEGIN PUBLIC KEY" in ctx["issuer_public_key_pem"]


def test_whoami_as_officer_prints_the_officers_verified_claims(stack: Stack) -> None:
    result = stack.cli("--as", "officer", "whoami", "--json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["principal"]["roles"] == ["ROLE_PUBLIC_SECURITY_OFFICER"]
    assert reply["principal"]["unit_kind"] == "UNIT_KIND_PUBLIC_SECURITY_ORGAN"
    assert reply["principal"]["unit"] == stack.context()["principals"]["officer"]["claims"]["unit"]
    assert reply["service"] == "registry"


def test_no_service_token_appears_in_the_output_or_logs(stack: Stack) -> None:
    # Service tokens are minted per start and never written down; the dev tokens live only in the
    # context file. Neither may show up in what vigil up prints or what the services log.
    ctx = stack.context()
    tokens = [p["token"] for p in ctx["principals"].values()]
    texts = [stack.output()] + [
        p.read_text(errors="replace") for p in (Path(ctx["data_dir"]) / "logs").iterdir()
    ]
    for token in tokens:
        signature = token.rsplit(".", 1)[-1]
        assert not any(signature in text for text in texts)
    assert not any("eyJ" in text for text in texts)  # no JWT at all (each starts with base64 '{"')


def test_a_sigkilled_service_is_serving_again_within_30_s(stack: Stack) -> None:
    killed = stack.context()["endpoints"]["registry"]["pid"]
    os.kill(killed, signal.SIGKILL)
    killed_at = time.monotonic()

    def serving_again() -> bool:
        restarted = stack.context()["endpoints"]["registry"]["pid"] != killed
        return restarted and stack.cli("status", "--json").returncode == 0

    poll_until(serving_again, timeout=30, interval=0.5, what="registry SERVING again after SIGKILL")
    assert time.monotonic() - killed_at <= 30
    assert "registry" in stack.output() and "SIGKILL" in stack.output()


def test_sigterm_to_vigil_up_stops_every_process_within_30_s(stack_factory: Callable[[], Stack]) -> None:
    stack = stack_factory()
    pgid = stack.proc.pid
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(30) == 0, stack.output()
    poll_until(lambda: group_gone(pgid), timeout=5, what="no process left in vigil up's process group")
    assert not (stack.home / "context.json").exists()


def test_vigil_up_stops_with_a_clear_message_when_the_broker_dies(stack_factory: Callable[[], Stack]) -> None:
    stack = stack_factory()
    os.kill(stack.context()["broker"]["pid"], signal.SIGKILL)
    code = stack.proc.wait(30)
    assert code != 0
    assert "Kafka broker" in stack.output() and "stopping" in stack.output()
    poll_until(
        lambda: group_gone(stack.proc.pid), timeout=5, what="no process left in vigil up's process group"
    )
