"""The ingest service's settings come from INGEST_* variables and a bad one stops it with one line."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from vigil_ingest import __main__ as entry
from vigil_ingest.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("INGEST_"):
            monkeypatch.delenv(key)


def test_settings_default_to_the_ingest_ports_and_database() -> None:
    settings = Settings()
    assert (settings.service_name, settings.grpc_port, settings.metrics_port) == ("ingest", 50052, 9462)
    assert settings.database_url == "sqlite+aiosqlite:///vigil-ingest.db"


def test_settings_read_only_variables_with_the_ingest_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_GRPC_PORT", "6001")
    monkeypatch.setenv("INGEST_KAFKA_BOOTSTRAP", "broker.example:9092")
    monkeypatch.setenv("AUDIT_GRPC_PORT", "6002")
    monkeypatch.setenv("GRPC_PORT", "6003")
    settings = Settings()
    assert (settings.grpc_port, settings.kafka_bootstrap) == (6001, "broker.example:9092")


def test_settings_refuse_a_port_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_GRPC_PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()


def test_a_bad_setting_exits_2_naming_the_variable_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGEST_METRICS_PORT", "not-a-port")
    monkeypatch.setattr("sys.argv", ["vigil-ingest"])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "INGEST_METRICS_PORT" in err


def test_help_lists_every_setting_by_its_variable_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["vigil-ingest", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"INGEST_{field.upper()}" in out for field in Settings.model_fields)
