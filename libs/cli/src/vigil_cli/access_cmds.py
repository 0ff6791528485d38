"""The sharing service's subcommands: `vigil access …`, `vigil subscriptions …` and `vigil subscribe`.

Each command makes SharingService calls as the chosen dev principal (`--as`) and follows output.py's
conventions: tables for people, `--json` for the resource itself, `-f FILE` for canonical JSON (either
field-name style), `STATUS_NAME [RULE-ID]: message` on stderr with exit 1, usage errors exit 2.
`vigil access check` is a decision, not a lookup: exit 0 when allowed, exit 1 with `PERMISSION_DENIED`
and the reason when denied (a device no one has heard of included).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from google.protobuf import json_format
from google.protobuf.message import Message

from vigil.common.v1 import time_range_pb2
from vigil.registry.v1 import registry_service_pb2 as reg_pb
from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil.sharing.v1 import sharing_service_pb2_grpc as pb_grpc
from vigil_cli.output import (
    EXIT_OK,
    JsonFlag,
    RequestFile,
    fail,
    load_message,
    parse_time,
    print_message,
    print_table,
    run,
    to_timestamp,
    usage_error,
)
from vigil_cli.registry_cmds import enum_value, list_all, print_messages, print_resource, ts
from vigil_cli.session import session

T = TypeVar("T")
M = TypeVar("M", bound=Message)

LIST_PAGE_SIZE = 1000

access_app = typer.Typer(
    help="Access requests and grants: request, approve, deny, withdraw, revoke, list, and check a decision.",
    no_args_is_help=True,
)
subscriptions_app = typer.Typer(
    help="Partner subscriptions to device events, inside an approved SUBSCRIBE_EVENTS grant.",
    no_args_is_help=True,
)

RequestId = Annotated[str, typer.Argument(help="The access request's id (a grant's id is its request's id).")]
Reason = Annotated[str, typer.Option("--reason", help="Why, for the record (it is audited).")]


def add_access_commands(app: typer.Typer) -> None:
    """Register `access`, `subscriptions` and `subscribe` on the `vigil` app."""
    app.add_typer(access_app, name="access")
    app.add_typer(subscriptions_app, name="subscriptions")
    app.command(
        "subscribe",
        help="Tail the partner unit's event stream: one line per event (or one JSON object per line).",
    )(subscribe)


# ---- calling the sharing service ------------------------------------------------------------------


def call(ctx: typer.Context, body: Callable[[pb_grpc.SharingServiceStub], Awaitable[T]]) -> T:
    """Run `body` with a SharingService stub as the chosen principal; RPC errors exit 1."""
    s = session(ctx)
    context = s.context()

    async def go() -> T:
        async with s.channel("sharing", context=context) as channel:
            return await body(pb_grpc.SharingServiceStub(channel))

    return run(go())


def load_file(path: Path, message_type: type[M]) -> M:
    """`-f FILE` → message; a malformed file exits 2 with its reason."""
    return load_message(path, message_type)


def usage(message: str) -> NoReturn:
    """Exit 2 with the message as a usage error."""
    usage_error(message)


def action_value(text: str, option: str = "--action") -> int:
    """`playback`, `live-view`, `PLAYBACK` or `ACTION_PLAYBACK` → pb.Action; anything else exits 2."""
    return enum_value(pb.Action, "ACTION_", text, option=option)


def state_value(text: str) -> int:
    """`pending` or `REQUEST_STATE_PENDING` → pb.RequestState; anything else exits 2."""
    return enum_value(pb.RequestState, "REQUEST_STATE_", text, option="--state")


def _short(enum: object, number: int, prefix: str) -> str:
    try:
        return enum.Name(number).removeprefix(prefix)  # type: ignore[attr-defined]
    except ValueError:
        return str(number)


def state_name(number: int) -> str:
    return _short(pb.RequestState, number, "REQUEST_STATE_")


def actions_text(actions: object) -> str:
    return ", ".join(_short(pb.Action, a, "ACTION_") for a in actions)  # type: ignore[attr-defined]


def scope_text(scope: pb.Scope) -> str:
    parts = []
    if scope.device_ids:
        parts.append(
            f"{len(scope.device_ids)} device(s)" if len(scope.device_ids) > 2 else ", ".join(scope.device_ids)
        )
    if scope.site_ids:
        parts.append("sites " + ", ".join(scope.site_ids))
    if scope.division_prefixes:
        parts.append("divisions " + ", ".join(scope.division_prefixes))
    if scope.place_categories:
        parts.append(
            ", ".join(_short(reg_pb.PlaceCategory, c, "PLACE_CATEGORY_") for c in scope.place_categories)
        )
    return "; ".join(parts)


def footage_range(start: datetime | None, end: datetime | None) -> time_range_pb2.TimeRange | None:
    """--from/--to → a TimeRange; both or neither (a half-open window is a usage error)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        usage("give both --from and --to (the footage window to be read), or neither")
    if not start < end:
        usage("--from must be before --to")
    return time_range_pb2.TimeRange(start_time=to_timestamp(start), end_time=to_timestamp(end))


