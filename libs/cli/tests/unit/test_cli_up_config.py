"""`vigil up`'s port layout, the settings it hands each service, its restart backoff and its lock."""

from __future__ import annotations

import importlib

import pytest

from vigil_cli.identity import SERVICES
from vigil_cli.up import (
    PORT_LAYOUT_HELP,
    PortLayout,
    StartupError,
    Supervisor,
    restart_delay,
    service_settings,
)


def test_port_layout_follows_the_documented_offsets() -> None:
    layout = PortLayout(50050)
    assert [layout.grpc(s) for s in SERVICES] == [50051, 50052, 50053, 50054, 50055]
    assert [layout.metrics(s) for s in SERVICES] == [50061, 50062, 50063, 50064, 50065]
    assert (layout.broker, layout.s3) == (50070, 50071)
    assert "N+1..N+5" in PORT_LAYOUT_HELP and "N+11..N+15" in PORT_LAYOUT_HELP


def test_port_layout_gives_every_endpoint_its_own_port() -> None:
    assert len(PortLayout(40000).labelled()) == 2 * len(SERVICES) + 2


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_reads_the_settings_vigil_up_hands_it(service, tmp_path, monkeypatch) -> None:
    layout = PortLayout(41000)
    env = service_settings(
        service,
        layout,
        data_dir=tmp_path,
        broker="127.0.0.1:41020",
        s3="127.0.0.1:41021",
        s3_secret_key="s3-secret",
        public_key_file=tmp_path / "issuer.pem",
        service_token="service-token",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = importlib.import_module(f"vigil_{service}.config").Settings()
    assert settings.service_name == service
    assert (settings.grpc_host, settings.grpc_port) == ("127.0.0.1", layout.grpc(service))
    assert settings.metrics_port == layout.metrics(service)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / service}.db"
    assert settings.kafka_bootstrap == "127.0.0.1:41020"
    assert settings.s3_endpoint == "127.0.0.1:41021"
    assert settings.s3_secret_key.get_secret_value() == "s3-secret"
    assert settings.auth_public_keys_file == str((tmp_path / "issuer.pem").resolve())
    assert settings.service_token.get_secret_value() == "service-token"
    assert [settings.registry_addr, settings.audit_addr] == ["127.0.0.1:41001", "127.0.0.1:41005"]


def test_restart_backoff_starts_short_grows_and_is_capped() -> None:
    delays = [restart_delay(n) for n in range(12)]
    assert delays[0] <= 1.0
    assert delays == sorted(delays)
    assert max(delays) == 30.0


def test_a_second_vigil_up_with_the_same_home_is_refused(tmp_path) -> None:
    first = Supervisor(home=tmp_path, data_dir=tmp_path / "data", layout=PortLayout())
    second = Supervisor(home=tmp_path, data_dir=tmp_path / "data", layout=PortLayout())
    first._take_lock()
    try:
        with pytest.raises(StartupError, match="already running"):
            second._take_lock()
    finally:
        assert first._lock_file is not None
        first._lock_file.close()
