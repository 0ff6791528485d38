"""Domain errors and their mapping to and from gRPC status with google.rpc rich details."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "vigil.city"
# Trailing-metadata key that carries the serialized google.rpc.Status (set by grpc_status).
_DETAILS_KEY = "grpc-status-details-bin"


class VigilError(Exception):
    """A failure the caller should see as a specific gRPC status.

    `rule` is the business rule id (e.g. "REG-1") that was violated, if any; it becomes
    ErrorInfo.reason. `field` names the request field at fault (dotted path, e.g.
    "device.area_type"). `violations` are further (field-or-subject, description) pairs.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        violations: Sequence[tuple[str, str]] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule or None
        self.field = field or None
        self.violations: tuple[tuple[str, str], ...] = tuple(violations)
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        if self.rule:
            parts.append(f"rule={self.rule!r}")
        if self.field:
            parts.append(f"field={self.field!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class InvalidArgument(VigilError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(VigilError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(VigilError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(VigilError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(VigilError):
    code = grpc.StatusCode.ALREADY_EXISTS


class _Retryable(VigilError):
    """An error the caller may retry after `retry_after_s` seconds (sent as google.rpc.RetryInfo)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class ResourceExhausted(_Retryable):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_s: float | None = 1.0, **kw) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **kw)


class Unauthenticated(VigilError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(_Retryable):
    code = grpc.StatusCode.UNAVAILABLE


class Aborted(VigilError):
    code = grpc.StatusCode.ABORTED


# The remaining codes exist so that from_rpc_error can give every status a type.
class Cancelled(VigilError):
    code = grpc.StatusCode.CANCELLED


class DeadlineExceeded(VigilError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class OutOfRange(VigilError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(VigilError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(VigilError):
    code = grpc.StatusCode.INTERNAL


class DataLoss(VigilError):
    code = grpc.StatusCode.DATA_LOSS


class Unknown(VigilError):
    code = grpc.StatusCode.UNKNOWN


_BY_CODE: dict[grpc.StatusCode, type[VigilError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        FailedPrecondition,
        PermissionDenied,
        NotFound,
        AlreadyExists,
        ResourceExhausted,
        Unauthenticated,
        Unavailable,
        Aborted,
        Cancelled,
        DeadlineExceeded,
        OutOfRange,
        Unimplemented,
        Internal,
        DataLoss,
        Unknown,
    )
}
_CODE_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def busy_database(exc: BaseException) -> Unavailable | None:
    """The retryable status for a transaction that found SQLite's write lock held past the busy timeout (by
    another process on the file), or None when `exc` is something else. Its transaction was rolled back."""
    cause = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's exception
    if isinstance(cause, sqlite3.OperationalError) and str(cause) in (
        "database is locked",
        "database is busy",
    ):
        return Unavailable("the database is busy; retry shortly", retry_after_s=1.0)
    return None


def status_code(number: int) -> grpc.StatusCode | None:
    """The grpc.StatusCode with this numeric value (google.rpc.Code numbering), or None."""
    return _CODE_BY_NUMBER.get(number)


def error_class(code: grpc.StatusCode) -> type[VigilError]:
    """The VigilError subclass for a gRPC status code (Unknown for OK or anything unmapped)."""
    return _BY_CODE.get(code, Unknown)


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _duration(seconds: float) -> duration_pb2.Duration:
    frac, whole = math.modf(max(seconds, 0.0))
    return duration_pb2.Duration(seconds=int(whole), nanos=round(frac * 1e9))


def to_status_proto(err: VigilError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: ErrorInfo always, plus the code's own detail type."""
    code = err.code
    info_metadata = dict(err.metadata)
    if err.field:
        info_metadata["field"] = err.field
    details = [
        error_details_pb2.ErrorInfo(reason=err.rule or code.name, domain=ERROR_DOMAIN, metadata=info_metadata)
    ]
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
        violations = []
        if err.field:
            violations.append(
                error_details_pb2.BadRequest.FieldViolation(
                    field=err.field, description=err.message, reason=err.rule or ""
                )
            )
        violations += [
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in err.violations
        ]
        if violations:
            details.append(error_details_pb2.BadRequest(field_violations=violations))
    elif code == grpc.StatusCode.FAILED_PRECONDITION:
        kind = err.rule or "PRECONDITION"
        violations = [
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=err.field or "", description=err.message
            )
        ]
        violations += [
            error_details_pb2.PreconditionFailure.Violation(type=kind, subject=s, description=d)
            for s, d in err.violations
        ]
        details.append(error_details_pb2.PreconditionFailure(violations=violations))
    retry_after = getattr(err, "retry_after_s", None)
    if retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=_duration(retry_after)))
    return status_pb2.Status(code=code.value[0], message=err.message, details=[_pack(d) for d in details])


def to_grpc_status(err: VigilError) -> grpc.Status:
    """grpc.Status (code, details, trailing metadata with the rich status) for context.abort_with_status."""
    return rpc_status.to_status(to_status_proto(err))


def _rich_status(e: grpc.RpcError) -> status_pb2.Status | None:
    trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == _DETAILS_KEY:
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a peer sent garbage; fall back to the plain status
                return None
    return None


def from_rpc_error(e: grpc.RpcError) -> VigilError:
    """The domain error a failed call carried: code, rule, field, violations, retry delay, message."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    message = (e.details() if hasattr(e, "details") else None) or ""
    rule: str | None = None
    field: str | None = None
    violations: list[tuple[str, str]] = []
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    rich = _rich_status(e)
    if rich is not None:
        code = _CODE_BY_NUMBER.get(rich.code, code)
        message = rich.message or message
        for detail in rich.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                metadata.update(info.metadata)
                field = metadata.pop("field", None) or field
                if info.reason and info.reason != code.name:
                    rule = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found = [(v.field, v.description) for v in bad.field_violations]
                # When the error names a field, the first violation restates it; the rest are extra.
                if found and found[0][0] == field:
                    found = found[1:]
                violations += found
            elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
                pre = error_details_pb2.PreconditionFailure()
                detail.Unpack(pre)
                # The first violation restates the error itself (subject = field); the rest are extra.
                if pre.violations:
                    field = field or pre.violations[0].subject or None
                violations += [(v.subject, v.description) for v in pre.violations[1:]]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info_retry = error_details_pb2.RetryInfo()
                detail.Unpack(info_retry)
                retry_after = info_retry.retry_delay.seconds + info_retry.retry_delay.nanos / 1e9
    cls = error_class(code)
    kw = {"rule": rule, "field": field, "violations": violations, "metadata": metadata}
    if issubclass(cls, _Retryable):
        err: VigilError = cls(message, retry_after_s=retry_after, **kw)
    else:
        err = cls(message, **kw)
    err.__cause__ = e if isinstance(e, BaseException) else None
    return err


def format_error(err: VigilError | grpc.RpcError) -> str:
    """One line for people: "STATUS_NAME [RULE-ID]: message" (no brackets when there is no rule)."""
    if not isinstance(err, VigilError):
        err = from_rpc_error(err)
    rule = f" [{err.rule}]" if err.rule else ""
    return f"{err.code.name}{rule}: {err.message}"
