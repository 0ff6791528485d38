"""aiokafka factories (producer, consumer, topic creation) with Vigil's delivery settings."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context

from vigil_kit import topics as vigil_topics

log = logging.getLogger(__name__)

C = TypeVar("C", AIOKafkaProducer, AIOKafkaConsumer)

# Kafka error code TOPIC_ALREADY_EXISTS: another process created it first, which is fine.
_TOPIC_ALREADY_EXISTS = 36

# The process's broker security options (one service per process, one Kafka identity): set once at
# start by configure(), merged into every client this module makes. Empty means PLAINTEXT.
_security: dict[str, Any] = {}


def security_options(settings: Any) -> dict[str, Any]:
    """aiokafka's keyword arguments for settings.kafka_security_protocol (and SASL credentials)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ca_file or None)
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_username
        options["sasl_plain_password"] = settings.kafka_password.get_secret_value()
    return options


def configure(settings: Any) -> None:
    """Use settings' broker security for every producer, consumer and admin client made from now on."""
    global _security
    _security = security_options(settings)
    if _security:
        log.info(
            "kafka security",
            extra={
                "protocol": settings.kafka_security_protocol,
                "mechanism": _security.get("sasl_mechanism"),
            },
        )


def client_options() -> dict[str, Any]:
    """The configured security options, for a client made outside this module (e.g. AIOKafkaClient)."""
    return dict(_security)


async def create_producer(bootstrap: str, **kw: Any) -> AIOKafkaProducer:
    """A started producer that waits for all in-sync replicas.

    Not idempotent on purpose: the embedded broker does not implement InitProducerId, so
    duplicates are possible after a retry and every consumer dedupes by event id instead.
    """
    kw.setdefault("acks", "all")
    kw.setdefault("enable_idempotence", False)
    kw.setdefault("linger_ms", 5)
    kw.setdefault("request_timeout_ms", 30_000)
    return await _started(AIOKafkaProducer(bootstrap_servers=bootstrap, **{**_security, **kw}))


async def create_consumer(
    bootstrap: str, topics: Iterable[str], group_id: str | None, **kw: Any
) -> AIOKafkaConsumer:
    """A started consumer in `group_id` that commits offsets only when told to, from the earliest offset.

    `topics` may be empty when the caller subscribes itself (e.g. with a rebalance listener).
    """
    kw.setdefault("enable_auto_commit", False)
    kw.setdefault("auto_offset_reset", "earliest")
    # A group (re)join waits up to the rebalance timeout for members, and a dead member is noticed
    # after the session timeout: short values make restarts quick (a batch takes well under 4 s).
    kw.setdefault("session_timeout_ms", 6000)
    kw.setdefault("heartbeat_interval_ms", 1000)
    kw.setdefault("rebalance_timeout_ms", 4000)
    return await _started(
        AIOKafkaConsumer(*list(topics), bootstrap_servers=bootstrap, group_id=group_id, **{**_security, **kw})
    )


async def _started(client: C) -> C:
    """`client` started; one that cannot start (an unreachable broker) is stopped before the error goes up,
    so callers that retry (a worker restarted by the supervisor) leave no open client behind per attempt."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    return client


async def ensure_topics(
    bootstrap: str,
    partitions: Mapping[str, int] = vigil_topics.PARTITIONS,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created. Safe to run concurrently."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=n, replication_factor=replication_factor)
            for name, n in partitions.items()
            if name not in existing
        ]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        created = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                message = entry[2] if len(entry) > 2 else ""
                raise RuntimeError(f"could not create topic {name}: error {code} {message}")
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()
