"""ReportAlarm: the snapshot is stored under lock, AlarmRaised is published and the alarm is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.audit.v1 import audit_record_pb2
from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_testing.calls import refused

from .conftest import Ingest

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(200) + b"\xff\xd9"


def alarm_request(did: str, **kw) -> pb.ReportAlarmRequest:
    request = pb.ReportAlarmRequest(
        device_id=did, kind=pb.ALARM_KIND_TAMPER, description="lens covered", **kw
    )
    request.alarm_time.FromDatetime(datetime.now(UTC) - timedelta(seconds=1))
    return request


async def test_an_alarm_with_a_snapshot_is_stored_published_and_audited(ingest: Ingest) -> None:
    did = await ingest.seed_device(retention_days=30)
    alarm = (await ingest.stub().ReportAlarm(alarm_request(did, snapshot_jpeg=JPEG))).alarm
    assert alarm.alarm_id and alarm.kind == pb.ALARM_KIND_TAMPER
    snap = alarm.snapshot
    assert snap.key.startswith(f"alarms/{did}/") and snap.key.endswith(f"{alarm.alarm_id}.jpg")
    obj = ingest.s3.get_object(snap.bucket, snap.key, version_id=snap.version_id)
    try:
        assert obj.read() == JPEG
    finally:
        obj.close()
        obj.release_conn()
    stat = ingest.s3.stat_object(snap.bucket, snap.key, version_id=snap.version_id)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    (event,) = await ingest.events(topic="vigil.ingest.alarms.v1")
    assert event.key == did and event.message.alarm == alarm
    (record,) = await ingest.audits(audit_record_pb2.DECISION_ALLOWED)
    assert record.action == "ingest.alarm.report" and record.attributes["alarm_id"] == alarm.alarm_id


async def test_a_snapshot_that_is_not_a_jpeg_is_invalid(ingest: Ingest) -> None:
    did = await ingest.seed_device()
    async with refused() as err:
        await ingest.stub().ReportAlarm(alarm_request(did, snapshot_jpeg=b"GIF89a not a jpeg"))
    assert (err[0].code.name, err[0].field) == ("INVALID_ARGUMENT", "snapshot_jpeg")
    assert await ingest.events(topic="vigil.ingest.alarms.v1") == []
    assert ingest.versions(f"alarms/{did}/") == []
