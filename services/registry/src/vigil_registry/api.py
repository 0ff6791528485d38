"""The RegistryService servicer: request → domain use-case → response, with events and audit records.

Every change commits with exactly one event (outbox) and one audit record naming who changed what.
Every refusal is raised as a vigil_kit error (the kit maps it to a rich status naming the rule and the
field) after a DENIED audit record carrying the rule id is committed in its own transaction — so a
refused REG-1 registration is countable later by the compliance report.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_kit import audit, db
from vigil_kit.auth import Principal, current_principal
from vigil_kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, VigilError
from vigil_kit.groupcommit import GroupCommit
from vigil_kit.paging import decode_token, encode_token, page_size
from vigil_registry import access, codec, compliance, metrics
from vigil_registry.bulk import Importer
from vigil_registry.domain import filing as filing_rules
from vigil_registry.domain import rules, usecases
from vigil_registry.domain.model import Clock, Device, PlaceCategory, RegistryPolicy
from vigil_registry.events import Publisher
from vigil_registry.status import DeadlineTracker, StatusService
from vigil_registry.store import DeviceFilter, DeviceRecord, FilingRecord, RegistryStore

log = logging.getLogger(__name__)

SERVICE_NAME = "vigil.registry.v1.RegistryService"
# RegisterDevice calls committed together at most (see GroupCommit).
REGISTER_BATCH_MAX = 200


def _division_prefix(prefix: str, field: str = "division_prefix") -> str:
    prefix = prefix.strip()
    if prefix and not (prefix.isascii() and prefix.isdigit() and len(prefix) <= 6):
        raise InvalidArgument(f"{field} {prefix!r} must be 1–6 digits", field=field)
    return prefix


@dataclass(frozen=True)
class _Registration:
    principal: Principal
    device: Device
    resources: Mapping[str, Iterable[str]]


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        store: RegistryStore,
        policy: RegistryPolicy,
        clock: Clock,
        publisher: Publisher,
        status: StatusService,
        tracker: DeadlineTracker,
        transactions: db.ThreadedTransactions | None = None,
    ) -> None:
        self.sessions = sessions
        # The read RPCs' sessions: on SQLite they read a snapshot instead of queueing for the write lock.
        self.read_sessions = db.read_session_factory(sessions)
        # SQLite files only: ListDevices reads its page in one hand-off to this worker thread (a read
        # session costs a thread round trip per statement, fetch and cursor, several times the query).
        self.transactions = transactions
        self.store = store
        self.policy = policy
        self.clock = clock
        self.publisher = publisher
        self.status = status
        self.tracker = tracker
        self._registrations: GroupCommit[_Registration, pb.Device | Exception] = GroupCommit(
            self._register_batch, REGISTER_BATCH_MAX, name="registry-group-commit"
        )
        self._importer = Importer(
            sessions=sessions, store=store, policy=policy, clock=clock, publisher=publisher
        )

    # --- refusals ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _audited(
        self, p: Principal, action: str, resources: Mapping[str, Iterable[str]]
    ) -> AsyncIterator[None]:
        """On a refusal: commit a DENIED audit record with the rule id in its own transaction, re-raise."""
        try:
            yield
        except VigilError as e:
            metrics.REFUSALS.labels(rule=e.rule or e.code.name).inc()
            resources = {k: [i for i in v if i] for k, v in resources.items()}
            attributes = {"code": e.code.name}
            if e.field:
                attributes["field"] = e.field
            async with self.sessions.begin() as s:
                self.publisher.audit(
                    s,
                    actor=p,
                    action=action,
                    decision=audit.DENIED,
                    resources=resources,
                    rule_id=e.rule or "",
                    reason=e.message,
                    attributes=attributes,
                    now=self.clock(),
                )
            raise

    def _allowed(
        self, s: AsyncSession, p: Principal, action: str, resources: Mapping[str, Iterable[str]], **kw: object
    ) -> None:
        self.publisher.audit(s, actor=p, action=action, resources=resources, now=self.clock(), **kw)  # type: ignore[arg-type]

    # --- units -------------------------------------------------------------------------------------

    async def CreateUnit(self, request: pb.CreateUnitRequest, context: object) -> pb.Unit:
        p = current_principal()
        unit = codec.unit_from_pb(request.unit)
        async with self._audited(p, "registry.unit.create", {"unit_ids": [unit.unit_id]}):
            usecases.create_unit(unit, caller=p)
            now = self.clock()
            try:
                async with self.sessions.begin() as s:
                    if await self.store.get_unit(s, unit.unit_id) is not None:
                        raise AlreadyExists(f"unit {unit.unit_id} already exists", field="unit.unit_id")
                    await self.store.insert_unit(s, unit, now)
                    stored = await self.store.get_unit(s, unit.unit_id)
                    assert stored is not None
                    msg = codec.unit_to_pb(*stored)
                    self.publisher.registry_event(
                        s, unit.unit_id, events_pb2.UnitCreated(unit=msg, actor=p.to_proto())
                    )
                    self._allowed(s, p, "registry.unit.create", {"unit_ids": [unit.unit_id]})
            except IntegrityError:
                raise AlreadyExists(f"unit {unit.unit_id} already exists", field="unit.unit_id") from None
        return msg

    async def GetUnit(self, request: pb.GetUnitRequest, context: object) -> pb.Unit:
        p = current_principal()
        async with self._audited(p, "registry.unit.get", {"unit_ids": [request.unit_id]}):
            scope = access.read_scope(p, "units")
            if scope is not None and scope != request.unit_id:
                raise PermissionDenied(
                    f"ACC-2 (799 Art. 16): a unit operator reads only its own unit {scope}",
                    rule="ACC-2",
                    field="unit_id",
                )
        async with self.read_sessions() as s:
            stored = await self.store.get_unit(s, request.unit_id)
        if stored is None:
            raise NotFound(f"unit {request.unit_id!r} does not exist", field="unit_id")
        return codec.unit_to_pb(*stored)

    async def ListUnits(self, request: pb.ListUnitsRequest, context: object) -> pb.ListUnitsResponse:
        p = current_principal()
        async with self._audited(p, "registry.unit.list", {}):
            scope = access.read_scope(p, "units")
        limit = page_size(request.page_size)
        kind = None if request.kind == 0 else codec.unit_kind(request.kind)
        async with self.read_sessions() as s:
            rows = await self.store.list_units(
                s, kind=kind, only=scope, after=decode_token(request.page_token), limit=limit + 1
            )
        out = pb.ListUnitsResponse(units=[codec.unit_to_pb(u, st) for u, st in rows[:limit]])
        if len(rows) > limit:
            out.next_page_token = encode_token(rows[limit - 1][0].unit_id)
        return out

    async def UpdateUnit(self, request: pb.UpdateUnitRequest, context: object) -> pb.Unit:
        p = current_principal()
        unit_id = request.unit.unit_id.strip()
        async with self._audited(p, "registry.unit.update", {"unit_ids": [unit_id]}):
            async with self.sessions.begin() as s:
                stored = await self.store.get_unit(s, unit_id)
                if stored is None:
                    raise NotFound(f"unit {unit_id!r} does not exist", field="unit.unit_id")
                before = stored[0]
                after = codec.apply_mask(
                    before,
                    codec.unit_from_pb(request.unit),
                    request.update_mask.paths,
                    ("name", "kind"),
                    "unit",
                )
                after = usecases.update_unit(before, after, caller=p)
                if after == before:
                    return codec.unit_to_pb(*stored)
                await self.store.update_unit(s, after, self.clock())
                stored = await self.store.get_unit(s, unit_id)
                assert stored is not None
                msg = codec.unit_to_pb(*stored)
                changed = [f for f in ("name", "kind") if getattr(before, f) != getattr(after, f)]
                self.publisher.registry_event(
                    s, unit_id, events_pb2.UnitUpdated(unit=msg, changed_fields=changed, actor=p.to_proto())
                )
                self._allowed(
                    s,
                    p,
                    "registry.unit.update",
                    {"unit_ids": [unit_id]},
                    attributes={"changed": ",".join(changed)},
                )
        return msg

    # --- sites -------------------------------------------------------------------------------------

    async def CreateSite(self, request: pb.CreateSiteRequest, context: object) -> pb.Site:
        p = current_principal()
        resources = {"site_ids": [request.site.site_id], "unit_ids": [request.site.managing_unit_id]}
        async with self._audited(p, "registry.site.create", resources):
            access.require_writer(p, "sites")
            site = codec.site_from_pb(request.site)
            now = self.clock()
            try:
                async with self.sessions.begin() as s:
                    managing = await self.store.get_unit(s, site.managing_unit_id)
                    if managing is None:
                        raise NotFound(
                            f"managing unit {site.managing_unit_id!r} does not exist",
                            field="site.managing_unit_id",
                        )
                    usecases.create_site(site, managing_unit=managing[0], caller=p, policy=self.policy)
                    if await self.store.get_site(s, site.site_id) is not None:
                        raise AlreadyExists(f"site {site.site_id} already exists", field="site.site_id")
                    await self.store.insert_site(s, site, now)
                    stored = await self.store.get_site(s, site.site_id)
                    assert stored is not None
                    msg = codec.site_to_pb(*stored)
                    self.publisher.registry_event(
                        s, site.site_id, events_pb2.SiteCreated(site=msg, actor=p.to_proto())
                    )
                    self._allowed(s, p, "registry.site.create", resources)
            except IntegrityError:
                raise AlreadyExists(f"site {site.site_id} already exists", field="site.site_id") from None
        return msg

    async def _check_site_read(
        self, s: AsyncSession, p: Principal, site_id: str, managing_unit_id: str
    ) -> None:
        scope = access.read_scope(p, "sites")
        if scope is None or scope == managing_unit_id:
            return
        if await self.store.unit_has_device_at(s, scope, site_id):
            return
        raise PermissionDenied(
            f"ACC-2 (799 Art. 16): unit {scope} neither manages nor builds at site {site_id}",
            rule="ACC-2",
            field="site_id",
        )

    async def GetSite(self, request: pb.GetSiteRequest, context: object) -> pb.Site:
        p = current_principal()
        async with self._audited(p, "registry.site.get", {"site_ids": [request.site_id]}):
            access.read_scope(p, "sites")
        async with self.read_sessions() as s:
            stored = await self.store.get_site(s, request.site_id)
            if stored is None:
                raise NotFound(f"site {request.site_id!r} does not exist", field="site_id")
            async with self._audited(p, "registry.site.get", {"site_ids": [request.site_id]}):
                await self._check_site_read(s, p, request.site_id, stored[0].managing_unit_id)
        return codec.site_to_pb(*stored)

    async def ListSites(self, request: pb.ListSitesRequest, context: object) -> pb.ListSitesResponse:
        p = current_principal()
        async with self._audited(p, "registry.site.list", {}):
            scope = access.read_scope(p, "sites")
            managing = request.managing_unit_id.strip()
            if scope is not None:
                if managing and managing != scope:
                    raise PermissionDenied(
                        f"ACC-2 (799 Art. 16): a unit operator lists only the sites its unit {scope} manages",
                        rule="ACC-2",
                        field="managing_unit_id",
                    )
                managing = scope
        limit = page_size(request.page_size)
        category = None if request.place_category == 0 else codec.place_category(request.place_category)
        async with self.read_sessions() as s:
            rows = await self.store.list_sites(
                s,
                division_prefix=_division_prefix(request.division_prefix),
                place_category=category,
                managing_unit_id=managing,
                after=decode_token(request.page_token),
                limit=limit + 1,
            )
        out = pb.ListSitesResponse(sites=[codec.site_to_pb(site, st) for site, st in rows[:limit]])
        if len(rows) > limit:
            out.next_page_token = encode_token(rows[limit - 1][0].site_id)
        return out

    async def UpdateSite(self, request: pb.UpdateSiteRequest, context: object) -> pb.Site:
        p = current_principal()
        site_id = request.site.site_id.strip()
        resources = {"site_ids": [site_id]}
        async with self._audited(p, "registry.site.update", resources):
            access.require_writer(p, "sites")
            async with self.sessions.begin() as s:
                stored = await self.store.get_site(s, site_id)
                if stored is None:
                    raise NotFound(f"site {site_id!r} does not exist", field="site.site_id")
                before = stored[0]
                allowed = tuple(f for f in codec.SITE_INPUT_FIELDS if f != "site_id")
                after = codec.apply_mask(
                    before, codec.site_from_pb(request.site), request.update_mask.paths, allowed, "site"
                )
                managing = await self.store.get_unit(s, after.managing_unit_id)
                if managing is None:
                    raise NotFound(
                        f"managing unit {after.managing_unit_id!r} does not exist",
                        field="site.managing_unit_id",
                    )
                update = usecases.update_site(
                    before, after, managing_unit=managing[0], caller=p, policy=self.policy
                )
                if not update.changed_fields:
                    return codec.site_to_pb(*stored)
                await self.store.update_site(s, update.site, self.clock())
                stored = await self.store.get_site(s, site_id)
                assert stored is not None
                msg = codec.site_to_pb(*stored)
                self.publisher.registry_event(
                    s,
                    site_id,
                    events_pb2.SiteUpdated(
                        site=msg, changed_fields=list(update.changed_fields), actor=p.to_proto()
                    ),
                )
                self._allowed(
                    s,
                    p,
                    "registry.site.update",
                    {"site_ids": [site_id], "unit_ids": [after.managing_unit_id]},
                    attributes={"changed": ",".join(update.changed_fields)},
                )
        return msg

    # --- devices -----------------------------------------------------------------------------------

    async def _record(self, s: AsyncSession, device_id: str) -> DeviceRecord:
        record = await self.store.get_device_record(s, device_id)
        assert record is not None
        return record

    async def RegisterDevice(self, request: pb.RegisterDeviceRequest, context: object) -> pb.Device:
        p = current_principal()
        req = request.device
        resources = {
            "device_ids": [req.device_id],
            "site_ids": [req.site_id],
            "unit_ids": [req.owner_unit_id],
        }
        async with self._audited(p, "registry.device.register", resources):
            device = codec.device_from_pb(req)
            # REG-1 is absolute, whoever asks: refuse the fixed list before anything else is looked at.
            rules.raise_first(rules.check_area_type(device.area_type, PlaceCategory.UNSPECIFIED, self.policy))
            access.require_writer(p, "devices")
            result = await self._registrations.submit(_Registration(p, device, resources))
            if isinstance(result, Exception):
                raise result
        return result

    async def ImportDevices(
        self, request: pb.ImportDevicesRequest, context: object
    ) -> pb.ImportDevicesResponse:
        # All or nothing per call, every device under RegisterDevice's rules: see vigil_registry.bulk.
        devices = await self._importer.run(current_principal(), request.devices)
        return pb.ImportDevicesResponse(devices=devices)

    async def _register_batch(self, batch: Sequence[_Registration]) -> list[pb.Device | Exception]:
        """Registrations that arrived together, in one transaction (a group commit): each is checked
        alone and yields its device or its refusal; the accepted rows, their events and audit records
        commit together, and no caller hears of its registration before that commit."""
        try:
            return await self._register_together(batch)
        except IntegrityError:
            if len(batch) == 1:
                device = batch[0].device
                raise AlreadyExists(
                    f"REG-10: device id {device.device_id} is already registered; ids are unique",
                    rule="REG-10",
                    field="device.device_id",
                ) from None
        except VigilError:
            raise
        except Exception:
            if len(batch) == 1:
                raise
            log.exception("a group of registrations failed; registering them one by one")
        # One registration's fault must not fail the others: retry each alone.
        out: list[pb.Device | Exception] = []
        for one in batch:
            try:
                out.extend(await self._register_batch([one]))
            except Exception as e:  # this caller's own failure (a refusal, or INTERNAL)
                out.append(e)
        return out

    async def _register_together(self, batch: Sequence[_Registration]) -> list[pb.Device | Exception]:
        out: list[pb.Device | Exception] = []
        rows = []
        async with self.sessions.begin() as s:
            now = self.clock()
            site_map = await self.store.sites_by_id(s, (r.device.site_id for r in batch))
            unit_map = await self.store.units_by_id(s, (r.device.owner_unit_id for r in batch))
            taken = await self.store.existing_device_ids(s, (r.device.device_id for r in batch))
            for r in batch:
                device, p = r.device, r.principal
                try:
                    site = site_map.get(device.site_id)
                    if site is None:
                        raise NotFound(f"site {device.site_id!r} does not exist", field="device.site_id")
                    owner = unit_map.get(device.owner_unit_id)
                    if owner is None:
                        raise NotFound(
                            f"owner unit {device.owner_unit_id!r} does not exist",
                            field="device.owner_unit_id",
                        )
                    stored = usecases.register_device(
                        device,
                        site=site,
                        owner=owner,
                        caller=p,
                        policy=self.policy,
                        clock=self.clock,
                        id_taken=device.device_id in taken,
                    )
                except VigilError as e:
                    out.append(e)
                    continue
                taken.add(device.device_id)
                values, record = self.store.device_row(stored, site, owner, now)
                rows.append(values)
                msg = codec.device_to_pb(record)
                self.publisher.registry_event(
                    s, device.device_id, events_pb2.DeviceRegistered(device=msg, actor=p.to_proto())
                )
                self._allowed(s, p, "registry.device.register", r.resources)
                out.append(msg)
            await self.store.insert_devices(s, rows)
        return out

    async def _check_device_read(self, p: Principal, record: DeviceRecord) -> None:
        scope = access.read_scope(p, "devices")
        if scope is not None and scope != record.device.owner_unit_id:
            raise PermissionDenied(
                f"ACC-2 (799 Art. 16): unit {scope} reads only its own devices",
                rule="ACC-2",
                field="device_id",
            )

    async def GetDevice(self, request: pb.GetDeviceRequest, context: object) -> pb.Device:
        p = current_principal()
        async with self._audited(p, "registry.device.get", {"device_ids": [request.device_id]}):
            access.read_scope(p, "devices")
        async with self.read_sessions() as s:
            record = await self.store.get_device_record(s, request.device_id)
        if record is None:
            raise NotFound(f"device {request.device_id!r} is not registered", field="device_id")
        async with self._audited(p, "registry.device.get", {"device_ids": [request.device_id]}):
            await self._check_device_read(p, record)
        return codec.device_to_pb(record)

    async def ListDevices(self, request: pb.ListDevicesRequest, context: object) -> pb.ListDevicesResponse:
        p = current_principal()
        owner = request.owner_unit_id.strip()
        async with self._audited(p, "registry.device.list", {}):
            scope = access.read_scope(p, "devices")
            if scope is not None:
                if owner and owner != scope:
                    raise PermissionDenied(
                        f"ACC-2 (799 Art. 16): unit {scope} lists only its own devices",
                        rule="ACC-2",
                        field="owner_unit_id",
                    )
                owner = scope
        limit = page_size(request.page_size)
        f = DeviceFilter(
            division_prefix=_division_prefix(request.division_prefix),
            place_category=None
            if request.place_category == 0
            else codec.place_category(request.place_category),
            state=None if request.state == 0 else codec.device_state(request.state),
            owner_unit_id=owner,
            site_id=request.site_id.strip(),
        )
        after = decode_token(request.page_token)
        if self.transactions is not None:
            page = await self.store.list_device_rows(self.transactions.read, f, after=after, limit=limit + 1)
        else:
            async with self.read_sessions() as s:
                page = await self.store.list_device_rows(s.run_sync, f, after=after, limit=limit + 1)
        rows = page.rows
        out = pb.ListDevicesResponse()
        codec.page_into(replace(page, rows=rows[:limit]), out.devices)
        if len(rows) > limit:
            out.next_page_token = encode_token(rows[limit - 1][0])
        return out

    async def UpdateDevice(self, request: pb.UpdateDeviceRequest, context: object) -> pb.Device:
        p = current_principal()
        device_id = request.device.device_id.strip()
        resources = {"device_ids": [device_id]}
        async with self._audited(p, "registry.device.update", resources):
            access.require_writer(p, "devices")
            async with self.sessions.begin() as s:
                before = await self.store.get_device(s, device_id, for_update=True)
                if before is None:
                    raise NotFound(f"device {device_id!r} is not registered", field="device.device_id")
                allowed = tuple(f for f in codec.DEVICE_INPUT_FIELDS if f != "device_id")
                after = codec.apply_mask(
                    before, codec.device_from_pb(request.device), request.update_mask.paths, allowed, "device"
                )
                site = await self.store.get_site(s, after.site_id)
                if site is None:
                    raise NotFound(f"site {after.site_id!r} does not exist", field="device.site_id")
                owner = await self.store.get_unit(s, after.owner_unit_id)
                if owner is None:
                    raise NotFound(
                        f"owner unit {after.owner_unit_id!r} does not exist", field="device.owner_unit_id"
                    )
                update = usecases.update_device(
                    before,
                    after,
                    site=site[0],
                    owner=owner[0],
                    caller=p,
                    policy=self.policy,
                    work_order_ref=request.work_order_ref,
                )
                if not update.changed_fields:
                    return codec.device_to_pb(await self._record(s, device_id))
                await self.store.update_device(s, update.device, site[0], self.clock())
                msg = codec.device_to_pb(await self._record(s, device_id))
                self.publisher.registry_event(
                    s,
                    device_id,
                    events_pb2.DeviceUpdated(
                        device=msg,
                        changed_fields=list(update.changed_fields),
                        work_order_ref=request.work_order_ref,
                        moved=update.moved,
                        actor=p.to_proto(),
                    ),
                )
                attributes = {"changed": ",".join(update.changed_fields)}
                if request.work_order_ref:
                    attributes["work_order_ref"] = request.work_order_ref
                self._allowed(
                    s,
                    p,
                    "registry.device.update",
                    {"device_ids": [device_id], "site_ids": [after.site_id]},
                    attributes=attributes,
                )
        self.tracker.track(update.device)
        return msg

    async def _transition(
        self,
        p: Principal,
        device_id: str,
        action: str,
        decide: object,
        event: object,
        attributes: Mapping[str, str] | None = None,
    ) -> pb.Device:
        """Load (locked) → domain transition → store + event + audit, for activate/suspend/decommission."""
        async with self._audited(p, action, {"device_ids": [device_id]}):
            access.require_writer(p, "devices")
            async with self.sessions.begin() as s:
                device = await self.store.get_device(s, device_id, for_update=True)
                if device is None:
                    raise NotFound(f"device {device_id!r} is not registered", field="device_id")
                site = await self.store.get_site(s, device.site_id)
                assert site is not None
                transition = await decide(s, device, site[0])  # type: ignore[operator]
                if not transition.changed:
                    return codec.device_to_pb(await self._record(s, device_id))
                await self.store.update_device(s, transition.device, site[0], self.clock())
                msg = codec.device_to_pb(await self._record(s, device_id))
                self.publisher.registry_event(s, device_id, event(msg))  # type: ignore[operator]
                self._allowed(
                    s,
                    p,
                    action,
                    {"device_ids": [device_id], "site_ids": [device.site_id]},
                    attributes=dict(attributes or {}),
                )
        self.tracker.track(transition.device)
        return msg

    async def ActivateDevice(self, request: pb.ActivateDeviceRequest, context: object) -> pb.Device:
        p = current_principal()

        async def decide(s: AsyncSession, device: Device, site: object) -> usecases.Transition:
            return usecases.activate_device(device, site=site, caller=p, policy=self.policy, clock=self.clock)  # type: ignore[arg-type]

        return await self._transition(
            p,
            request.device_id,
            "registry.device.activate",
            decide,
            lambda msg: events_pb2.DeviceActivated(device=msg, actor=p.to_proto()),
        )

    async def SuspendDevice(self, request: pb.SuspendDeviceRequest, context: object) -> pb.Device:
        p = current_principal()

        async def decide(s: AsyncSession, device: Device, site: object) -> usecases.Transition:
            return usecases.suspend_device(device, caller=p)

        return await self._transition(
            p,
            request.device_id,
            "registry.device.suspend",
            decide,
            lambda msg: events_pb2.DeviceSuspended(device=msg, reason=request.reason, actor=p.to_proto()),
            {"reason": request.reason} if request.reason else None,
        )

    async def DecommissionDevice(self, request: pb.DecommissionDeviceRequest, context: object) -> pb.Device:
        p = current_principal()

        async def decide(s: AsyncSession, device: Device, site: object) -> usecases.Transition:
            return usecases.decommission_device(device, caller=p, work_order_ref=request.work_order_ref)

        attributes = {"work_order_ref": request.work_order_ref}
        if request.reason:
            attributes["reason"] = request.reason
        return await self._transition(
            p,
            request.device_id,
            "registry.device.decommission",
            decide,
            lambda msg: events_pb2.DeviceDecommissioned(
                device=msg, work_order_ref=request.work_order_ref, reason=request.reason, actor=p.to_proto()
            ),
            attributes,
        )

    # --- keepalives --------------------------------------------------------------------------------

    async def Keepalive(self, request: pb.KeepaliveRequest, context: object) -> pb.KeepaliveResponse:
        # A refused keepalive's DENIED audit record is committed by the status service in the same
        # transaction as nothing else (the batch holds only this keepalive).
        p = current_principal()
        try:
            return await self.status.keepalive(p, request)
        except VigilError as e:
            metrics.REFUSALS.labels(rule=e.rule or e.code.name).inc()
            raise

    async def StreamKeepalives(
        self, request_iterator: AsyncIterator[pb.KeepaliveRequest], context: object
    ) -> pb.StreamKeepalivesResponse:
        return await self.status.stream(current_principal(), request_iterator)

    # --- filings (REG-7) ---------------------------------------------------------------------------

    def _today(self) -> date:
        return self.clock().date()

    async def _check_filing_read(self, p: Principal, unit_id: str) -> None:
        scope = access.read_scope(p, "filings")
        if scope is not None and scope != unit_id:
            raise PermissionDenied(
                f"ACC-2 (799 Art. 16): unit {scope} reads only its own filings", rule="ACC-2", field="unit_id"
            )

    async def GetFiling(self, request: pb.GetFilingRequest, context: object) -> pb.Filing:
        p = current_principal()
        async with self._audited(
            p, "registry.filing.get", {"unit_ids": [request.unit_id], "site_ids": [request.site_id]}
        ):
            await self._check_filing_read(p, request.unit_id)
        async with self.read_sessions() as s:
            system, *_ = await compliance.filing_of(
                s, self.store, request.unit_id, request.site_id, self._today()
            )
        return codec.filing_to_pb(system.filing, system.current)

    async def ListFilings(self, request: pb.ListFilingsRequest, context: object) -> pb.ListFilingsResponse:
        p = current_principal()
        unit_id = request.unit_id.strip()
        async with self._audited(p, "registry.filing.list", {}):
            scope = access.read_scope(p, "filings")
            if scope is not None:
                if unit_id and unit_id != scope:
                    raise PermissionDenied(
                        f"ACC-2 (799 Art. 16): unit {scope} lists only its own filings",
                        rule="ACC-2",
                        field="unit_id",
                    )
                unit_id = scope
        limit = page_size(request.page_size)
        after = decode_token(request.page_token)
        state = None if request.state == 0 else codec.filing_state(request.state)
        async with self.read_sessions() as s:
            systems = await compliance.all_filings(
                s, self.store, self._today(), unit_id=unit_id, site_id=request.site_id.strip()
            )
        rows = [
            f
            for f in systems
            if (state is None or f.filing.state == state) and f"{f.filing.unit_id}/{f.filing.site_id}" > after
        ]
        out = pb.ListFilingsResponse(filings=[codec.filing_to_pb(f.filing, f.current) for f in rows[:limit]])
        if len(rows) > limit:
            last = rows[limit - 1].filing
            out.next_page_token = encode_token(f"{last.unit_id}/{last.site_id}")
        return out

    async def RecordFiling(self, request: pb.RecordFilingRequest, context: object) -> pb.Filing:
        p = current_principal()
        resources = {"unit_ids": [request.unit_id], "site_ids": [request.site_id]}
        async with self._audited(p, "registry.filing.record", resources):
            access.require_filing_role(p, request.unit_id)
            filed_on = codec.parse_date(request.filed_on, "filed_on") or self._today()
            async with self.sessions.begin() as s:
                system, *_ = await compliance.filing_of(
                    s, self.store, request.unit_id, request.site_id, self._today()
                )
                filed = filing_rules.record_filing(
                    system.filing,
                    system.current,
                    filing_number=request.filing_number,
                    filed_on=filed_on,
                    today=self._today(),
                )
                await self.store.save_filing(
                    s,
                    FilingRecord(
                        unit_id=filed.unit_id,
                        site_id=filed.site_id,
                        filing_number=filed.filing_number,
                        filed_on=filed_on,
                        filed_facts=system.current,
                    ),
                    self.clock(),
                )
                self._allowed(
                    s,
                    p,
                    "registry.filing.record",
                    resources,
                    attributes={"filing_number": filed.filing_number, "filed_on": filed_on.isoformat()},
                )
        return codec.filing_to_pb(filed, system.current)

    async def ExportFilingDossier(
        self, request: pb.ExportFilingDossierRequest, context: object
    ) -> pb.ExportFilingDossierResponse:
        p = current_principal()
        async with self._audited(
            p, "registry.filing.export", {"unit_ids": [request.unit_id], "site_ids": [request.site_id]}
        ):
            await self._check_filing_read(p, request.unit_id)
        async with self.read_sessions() as s:
            system, unit, site, mine = await compliance.filing_of(
                s, self.store, request.unit_id, request.site_id, self._today()
            )
        return pb.ExportFilingDossierResponse(
            dossier_json=compliance.dossier_json(unit, site, mine, system.filing),
            filing=codec.filing_to_pb(system.filing, system.current),
        )

    # --- compliance --------------------------------------------------------------------------------

    async def GetComplianceSummary(
        self, request: pb.GetComplianceSummaryRequest, context: object
    ) -> pb.ComplianceSummary:
        p = current_principal()
        async with self._audited(p, "registry.compliance.summary", {}):
            access.require_read_all(p, "the compliance summary")
            if not 0 <= request.max_items <= 10000:
                raise InvalidArgument("max_items must be within 0..10000", field="max_items")
        async with self.read_sessions() as s:
            return await compliance.summary(
                s,
                self.store,
                self.policy,
                self.clock(),
                division_prefix=_division_prefix(request.division_prefix),
                max_items=request.max_items or 100,
            )
