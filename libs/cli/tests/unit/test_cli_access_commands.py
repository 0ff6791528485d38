"""`vigil access|subscriptions|subscribe` against a fake SharingService: what they send, print and exit with."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from typer.testing import CliRunner

from vigil.common.v1 import identity_pb2
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_cli.context import (
    BrokerEndpoint,
    Context,
    PrincipalEntry,
    S3Endpoint,
    ServiceEndpoint,
    write_context,
)
from vigil_cli.main import app
from vigil_kit.embedded import free_port
from vigil_kit.errors import PermissionDenied, VigilError, to_grpc_status

runner = CliRunner()
GRANTED = "32020501501320000001"
REQUEST_ID = "0190f5c2-7a00-7000-8000-000000000001"
FAKE_PAGE = 2  # the fake serves short pages, so listing must follow page tokens
REQUEST_DOC = {
    "purpose": "PURPOSE_TRAFFIC_MANAGEMENT",
    "legalBasis": "congestion study, Renmin Rd",  # camelCase and snake_case both accepted
    "scope": {"device_ids": [GRANTED]},
    "actions": ["ACTION_PLAYBACK"],
    "footage_window": {"start_time": "2026-11-28T00:00:00Z", "end_time": "2026-11-29T00:00:00Z"},
    "valid_until": "2026-12-05T00:00:00Z",
}


@dataclass
class FakeSharing(pb_grpc.SharingServiceServicer):
    """Just enough of the sharing service to watch what the CLI sends."""

    requests: list[object] = field(default_factory=list)
    stored: dict[str, pb.AccessRequest] = field(default_factory=dict)
    events: list[pb.PartnerEvent] = field(default_factory=list)
    subscribe_unimplemented: bool = False

    def _refuse(self, context: grpc.ServicerContext, err: VigilError) -> None:
        context.abort_with_status(to_grpc_status(err))

    def CreateAccessRequest(self, request, context):
        self.requests.append(request)
        out = pb.AccessRequest()
        out.CopyFrom(request.access_request)
        out.request_id = REQUEST_ID
        out.state = pb.REQUEST_STATE_PENDING
        out.required_approvals = 1
        out.requester.CopyFrom(identity_pb2.Principal(id="user:analyst"))
        self.stored[out.request_id] = out
        return out

    def ApproveAccessRequest(self, request, context):
        self.requests.append(request)
        if request.request_id not in self.stored:
            self._refuse(
                context, PermissionDenied("the requester cannot approve their own request", rule="ACC-3")
            )
        out = self.stored[request.request_id]
        out.state = pb.REQUEST_STATE_APPROVED
        return out

    def RevokeGrant(self, request, context):
        self.requests.append(request)
        out = self.stored[request.grant_id]
        out.state = pb.REQUEST_STATE_REVOKED
        out.revoke_reason = request.reason
        return out

    def ListAccessRequests(self, request, context):
        self.requests.append(request)
        ids = sorted(i for i in self.stored if i > request.page_token)
        page = ids[:FAKE_PAGE]
        return pb.ListAccessRequestsResponse(
            access_requests=[self.stored[i] for i in page],
            next_page_token=page[-1] if len(ids) > FAKE_PAGE else "",
        )

    def Authorize(self, request, context):
        self.requests.append(request)
        if request.device_id == GRANTED:
            return pb.AuthorizeResponse(
                allowed=True, reason="grant g-1 covers the device", rule="ACC-3", grant_id="g-1"
            )
        return pb.AuthorizeResponse(allowed=False, reason=f"unknown device {request.device_id}", rule="ACC-2")

    def CreateSubscription(self, request, context):
        self.requests.append(request)
        out = pb.Subscription()
        out.CopyFrom(request.subscription)
        out.subscription_id = "sub-1"
        return out

    def Subscribe(self, request, context):
        self.requests.append(request)
        if self.subscribe_unimplemented:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Subscribe is not served yet")
        yield from self.events


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Iterator[FakeSharing]:
    sharing = FakeSharing()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_SharingServiceServicer_to_server(sharing, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    write_context(
        Context(
            pid=os.getpid(),
            started_at="2025-03-01T08:00:00+00:00",
            data_dir=str(tmp_path),
            base_port=port - 4,
            issuer="vigil",
            issuer_public_key_pem="",
            services=["sharing"],
            endpoints={"sharing": ServiceEndpoint(f"127.0.0.1:{port}", "")},
            broker=BrokerEndpoint("127.0.0.1:1"),
            s3=S3Endpoint("127.0.0.1:1", "vigil", "unused"),
            principals={
                name: PrincipalEntry("not-checked-here", {}, "2025-03-01T20:00:00+00:00")
                for name in ("admin", "analyst", "officer", "partner")
            },
        ),
        tmp_path / "context.json",
    )
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    monkeypatch.delenv("VIGIL_AS", raising=False)
    try:
        yield sharing
    finally:
        server.stop(None)


def request_file(tmp_path) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST_DOC))
    return str(path)


def test_request_prints_only_the_new_requests_id(fake, tmp_path) -> None:
    result = runner.invoke(app, ["--as", "analyst", "access", "request", "-f", request_file(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{REQUEST_ID}\n"
    sent = fake.requests[-1].access_request
    assert sent.legal_basis == "congestion study, Renmin Rd" and list(sent.scope.device_ids) == [GRANTED]
    assert list(sent.actions) == [pb.ACTION_PLAYBACK]


def test_request_json_prints_the_whole_request_with_proto_field_names(fake, tmp_path) -> None:
    result = runner.invoke(app, ["access", "request", "-f", request_file(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["request_id"] == REQUEST_ID and printed["state"] == "REQUEST_STATE_PENDING"
    assert printed["legal_basis"] == "congestion study, Renmin Rd"


def test_request_reads_stdin_given_a_dash(fake) -> None:
    result = runner.invoke(app, ["access", "request", "-f", "-"], input=json.dumps(REQUEST_DOC))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == REQUEST_ID


def test_a_request_file_that_is_not_an_access_request_is_a_usage_error(fake, tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"purpose": "PURPOSE_NAPPING"}')
    result = runner.invoke(app, ["access", "request", "-f", str(path)])
    assert result.exit_code == 2
    assert fake.requests == []


def test_approve_prints_the_id_and_the_new_state(fake, tmp_path) -> None:
    runner.invoke(app, ["access", "request", "-f", request_file(tmp_path)])
    result = runner.invoke(app, ["--as", "officer", "access", "approve", REQUEST_ID, "--reason", "lawful"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{REQUEST_ID} APPROVED\n"
    assert fake.requests[-1] == pb.ApproveAccessRequestRequest(request_id=REQUEST_ID, reason="lawful")


def test_a_refused_approval_prints_status_rule_and_message_on_stderr_and_exits_1(fake) -> None:
    result = runner.invoke(app, ["--as", "analyst", "access", "approve", "someone-elses"])
    assert result.exit_code == 1
    assert result.stderr.startswith("PERMISSION_DENIED [ACC-3]: the requester cannot approve")
    assert result.stdout == ""


def test_revoke_sends_the_grant_id_and_the_reason(fake, tmp_path) -> None:
    runner.invoke(app, ["access", "request", "-f", request_file(tmp_path)])
    result = runner.invoke(app, ["access", "revoke", REQUEST_ID, "--reason", "study over", "--json"])
    assert result.exit_code == 0, result.output
    assert fake.requests[-1] == pb.RevokeGrantRequest(grant_id=REQUEST_ID, reason="study over")
    assert json.loads(result.stdout)["state"] == "REQUEST_STATE_REVOKED"


def test_list_json_follows_every_page_with_the_state_filter(fake) -> None:
    for i in range(5):
        fake.stored[f"r-{i}"] = pb.AccessRequest(request_id=f"r-{i}", state=pb.REQUEST_STATE_APPROVED)
    result = runner.invoke(app, ["access", "list", "--state", "approved", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["request_id"] for r in json.loads(result.stdout)] == sorted(fake.stored)
    assert len(fake.requests) == 3
    assert all(r.state == pb.REQUEST_STATE_APPROVED for r in fake.requests)


def test_list_prints_a_table_for_people(fake) -> None:
    fake.stored["r-1"] = pb.AccessRequest(
        request_id="r-1", state=pb.REQUEST_STATE_PENDING, actions=[pb.ACTION_PLAYBACK]
    )
    result = runner.invoke(app, ["access", "list"])
    assert result.exit_code == 0, result.output
    assert "r-1" in result.stdout and "PENDING" in result.stdout and "PLAYBACK" in result.stdout


def test_list_with_an_unknown_state_is_a_usage_error(fake) -> None:
    result = runner.invoke(app, ["access", "list", "--state", "dormant"])
    assert result.exit_code == 2
    assert "PENDING" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize("action", ["playback", "ACTION_PLAYBACK", "PLAYBACK"])
def test_check_accepts_the_action_in_either_spelling(fake, action: str) -> None:
    result = runner.invoke(app, ["access", "check", GRANTED, "--action", action])
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].action == pb.ACTION_PLAYBACK


def test_check_of_an_allowed_access_exits_0_with_the_reason_and_sends_the_window(fake) -> None:
    result = runner.invoke(
        app,
        [
            "access",
            "check",
            GRANTED,
            "--action",
            "playback",
            "--from",
            "2026-11-28T08:00:00Z",
            "--to",
            "2026-11-28T17:00:00+08:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ALLOWED [ACC-3]: grant g-1 covers the device")
    sent = fake.requests[-1]
    assert sent.device_id == GRANTED
    assert sent.footage_window.start_time.ToJsonString() == "2026-11-28T08:00:00Z"
    assert sent.footage_window.end_time.ToJsonString() == "2026-11-28T09:00:00Z"


def test_check_of_a_denied_access_exits_1_with_permission_denied_and_the_reason(fake) -> None:
    result = runner.invoke(app, ["access", "check", "32020501501320999999", "--action", "live_view"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "PERMISSION_DENIED [ACC-2]: unknown device 32020501501320999999"
    assert result.stdout == ""


def test_check_json_prints_the_decision_and_still_exits_1_when_denied(fake) -> None:
    result = runner.invoke(app, ["access", "check", "32020501501320999999", "--action", "export", "--json"])
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert printed["allowed"] is False
    assert (printed["rule"], printed["reason"]) == ("ACC-2", "unknown device 32020501501320999999")


def test_check_with_an_unknown_action_is_a_usage_error(fake) -> None:
    result = runner.invoke(app, ["access", "check", GRANTED, "--action", "teleport"])
    assert result.exit_code == 2
    assert fake.requests == []


def test_check_with_only_one_end_of_the_window_is_a_usage_error(fake) -> None:
    result = runner.invoke(
        app, ["access", "check", GRANTED, "--action", "playback", "--from", "2026-11-28T08:00:00Z"]
    )
    assert result.exit_code == 2
    assert "--to" in result.stderr
    assert fake.requests == []


def test_subscriptions_create_prints_the_new_id(fake, tmp_path) -> None:
    path = tmp_path / "sub.json"
    path.write_text(json.dumps({"grantId": "g-9", "eventTypes": ["vigil.registry.v1.DeviceWentOffline"]}))
    result = runner.invoke(app, ["--as", "partner", "subscriptions", "create", "-f", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "sub-1\n"
    assert fake.requests[-1].subscription.grant_id == "g-9"


def partner_event(i: int) -> pb.PartnerEvent:
    return pb.PartnerEvent(
        ce_id=f"e-{i}", ce_type="vigil.registry.v1.DeviceWentOffline", subject=GRANTED, cursor=f"c-{i}"
    )


def test_subscribe_prints_one_line_per_event_from_the_cursor(fake) -> None:
    fake.events = [partner_event(i) for i in range(3)]
    result = runner.invoke(app, ["--as", "partner", "subscribe", "--from-cursor", "c-0"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "vigil.registry.v1.DeviceWentOffline" in lines[0] and "cursor=c-0" in lines[0]
    assert fake.requests[-1] == pb.SubscribeRequest(cursor="c-0")


def test_subscribe_json_prints_one_event_object_per_line_and_stops_after_max_events(fake) -> None:
    fake.events = [partner_event(i) for i in range(5)]
    result = runner.invoke(app, ["subscribe", "--json", "--max-events", "2"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["ce_id"] for line in result.stdout.splitlines()] == ["e-0", "e-1"]


def test_subscribe_to_a_stream_not_served_exits_1_with_the_status(fake) -> None:
    fake.subscribe_unimplemented = True
    result = runner.invoke(app, ["subscribe"])
    assert result.exit_code == 1
    assert result.stderr.startswith("UNIMPLEMENTED")
