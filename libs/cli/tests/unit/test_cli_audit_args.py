"""`vigil audit` argument parsing: usage errors exit 2, a missing stack exits 1, flags map to the request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from typer.testing import CliRunner

from vigil.audit.v1 import audit_service_pb2 as pb
from vigil_cli.audit_cmds import build_query
from vigil_cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    monkeypatch.delenv("VIGIL_AS", raising=False)
    return tmp_path


def test_query_without_any_filter_is_a_usage_error_listing_the_filters() -> None:
    result = runner.invoke(app, ["audit", "query"])
    assert result.exit_code == 2
    assert "--device" in result.stderr and "--principal" in result.stderr


def test_query_with_a_time_without_offset_is_a_usage_error() -> None:
    result = runner.invoke(app, ["audit", "query", "--device", "cam-1", "--from", "2025-03-01T08:00:00"])
    assert result.exit_code == 2
    assert "UTC offset" in result.stderr


def test_query_without_a_running_stack_exits_1_saying_so() -> None:
    result = runner.invoke(app, ["audit", "query", "--grant", "g-1"])
    assert result.exit_code == 1
    assert "no running stack" in result.stderr


def test_export_needs_an_output_file() -> None:
    result = runner.invoke(app, ["audit", "export"])
    assert result.exit_code == 2
    assert "--output" in result.stderr


def test_verify_of_a_file_that_does_not_exist_is_a_usage_error(tmp_path) -> None:
    result = runner.invoke(app, ["audit", "verify", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2


def test_verify_with_a_public_key_file_that_is_not_a_key_is_a_usage_error(tmp_path) -> None:
    export = tmp_path / "log.jsonl"
    export.write_text("")
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("hello\n")
    result = runner.invoke(app, ["audit", "verify", str(export), "--public-key", str(not_a_key)])
    assert result.exit_code == 2
    # The message sits in a box that wraps it; compare without the wrapping.
    assert "isnotanEd25519publickey" in "".join(result.stderr.replace("│", "").split())


def test_verify_live_without_a_running_stack_exits_1_saying_so() -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "no running stack" in result.stderr


def test_prove_needs_a_record_id() -> None:
    result = runner.invoke(app, ["audit", "prove"])
    assert result.exit_code == 2


def test_the_device_and_footage_flags_become_the_device_and_footage_filters() -> None:
    request = build_query(
        device="cam-7", footage_from="2025-03-01T08:00:00Z", footage_to="2025-03-01T16:10:00+08:00"
    )
    assert request.device_id == "cam-7"
    assert request.footage.start_time.ToDatetime(tzinfo=UTC) == datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    assert request.footage.end_time.ToDatetime(tzinfo=UTC) == datetime(2025, 3, 1, 8, 10, tzinfo=UTC)
    assert not request.HasField("time")
    assert request.view == pb.ENTRY_VIEW_FULL


def test_an_open_ended_footage_window_leaves_the_other_bound_unset() -> None:
    request = build_query(footage_from="2025-03-01T08:00:00Z")
    assert request.footage.HasField("start_time") and not request.footage.HasField("end_time")


def test_principal_grant_action_and_action_time_flags_fill_their_filters() -> None:
    request = build_query(
        principal="u-9", grant="g-1", action="archive.playback.manifest", since="2025-03-01T00:00:00Z"
    )
    assert (request.principal_id, request.grant_id, request.action) == (
        "u-9",
        "g-1",
        "archive.playback.manifest",
    )
    assert request.time.start_time.ToDatetime(tzinfo=UTC) == datetime(2025, 3, 1, tzinfo=UTC)
    assert not request.HasField("footage")


def test_build_query_without_a_filter_raises_a_usage_error() -> None:
    with pytest.raises(typer.BadParameter):
        build_query()
