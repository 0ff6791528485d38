"""Partner subscriptions exist only inside an approved ACTION_SUBSCRIBE_EVENTS grant of the partner's unit."""

from __future__ import annotations

from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_testing.calls import refused

from .conftest import Sharing, camera, playback_request


async def _subscribe_grant(sharing: Sharing, devices: list[str]) -> pb.AccessRequest:
    request = playback_request(
        devices, sharing.clock, actions=[pb.ACTION_SUBSCRIBE_EVENTS], footage_window=None
    )
    created = await sharing.stub("partner").CreateAccessRequest(request)
    return await sharing.stub("officer").ApproveAccessRequest(
        pb.ApproveAccessRequestRequest(request_id=created.request_id)
    )


async def test_a_partner_subscribes_inside_its_grant(sharing: Sharing) -> None:
    one, two = sharing.registry.add(camera(1)), sharing.registry.add(camera(2))
    grant = await _subscribe_grant(sharing, [one, two])
    sub = await sharing.stub("partner").CreateSubscription(
        pb.CreateSubscriptionRequest(
            subscription=pb.Subscription(
                grant_id=grant.request_id,
                scope=pb.Scope(device_ids=[one]),
                event_types=["vigil.registry.v1.DeviceWentOffline"],
            )
        )
    )
    assert sub.partner_unit_id == grant.requester.unit and sub.subscription_id
    listed = await sharing.stub("partner").ListSubscriptions(pb.ListSubscriptionsRequest())
    assert [s.subscription_id for s in listed.subscriptions] == [sub.subscription_id]


async def test_a_subscription_beyond_its_grants_scope_is_refused(sharing: Sharing) -> None:
    one, two = sharing.registry.add(camera(1)), sharing.registry.add(camera(2))
    grant = await _subscribe_grant(sharing, [one])
    async with refused() as err:
        await sharing.stub("partner").CreateSubscription(
            pb.CreateSubscriptionRequest(
                subscription=pb.Subscription(grant_id=grant.request_id, scope=pb.Scope(device_ids=[one, two]))
            )
        )
    assert (err[0].code.name, err[0].field) == ("PERMISSION_DENIED", "subscription.scope")


async def test_a_subscription_on_a_revoked_grant_is_refused(sharing: Sharing) -> None:
    one = sharing.registry.add(camera(1))
    grant = await _subscribe_grant(sharing, [one])
    await sharing.stub("officer").RevokeGrant(pb.RevokeGrantRequest(grant_id=grant.request_id))
    async with refused() as err:
        await sharing.stub("partner").CreateSubscription(
            pb.CreateSubscriptionRequest(
                subscription=pb.Subscription(grant_id=grant.request_id, scope=pb.Scope(device_ids=[one]))
            )
        )
    assert (err[0].code.name, err[0].rule) == ("PERMISSION_DENIED", "ACC-3")
