"""The SharingService servicer: requests → domain use-cases → records, events and audit; the Authorize decision.

Every change commits with its event (outbox) and its audit record in one transaction. Every refusal (a
raised VigilError) first commits a DENIED audit record naming the rule, in its own transaction. Every
Authorize decision, allow or deny, is an audit record committed before the answer; decisions arriving
together share one commit (group commit), and a decision whose record cannot be written is a deny (ACC-1).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import identity_pb2
from vigil.sharing.v1 import events_pb2
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_kit import audit, cloudevents, db, outbox, topics
from vigil_kit.auth import Principal, current_principal
from vigil_kit.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable, VigilError
from vigil_kit.groupcommit import GroupCommit
from vigil_kit.migrations import outbox_table
from vigil_kit.paging import decode_token, encode_token, page_size
from vigil_sharing import codec, metrics, store
from vigil_sharing.devices import DeviceDirectory
from vigil_sharing.domain import requests as usecases
from vigil_sharing.domain.model import (
    ACTION_SUBSCRIBE_EVENTS,
    ROLE_AUDITOR,
    ROLE_PLATFORM_ADMIN,
    ROLE_PUBLIC_SECURITY_OFFICER,
    AccessRequest,
    Clock,
    Decision,
    DeviceFacts,
    PrincipalFacts,
    RequestState,
    Scope,
    SharingPolicy,
)
from vigil_sharing.domain.policy import decide
from vigil_sharing.grants import GrantBook

log = logging.getLogger(__name__)

SERVICE_NAME = "vigil.sharing.v1.SharingService"
SOURCE = "sharing"
READ_ALL_ROLES = (ROLE_PLATFORM_ADMIN, ROLE_PUBLIC_SECURITY_OFFICER, ROLE_AUDITOR)


_AUDIT_ACTIONS = {
    "ACTION_LIVE_VIEW": "video.live_view",
    "ACTION_PLAYBACK": "video.playback",
    "ACTION_EXPORT": "video.export",
    "ACTION_SUBSCRIBE_EVENTS": "events.subscribe",
}
# The outbox relay is woken for Authorize's audit records at most this often (see DecisionLog).
RELAY_WAKE_S = 0.02
_LOG_FAILED = Decision(False, "the decision could not be logged, so access is refused", "ACC-1")


def _enum_name(enum: Any, value: int, fallback: str) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return fallback


class DecisionLog:
    """Commits Authorize decisions' audit records, batched; write() returns once its record is committed.

    A decision changes no database state, so nothing needs its record to commit atomically with anything
    else: with a `publisher` (outbox.DirectPublisher) a batch goes straight to vigil.audit.records.v1 and
    the broker's acknowledgement (acks=all) is its commit. That skips the outbox row's insert, the relay's
    read and delete, and on SQLite the database's one write lock, which replicas on one file queued for.

    When the broker does not acknowledge in time, or the publisher is not connected, the same records go to
    the outbox (the rows audit.write_audit would add: key and event id = record id) in one INSERT and one
    transaction, and the relay publishes them later; a record that reaches the log twice that way is skipped
    by the audit service's unique record id. Only when that commit fails too does write() raise, and
    Authorize denies (ACC-1). On a SQLite file the transaction runs whole in one worker-thread hand-off
    (db.ThreadedTransactions) rather than a hand-off per statement.

    The outbox relay is woken at most once per `relay_wake_s` (the first commit of a quiet spell wakes it
    at once): under load a wake-up per commit cost a relay round (read, publish, delete) per few decisions,
    more than the decisions themselves. The answer never waits for the relay; only publication is later.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notifier: Callable[[], None],
        max_batch: int,
        *,
        transactions: db.ThreadedTransactions | None = None,
        relay_wake_s: float = RELAY_WAKE_S,
        publisher: outbox.DirectPublisher | None = None,
    ) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._transactions = transactions
        self._publisher = publisher
        self._wake_relay = outbox.CoalescedWake(notifier, relay_wake_s)
        self._insert = outbox_table.insert()
        self._group: GroupCommit[audit_record_pb2.AuditRecord, str] = GroupCommit(
            self._commit, max_batch, name="sharing-decision-log"
        )

    async def write(self, record: audit_record_pb2.AuditRecord) -> str:
        if not record.record_id:
            raise ValueError("an audit record needs its record_id (use build_record)")
        return await self._group.submit(record)

    async def _commit(self, records: Sequence[audit_record_pb2.AuditRecord]) -> list[str]:
        now = datetime.now(UTC)
        rows = [audit.audit_row(r, now) for r in records]
        if not await self._published(rows):
            if self._transactions is not None:
                await self._transactions.run(lambda conn: conn.execute(self._insert, rows))
            else:
                async with self._engine.begin() as conn:
                    await conn.execute(self._insert, rows)
            self._wake_relay()  # committed: the relay may publish them
        metrics.AUDIT_BATCH.observe(len(records))
        return [r.record_id for r in records]

    async def _published(self, rows: list[dict[str, Any]]) -> bool:
        """Whether the broker acknowledged every row (False: commit them to the outbox instead)."""
        if self._publisher is None or not self._publisher.available:
            return False
        try:
            await self._publisher.publish(rows)
        except outbox.PublishError as e:
            log.warning(
                "the broker did not take decisions' audit records; committing them to the outbox",
                extra={"records": len(rows), "error": str(e)},
            )
            return False
        return True


