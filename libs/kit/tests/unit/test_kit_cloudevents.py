"""CloudEvents binary-mode headers: what we publish is what we read back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord

from vigil.common.v1 import identity_pb2, time_range_pb2
from vigil_kit import cloudevents


def _record(headers, key=b"dev-1", value=b"", topic="t", partition=2, offset=7) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic, partition=partition, offset=offset, timestamp=0, timestamp_type=0, key=key, value=value,
        checksum=None, serialized_key_size=len(key), serialized_value_size=len(value), headers=tuple(headers),
    )  # fmt: skip


def test_headers_round_trip_through_a_consumer_record() -> None:
    msg = identity_pb2.Principal(id="u1", name="Li Wei", roles=[identity_pb2.ROLE_AUDITOR])
    when = datetime(2025, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    headers = cloudevents.headers_for(msg, source_service="registry", subject="dev-1", time=when)
    event = cloudevents.from_record(_record(headers, value=msg.SerializeToString()))

    assert event.type == "vigil.common.v1.Principal"
    assert event.source == "//vigil/registry"
    assert event.subject == "dev-1" and event.key == "dev-1"
    assert event.time == when
    assert event.headers["ce_specversion"] == b"1.0"
    assert event.headers["content-type"] == b"application/protobuf"
    assert (event.topic, event.partition, event.offset) == ("t", 2, 7)
    assert cloudevents.decode(event, [identity_pb2.Principal]) == msg


def test_event_ids_are_uuid7() -> None:
    headers = dict(cloudevents.headers_for(time_range_pb2.TimeRange(), source_service="x", subject="s"))
    assert uuid.UUID(headers["ce_id"].decode()).version == 7


def test_ce_time_is_rfc3339_utc_with_z() -> None:
    headers = dict(
        cloudevents.headers_for(
            time_range_pb2.TimeRange(),
            source_service="x",
            subject="s",
            time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )
    assert headers["ce_time"] == b"2025-01-02T03:04:05.000000Z"


def test_given_event_id_is_kept() -> None:
    headers = dict(
        cloudevents.headers_for(time_range_pb2.TimeRange(), source_service="x", subject="s", event_id="e-1")
    )
    assert headers["ce_id"] == b"e-1"


def test_decode_refuses_an_unexpected_type() -> None:
    headers = cloudevents.headers_for(time_range_pb2.TimeRange(), source_service="x", subject="s")
    event = cloudevents.from_record(_record(headers))
    with pytest.raises(cloudevents.CloudEventError, match="unexpected event type"):
        cloudevents.decode(event, {"vigil.common.v1.Principal": identity_pb2.Principal})


def test_a_record_without_ce_id_is_not_an_event() -> None:
    headers = [
        h
        for h in cloudevents.headers_for(time_range_pb2.TimeRange(), source_service="x", subject="s")
        if h[0] != "ce_id"
    ]
    with pytest.raises(cloudevents.CloudEventError, match="ce_id"):
        cloudevents.from_record(_record(headers))


def test_batch_event_ids_are_distinct_increasing_uuid7s() -> None:
    ids = list(cloudevents.new_event_ids(2000))
    parsed = [uuid.UUID(i) for i in ids]
    assert len(set(ids)) == 2000 and ids == sorted(ids)
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    # RFC 9562 method 1: a counter from a random start, one up per id.
    assert [u.int - parsed[0].int for u in parsed] == list(range(2000))


def test_batch_event_ids_carry_the_current_millisecond() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    ms = uuid.UUID(next(cloudevents.new_event_ids(1))).int >> 80
    assert before - 1 <= ms <= before + 1000


def test_event_ids_are_increasing_uuid7s_of_the_current_millisecond() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    ids = [cloudevents.new_event_id() for _ in range(3000)]  # several in one millisecond
    parsed = [uuid.UUID(i) for i in ids]
    assert len(set(ids)) == 3000 and ids == sorted(ids)
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert before - 1 <= parsed[0].int >> 80 <= before + 1000
