"""Broker security from settings: PLAINTEXT by default, SASL/SCRAM credentials on every kit-made client."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from vigil_kit import kafka
from vigil_kit.settings import ServiceSettings

PASSWORD = "s3cr3t-scram-password"


def scram_settings(**kw: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "service_name": "archive",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_username": "vigil-archive",
        "kafka_password": SecretStr(PASSWORD),
    }
    values.update(kw)
    return ServiceSettings(**values)


@pytest.fixture(autouse=True)
def plaintext_again():
    yield
    kafka.configure(ServiceSettings(service_name="t"))


def test_the_default_is_plaintext_with_no_security_options() -> None:
    assert kafka.security_options(ServiceSettings(service_name="t")) == {}


def test_sasl_ssl_carries_the_scram_mechanism_the_credentials_and_a_tls_context() -> None:
    options = kafka.security_options(scram_settings())
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("vigil-archive", PASSWORD)
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls_context() -> None:
    assert "ssl_context" not in kafka.security_options(
        scram_settings(kafka_security_protocol="SASL_PLAINTEXT")
    )


def test_sasl_without_a_password_is_refused_at_start_naming_the_settings() -> None:
    with pytest.raises(ValidationError, match="kafka_username and kafka_password are required"):
        scram_settings(kafka_password=SecretStr(""))


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        ServiceSettings(service_name="t", kafka_security_protocol="SASL_TLS")


async def test_configured_credentials_reach_every_producer_the_kit_makes(monkeypatch, caplog) -> None:
    made: list[dict[str, Any]] = []

    class Recording:
        def __init__(self, **kw: Any) -> None:
            made.append(kw)

        async def start(self) -> None:
            return None

    monkeypatch.setattr(kafka, "AIOKafkaProducer", Recording)
    with caplog.at_level(logging.INFO, logger="vigil_kit.kafka"):
        kafka.configure(scram_settings(kafka_security_protocol="SASL_PLAINTEXT"))
    await kafka.create_producer("broker:9092")
    assert made[0]["sasl_plain_password"] == PASSWORD and made[0]["security_protocol"] == "SASL_PLAINTEXT"
    assert made[0]["acks"] == "all"  # the kit's delivery settings still apply
    assert PASSWORD not in caplog.text and PASSWORD not in repr(scram_settings())


@pytest.mark.parametrize("make", ["producer", "consumer"])
async def test_a_client_that_cannot_start_is_stopped_before_the_error_goes_up(monkeypatch, make) -> None:
    events: list[str] = []

    class Unreachable:
        def __init__(self, *topics: str, **kw: Any) -> None:
            pass

        async def start(self) -> None:
            events.append("start")
            raise ConnectionError("broker unreachable")

        async def stop(self) -> None:
            events.append("stop")

    monkeypatch.setattr(kafka, "AIOKafkaProducer", Unreachable)
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", Unreachable)
    with pytest.raises(ConnectionError, match="broker unreachable"):
        if make == "producer":
            await kafka.create_producer("broker:9092")
        else:
            await kafka.create_consumer("broker:9092", ["t"], "g")
    assert events == ["start", "stop"]