def within(sub: Scope, grant: Scope) -> bool:
    """Whether every device `sub` can reach is one `grant` covers (each grant dimension bounded in `sub`)."""
    if sub.empty or grant.empty:
        return False
    if grant.device_ids and not (sub.device_ids and sub.device_ids <= grant.device_ids):
        return False
    if grant.site_ids and not (sub.site_ids and sub.site_ids <= grant.site_ids):
        return False
    if grant.place_categories and not (
        sub.place_categories and sub.place_categories <= grant.place_categories
    ):
        return False
    prefixes = tuple(grant.division_prefixes)
    return not prefixes or (
        bool(sub.division_prefixes) and all(p.startswith(prefixes) for p in sub.division_prefixes)
    )


class SharingServicer(pb_grpc.SharingServiceServicer):
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        book: GrantBook,
        devices: DeviceDirectory,
        policy: SharingPolicy,
        clock: Clock,
        notifier: Callable[[], None],
        decision_batch_max: int = 500,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
        transactions: db.ThreadedTransactions | None = None,
        publisher: outbox.DirectPublisher | None = None,
    ) -> None:
        self.sessions = sessions
        # Look-ups and listings: on SQLite they read a snapshot instead of queueing for the write lock.
        self.read_sessions = read_sessions or db.read_session_factory(sessions)
        self.book = book
        self.devices = devices
        self.policy = policy
        self.clock = clock
        self.notifier = notifier
        self.decisions = DecisionLog(
            sessions, notifier, decision_batch_max, transactions=transactions, publisher=publisher
        )
        # Wired by app.build: the fan-out's router (learns new subscriptions at once) and Subscribe's streams.
        self.router: Any = None
        self.streams: Any = None

    # ------------------------------------------------------------------ helpers

    def _enqueue(self, session: AsyncSession, key: str, message: Any) -> None:
        outbox.enqueue(
            session,
            topic=topics.SHARING_EVENTS,
            key=key,
            message=message,
            source_service=SOURCE,
            notifier=self.notifier,
        )

    def _audit(self, session: AsyncSession, record: audit_record_pb2.AuditRecord) -> str:
        return audit.write_audit(session, record, notifier=self.notifier)

    async def _refused(
        self,
        actor: Principal,
        action: str,
        error: VigilError,
        *,
        resources: Mapping[str, Sequence[str]] | None = None,
        request_id: str = "",
    ) -> None:
        """A refusal's DENIED audit record, in its own transaction (the caller re-raises)."""
        record = audit.build_record(
            actor=actor,
            action=action,
            source_service=SOURCE,
            decision=audit.DENIED,
            resources=resources,
            reason=str(error),
            rule_id=error.rule or "",
            request_id=request_id,
            grant_id=request_id,
            now=self.clock(),
        )
        try:
            async with self.sessions.begin() as session:
                self._audit(session, record)
        except Exception:
            log.exception("could not record a refusal", extra={"action": action})

    def _request_record(
        self,
        actor: Principal,
        action: str,
        r: AccessRequest,
        *,
        reason: str = "",
        approver: Principal | None = None,
    ) -> audit_record_pb2.AuditRecord:
        return audit.build_record(
            actor=actor,
            action=action,
            source_service=SOURCE,
            decision=audit.ALLOWED,
            resources={"device_ids": sorted(r.scope.device_ids), "site_ids": sorted(r.scope.site_ids)},
            purpose=r.purpose.value,
            reason=reason or r.legal_basis,
            footage=(r.footage_window.start, r.footage_window.end) if r.footage_window else None,
            rule_id="ACC-3",
            approver=approver,
            grant_id=r.request_id if r.state is RequestState.APPROVED else "",
            request_id=r.request_id,
            attributes={"state": r.state.value, "actions": ",".join(sorted(a.value for a in r.actions))},
            now=self.clock(),
        )

    async def _load(self, request_id: str, field: str = "request_id") -> pb.AccessRequest:
        if not request_id:
            raise InvalidArgument(f"{field} is required", field=field)
        async with self.read_sessions() as session:
            msg = await store.get_request(session, request_id)
        if msg is None:
            raise NotFound(f"no access request {request_id}", field=field)
        return msg

    def _may_see(self, caller: Principal, msg: pb.AccessRequest, devices: Mapping[str, DeviceFacts]) -> bool:
        if (
            caller.has_role(*READ_ALL_ROLES)
            or caller.id == msg.requester.id
            or caller.unit == msg.requester.unit
        ):
            return True
        r = codec.from_access_request(msg)
        facts = self.book.facts(caller)
        return usecases.may_decide(facts, r, devices, self.policy) or usecases.may_revoke(
            facts, r, devices, self.policy
        )

    # ------------------------------------------------------------------ requests

    async def CreateAccessRequest(
        self, request: pb.CreateAccessRequestRequest, context: Any
    ) -> pb.AccessRequest:
        caller = current_principal()
        msg = request.access_request
        scope = codec.from_scope(msg.scope)
        devices = await self.devices.lookup_many(list(scope.device_ids))
        now = self.clock()
        action = "sharing.request.create"
        try:
            r = usecases.create_request(
                request_id=cloudevents.new_event_id(),
                requester=self.book.facts(caller),
                purpose=_enum_name(pb.Purpose, msg.purpose, "PURPOSE_UNSPECIFIED"),
                legal_basis=msg.legal_basis,
                scope=scope,
                actions=[_enum_name(pb.Action, a, f"ACTION_{a}") for a in msg.actions],
                valid_until=codec.from_ts(msg, "valid_until"),
                now=now,
                footage_window=codec.from_time_range(msg, "footage_window"),
                valid_from=codec.from_ts(msg, "valid_from"),
                approval_document_ref=msg.approval_document_ref,
                officers=[codec.Officer(o.name, o.work_id) for o in msg.officers],
                agreement_ref=msg.agreement_ref,
                devices=devices,
                policy=self.policy,
            )
        except VigilError as e:
            await self._refused(caller, action, e, resources={"device_ids": sorted(scope.device_ids)})
            raise
        out = codec.access_request(r, requester=caller.to_proto())
        async with self.sessions.begin() as session:
            await store.insert_request(session, out)
            self._enqueue(
                session, r.request_id, events_pb2.AccessRequested(access_request=out, actor=caller.to_proto())
            )
            self._audit(session, self._request_record(caller, action, r))
            if r.state is RequestState.APPROVED:
                self._enqueue(
                    session,
                    r.request_id,
                    events_pb2.AccessApproved(access_request=out, actor=caller.to_proto()),
                )
                self._audit(
                    session,
                    self._request_record(caller, "sharing.request.approve", r, reason=r.decision_reason),
                )
        self.book.apply(r)
        return out

    async def GetAccessRequest(self, request: pb.GetAccessRequestRequest, context: Any) -> pb.AccessRequest:
        caller = current_principal()
        msg = await self._load(request.request_id)
        devices = await self.devices.lookup_many(list(msg.scope.device_ids))
        if not self._may_see(caller, msg, devices):
            # Not found rather than denied: the existence of another unit's request is not disclosed.
            raise NotFound(f"no access request {request.request_id}", field="request_id")
        return msg

    async def ListAccessRequests(
        self, request: pb.ListAccessRequestsRequest, context: Any
    ) -> pb.ListAccessRequestsResponse:
        caller = current_principal()
        limit = page_size(request.page_size)
        after = decode_token(request.page_token)
        state = _enum_name(pb.RequestState, request.state, "") if request.state else None
        unit = None if caller.has_role(*READ_ALL_ROLES) else caller.unit
        async with self.read_sessions() as session:
            rows = await store.list_requests(
                session,
                after=after,
                limit=limit + 1,
                state=state,
                requester_id=request.requester_id or None,
                unit=unit,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return pb.ListAccessRequestsResponse(
            access_requests=rows, next_page_token=encode_token(rows[-1].request_id) if more else ""
        )

    async def _transition(
        self,
        request_id: str,
        action: str,
        change: Callable[[AccessRequest, PrincipalFacts, Mapping[str, DeviceFacts], Any], AccessRequest],
        event: Callable[[pb.AccessRequest, AccessRequest, identity_pb2.Principal], Any | None],
        *,
        field: str = "request_id",
        reason: str = "",
    ) -> pb.AccessRequest:
        caller = current_principal()
        first = await self._load(request_id, field)
        # Device facts come first: a registry call must not happen inside a write transaction.
        devices = await self.devices.lookup_many(list(first.scope.device_ids))
        actor = self.book.facts(caller)
        resources = {"device_ids": sorted(first.scope.device_ids), "grant_ids": [request_id]}
        try:
            async with self.sessions.begin() as session:
                msg = await store.get_request(session, request_id, for_update=True)
                if msg is None:
                    raise NotFound(f"no access request {request_id}", field=field)
                current = codec.from_access_request(msg)
                if not self._may_see(caller, msg, devices):
                    raise NotFound(f"no access request {request_id}", field=field)
                changed = change(current, actor, devices, msg)
                out = codec.access_request(changed, requester=msg.requester)
                await store.update_request(session, out)
                message = event(out, changed, caller.to_proto())
                if message is not None:
                    self._enqueue(session, request_id, message)
                self._audit(session, self._request_record(caller, action, changed, reason=reason))
        except VigilError as e:
            await self._refused(caller, action, e, resources=resources, request_id=request_id)
            raise
        self.book.apply(changed)
        return out

    def _requester_facts(self, msg: pb.AccessRequest) -> PrincipalFacts:
        return self.book.facts(Principal.from_proto(msg.requester))

    async def ApproveAccessRequest(
        self, request: pb.ApproveAccessRequestRequest, context: Any
    ) -> pb.AccessRequest:
        def change(
            r: AccessRequest, actor: PrincipalFacts, devices: Mapping[str, DeviceFacts], msg: Any
        ) -> AccessRequest:
            return usecases.approve(
                r,
                actor,
                requester=self._requester_facts(msg),
                now=self.clock(),
                devices=devices,
                policy=self.policy,
            )

        def event(out: pb.AccessRequest, r: AccessRequest, actor: identity_pb2.Principal) -> Any:
            if r.state is RequestState.APPROVED:
                return events_pb2.AccessApproved(access_request=out, actor=actor)
            return None  # a first of two approvals changes no grant

        return await self._transition(
            request.request_id, "sharing.request.approve", change, event, reason=request.reason
        )

    async def DenyAccessRequest(self, request: pb.DenyAccessRequestRequest, context: Any) -> pb.AccessRequest:
        def change(
            r: AccessRequest, actor: PrincipalFacts, devices: Mapping[str, DeviceFacts], msg: Any
        ) -> AccessRequest:
            return usecases.deny(
                r, actor, now=self.clock(), reason=request.reason, devices=devices, policy=self.policy
            )

        return await self._transition(
            request.request_id,
            "sharing.request.deny",
            change,
            lambda out, r, actor: events_pb2.AccessDenied(access_request=out, actor=actor),
            reason=request.reason,
        )

    async def WithdrawAccessRequest(
        self, request: pb.WithdrawAccessRequestRequest, context: Any
    ) -> pb.AccessRequest:
        def change(
            r: AccessRequest, actor: PrincipalFacts, devices: Mapping[str, DeviceFacts], msg: Any
        ) -> AccessRequest:
            return usecases.withdraw(r, actor, now=self.clock(), reason=request.reason)

        return await self._transition(
            request.request_id,
            "sharing.request.withdraw",
            change,
            lambda out, r, actor: events_pb2.GrantRevoked(access_request=out, actor=actor),
            reason=request.reason,
        )

    async def RevokeGrant(self, request: pb.RevokeGrantRequest, context: Any) -> pb.AccessRequest:
        def change(
            r: AccessRequest, actor: PrincipalFacts, devices: Mapping[str, DeviceFacts], msg: Any
        ) -> AccessRequest:
            return usecases.revoke(
                r, actor, now=self.clock(), reason=request.reason, devices=devices, policy=self.policy
            )

        return await self._transition(
            request.grant_id,
            "sharing.grant.revoke",
            change,
            lambda out, r, actor: events_pb2.GrantRevoked(access_request=out, actor=actor),
            field="grant_id",
            reason=request.reason,
        )

    async def expire(self, request_id: str) -> None:
        """The expiry worker's use-case: end one lapsed request or grant (GrantExpired + audit)."""
        now = self.clock()
        system = Principal(
            id=f"service:{SOURCE}",
            name="vigil-sharing",
            unit="",
            unit_kind="",
            roles=frozenset({"ROLE_SERVICE"}),
        )
        async with self.sessions.begin() as session:
            msg = await store.get_request(session, request_id, for_update=True)
            if msg is None:
                return
            changed = usecases.expire(codec.from_access_request(msg), now=now)
            out = codec.access_request(changed, requester=msg.requester)
            await store.update_request(session, out)
            self._enqueue(session, request_id, events_pb2.GrantExpired(access_request=out))
            self._audit(
                session,
                self._request_record(system, "sharing.grant.expire", changed, reason="validity ended"),
            )
        metrics.GRANTS_EXPIRED.inc()
        self.book.apply(changed)

    # ------------------------------------------------------------------ the decision

    async def Authorize(self, request: pb.AuthorizeRequest, context: Any) -> pb.AuthorizeResponse:
        caller = current_principal()
        subject = caller
        named = request.principal if request.HasField("principal") else None
        if named is not None and named.id and named.id != caller.id:
            if not caller.is_service:
                error = PermissionDenied(
                    "only a service may name another principal; the principal is the caller",
                    rule="ACC-2",
                    field="principal",
                )
                await self._refused(
                    caller, "sharing.authorize", error, resources={"device_ids": [request.device_id]}
                )
                raise error
            subject = Principal.from_proto(named)
        action = _enum_name(pb.Action, request.action, "ACTION_UNSPECIFIED")
        window = codec.from_time_range(request, "footage_window")
        now = self.clock()
        try:
            device = await self.devices.lookup(request.device_id)
        except Unavailable as e:
            decision = Decision(False, f"device facts unavailable ({e}): deny by default", "ACC-2")
        else:
            decision = decide(
                action, device, window, self.book.facts(subject), now, self.book.index, self.policy
            )
        grant = self.book.index.get(decision.grant_id) if decision.grant_id else None
        attributes = {"action": action}
        if subject is not caller:
            attributes["asked_by"] = caller.id
        footage = (window.start, window.end) if window is not None and window.start <= window.end else None
        record = audit.build_record(
            actor=subject,
            action=_AUDIT_ACTIONS.get(action, "video.unknown"),
            source_service=SOURCE,
            decision=audit.ALLOWED if decision.allow else audit.DENIED,
            resources={
                "device_ids": [request.device_id],
                "grant_ids": [decision.grant_id] if decision.grant_id else [],
            },
            purpose=grant.purpose.value if grant is not None else "",
            reason=decision.reason,
            footage=footage,
            rule_id=decision.rule,
            approver=identity_pb2.Principal(id=grant.approver_ids[-1])
            if grant and grant.approver_ids
            else None,
            grant_id=decision.grant_id,
            request_id=decision.grant_id,
            attributes=attributes,
            now=now,
        )
        try:
            record_id = await self.decisions.write(record)
        except Exception:
            # ACC-1: no log, no access.
            log.exception(
                "could not commit a decision's audit record; denying", extra={"device_id": request.device_id}
            )
            metrics.AUDIT_FAILURES.inc()
            decision, record_id = _LOG_FAILED, ""
        metrics.DECISIONS.labels("allowed" if decision.allow else "denied", decision.rule).inc()
        return pb.AuthorizeResponse(
            allowed=decision.allow,
            reason=decision.reason,
            rule=decision.rule,
            grant_id=decision.grant_id,
            unmasked_allowed=decision.unmasked_allowed,
            audit_record_id=record_id,
        )

    # ------------------------------------------------------------------ principals' facts

    async def GetPrincipalFacts(
        self, request: pb.GetPrincipalFactsRequest, context: Any
    ) -> pb.PrincipalFacts:
        caller = current_principal()
        principal_id = request.principal_id or caller.id
        if principal_id != caller.id and not caller.has_role(
            ROLE_PLATFORM_ADMIN, ROLE_AUDITOR, "ROLE_SERVICE"
        ):
            raise PermissionDenied(
                "only administrators, auditors and services read another principal's facts", rule="ACC-2"
            )
        async with self.read_sessions() as session:
            found = await store.get_principal_facts(session, principal_id)
        return found or pb.PrincipalFacts(principal_id=principal_id)

    async def SetPrincipalFacts(
        self, request: pb.SetPrincipalFactsRequest, context: Any
    ) -> pb.PrincipalFacts:
        caller = current_principal()
        facts = pb.PrincipalFacts()
        facts.CopyFrom(request.facts)
        action = "sharing.principal_facts.set"
        try:
            if not caller.has_role(ROLE_PLATFORM_ADMIN):
                raise PermissionDenied("only platform administrators set principals' facts", rule="ACC-2")
            if not facts.principal_id:
                raise InvalidArgument("facts.principal_id is required", field="facts.principal_id")
            if facts.HasField("contract"):
                c = facts.contract
                if not c.contract_id or not c.HasField("end_time"):
                    raise InvalidArgument(
                        "a contract needs its id and end time", rule="ACC-8", field="facts.contract"
                    )
                if codec.from_scope(c.scope).empty:
                    raise InvalidArgument(
                        "a contract needs a scope", rule="ACC-8", field="facts.contract.scope"
                    )
        except VigilError as e:
            await self._refused(caller, action, e)
            raise
        now = self.clock()
        facts.update_time.CopyFrom(codec.ts(now))
        async with self.sessions.begin() as session:
            await store.put_principal_facts(session, facts, now)
            self._enqueue(
                session,
                facts.principal_id,
                events_pb2.PrincipalFactsChanged(facts=facts, actor=caller.to_proto()),
            )
            self._audit(
                session,
                audit.build_record(
                    actor=caller,
                    action=action,
                    source_service=SOURCE,
                    decision=audit.ALLOWED,
                    attributes={
                        "principal_id": facts.principal_id,
                        "unmask_right": str(facts.unmask_right).lower(),
                        "secret_clearance": str(facts.secret_clearance).lower(),
                        "contract_id": facts.contract.contract_id,
                    },
                    now=now,
                ),
            )
        self.book.set_facts(facts)
        return facts

    # ------------------------------------------------------------------ subscriptions

    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: Any
    ) -> pb.Subscription:
        caller = current_principal()
        sub = pb.Subscription()
        sub.CopyFrom(request.subscription)
        action = "sharing.subscription.create"
        scope = codec.from_scope(sub.scope)
        try:
            if not sub.grant_id:
                raise InvalidArgument("grant_id is required", rule="ACC-3", field="subscription.grant_id")
            grant = self.book.index.get(sub.grant_id)
            if (
                grant is None
                or grant.holder_unit != caller.unit
                or ACTION_SUBSCRIBE_EVENTS not in grant.actions
                or not grant.valid_from <= self.clock() < grant.valid_until
            ):
                raise PermissionDenied(
                    f"no active ACTION_SUBSCRIBE_EVENTS grant {sub.grant_id} for unit {caller.unit}",
                    rule="ACC-3",
                    field="subscription.grant_id",
                )
            if not within(scope, grant.scope):
                raise PermissionDenied(
                    "the subscription's scope reaches beyond its grant",
                    rule="ACC-2",
                    field="subscription.scope",
                )
        except VigilError as e:
            await self._refused(caller, action, e, request_id=sub.grant_id)
            raise
        now = self.clock()
        sub.subscription_id = cloudevents.new_event_id()
        sub.partner_unit_id = caller.unit
        sub.create_time.CopyFrom(codec.ts(now))
        sub.creator.CopyFrom(caller.to_proto())
        async with self.sessions.begin() as session:
            await store.insert_subscription(session, sub)
            self._enqueue(
                session,
                sub.subscription_id,
                events_pb2.SubscriptionCreated(subscription=sub, actor=caller.to_proto()),
            )
            self._audit(
                session,
                audit.build_record(
                    actor=caller,
                    action=action,
                    source_service=SOURCE,
                    decision=audit.ALLOWED,
                    resources={"device_ids": sorted(scope.device_ids), "site_ids": sorted(scope.site_ids)},
                    grant_id=sub.grant_id,
                    attributes={
                        "subscription_id": sub.subscription_id,
                        "event_types": ",".join(sub.event_types),
                    },
                    now=now,
                ),
            )
        if self.router is not None:
            self.router.add(sub)
        return sub

    async def Subscribe(self, request: pb.SubscribeRequest, context: Any) -> AsyncIterator[pb.PartnerEvent]:
        """The partner unit's event stream (subscribe.py), scope enforced per event, resumable by cursor."""
        if self.streams is None:
            raise Unavailable("partner streams are not running in this process")
        async for event in self.streams.stream(request, current_principal()):
            yield event

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Any
    ) -> pb.ListSubscriptionsResponse:
        caller = current_principal()
        limit = page_size(request.page_size)
        unit = None if caller.has_role(ROLE_PLATFORM_ADMIN, ROLE_AUDITOR) else caller.unit
        async with self.read_sessions() as session:
            rows = list(
                await store.list_subscriptions(
                    session, unit, after=decode_token(request.page_token), limit=limit + 1
                )
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return pb.ListSubscriptionsResponse(
            subscriptions=rows, next_page_token=encode_token(rows[-1].subscription_id) if more else ""
        )