def request_line(r: pb.AccessRequest) -> str:
    """One line after a state change: `ID STATE` (with the approvals still missing, if any)."""
    line = f"{r.request_id} {state_name(r.state)}"
    if r.state == pb.REQUEST_STATE_PENDING and r.required_approvals > 1:
        line += f" ({len(r.approvals)} of {r.required_approvals} approvals)"
    return line


# ---- vigil access ---------------------------------------------------------------------------------


@access_app.command("request", help="Ask for access (-f: an AccessRequest). Prints the new request's id.")
def access_request(ctx: typer.Context, file: RequestFile, json_output: JsonFlag = False) -> None:
    message = load_file(file, pb.AccessRequest)
    created = call(
        ctx, lambda stub: stub.CreateAccessRequest(pb.CreateAccessRequestRequest(access_request=message))
    )
    if json_output:
        print_message(created)
    else:
        typer.echo(created.request_id)


def _change(
    ctx: typer.Context,
    json_output: bool,
    body: Callable[[pb_grpc.SharingServiceStub], Awaitable[pb.AccessRequest]],
) -> None:
    changed = call(ctx, body)
    if json_output:
        print_message(changed)
    else:
        typer.echo(request_line(changed))


@access_app.command("approve", help="Approve a pending request (never your own). Prints `ID STATE`.")
def access_approve(
    ctx: typer.Context, request_id: RequestId, reason: Reason = "", json_output: JsonFlag = False
) -> None:
    _change(
        ctx,
        json_output,
        lambda stub: stub.ApproveAccessRequest(
            pb.ApproveAccessRequestRequest(request_id=request_id, reason=reason)
        ),
    )


@access_app.command("deny", help="Deny a pending request. Prints `ID STATE`.")
def access_deny(
    ctx: typer.Context, request_id: RequestId, reason: Reason = "", json_output: JsonFlag = False
) -> None:
    _change(
        ctx,
        json_output,
        lambda stub: stub.DenyAccessRequest(
            pb.DenyAccessRequestRequest(request_id=request_id, reason=reason)
        ),
    )


@access_app.command("revoke", help="End an approved grant at once, everywhere within 1 s. Prints `ID STATE`.")
def access_revoke(
    ctx: typer.Context, request_id: RequestId, reason: Reason = "", json_output: JsonFlag = False
) -> None:
    _change(
        ctx,
        json_output,
        lambda stub: stub.RevokeGrant(pb.RevokeGrantRequest(grant_id=request_id, reason=reason)),
    )


@access_app.command("withdraw", help="Take back your own request, or give up your grant. Prints `ID STATE`.")
def access_withdraw(
    ctx: typer.Context, request_id: RequestId, reason: Reason = "", json_output: JsonFlag = False
) -> None:
    _change(
        ctx,
        json_output,
        lambda stub: stub.WithdrawAccessRequest(
            pb.WithdrawAccessRequestRequest(request_id=request_id, reason=reason)
        ),
    )


@access_app.command("get", help="Show one access request (or grant).")
def access_get(ctx: typer.Context, request_id: RequestId, json_output: JsonFlag = False) -> None:
    found = call(ctx, lambda stub: stub.GetAccessRequest(pb.GetAccessRequestRequest(request_id=request_id)))
    if json_output:
        print_message(found)
    else:
        print_resource(f"access request {request_id}", found)


