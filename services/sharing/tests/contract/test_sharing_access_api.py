"""SharingService over gRPC: requests, approval, the Authorize decision and its audit record (ACC-1..ACC-4)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from vigil.audit.v1 import audit_record_pb2
from vigil.sharing.v1 import events_pb2
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit import topics
from vigil_testing.calls import refused

from .conftest import (
    Sharing,
    camera,
    device_id,
    playback_request,
    principal,
    window,
)


async def _approved_grant(sharing: Sharing, devices: list[str]) -> pb.AccessRequest:
    """The analyst asks for playback of `devices`; the officer approves."""
    created = await sharing.stub("analyst").CreateAccessRequest(playback_request(devices, sharing.clock))
    return await sharing.stub("officer").ApproveAccessRequest(
        pb.ApproveAccessRequestRequest(request_id=created.request_id)
    )


def _playback(device: str, sharing: Sharing, **kw: object) -> pb.AuthorizeRequest:
    """Playback of two hours of yesterday's footage (inside the request's window)."""
    start = sharing.clock() - timedelta(hours=20)
    return pb.AuthorizeRequest(
        action=pb.ACTION_PLAYBACK, device_id=device, footage_window=window(start, 2), **kw
    )


async def test_a_new_request_is_pending_and_names_the_caller_as_requester(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    created = await sharing.stub("analyst").CreateAccessRequest(playback_request([dev], sharing.clock))
    assert created.state == pb.REQUEST_STATE_PENDING
    assert created.requester.id == "user:analyst"
    requested = [e for e in await sharing.events(topic=topics.SHARING_EVENTS) if e.key == created.request_id]
    assert [e.type for e in requested] == ["vigil.sharing.v1.AccessRequested"]


async def test_the_requester_cannot_approve_their_own_request(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    created = await sharing.stub("analyst").CreateAccessRequest(playback_request([dev], sharing.clock))
    async with refused() as err:
        await sharing.stub("analyst").ApproveAccessRequest(
            pb.ApproveAccessRequestRequest(request_id=created.request_id)
        )
    assert (err[0].code.name, err[0].rule) == ("PERMISSION_DENIED", "ACC-3")
    got = await sharing.stub("analyst").GetAccessRequest(
        pb.GetAccessRequestRequest(request_id=created.request_id)
    )
    assert got.state == pb.REQUEST_STATE_PENDING


async def test_an_officer_approves_and_the_grant_allows_that_device_and_no_other(sharing: Sharing) -> None:
    granted, other = sharing.registry.add(camera(1)), sharing.registry.add(camera(2))
    grant = await _approved_grant(sharing, [granted])
    assert grant.state == pb.REQUEST_STATE_APPROVED
    stub = sharing.stub("analyst")
    allowed = await stub.Authorize(_playback(granted, sharing))
    assert (allowed.allowed, allowed.rule, allowed.grant_id) == (True, "ACC-3", grant.request_id)
    denied = await stub.Authorize(_playback(other, sharing))
    assert (denied.allowed, denied.rule) == (False, "ACC-2")


async def test_a_grant_does_not_reach_footage_outside_its_window(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    await _approved_grant(sharing, [dev])
    old = window(sharing.clock() - timedelta(days=3), 1)
    answer = await sharing.stub("analyst").Authorize(
        pb.AuthorizeRequest(action=pb.ACTION_PLAYBACK, device_id=dev, footage_window=old)
    )
    assert (answer.allowed, answer.rule) == (False, "ACC-3")


async def test_a_revoked_grant_is_denied_as_soon_as_the_revocation_returns(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    grant = await _approved_grant(sharing, [dev])
    assert (await sharing.stub("analyst").Authorize(_playback(dev, sharing))).allowed
    revoked = await sharing.stub("officer").RevokeGrant(
        pb.RevokeGrantRequest(grant_id=grant.request_id, reason="case closed")
    )
    assert revoked.state == pb.REQUEST_STATE_REVOKED
    answer = await sharing.stub("analyst").Authorize(_playback(dev, sharing))
    assert not answer.allowed
    types = [e.type for e in await sharing.events(topic=topics.SHARING_EVENTS) if e.key == grant.request_id]
    assert types[-1] == "vigil.sharing.v1.GrantRevoked"


async def test_the_requester_may_withdraw_a_pending_request(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    created = await sharing.stub("analyst").CreateAccessRequest(playback_request([dev], sharing.clock))
    withdrawn = await sharing.stub("analyst").WithdrawAccessRequest(
        pb.WithdrawAccessRequestRequest(request_id=created.request_id)
    )
    assert (withdrawn.state, withdrawn.revoked_by) == (pb.REQUEST_STATE_REVOKED, "user:analyst")


async def test_every_decision_is_an_audit_record_committed_before_the_answer(sharing: Sharing) -> None:
    granted, other = sharing.registry.add(camera(1)), sharing.registry.add(camera(2))
    grant = await _approved_grant(sharing, [granted])
    stub = sharing.stub("analyst")
    answers = [
        await stub.Authorize(_playback(granted, sharing)),
        await stub.Authorize(_playback(other, sharing)),
    ]
    # The relay never runs here: what the outbox holds right after the answers is what was committed before.
    records = {r.record_id: r for r in await sharing.audits("video.playback")}
    allow, deny = (records[a.audit_record_id] for a in answers)
    assert allow.decision == audit_record_pb2.DECISION_ALLOWED
    assert (allow.grant_id, allow.purpose, allow.actor.id) == (
        grant.request_id,
        "PURPOSE_TRAFFIC_MANAGEMENT",
        "user:analyst",
    )
    assert list(allow.resources.device_ids) == [granted] and allow.approver.id == "user:officer"
    assert allow.HasField("footage")
    assert deny.decision == audit_record_pb2.DECISION_DENIED and list(deny.resources.device_ids) == [other]


async def test_a_decision_whose_audit_record_cannot_be_written_is_a_deny(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    await _approved_grant(sharing, [dev])
    stub = sharing.stub("analyst")
    assert (await stub.Authorize(_playback(dev, sharing))).allowed
    assert sharing.context is not None
    async with sharing.context.engine.begin() as conn:
        await conn.execute(text("DROP TABLE outbox"))  # every audit write now fails
    answer = await stub.Authorize(_playback(dev, sharing))
    assert (answer.allowed, answer.rule, answer.audit_record_id) == (False, "ACC-1", "")


async def test_only_a_service_may_name_another_principal(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    async with refused() as err:
        await sharing.stub("analyst").Authorize(_playback(dev, sharing, principal=principal("officer")))
    assert (err[0].code.name, err[0].field) == ("PERMISSION_DENIED", "principal")


async def test_a_service_decides_for_the_principal_it_names(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    await _approved_grant(sharing, [dev])
    service = sharing.stub("service")
    for_analyst = await service.Authorize(_playback(dev, sharing, principal=principal("analyst")))
    for_partner = await service.Authorize(_playback(dev, sharing, principal=principal("partner")))
    assert (for_analyst.allowed, for_partner.allowed) == (True, False)
    record = next(
        r for r in await sharing.audits("video.playback") if r.record_id == for_analyst.audit_record_id
    )
    assert (record.actor.id, record.attributes["asked_by"]) == ("user:analyst", "service:archive")


async def test_a_device_unknown_to_the_registry_is_denied(sharing: Sharing) -> None:
    answer = await sharing.stub("officer").Authorize(
        pb.AuthorizeRequest(action=pb.ACTION_LIVE_VIEW, device_id=device_id(999))
    )
    assert (answer.allowed, answer.rule) == (False, "ACC-2")
    assert "unknown device" in answer.reason
    assert sharing.registry.asked == [device_id(999)]


async def test_a_device_registered_a_moment_ago_is_known_at_once(sharing: Sharing) -> None:
    # The service is running and has heard no event about it; the registry has it.
    dev = sharing.registry.add(camera(7))
    owner = await sharing.stub("metro").Authorize(
        pb.AuthorizeRequest(action=pb.ACTION_LIVE_VIEW, device_id=dev)
    )
    assert owner.allowed, owner.reason
    assert sharing.registry.asked == [dev]


async def test_a_request_without_purpose_scope_or_expiry_is_refused_naming_each_field(
    sharing: Sharing,
) -> None:
    bad = playback_request([], sharing.clock, purpose=pb.PURPOSE_UNSPECIFIED, valid_until=None)
    async with refused() as err:
        await sharing.stub("analyst").CreateAccessRequest(bad)
    fields = {f for f, _ in err[0].violations}
    assert err[0].code.name == "INVALID_ARGUMENT" and err[0].rule == "ACC-3"
    assert {"purpose", "scope", "valid_until"} <= fields


async def test_playback_without_a_footage_window_is_refused(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    async with refused() as err:
        await sharing.stub("analyst").CreateAccessRequest(
            playback_request([dev], sharing.clock, footage_window=None)
        )
    assert (err[0].rule, err[0].field) == ("ACC-3", "footage_window")


async def test_an_external_export_needs_an_approval_document_and_two_officers(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    request = playback_request([dev], sharing.clock, actions=[pb.ACTION_EXPORT])
    async with refused() as err:
        await sharing.stub("analyst").CreateAccessRequest(request)
    assert (err[0].code.name, err[0].rule) == ("INVALID_ARGUMENT", "ACC-4")
    assert {"approval_document_ref", "officers"} <= {f for f, _ in err[0].violations}
    request.access_request.approval_document_ref = "PSB-2026-118"
    request.access_request.officers.extend(
        [pb.Officer(name="Li Wei", work_id="031204"), pb.Officer(name="Zhao Min", work_id="031877")]
    )
    created = await sharing.stub("analyst").CreateAccessRequest(request)
    assert created.state == pb.REQUEST_STATE_PENDING


async def test_a_refused_request_is_audited_as_denied_with_its_rule(sharing: Sharing) -> None:
    bad = playback_request([], sharing.clock)
    async with refused():
        await sharing.stub("analyst").CreateAccessRequest(bad)
    records = await sharing.audits("sharing.request.create")
    assert [(r.decision, r.rule_id) for r in records] == [(audit_record_pb2.DECISION_DENIED, "ACC-3")]


async def test_an_officers_live_view_of_a_public_place_is_approved_automatically(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    request = playback_request(
        [dev],
        sharing.clock,
        actions=[pb.ACTION_LIVE_VIEW],
        footage_window=None,
        valid_until=None,
        purpose=pb.PURPOSE_PUBLIC_ORDER,
    )
    request.access_request.valid_until.FromDatetime(sharing.clock() + timedelta(hours=8))
    created = await sharing.stub("officer").CreateAccessRequest(request)
    assert created.state == pb.REQUEST_STATE_APPROVED
    answer = await sharing.stub("officer").Authorize(
        pb.AuthorizeRequest(action=pb.ACTION_LIVE_VIEW, device_id=dev)
    )
    assert answer.allowed and answer.unmasked_allowed  # the demo officer holds the unmask right


async def test_a_lapsed_grant_expires_with_grant_expired(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    grant = await _approved_grant(sharing, [dev])
    sharing.clock.advance(days=8)
    assert sharing.servicer is not None
    await sharing.servicer.expire(grant.request_id)
    got = await sharing.stub("analyst").GetAccessRequest(
        pb.GetAccessRequestRequest(request_id=grant.request_id)
    )
    assert got.state == pb.REQUEST_STATE_EXPIRED
    expired = [e for e in await sharing.events(topic=topics.SHARING_EVENTS) if e.key == grant.request_id]
    assert isinstance(expired[-1].message, events_pb2.GrantExpired)


async def test_another_units_request_is_not_disclosed_to_a_partner(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(1))
    created = await sharing.stub("analyst").CreateAccessRequest(playback_request([dev], sharing.clock))
    async with refused() as err:
        await sharing.stub("partner").GetAccessRequest(
            pb.GetAccessRequestRequest(request_id=created.request_id)
        )
    assert err[0].code.name == "NOT_FOUND"
    listed = await sharing.stub("partner").ListAccessRequests(pb.ListAccessRequestsRequest())
    assert list(listed.access_requests) == []


async def test_secret_facts_set_by_an_administrator_apply_to_the_next_decision(sharing: Sharing) -> None:
    dev = sharing.registry.add(camera(3, secret=True))
    stub = sharing.stub("metro")
    assert not (await stub.Authorize(pb.AuthorizeRequest(action=pb.ACTION_LIVE_VIEW, device_id=dev))).allowed
    await sharing.stub("admin").SetPrincipalFacts(
        pb.SetPrincipalFactsRequest(facts=pb.PrincipalFacts(principal_id="user:metro", secret_clearance=True))
    )
    assert (await stub.Authorize(pb.AuthorizeRequest(action=pb.ACTION_LIVE_VIEW, device_id=dev))).allowed
    async with refused() as err:
        await stub.SetPrincipalFacts(
            pb.SetPrincipalFactsRequest(facts=pb.PrincipalFacts(principal_id="user:metro"))
        )
    assert err[0].code.name == "PERMISSION_DENIED"
