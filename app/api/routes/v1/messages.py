"""/api/v1/messages/{mid}: one message."""

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.api.deps import ConversationServiceDep
from app.api.responses import json_response
from app.schemas.errors import error_responses
from app.schemas.v1 import MessageRead

router = APIRouter(prefix="/messages", tags=["messages"])


@router.get(
    "/{mid}",
    summary="Get a message",
    response_model=MessageRead,
    responses=error_responses(401, 404, 422, 503),
)
def get_message(
    service: ConversationServiceDep,
    mid: Annotated[str, Path(min_length=1, max_length=1024, description="Meta's message id.")],
) -> Response:
    """One message by its `mid`, with its reactions and (outbound) delivery state."""
    return json_response(service.message(mid))
