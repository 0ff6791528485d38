"""The grant book: a load follows the database, decoding only what changed; a request never moves back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from vigil.common.v1 import identity_pb2
from vigil.sharing.v1 import events_pb2
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit import cloudevents, db, migrations, topics
from vigil_sharing import app, codec, grants, store
from vigil_sharing.grants import GrantBook

NOW = datetime.now(UTC).replace(microsecond=0)


def request(n: int, state: int = pb.REQUEST_STATE_APPROVED) -> pb.AccessRequest:
    return pb.AccessRequest(
        request_id=f"req-{n}",
        requester=identity_pb2.Principal(id=f"user:{n}", unit="113202000142871537"),
        purpose=pb.PURPOSE_TRAFFIC_MANAGEMENT,
        legal_basis="congestion study",
        scope=pb.Scope(device_ids=[f"3202050150132{n:07d}"]),
        actions=[pb.ACTION_LIVE_VIEW],
        valid_from=codec.ts(NOW - timedelta(hours=1)),
        valid_until=codec.ts(NOW + timedelta(days=1)),
        create_time=codec.ts(NOW - timedelta(hours=1)),
        state=state,
        required_approvals=1,
        decided_by="user:officer",
    )


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[object]:
    engine = db.create_engine(sqlite_url)
    await migrations.upgrade(engine, app.MIGRATIONS)
    try:
        yield db.session_factory(engine)
    finally:
        await engine.dispose()


async def store_requests(sessions, *messages: pb.AccessRequest, update: bool = False) -> None:
    async with sessions.begin() as session:
        for m in messages:
            await (store.update_request if update else store.insert_request)(session, m)


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The ids of the stored requests the grant book decodes."""
    seen: list[str] = []
    original = codec.from_access_request

    def counting(msg: pb.AccessRequest):
        seen.append(msg.request_id)
        return original(msg)

    monkeypatch.setattr(codec, "from_access_request", counting)
    return seen


async def test_a_load_files_every_approved_request_and_no_other(sessions) -> None:
    await store_requests(sessions, request(1), request(2), request(3, pb.REQUEST_STATE_PENDING))
    book = GrantBook(db.read_session_factory(sessions))
    await book.load()
    assert sorted(g.grant_id for g in book.index.grants()) == ["req-1", "req-2"]


async def test_a_reload_decodes_only_the_requests_that_changed(sessions, decoded) -> None:
    await store_requests(sessions, request(1), request(2), request(3))
    book = GrantBook(db.read_session_factory(sessions))
    await book.load()
    changed = request(2)
    changed.scope.device_ids.append("32020501501329999999")
    await store_requests(sessions, changed, update=True)
    decoded.clear()
    await book.load()
    assert decoded == ["req-2"]
    grant = book.index.get("req-2")
    assert grant is not None and "32020501501329999999" in grant.scope.device_ids


async def test_a_reload_takes_out_a_grant_revoked_in_the_database(sessions) -> None:
    await store_requests(sessions, request(1), request(2))
    book = GrantBook(db.read_session_factory(sessions))
    await book.load()
    await store_requests(sessions, request(1, pb.REQUEST_STATE_REVOKED), update=True)
    await book.load()
    assert "req-1" not in book.index and "req-2" in book.index


async def test_a_revocation_applied_while_a_load_runs_is_not_undone_by_its_older_snapshot(
    sessions, monkeypatch
) -> None:
    await store_requests(sessions, *(request(n) for n in range(3 * grants.LOAD_CHUNK)))
    book = GrantBook(db.read_session_factory(sessions))
    # The revocation is applied in this process at the load's first yield, after the load has started
    # and before it files the (still approved) stored request: the load must leave it out.
    late = f"req-{3 * grants.LOAD_CHUNK - 1}"
    revoked = codec.from_access_request(request(3 * grants.LOAD_CHUNK - 1, pb.REQUEST_STATE_REVOKED))

    async def revoke_when_the_load_yields() -> None:
        await asyncio.sleep(0)
        book.apply(revoked)

    await asyncio.gather(book.load(), revoke_when_the_load_yields())
    assert late not in book.index
    assert len(book.index) == 3 * grants.LOAD_CHUNK - 1


# ACC-3: this process applies its own approvals and revocations at once; their events reach it later
# through the log, and must not move a request back to where it was.
def domain(n: int, state: int) -> object:
    return codec.from_access_request(request(n, state))


