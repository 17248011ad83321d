"""`/message/send`: send a text to a customer (the original endpoint)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SendServiceDep
from app.errors import InvalidInputError
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.send import SeedOutgoingText, SeedRecipient, SeedSendRequest, SeedSendResponse

router = APIRouter(tags=["original API"])


@router.post(
    "/message/send",
    summary="Send a text message",
    deprecated=True,
    response_model=SeedSendResponse,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503, 504),
)
def send_message(
    service: SendServiceDep,
    payload: SeedSendRequest,
    user_id: Annotated[
        str | None,
        Query(pattern=IG_ID_PATTERN, description="The customer's IGSID (else `recipient.id`)."),
    ] = None,
) -> SeedSendResponse:
    """Send `message.text` (≤ 1000 UTF-8 bytes) to `user_id` (or `recipient.id`) through the
    Send API, once, and store it. 409 `outside_window` when the customer's last message is
    more than 24 hours old; Instagram's errors map to 404/409/429/502/503/504.

    Deprecated: `POST /api/v1/conversations/{customer_id}/messages` also sends media,
    templates and quick replies, with idempotency keys."""
    customer_id = _customer(user_id, payload.recipient)
    message = service.send(customer_id=customer_id, content={"text": payload.message.text})
    assert message.mid is not None
    return SeedSendResponse(
        recipient=SeedRecipient(id=customer_id),
        message=SeedOutgoingText(text=payload.message.text),
        message_id=message.mid,
    )


def _customer(user_id: str | None, recipient: SeedRecipient | None) -> str:
    """The customer the request names, in the query (`user_id`) or the body (`recipient.id`)."""
    if user_id and recipient and recipient.id != user_id:
        raise InvalidInputError(
            f"user_id ({user_id}) and recipient.id ({recipient.id}) name different users.",
            code="recipient_mismatch",
        )
    chosen = user_id or (recipient.id if recipient else None)
    if chosen is None:
        raise InvalidInputError(
            "Say who receives the message: `user_id` in the query or `recipient.id` in the body.",
            code="recipient_required",
        )
    return chosen
