"""The accounts API's schemas: what `POST /api/v1/accounts` takes and what it answers."""

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.models import Account

if TYPE_CHECKING:  # a service's type, read only for its attributes (no import cycle at run time)
    from app.services.token_status import TokenStatus

SAMPLE_ACCOUNT_ID = "17841400123456789"
# Meta's tokens are visible ASCII (an HTTP header carries them).
TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")


class AccountCreate(BaseModel):
    """An access token of the business account to add (Instagram API with Instagram Login)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"access_token": "IGAA..."}]}
    )

    access_token: SecretStr = Field(
        min_length=16,
        max_length=1024,
        description="The account's long-lived Instagram user access token (`IGAA…`). It is "
        "stored sealed and never appears in an answer or a log.",
    )

    @field_validator("access_token")
    @classmethod
    def _visible_ascii(cls, value: SecretStr) -> SecretStr:
        if not TOKEN_SHAPE.fullmatch(value.get_secret_value()):
            raise ValueError("an access token is visible ASCII characters only")
        return value


ACCOUNT_EXAMPLE: dict[str, Any] = {
    "id": SAMPLE_ACCOUNT_ID,
    "username": "acme_shop",
    "status": "active",
    "token_state": "valid",
    "token_expires_at": "2026-01-29T13:00:00Z",
    "token_detail": "valid, expires in 59 days, 2026-01-29 13:00 UTC",
    "subscribed_fields": ["messages", "message_reactions"],
    "last_webhook_at": "2025-11-30T12:59:00Z",
    "conversation_count": 42,
    "created_at": "2025-11-30T12:00:00Z",
}


class AccountRead(BaseModel):
    """A business account the service serves (or served: `removed`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [ACCOUNT_EXAMPLE]})

    id: str = Field(description="The account's IG_ID (`/me` → `user_id`, webhooks' `entry.id`).")
    username: str | None
    status: str = Field(
        description="`active`, `needs_reauth` (Meta refused its token: add a new one) or `removed`."
    )
    token_state: str = Field(
        description="`valid`, `expiring in N days` (the refresh job renews it) or `invalid` "
        "(rejected, expired, or none stored)."
    )
    token_expires_at: datetime | None
    token_detail: str = Field(description="The token's state in a sentence, with the fix.")
    subscribed_fields: list[str] | None = Field(
        description="The webhook fields Meta reported when the service last subscribed it."
    )
    last_webhook_at: datetime | None = Field(
        description="The last delivery with an entry of this account (to the minute)."
    )
    conversation_count: int
    created_at: datetime


class AccountList(BaseModel):
    """Every account, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [ACCOUNT_EXAMPLE]}]})

    data: list[AccountRead]


def token_state(status: "TokenStatus") -> str:
    """The issue's three words: valid, expiring in N days, invalid."""
    if status.state == "valid":
        return "valid"
    if status.state == "expiring" and status.days_left is not None:
        return f"expiring in {int(status.days_left)} days"
    return "invalid"


def account_json(row: Account, *, token: "TokenStatus", conversation_count: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "status": row.status,
        "token_state": token_state(token) if row.status != "removed" else "invalid",
        "token_expires_at": token.expires_at,
        "token_detail": token.detail if row.status != "removed" else "removed: no token kept",
        "subscribed_fields": row.subscribed_fields,
        "last_webhook_at": row.last_webhook_at,
        "conversation_count": conversation_count,
        "created_at": row.created_at,
    }
