"""/api/v1/events: the outbox as a feed, and as a live stream (Server-Sent Events)."""

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import EventFeedDep
from app.api.responses import dumps, json_response
from app.errors import InvalidInputError
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.v1.events import EventPage
from app.services.events.feed import check_types
from app.services.events.stream import (
    Broadcaster,
    Subscription,
    catch_up,
    oldest_kept,
    wanted,
)

router = APIRouter(prefix="/events", tags=["events"])

After = Annotated[
    int, Query(ge=0, le=2**63 - 1, description="Return events with a greater `seq` (0: all kept).")
]
Types = Annotated[
    str | None,
    Query(
        max_length=1000,
        description="Comma-separated event types (all when absent), e.g. "
        "`message.received,message.sent`.",
    ),
]
AccountId = Annotated[
    str | None, Query(pattern=IG_ID_PATTERN, description="Only this business account's events.")
]


def split_types(types: str | None) -> list[str] | None:
    return [part.strip() for part in types.split(",") if part.strip()] if types else None


@router.get(
    "",
    summary="List events",
    response_model=EventPage,
    responses=error_responses(401, 410, 422, 503),
)
def list_events(
    feed: EventFeedDep,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 100,
    types: Types = None,
    account_id: AccountId = None,
) -> Response:
    """The outbox, oldest first, from just after `after` (a `seq`): for consumers that poll
    or catch up. Continue with `after=next_after`. 410 `events_expired` when events after
    `after` were deleted (older than EVENTS_RETENTION_DAYS)."""
    page = feed.page(after=after, limit=limit, types=split_types(types), account_id=account_id)
    return json_response(page)


# Catch-up reads of open streams run in threads of their own, never in the worker threads
# the synchronous endpoints need (however many streams open at once).
_STREAM_THREADS = anyio.CapacityLimiter(4)
HEARTBEAT_SECONDS = 15.0
DISCONNECT_CHECK_SECONDS = 1.0


@router.get(
    "/stream",
    summary="Stream events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        **error_responses(401, 422, 503),
    },
)
async def stream_events(
    request: Request,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Start after this seq (default: from now)."),
    ] = None,
    types: Types = None,
    account_id: AccountId = None,
    last_event_id: Annotated[
        str | None,
        Header(max_length=20, description="Resume after this seq (what `id:` last said)."),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: `id:` the seq, `event:` the type, `data:` the event JSON (as in the
    feed). Resumes after `Last-Event-ID` (or `?after=`); without either, from now. A comment
    line every 15 s keeps the connection open. Events older than the retention are skipped
    with a `reset` event saying from where the stream goes on."""
    wanted_types = check_types(split_types(types))
    start = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise InvalidInputError("Last-Event-ID must be a seq.", code="invalid_last_event_id")
        start = int(last_event_id.strip())
    broadcaster: Broadcaster = request.app.state.events_broadcaster
    session_factory = request.app.state.session_factory
    subscription = Subscription(loop=asyncio.get_running_loop())
    up_to = await anyio.to_thread.run_sync(
        broadcaster.subscribe, subscription, limiter=_STREAM_THREADS
    )
    filters = {"types": set(wanted_types) if wanted_types else None, "account_id": account_id}
    lines = _sse(
        request,
        broadcaster,
        subscription,
        session_factory=session_factory,
        start=up_to if start is None else start,
        up_to=up_to,
        filters=filters,
    )
    return StreamingResponse(
        lines,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    request: Request,
    broadcaster: Broadcaster,
    subscription: Subscription,
    *,
    session_factory: Any,
    start: int,
    up_to: int,
    filters: dict[str, Any],
) -> AsyncIterator[bytes]:
    try:
        last = start
        oldest = await anyio.to_thread.run_sync(
            oldest_kept, session_factory, limiter=_STREAM_THREADS
        )
        if last > 0 and oldest is not None and last < oldest - 1:
            reset = {"code": "events_expired", "after": oldest - 1}
            yield b"event: reset\ndata: " + dumps(reset) + b"\n\n"
            last = oldest - 1
        while last < up_to:  # catching up, a page at a time, to where the poller was
            read = functools.partial(catch_up, session_factory, after=last, up_to=up_to)
            page = await anyio.to_thread.run_sync(read, limiter=_STREAM_THREADS)
            if not page:
                break
            for event in page:
                if wanted(event, **filters):
                    yield _frame(event)
            last = page[-1]["seq"]
        quiet_since = anyio.current_time()
        while True:
            try:
                with anyio.fail_after(DISCONNECT_CHECK_SECONDS):
                    batch = await subscription.queue.get()
            except TimeoutError:
                # The server notices a client gone only when it writes; ask instead, so a
                # closed stream ends (and is unsubscribed) within a second.
                if await request.is_disconnected():
                    return
                if anyio.current_time() - quiet_since >= HEARTBEAT_SECONDS:
                    quiet_since = anyio.current_time()
                    yield b": keep-alive\n\n"
                continue
            quiet_since = anyio.current_time()
            if batch is None:
                return  # fell too far behind: the client resumes with Last-Event-ID
            subscription.taken(len(batch))
            for event in batch:
                if event["seq"] > last and wanted(event, **filters):
                    yield _frame(event)
            last = max(last, batch[-1]["seq"])
    finally:
        broadcaster.unsubscribe(subscription)


def _frame(event: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event["seq"],
        event["type"].encode(),
        dumps(event),
    )
