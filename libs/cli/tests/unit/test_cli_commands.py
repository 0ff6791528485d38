"""The `vigil` command's global option and its behaviour when no stack is running."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vigil_cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    monkeypatch.delenv("VIGIL_AS", raising=False)
    return tmp_path


def test_unknown_dev_principal_is_a_usage_error() -> None:
    result = runner.invoke(app, ["--as", "mallory", "whoami"])
    assert result.exit_code == 2
    assert "mallory" in result.stderr


def test_status_json_without_a_stack_names_every_service_not_serving_and_exits_1() -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == dict.fromkeys(
        ["registry", "ingest", "archive", "sharing", "audit"], "NOT_SERVING"
    )
    assert "vigil up" in result.stderr


def test_whoami_without_a_stack_exits_1_saying_so() -> None:
    result = runner.invoke(app, ["--as", "officer", "whoami"])
    assert result.exit_code == 1
    assert "no running stack" in result.stderr


def test_up_help_documents_the_port_layout() -> None:
    result = runner.invoke(app, ["up", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "N+20" in result.stdout and "N+21" in result.stdout
