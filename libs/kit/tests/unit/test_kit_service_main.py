"""`python -m vigil_<name>`'s entry point (vigil_kit.service.service_main): what it sets up before the service runs."""

from __future__ import annotations

import sys

import pytest
from pydantic_settings import SettingsConfigDict

from vigil_kit.service import service_main
from vigil_kit.settings import ServiceSettings


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KITTEST_", extra="ignore", frozen=True)

    service_name: str = "kittest"


def _run_seeing_switch_interval(seen: list[float]):
    async def run(settings: _Settings) -> None:
        seen.append(sys.getswitchinterval())

    return run


@pytest.mark.parametrize(("env", "expected_s"), [(None, 0.001), ("0.5", 0.0005)])
def test_the_service_process_runs_with_its_gil_switch_interval(monkeypatch, env, expected_s) -> None:
    if env is not None:
        monkeypatch.setenv("KITTEST_GIL_SWITCH_INTERVAL_MS", env)
    seen: list[float] = []
    before = sys.getswitchinterval()
    try:
        with pytest.raises(SystemExit) as stopped:
            service_main(_Settings, _run_seeing_switch_interval(seen), prog="kittest", summary="", argv=[])
    finally:
        sys.setswitchinterval(before)
    assert stopped.value.code == 0
    assert seen == [pytest.approx(expected_s)]


def test_a_switch_interval_out_of_range_is_a_bad_setting(monkeypatch, capsys) -> None:
    monkeypatch.setenv("KITTEST_GIL_SWITCH_INTERVAL_MS", "0")
    with pytest.raises(SystemExit) as stopped:
        service_main(_Settings, _run_seeing_switch_interval([]), prog="kittest", summary="", argv=[])
    assert stopped.value.code == 2
    assert "gil_switch_interval_ms" in capsys.readouterr().err.lower()
