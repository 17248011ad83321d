"""`/messages`: the last messages of a conversation (the original endpoint)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import HistoryServiceDep
from app.api.responses import json_response
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.messages import SeedMessageRead

router = APIRouter(tags=["original API"])

MAX_MESSAGES = 1000


@router.get(
    "/messages",
    summary="Last messages with a user",
    deprecated=True,
    response_model=list[SeedMessageRead],
    responses=error_responses(401, 404, 422, 503),
)
def list_messages(
    service: HistoryServiceDep,
    user_id: Annotated[
        str,
        Query(
            pattern=IG_ID_PATTERN,
            description="The customer's IGSID.",
            examples=["1667654223855126"],
        ),
    ],
    messages_count: Annotated[
        int, Query(ge=1, le=MAX_MESSAGES, description="How many of the latest messages.")
    ] = 50,
) -> Response:
    """The last `messages_count` messages (default 50) with the customer `user_id`, oldest
    first, as `{sender_username, recipient_username, text}`. Usernames come from the profile
    cache (the id when Instagram has none); media without text shows as `[image]` etc.,
    unsent messages as `[deleted]`. 404 when there are no messages.

    Deprecated: `GET /api/v1/conversations/{customer_id}/messages` pages through the whole
    history."""
    return json_response(service.recent(customer_id=user_id, count=messages_count))
