"""Domain errors → google.rpc rich status, and back from a failed call."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from vigil_kit import errors


def rpc_error_from(err: errors.VigilError) -> grpc.aio.AioRpcError:
    """What a client receives when the server aborts with err's status (the real aio error type)."""
    status = errors.to_grpc_status(err)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


def unpack(status_proto, detail_type):
    found = []
    for detail in status_proto.details:
        if detail.Is(detail_type.DESCRIPTOR):
            msg = detail_type()
            detail.Unpack(msg)
            found.append(msg)
    return found


def test_every_domain_error_has_its_grpc_code():
    assert errors.InvalidArgument("x").code == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.FailedPrecondition("x").code == grpc.StatusCode.FAILED_PRECONDITION
    assert errors.PermissionDenied("x").code == grpc.StatusCode.PERMISSION_DENIED
    assert errors.NotFound("x").code == grpc.StatusCode.NOT_FOUND
    assert errors.AlreadyExists("x").code == grpc.StatusCode.ALREADY_EXISTS
    assert errors.ResourceExhausted("x", retry_after_s=2).code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert errors.Unauthenticated("x").code == grpc.StatusCode.UNAUTHENTICATED
    assert errors.Unavailable("x").code == grpc.StatusCode.UNAVAILABLE
    assert errors.Aborted("x").code == grpc.StatusCode.ABORTED


def test_invalid_argument_carries_error_info_and_a_field_violation():
    err = errors.InvalidArgument("area type is required", rule="REG-1", field="device.area_type")

    status = errors.to_status_proto(err)

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (info,) = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, info.metadata["field"]) == ("REG-1", "vigil.city", "device.area_type")
    (bad,) = unpack(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("device.area_type", "area type is required")
    ]


def test_error_info_reason_is_the_code_name_when_there_is_no_rule():
    (info,) = unpack(errors.to_status_proto(errors.NotFound("no such device")), error_details_pb2.ErrorInfo)

    assert info.reason == "NOT_FOUND"


def test_failed_precondition_carries_a_precondition_failure():
    err = errors.FailedPrecondition("device is retired", rule="REG-7", field="device")

    (failure,) = unpack(errors.to_status_proto(err), error_details_pb2.PreconditionFailure)

    assert [(v.type, v.subject, v.description) for v in failure.violations] == [
        ("REG-7", "device", "device is retired")
    ]


def test_resource_exhausted_carries_retry_info():
    (retry,) = unpack(
        errors.to_status_proto(errors.ResourceExhausted("slow down", retry_after_s=1.5)),
        error_details_pb2.RetryInfo,
    )

    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (1, 500_000_000)


def test_from_rpc_error_recovers_code_rule_field_and_message():
    err = errors.InvalidArgument(
        "area type is required",
        rule="REG-1",
        field="device.area_type",
        violations=[("device.site_id", "unknown site")],
        metadata={"device_id": "d-1"},
    )

    back = errors.from_rpc_error(rpc_error_from(err))

    assert type(back) is errors.InvalidArgument
    assert (back.rule, back.field, back.message) == ("REG-1", "device.area_type", "area type is required")
    assert back.violations == (("device.site_id", "unknown site"),)
    assert back.metadata == {"device_id": "d-1"}


def test_from_rpc_error_recovers_retry_delay_and_precondition_subject():
    assert (
        errors.from_rpc_error(rpc_error_from(errors.ResourceExhausted("x", retry_after_s=3))).retry_after_s
        == 3
    )
    back = errors.from_rpc_error(
        rpc_error_from(errors.FailedPrecondition("held", rule="ARC-2", field="segment"))
    )
    assert (type(back), back.rule, back.field, back.violations) == (
        errors.FailedPrecondition,
        "ARC-2",
        "segment",
        (),
    )


def test_from_rpc_error_without_rich_details_keeps_code_and_message():
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded"
    )

    back = errors.from_rpc_error(plain)

    assert (type(back), back.rule, back.message) == (errors.DeadlineExceeded, None, "Deadline Exceeded")


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (
            errors.InvalidArgument("area type is required", rule="REG-1"),
            "INVALID_ARGUMENT [REG-1]: area type is required",
        ),
        (errors.NotFound("no such device"), "NOT_FOUND: no such device"),
    ],
)
def test_format_error_is_status_rule_and_message(err, line):
    assert errors.format_error(err) == line
    assert errors.format_error(rpc_error_from(err)) == line
