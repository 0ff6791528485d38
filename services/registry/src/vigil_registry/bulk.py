"""ImportDevices: a batch of devices registered under RegisterDevice's rules in one transaction.

What a device costs through RegisterDevice is mostly the call around it (token check, interceptors, a
transaction of its own or a small group commit); a batch pays those once. The rules do not change: every
device of the batch goes through the same checks RegisterDevice makes (REG-1 first, whoever asks; then
usecases.registration_violations), and the batch is all or nothing — one refused device refuses the call,
with every violation of every refused device listed (field `devices[i].…`), so a client fixes or drops
those devices and sends the rest again. Accepted: a DeviceRegistered event per device (consumers keep
per-device events) and one audit record naming every device of the batch; refused: a DENIED audit record
per refused device, naming its rule, as RegisterDevice would have written for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

import grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit import audit
from vigil_kit.auth import Principal
from vigil_kit.errors import InvalidArgument, NotFound, VigilError
from vigil_registry import access, codec, metrics
from vigil_registry.domain import rules, usecases
from vigil_registry.domain.model import Clock, Device, PlaceCategory, RegistryPolicy, Site, Unit
from vigil_registry.events import Publisher
from vigil_registry.store import DeviceRecord, RegistryStore, _device_values

log = logging.getLogger(__name__)

# Devices in one ImportDevices call at most: one transaction, and a request far below gRPC's 4 MiB.
IMPORT_MAX = 1000
ACTION = "registry.device.register"


@dataclass(frozen=True)
class Problem:
    """One reason a device of the batch is refused: its status, rule, field (`device.…`) and message."""

    code: grpc.StatusCode
    rule: str | None
    field: str
    message: str

    @classmethod
    def of_violation(cls, v: rules.Violation) -> Problem:
        return cls(v.error.code, v.rule, v.field, v.message)

    @classmethod
    def of_error(cls, e: VigilError) -> Problem:
        return cls(e.code, e.rule, e.field or "device", e.message)

    def describe(self) -> str:
        """`STATUS [RULE]: message`, as the CLI prints a refusal of RegisterDevice."""
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.code.name}{rule}: {self.message}"


def indexed_field(index: int, field: str) -> str:
    """`device.area_type` of the i-th device → `devices[i].area_type`."""
    head, _, rest = field.partition(".")
    if head == "device":
        return f"devices[{index}].{rest}" if rest else f"devices[{index}]"
    return f"devices[{index}].{field}" if field else f"devices[{index}]"


class _Refused(Exception):
    """Raised inside the batch's transaction so that it rolls back; carries the refused devices."""

    def __init__(self, problems: Mapping[int, Sequence[Problem]]) -> None:
        super().__init__(f"{len(problems)} devices refused")
        self.problems = problems