def test_a_late_access_requested_event_does_not_take_out_a_grant_approved_here() -> None:
    book = GrantBook(None)  # type: ignore[arg-type]
    assert book.apply(domain(1, pb.REQUEST_STATE_APPROVED))
    assert not book.apply(domain(1, pb.REQUEST_STATE_PENDING))
    assert "req-1" in book.index


def test_a_late_approval_event_does_not_file_a_grant_revoked_here_again() -> None:
    book = GrantBook(None)  # type: ignore[arg-type]
    book.apply(domain(1, pb.REQUEST_STATE_APPROVED))
    assert book.apply(domain(1, pb.REQUEST_STATE_REVOKED))
    assert not book.apply(domain(1, pb.REQUEST_STATE_APPROVED))
    assert not book.apply(domain(1, pb.REQUEST_STATE_PENDING))
    assert "req-1" not in book.index


def test_an_ended_request_is_remembered_for_the_memory_span_only(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(grants.time, "monotonic", lambda: clock[0])
    book = GrantBook(None)  # type: ignore[arg-type]
    book.apply(domain(1, pb.REQUEST_STATE_REVOKED))
    clock[0] += grants.ENDED_MEMORY_S - 1
    assert not book.apply(domain(1, pb.REQUEST_STATE_APPROVED))
    book.apply(domain(2, pb.REQUEST_STATE_EXPIRED))
    clock[0] += 2  # req-1 ended more than the span ago; req-2 did not
    book.apply(domain(3, pb.REQUEST_STATE_DENIED))
    assert book.apply(domain(1, pb.REQUEST_STATE_APPROVED))  # forgotten: the periodic load corrects it
    assert not book.apply(domain(2, pb.REQUEST_STATE_APPROVED))


async def test_a_load_does_not_file_a_request_that_ended_after_its_snapshot_was_stored(sessions) -> None:
    await store_requests(sessions, request(1))
    book = GrantBook(db.read_session_factory(sessions))
    book.apply(domain(1, pb.REQUEST_STATE_REVOKED))  # e.g. another replica's revocation, read from the log
    await book.load()
    assert "req-1" not in book.index


def record_of(message: object, offset: int) -> SimpleNamespace:
    """The Kafka record the outbox relay publishes for a sharing event."""
    return SimpleNamespace(
        topic=topics.SHARING_EVENTS,
        partition=0,
        offset=offset,
        timestamp=0,
        key=b"req-1",
        value=message.SerializeToString(),  # type: ignore[attr-defined]
        headers=cloudevents.headers_for(message, source_service="sharing", subject="req-1"),  # type: ignore[arg-type]
    )


def test_the_log_follower_does_not_undo_this_process_approval_with_its_own_late_events() -> None:
    # The order the city test met: approved here, then AccessRequested and AccessApproved from the log.
    book = GrantBook(None)  # type: ignore[arg-type]
    sync = grants.LocalSync(book, devices=None, bootstrap="")  # type: ignore[arg-type]
    book.apply(domain(1, pb.REQUEST_STATE_APPROVED))
    sync._apply(record_of(events_pb2.AccessRequested(access_request=request(1, pb.REQUEST_STATE_PENDING)), 0))
    assert "req-1" in book.index
    sync._apply(record_of(events_pb2.AccessApproved(access_request=request(1)), 1))
    book.apply(domain(1, pb.REQUEST_STATE_REVOKED))
    sync._apply(record_of(events_pb2.AccessApproved(access_request=request(1)), 1))  # redelivered
    assert "req-1" not in book.index


def facts(principal: str, at: datetime, *, unmask: bool) -> pb.PrincipalFacts:
    return pb.PrincipalFacts(principal_id=principal, unmask_right=unmask, update_time=codec.ts(at))


def test_late_facts_do_not_replace_newer_ones() -> None:
    book = GrantBook(None)  # type: ignore[arg-type]
    assert book.set_facts(facts("user:7", NOW, unmask=False))
    assert not book.set_facts(facts("user:7", NOW - timedelta(seconds=1), unmask=True))
    assert book.facts_message("user:7").unmask_right is False
    assert book.set_facts(facts("user:7", NOW + timedelta(seconds=1), unmask=True))
    assert book.facts_message("user:7").unmask_right is True
