"""/api/v1/conversations: the inbox, a thread's history, sending, reactions, sender actions."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, status

from app.api.deps import (
    ConversationServiceDep,
    ReactionServiceDep,
    SenderActionServiceDep,
    SendServiceDep,
)
from app.api.responses import json_response
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.v1 import (
    ConversationPage,
    ConversationRead,
    MessageCreate,
    MessagePage,
    MessageRead,
    ReactionCreate,
    ReactionRead,
    SenderActionCreate,
    columns_of,
    reaction_json,
)
from app.services.sending import graph_message

router = APIRouter(prefix="/conversations", tags=["conversations"])

CustomerId = Annotated[
    str,
    Path(pattern=IG_ID_PATTERN, description="The customer's IGSID.", examples=["1187429836452190"]),
]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
CURSOR = "An opaque cursor from a previous page."


@router.get(
    "",
    summary="List conversations",
    response_model=ConversationPage,
    responses=error_responses(401, 422, 503),
)
def list_conversations(
    service: ConversationServiceDep,
    limit: Limit = 20,
    cursor: Annotated[str | None, Query(max_length=200, description=CURSOR)] = None,
) -> Response:
    """Conversations with at least one message, newest activity first, with the customer,
    a preview of the last message, the messaging window (`can_reply_until`, 24 h after the
    customer's last message; `human_agent_until`, 7 days) and the unread count (customer
    messages after the business's last one). Follow `next_cursor` for the next page."""
    return json_response(service.page(limit=limit, cursor=cursor))


@router.get(
    "/{customer_id}",
    summary="Get a conversation",
    response_model=ConversationRead,
    responses=error_responses(401, 404, 422, 503),
)
def get_conversation(service: ConversationServiceDep, customer_id: CustomerId) -> Response:
    """The conversation with one customer, with the same fields as in the list."""
    return json_response(service.get(customer_id))


@router.get(
    "/{customer_id}/messages",
    summary="List a conversation's messages",
    response_model=MessagePage,
    responses=error_responses(401, 404, 422, 503),
)
def list_messages(
    service: ConversationServiceDep,
    customer_id: CustomerId,
    limit: Limit = 50,
    before: Annotated[
        str | None, Query(max_length=200, description="Older than this cursor.")
    ] = None,
    after: Annotated[
        str | None, Query(max_length=200, description="Newer than this cursor.")
    ] = None,
) -> Response:
    """Messages newest first, with attachments, replies, reactions, edits and unsends, and
    for outbound messages their status, error and whether the customer has read them.
    Without a cursor: the newest page. `before=<page.before>` pages back in time,
    `after=<page.after>` forward (also to poll for new messages). Cost does not depend on
    the length of the history."""
    return json_response(
        service.messages(customer_id=customer_id, limit=limit, before=before, after=after)
    )


@router.post(
    "/{customer_id}/messages",
    summary="Send a message",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageRead,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503, 504),
)
def send_message(
    service: SendServiceDep,
    customer_id: CustomerId,
    body: MessageCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Repeat a request safely: the same key and body return the first "
            "result without sending again.",
        ),
    ] = None,
) -> Response:
    """Send text (with optional quick replies), one attachment (image, video, audio or file
    by https URL, or the heart sticker), 2-10 images, or a generic/button template. Inside 24
    hours of the customer's last message it is sent; 24 hours to 7 days only with
    `tag: HUMAN_AGENT`; otherwise 409 `outside_window`. The message is stored (`failed` with
    Meta's error when Meta refuses it) and returned."""
    message = service.send(
        customer_id=customer_id,
        content=graph_message(body),
        tag=body.tag,
        idempotency_key=idempotency_key,
    )
    return json_response(service.read(message), status_code=status.HTTP_201_CREATED)


@router.post(
    "/{customer_id}/reactions",
    summary="React to a customer's message",
    status_code=status.HTTP_201_CREATED,
    response_model=ReactionRead,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503, 504),
)
def react(
    service: ReactionServiceDep, customer_id: CustomerId, body: ReactionCreate
) -> ReactionRead:
    """React as the business to one of the customer's messages (a new reaction replaces the
    previous one)."""
    stored = service.react(customer_id=customer_id, mid=body.mid, reaction=body.reaction)
    return ReactionRead.model_validate(reaction_json(columns_of(stored)))


@router.delete(
    "/{customer_id}/reactions/{mid}",
    summary="Remove the business's reaction",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503, 504),
)
def unreact(
    service: ReactionServiceDep,
    customer_id: CustomerId,
    mid: Annotated[str, Path(min_length=1, max_length=1024, description="The message's mid.")],
) -> Response:
    """Withdraw the business's reaction to one of the customer's messages."""
    service.react(customer_id=customer_id, mid=mid, reaction=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{customer_id}/actions",
    summary="Send a sender action",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503, 504),
)
def send_action(
    service: SenderActionServiceDep, customer_id: CustomerId, body: SenderActionCreate
) -> Response:
    """Show the typing indicator (`typing_on`/`typing_off`) or mark the conversation seen
    (`mark_seen`)."""
    service.send(customer_id=customer_id, action=body.action)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