class Importer:
    """Runs ImportDevices calls (the servicer delegates to it)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: RegistryStore,
        policy: RegistryPolicy,
        clock: Clock,
        publisher: Publisher,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.policy = policy
        self.clock = clock
        self.publisher = publisher

    async def run(self, p: Principal, msgs: Sequence[pb.Device]) -> list[pb.Device]:
        if not 1 <= len(msgs) <= IMPORT_MAX:
            await self._refuse_call(
                p,
                msgs,
                InvalidArgument(
                    f"an import carries 1 to {IMPORT_MAX} devices, not {len(msgs)}", field="devices"
                ),
            )
        devices: list[Device] = []
        problems: dict[int, list[Problem]] = {}
        for i, msg in enumerate(msgs):
            try:
                device = codec.device_from_pb(msg)
            except VigilError as e:
                problems[i] = [Problem.of_error(e)]
                continue
            devices.append(device)
            # REG-1 is absolute, whoever asks: refused before anything else is looked at (as RegisterDevice).
            reg1 = rules.check_area_type(device.area_type, PlaceCategory.UNSPECIFIED, self.policy)
            if reg1:
                problems[i] = [Problem.of_violation(v) for v in reg1]
        if problems:
            await self._refuse(p, msgs, problems)
        try:
            access.require_writer(p, "devices")
        except VigilError as e:
            await self._refuse_call(p, msgs, e)
        for attempt in range(2):
            try:
                async with self.sessions.begin() as s:
                    return await self._register(s, p, devices)
            except _Refused as refused:
                await self._refuse(p, msgs, refused.problems)
            except IntegrityError:
                # A concurrent call registered one of these ids between our check and our insert (the
                # check and the insert are one transaction, so only PostgreSQL's concurrent writers get
                # here): check again, which now names the taken ids.
                if attempt:
                    raise
                log.info("an import raced another registration; checking the batch again")
        raise AssertionError("unreachable")

    async def _register(self, s: AsyncSession, p: Principal, devices: Sequence[Device]) -> list[pb.Device]:
        now = self.clock()
        site_map = await self.store.sites_by_id(s, (d.site_id for d in devices))
        unit_map = await self.store.units_by_id(s, (d.owner_unit_id for d in devices))
        taken = await self.store.existing_device_ids(s, (d.device_id for d in devices))
        problems: dict[int, list[Problem]] = {}
        accepted: list[tuple[Device, Site, Unit]] = []
        for i, device in enumerate(devices):
            site = site_map.get(device.site_id)
            owner = unit_map.get(device.owner_unit_id)
            found: list[Problem] = []
            if site is None:
                found.append(
                    Problem.of_error(
                        NotFound(f"site {device.site_id!r} does not exist", field="device.site_id")
                    )
                )
            if owner is None:
                found.append(
                    Problem.of_error(
                        NotFound(
                            f"owner unit {device.owner_unit_id!r} does not exist",
                            field="device.owner_unit_id",
                        )
                    )
                )
            if site is not None and owner is not None:
                # A second device of the batch with the same id is refused like an id already registered.
                found += [
                    Problem.of_violation(v)
                    for v in usecases.registration_violations(
                        device,
                        site=site,
                        owner=owner,
                        caller=p,
                        policy=self.policy,
                        id_taken=device.device_id in taken,
                    )
                ]
            taken.add(device.device_id)
            if found:
                problems[i] = found
            elif not problems:  # once a device is refused nothing is written: the rest are only checked
                assert site is not None and owner is not None
                accepted.append(
                    (
                        usecases.registered(device, site=site, policy=self.policy, clock=lambda: now),
                        site,
                        owner,
                    )
                )
        if problems:
            raise _Refused(problems)
        return await self._write(s, p, accepted, now)

    async def _write(
        self, s: AsyncSession, p: Principal, accepted: Sequence[tuple[Device, Site, Unit]], now: datetime
    ) -> list[pb.Device]:
        """The batch's rows, a DeviceRegistered event per device and one audit record naming them all."""
        actor = p.to_proto()
        rows = []
        events = []
        out: list[pb.Device] = []
        memo: dict[object, object] = {}  # the batch's shared owners, sites and times, built once
        for device, site, owner in accepted:
            rows.append(_device_values(device, site, now))
            # The record a read would give back: `registered` already holds what the row stores.
            msg = codec.device_to_pb(
                DeviceRecord(device=device, site=site, owner=owner, updated_at=now), memo=memo
            )
            events.append((device.device_id, events_pb2.DeviceRegistered(device=msg, actor=actor)))
            out.append(msg)
        await self.store.insert_devices(s, rows)
        await self.publisher.registry_events(s, events)
        # Written last, with the relay's notifier: it wakes the relay once the batch has committed.
        self.publisher.audit(
            s,
            actor=p,
            action=ACTION,
            resources={
                "device_ids": [d.device_id for d, _, _ in accepted],
                "site_ids": sorted({d.site_id for d, _, _ in accepted}),
                "unit_ids": sorted({d.owner_unit_id for d, _, _ in accepted}),
            },
            attributes={"rpc": "ImportDevices", "devices": str(len(accepted))},
            now=now,
        )
        return out

    # --- refusals ----------------------------------------------------------------------------------

    async def _refuse(
        self, p: Principal, msgs: Sequence[pb.Device], problems: Mapping[int, Sequence[Problem]]
    ) -> NoReturn:
        """Commit a DENIED audit record per refused device (its first problem's rule), then raise the
        call's INVALID_ARGUMENT listing every problem of every refused device."""
        now = self.clock()
        async with self.sessions.begin() as s:
            for i, found in sorted(problems.items()):
                first = found[0]
                metrics.REFUSALS.labels(rule=first.rule or first.code.name).inc()
                msg = msgs[i]
                self.publisher.audit(
                    s,
                    actor=p,
                    action=ACTION,
                    decision=audit.DENIED,
                    resources={
                        k: [v]
                        for k, v in (
                            ("device_ids", msg.device_id),
                            ("site_ids", msg.site_id),
                            ("unit_ids", msg.owner_unit_id),
                        )
                        if v
                    },
                    rule_id=first.rule or "",
                    reason=first.message,
                    attributes={
                        "code": first.code.name,
                        "field": first.field,
                        "rpc": "ImportDevices",
                        "index": str(i),
                        "devices": str(len(msgs)),
                    },
                    now=now,
                )
        raise refusal(len(msgs), problems)

    async def _refuse_call(self, p: Principal, msgs: Sequence[pb.Device], e: VigilError) -> NoReturn:
        """A refusal of the whole call (not of one device): one DENIED audit record naming its devices."""
        metrics.REFUSALS.labels(rule=e.rule or e.code.name).inc()
        attributes = {"code": e.code.name, "rpc": "ImportDevices", "devices": str(len(msgs))}
        if e.field:
            attributes["field"] = e.field
        async with self.sessions.begin() as s:
            self.publisher.audit(
                s,
                actor=p,
                action=ACTION,
                decision=audit.DENIED,
                resources={"device_ids": [m.device_id for m in msgs if m.device_id]},
                rule_id=e.rule or "",
                reason=e.message,
                attributes=attributes,
                now=self.clock(),
            )
        raise e


def refusal(total: int, problems: Mapping[int, Sequence[Problem]]) -> InvalidArgument:
    """The call's error: the first refused device's rule and field lead; BadRequest lists every problem."""
    first_index = min(problems)
    first = problems[first_index][0]
    listed = [
        (indexed_field(i, f.field), f.describe()) for i, found in sorted(problems.items()) for f in found
    ]
    return InvalidArgument(
        f"{len(problems)} of {total} devices refused, so none was registered; devices[{first_index}]: "
        f"{first.describe()}",
        rule=first.rule,
        field=indexed_field(first_index, first.field),
        violations=listed,
    )
