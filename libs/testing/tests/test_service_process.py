"""ServiceProcess starts a service once however it is entered, and stops it on leaving."""

from __future__ import annotations

import pytest

from vigil_testing.services import ServiceProcess


def test_entering_a_started_service_keeps_one_process_and_leaving_stops_it(tmp_path, kafka_broker, issuer):
    service = ServiceProcess(
        "registry",
        workdir=tmp_path / "registry",
        kafka_bootstrap=kafka_broker.address,
        public_keys_pem=[issuer.public_key_pem.decode()],
    )
    with service.start() as entered:
        first = service.proc
        assert entered is service
        assert first is not None and service.alive()
        with pytest.raises(RuntimeError, match="already running"):
            service.start()
        assert service.proc is first
    assert first.poll() is not None
