"""Events out at /api/v1: an event as the feed, the stream and `fab listen` show it, and the
body each delivery POSTs (Standard Webhooks: `type`, `timestamp`, `data`)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import SAMPLE_CUSTOMER_ID, SAMPLE_MID

JsonObject = dict[str, Any]

_SAMPLE_EVENT: dict[str, Any] = {
    "id": "evt_kq3XoI2vJ8R0yZ3aW1bC5dEf",
    "seq": 42,
    "type": "message.received",
    "account_id": "17841400123456789",
    "conversation": SAMPLE_CUSTOMER_ID,
    "created_at": "2025-04-29T10:50:12.345Z",
    "data": {"message": {"mid": SAMPLE_MID, "direction": "inbound", "text": "Hi!"}},
}


class EventRead(BaseModel):
    """One event of the outbox; `data` is a snapshot of the object as /api/v1 showed it when
    the change was stored (`message`, `reaction`, `conversation`, `user` or `account`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SAMPLE_EVENT]})

    id: str = Field(description="`evt_…`: stable forever; the `webhook-id` of every delivery.")
    seq: int = Field(description="Global order of the outbox (pass as `after` to resume).")
    type: str = Field(description="`message.received`, `message.sent`, ... (see docs/api.md).")
    account_id: str | None = Field(description="The business account (IG_ID).")
    conversation: str | None = Field(description="The customer's IGSID.")
    created_at: datetime
    data: JsonObject


class EventPage(BaseModel):
    """Oldest first. Pass `next_after` as `after` for the next page."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"data": [_SAMPLE_EVENT], "next_after": 42, "has_more": False}]
        }
    )

    data: list[EventRead]
    next_after: int = Field(description="The seq to continue after (the last one shown).")
    has_more: bool = Field(description="More events are ready now.")


def event_json(row: Mapping[Any, Any]) -> JsonObject:
    """An EventRead: an events row's columns (the payload is JSON already)."""
    created_at = row["created_at"]
    return {
        "id": row["id"],
        "seq": row["seq"],
        "type": row["type"],
        "account_id": row["account_id"],
        "conversation": row["conversation"],
        "created_at": created_at,
        "data": row["payload"],
    }


def webhook_body(event: Mapping[str, Any], *, timestamp: datetime) -> JsonObject:
    """What a delivery POSTs (Standard Webhooks): the event's type, when it happened, and
    `data`: the snapshot with the event's id, seq, account and conversation."""
    return {
        "type": event["type"],
        "timestamp": timestamp,
        "data": {
            "id": event["id"],
            "seq": event["seq"],
            "account_id": event["account_id"],
            "conversation": event["conversation"],
            **event["data"],
        },
    }
