"""The decision matrix through the real Authorize RPC: every demo principal × every action × devices in and out
of scope (and secret-related, privately funded, owned elsewhere, unknown) — deny unless a grant or a documented
default says otherwise; one approved grant flips exactly its own cells (ACC-1, ACC-2, ACC-3, ACC-6, ACC-7, ACC-8).

The documented defaults (README "SharingService", domain/policy.py): a unit's operators may view, play back
and export their own unit's devices (not secret-related ones, ACC-6); a contractor may do what their contract
authorises inside its scope (ACC-8). SHARING_POLICE_DEFAULT_ACTIONS is empty by default, so officers get
nothing without a grant.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc

from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit.grpc_client import make_channel
from vigil_testing.calls import refused

from .conftest import (
    PRINCIPALS,
    PSB,
    Sharing,
    _ts,
    camera,
    device_id,
    playback_request,
    principal,
    window,
)

AUDIT = ("11320200014286927N", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
# A maintenance firm under contract to the metro company.
CONTRACTOR = ("91320200MA1W7KQ30P", "UNIT_KIND_ENTERPRISE")
WHO = {
    **PRINCIPALS,
    "auditor": {"unit": AUDIT[0], "unit_kind": AUDIT[1], "roles": ["ROLE_AUDITOR"]},
    "contractor": {"unit": CONTRACTOR[0], "unit_kind": CONTRACTOR[1], "roles": ["ROLE_CONTRACTOR"]},
}
ACTIONS = (pb.ACTION_LIVE_VIEW, pb.ACTION_PLAYBACK, pb.ACTION_EXPORT, pb.ACTION_SUBSCRIBE_EVENTS)
OWNER_ACTIONS = {pb.ACTION_LIVE_VIEW, pb.ACTION_PLAYBACK, pb.ACTION_EXPORT}

# Devices, by role in the matrix: all but "foreign" and "unknown" belong to the metro company.
GRANTED = "granted"  # the one device the grant names
OTHER = "other"  # the metro's too, out of the grant's scope (inside the contractor's contract)
SECRET = "secret"  # secret-related (ACC-6)
PRIVATE = "private"  # privately funded (ACC-7)
FOREIGN = "foreign"  # the public security bureau's own camera
UNKNOWN = "unknown"  # no one has heard of it
DEVICES = {
    GRANTED: camera(1),
    OTHER: camera(2),
    SECRET: camera(3, secret=True),
    PRIVATE: camera(4, funding=reg_pb.FUNDING_PRIVATE),
    FOREIGN: camera(5, owner=PSB[0]),
}
DEVICE_IDS = {**{k: d.device_id for k, d in DEVICES.items()}, UNKNOWN: device_id(999_999)}

Cell = tuple[str, int, str]  # (principal, action, device role)


async def _setup(sharing: Sharing) -> None:
    """Register the devices with the fake registry, open a channel per principal, give the contractor a
    contract (live view of the metro's "other" camera for 30 days)."""
    for device in DEVICES.values():
        sharing.registry.add(device)
    address = f"127.0.0.1:{sharing.settings.grpc_port}"
    for who, claims in WHO.items():
        if who not in sharing.channels:
            token = sharing.issuer.mint(sub=f"user:{who}", name=who, **claims)
            sharing.channels[who] = make_channel(address, token=token)
    await sharing.stub("admin").SetPrincipalFacts(
        pb.SetPrincipalFactsRequest(
            facts=pb.PrincipalFacts(
                principal_id="user:contractor",
                contract=pb.Contract(
                    contract_id="OM-2026-017",
                    scope=pb.Scope(device_ids=[DEVICE_IDS[OTHER]]),
                    end_time=_ts(sharing.clock() + timedelta(days=30)),
                ),
            )
        )
    )


async def _matrix(sharing: Sharing) -> dict[Cell, pb.AuthorizeResponse]:
    """Every cell's decision, asked by the principal itself (two hours of yesterday's footage)."""
    read = window(sharing.clock() - timedelta(hours=20), 2)

    async def one(who: str, action: int, role: str) -> tuple[Cell, pb.AuthorizeResponse]:
        request = pb.AuthorizeRequest(action=action, device_id=DEVICE_IDS[role], footage_window=read)
        return (who, action, role), await sharing.stub(who).Authorize(request)

    cells = [(who, action, role) for who in WHO for action in ACTIONS for role in DEVICE_IDS]
    return dict(await asyncio.gather(*(one(*cell) for cell in cells)))


def _default_allows(cell: Cell) -> bool:
    """The documented defaults, and nothing else, allow without a grant."""
    who, action, role = cell
    if who == "metro":
        return action in OWNER_ACTIONS and role in (GRANTED, OTHER, PRIVATE)
    if who == "contractor":
        return action == pb.ACTION_LIVE_VIEW and role == OTHER
    return False


def _allowed(matrix: dict[Cell, pb.AuthorizeResponse]) -> set[Cell]:
    return {cell for cell, answer in matrix.items() if answer.allowed}


def _name(cell: Cell) -> str:
    who, action, role = cell
    return f"{who}/{pb.Action.Name(action)}/{role}"


async def test_without_a_grant_only_the_documented_defaults_allow(sharing: Sharing) -> None:
    await _setup(sharing)
    matrix = await _matrix(sharing)
    expected = {cell for cell in matrix if _default_allows(cell)}
    assert sorted(map(_name, _allowed(matrix))) == sorted(map(_name, expected))
    assert len(matrix) == len(WHO) * len(ACTIONS) * len(DEVICE_IDS)
    # Every refusal says why, citing the rule it rests on.
    assert all(a.reason and a.rule for a in matrix.values() if not a.allowed)
    # Secret-related devices are refused for the clearance itself, to all but the cleared officer (seeded).
    assert {a.rule for c, a in matrix.items() if c[2] == SECRET and c[0] != "officer"} == {"ACC-6"}


async def test_one_approved_grant_flips_exactly_its_own_cells_to_allow(sharing: Sharing) -> None:
    await _setup(sharing)
    before = await _matrix(sharing)
    # The analyst asks for live view and playback of one metro camera; an officer approves.
    created = await sharing.stub("analyst").CreateAccessRequest(
        playback_request(
            [DEVICE_IDS[GRANTED]], sharing.clock, actions=[pb.ACTION_LIVE_VIEW, pb.ACTION_PLAYBACK]
        )
    )
    approved = await sharing.stub("officer").ApproveAccessRequest(
        pb.ApproveAccessRequestRequest(request_id=created.request_id)
    )
    assert approved.state == pb.REQUEST_STATE_APPROVED
    after = await _matrix(sharing)

    flipped = _allowed(after) - _allowed(before)
    assert sorted(map(_name, flipped)) == [
        "analyst/ACTION_LIVE_VIEW/granted",
        "analyst/ACTION_PLAYBACK/granted",
    ]
    assert _allowed(before) <= _allowed(after)  # a grant takes nothing away
    assert {after[cell].grant_id for cell in flipped} == {created.request_id}


async def test_every_matrix_decision_is_an_audit_record_allowed_or_denied(sharing: Sharing) -> None:
    await _setup(sharing)
    matrix = await _matrix(sharing)
    ids = {a.audit_record_id for a in matrix.values()}
    assert "" not in ids and len(ids) == len(matrix)
    recorded = {r.record_id for r in await sharing.audits() if r.action.startswith(("video.", "events."))}
    assert ids <= recorded


async def test_a_principal_cannot_ask_the_matrix_on_someone_elses_behalf(sharing: Sharing) -> None:
    await _setup(sharing)
    async with refused() as err:
        await sharing.stub("metro").Authorize(
            pb.AuthorizeRequest(
                action=pb.ACTION_LIVE_VIEW, device_id=DEVICE_IDS[GRANTED], principal=principal("analyst")
            )
        )
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "ACC-2")