@access_app.command("list", help="The access requests you may see (every page), optionally in one state.")
def access_list(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option("--state", help="pending, approved, denied, revoked or expired.", metavar="STATE"),
    ] = None,
    requester: Annotated[
        str | None, typer.Option("--requester", help="Only this requester's (principal id).")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.ListAccessRequestsRequest(
        state=state_value(state) if state else 0, requester_id=requester or ""
    )
    found = call(
        ctx,
        lambda stub: list_all(stub.ListAccessRequests, request, "access_requests", page_size=LIST_PAGE_SIZE),
    )
    if json_output:
        print_messages(found)
        return
    rows = [
        (
            r.request_id,
            r.requester.id,
            _short(pb.Purpose, r.purpose, "PURPOSE_"),
            actions_text(r.actions),
            scope_text(r.scope),
            state_name(r.state),
            ts(r.valid_until),
        )
        for r in found
    ]
    print_table(
        f"access requests ({len(rows)})",
        ("request", "requester", "purpose", "actions", "scope", "state", "valid until"),
        rows,
    )


@access_app.command(
    "check",
    help="Ask Authorize whether you may do ACTION on DEVICE now (and read --from..--to). "
    "Exit 0 and the reason when allowed; exit 1 with PERMISSION_DENIED and the reason when denied.",
)
def access_check(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(metavar="DEVICE", help="The device's id.")],
    action: Annotated[
        str,
        typer.Option(
            "--action",
            help="live_view, playback, export or subscribe_events (or ACTION_…).",
            metavar="ACTION",
        ),
    ],
    start: Annotated[
        datetime | None,
        typer.Option(
            "--from", parser=parse_time, metavar="RFC3339", help="Footage window start (with --to)."
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", parser=parse_time, metavar="RFC3339", help="Footage window end (with --from)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.AuthorizeRequest(action=action_value(action), device_id=device_id)
    window = footage_range(start, end)
    if window is not None:
        request.footage_window.CopyFrom(window)
    decision = call(ctx, lambda stub: stub.Authorize(request))
    if json_output:
        # Every field, false and empty ones too: "allowed": false is the answer, not an omission.
        typer.echo(
            json_format.MessageToJson(
                decision,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
                indent=2,
                ensure_ascii=False,
            )
        )
        raise typer.Exit(EXIT_OK if decision.allowed else 1)
    if decision.allowed:
        grant = f" (grant {decision.grant_id})" if decision.grant_id else ""
        unmasked = "; unmasked video allowed" if decision.unmasked_allowed else ""
        typer.echo(f"ALLOWED [{decision.rule}]: {decision.reason}{grant}{unmasked}")
        return
    rule = f" [{decision.rule}]" if decision.rule else ""
    fail(f"PERMISSION_DENIED{rule}: {decision.reason}")


# ---- vigil subscriptions / subscribe --------------------------------------------------------------


@subscriptions_app.command("create", help="Subscribe your unit (-f: a Subscription). Prints the new id.")
def subscriptions_create(ctx: typer.Context, file: RequestFile, json_output: JsonFlag = False) -> None:
    message = load_file(file, pb.Subscription)
    created = call(
        ctx, lambda stub: stub.CreateSubscription(pb.CreateSubscriptionRequest(subscription=message))
    )
    if json_output:
        print_message(created)
    else:
        typer.echo(created.subscription_id)


@subscriptions_app.command("list", help="Your unit's subscriptions (every page).")
def subscriptions_list(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    found = call(
        ctx,
        lambda stub: list_all(
            stub.ListSubscriptions, pb.ListSubscriptionsRequest(), "subscriptions", page_size=LIST_PAGE_SIZE
        ),
    )
    if json_output:
        print_messages(found)
        return
    rows = [
        (
            s.subscription_id,
            s.partner_unit_id,
            s.grant_id,
            ", ".join(s.event_types) or "(all offered)",
            scope_text(s.scope),
            ts(s.create_time),
        )
        for s in found
    ]
    print_table(
        f"subscriptions ({len(rows)})",
        ("subscription", "partner unit", "grant", "events", "scope", "created"),
        rows,
    )


def event_line(event: pb.PartnerEvent) -> str:
    """One event for people: time, type, subject, id and the cursor to resume after it."""
    when = ts(event.ce_time) or "-"
    return f"{when} {event.ce_type} {event.subject or '-'} id={event.ce_id} cursor={event.cursor}"


def event_json(event: pb.PartnerEvent) -> str:
    """One event as one line of canonical JSON (JSON Lines, so a tail can be piped)."""
    data = json_format.MessageToDict(event, preserving_proto_field_name=True)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def subscribe(
    ctx: typer.Context,
    subscription_id: Annotated[
        str, typer.Option("--subscription", help="One subscription (default: every one of your unit).")
    ] = "",
    cursor: Annotated[
        str,
        typer.Option(
            "--from-cursor", help="Resume right after the event that carried this cursor.", metavar="C"
        ),
    ] = "",
    max_events: Annotated[
        int, typer.Option("--max-events", min=0, help="Stop after this many events (0: tail until Ctrl-C).")
    ] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="One canonical-JSON PartnerEvent per line (proto field names).")
    ] = False,
) -> None:
    s = session(ctx)
    context = s.context()
    request = pb.SubscribeRequest(subscription_id=subscription_id, cursor=cursor)

    async def tail() -> int:
        seen = 0
        async with s.channel("sharing", context=context) as channel:
            stream = pb_grpc.SharingServiceStub(channel).Subscribe(request)
            try:
                async for event in stream:
                    typer.echo(event_json(event) if json_output else event_line(event))
                    seen += 1
                    if max_events and seen >= max_events:
                        break
            finally:
                stream.cancel()
        return seen

    try:
        run(tail())
    except KeyboardInterrupt:  # Ctrl-C ends a tail normally
        raise typer.Exit(EXIT_OK) from None
