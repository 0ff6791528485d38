"""`python -m vigil_<name>`'s entry point (vigil_kit.service.service_main): what it sets up before the service runs."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

import pytest
import uvloop
from pydantic_settings import SettingsConfigDict

from vigil_kit.service import freeze_startup_heap, run_on, service_main
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


def _run_seeing_loop(seen: list[type]):
    async def run(settings: _Settings) -> None:
        seen.append(type(asyncio.get_running_loop()))

    return run


@pytest.mark.parametrize(("env", "expected"), [(None, uvloop.Loop), ("asyncio", asyncio.SelectorEventLoop)])
def test_the_service_process_runs_on_its_event_loop(monkeypatch, env, expected) -> None:
    if env is not None:
        monkeypatch.setenv("KITTEST_EVENT_LOOP", env)
    seen: list[type] = []
    with pytest.raises(SystemExit) as stopped:
        service_main(_Settings, _run_seeing_loop(seen), prog="kittest", summary="", argv=[])
    assert stopped.value.code == 0
    assert seen == [expected]


def test_an_unknown_event_loop_is_a_bad_setting(monkeypatch, capsys) -> None:
    monkeypatch.setenv("KITTEST_EVENT_LOOP", "trio")
    seen: list[type] = []
    with pytest.raises(SystemExit) as stopped:
        service_main(_Settings, _run_seeing_loop(seen), prog="kittest", summary="", argv=[])
    assert stopped.value.code == 2
    assert "event_loop" in capsys.readouterr().err.lower()
    assert seen == []


def test_run_on_returns_the_result_and_refuses_an_unknown_loop() -> None:
    async def answer() -> int:
        return 42

    assert run_on("uvloop", answer()) == 42
    assert run_on("asyncio", answer()) == 42
    coro = answer()
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        run_on("trio", coro)
    coro.close()


class _Node:
    def __init__(self) -> None:
        self.other: object = self  # a cycle: only a collection frees it


def test_freezing_the_startup_heap_takes_live_objects_out_of_every_collection() -> None:
    built_at_startup = {"descriptors": [object()]}
    gc.disable()  # no automatic collection frees the garbage before the freeze does
    try:
        garbage = weakref.ref(_Node())
        assert garbage() is not None
        freeze_startup_heap()
        assert garbage() is None  # start-up garbage was collected first, not kept forever
        assert not any(o is built_at_startup for o in gc.get_objects())  # no generation walks it now
    finally:
        gc.unfreeze()
        gc.enable()
    assert any(o is built_at_startup for o in gc.get_objects())
