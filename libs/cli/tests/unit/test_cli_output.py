"""Output conventions: canonical JSON, -f FILE in either field-name style, time flags, errors."""

from __future__ import annotations

import json

import grpc
import pytest
import typer
from google.protobuf import timestamp_pb2

from vigil.common.v1 import identity_pb2
from vigil.identity.v1 import identity_service_pb2
from vigil_cli import output
from vigil_kit.errors import FailedPrecondition, InvalidArgument, to_grpc_status


def whoami_response() -> identity_service_pb2.WhoAmIResponse:
    return identity_service_pb2.WhoAmIResponse(
        principal=identity_pb2.Principal(
            id="user:officer",
            name="Demo Officer",
            unit="113202000142870306",
            unit_kind=identity_pb2.UNIT_KIND_PUBLIC_SECURITY_ORGAN,
            roles=[identity_pb2.ROLE_PUBLIC_SECURITY_OFFICER],
        ),
        issuer="vigil",
        expire_time=timestamp_pb2.Timestamp(seconds=1_740_816_000),
        service="registry",
    )


def test_canonical_json_uses_proto_field_names_and_enum_names() -> None:
    data = json.loads(output.message_to_json(whoami_response()))
    assert data["principal"]["unit_kind"] == "UNIT_KIND_PUBLIC_SECURITY_ORGAN"
    assert data["principal"]["roles"] == ["ROLE_PUBLIC_SECURITY_OFFICER"]
    assert data["expire_time"] == "2025-03-01T08:00:00Z"
    assert "unitKind" not in data["principal"] and "expireTime" not in data


def test_canonical_json_is_the_resource_itself_not_wrapped() -> None:
    data = json.loads(output.message_to_json(whoami_response()))
    assert set(data) == {"principal", "issuer", "expire_time", "service"}


@pytest.mark.parametrize(
    "document",
    [
        {
            "principal": {"unit_kind": "UNIT_KIND_ENTERPRISE", "roles": ["ROLE_AUDITOR"]},
            "expire_time": "2025-03-01T08:00:00Z",
        },
        {
            "principal": {"unitKind": "UNIT_KIND_ENTERPRISE", "roles": ["ROLE_AUDITOR"]},
            "expireTime": "2025-03-01T08:00:00Z",
        },
    ],
    ids=["snake_case", "camelCase"],
)
def test_request_file_accepts_either_field_name_style(tmp_path, document) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(document))
    message = output.load_message(path, identity_service_pb2.WhoAmIResponse)
    assert message.principal.unit_kind == identity_pb2.UNIT_KIND_ENTERPRISE
    assert list(message.principal.roles) == [identity_pb2.ROLE_AUDITOR]
    assert message.expire_time.seconds == 1_740_816_000


def test_request_file_with_an_unknown_field_is_a_usage_error_naming_it(tmp_path) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"principal": {"colour": "red"}}))
    with pytest.raises(output.UsageError, match="colour"):
        output.load_message(path, identity_service_pb2.WhoAmIResponse)


def test_missing_request_file_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(output.UsageError) as info:
        output.load_message(tmp_path / "absent.json", identity_service_pb2.WhoAmIResponse)
    assert info.value.exit_code == 2


def test_time_flags_take_rfc3339_with_an_offset() -> None:
    parsed = output.parse_time("2025-03-01T16:00:00+08:00")
    assert output.to_timestamp(parsed).seconds == 1_740_816_000


def test_time_flag_without_an_offset_is_refused() -> None:
    with pytest.raises(typer.BadParameter, match="offset"):
        output.parse_time("2025-03-01T16:00:00")


def rpc_error(err) -> grpc.aio.AioRpcError:
    status = to_grpc_status(err)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


def test_an_rpc_error_prints_status_rule_and_message_to_stderr_and_exits_1(capsys) -> None:
    with pytest.raises(typer.Exit) as info, output.rpc_errors():
        raise rpc_error(InvalidArgument("camera in a fitting room", rule="REG-1", field="area_type"))
    assert info.value.exit_code == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "INVALID_ARGUMENT [REG-1]: camera in a fitting room"
    assert captured.out == ""


def test_an_error_without_a_rule_prints_no_brackets(capsys) -> None:
    with pytest.raises(typer.Exit), output.rpc_errors():
        raise rpc_error(FailedPrecondition("device is not active"))
    assert capsys.readouterr().err.strip() == "FAILED_PRECONDITION: device is not active"


def test_a_plain_status_without_rich_details_still_prints_one_line(capsys) -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection refused"
    )
    with pytest.raises(typer.Exit), output.rpc_errors():
        raise plain
    assert capsys.readouterr().err.strip() == "UNAVAILABLE: connection refused"


def test_a_malformed_request_file_exits_2_through_the_vigil_command(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from vigil_cli.main import app

    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    path = tmp_path / "unit.json"
    path.write_text(json.dumps({"colour": "red"}))
    result = CliRunner().invoke(app, ["units", "create", "-f", str(path)])
    assert result.exit_code == 2
    assert "colour" in result.output
