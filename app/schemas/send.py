"""The original `/message/send` body and answer (README sample 3)."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.schemas.common import InstagramId

MAX_TEXT_BYTES = 1000  # Meta counts UTF-8 bytes, not characters


def _fits_send_api(text: str) -> str:
    if not text.strip():
        raise ValueError("text must not be blank")
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_BYTES:
        raise ValueError(f"text is {size} UTF-8 bytes; Instagram accepts at most {MAX_TEXT_BYTES}")
    return text


MessageText = Annotated[str, Field(min_length=1), AfterValidator(_fits_send_api)]


class SeedRecipient(BaseModel):
    id: InstagramId


class SeedOutgoingText(BaseModel):
    text: MessageText = Field(description="Up to 1000 UTF-8 bytes.")


class SeedSendRequest(BaseModel):
    """Sample 3's body; `recipient` may be omitted when `user_id` is in the query."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient": {"id": "1187429836452190"},
                    "message": {"text": "test send text by API"},
                }
            ]
        }
    )

    recipient: SeedRecipient | None = None
    message: SeedOutgoingText


class SeedSendResponse(BaseModel):
    """Sample 3's answer, plus the `message_id` Meta assigned (its echo webhook carries it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient": {"id": "1187429836452190"},
                    "message": {"text": "test send text by API"},
                    "message_id": "aWdfZAG1faXRlbToxOklHTWVzc2FnZA...ZDZD",
                }
            ]
        }
    )

    recipient: SeedRecipient
    message: SeedOutgoingText
    message_id: str
