"""/api/v1/events: the outbox as a feed (and, later in this module, as a live stream)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import EventFeedDep
from app.api.responses import json_response
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.v1.events import EventPage

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
