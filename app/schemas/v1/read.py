"""Read models of the RESTful API at /api/v1, and the builders of their JSON.

Ids are strings, times ISO 8601 UTC. The hot endpoints answer plain dicts built here and
serialized once with orjson (see app/api/responses.py for why); the models document them
and tests validate real answers against them.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import Message, Reaction
from app.schemas.common import SAMPLE_CUSTOMER_ID, SAMPLE_MID
from app.schemas.messages import content_available, display_text
from app.schemas.users import SeedUserRead
from app.services import window

JsonObject = dict[str, Any]
MediaState = Literal["remote", "pending", "stored", "too_large", "unsupported", "expired", "failed"]
SAMPLE_CDN_URL = (
    "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18046203962242029&signature=AYlT6u"
)
# A row's columns by name: `row._mapping` of a SELECT, or `columns_of(message)`.
Columns = Mapping[Any, Any]


class CustomerRead(BaseModel):
    id: str
    username: str | None = None
    name: str | None = None
    profile_pic: str | None = None


class MessagePreview(BaseModel):
    mid: str | None
    direction: Literal["inbound", "outbound"]
    text: str = Field(description="The text, or a placeholder such as `[image]` or `[deleted]`.")
    sent_at: datetime


class ReferralRead(BaseModel):
    """The latest ig.me link or ad that opened this existing conversation (Meta's `referral`)."""

    ref: str | None = Field(description="The link's or ad's `ref` parameter.")
    source: str | None = Field(description="`SHORTLINK` (ig.me) or `ADS`.")
    type: str | None = Field(description="`OPEN_THREAD`.")
    ad_id: str | None = Field(description="The ad, when an ad opened it.")
    at: datetime = Field(description="When the customer followed it.")


class ConversationRead(BaseModel):
    """A conversation with one customer, and what an inbox needs to show it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "17841400123456789",
                    "customer": {
                        "id": SAMPLE_CUSTOMER_ID,
                        "username": "peter_chang_live",
                        "name": "Peter Chang",
                        "profile_pic": "https://scontent.cdninstagram.com/peter.jpg",
                    },
                    "last_message": {
                        "mid": SAMPLE_MID,
                        "direction": "inbound",
                        "text": "Hi! Do you ship to Berlin?",
                        "sent_at": "2025-04-29T10:50:12Z",
                    },
                    "last_message_at": "2025-04-29T10:50:12Z",
                    "last_inbound_at": "2025-04-29T10:50:12Z",
                    "can_reply_until": "2025-04-30T10:50:12Z",
                    "human_agent_until": "2025-05-06T10:50:12Z",
                    "customer_read_at": None,
                    "unread_count": 1,
                    "last_referral": {
                        "ref": "spring_sale_2025",
                        "source": "SHORTLINK",
                        "type": "OPEN_THREAD",
                        "ad_id": None,
                        "at": "2025-04-29T10:50:33Z",
                    },
                }
            ]
        }
    )

    account_id: str = Field(description="The business account (IG_ID).")
    customer: CustomerRead
    last_message: MessagePreview | None
    last_message_at: datetime | None
    last_inbound_at: datetime | None = Field(description="The customer's last message.")
    can_reply_until: datetime | None = Field(
        description="24 hours after the customer's last message: replies need no tag until then."
    )
    human_agent_until: datetime | None = Field(
        description="7 days after the customer's last message: replies tagged HUMAN_AGENT."
    )
    customer_read_at: datetime | None = Field(
        description="The customer has seen the business's messages up to this time."
    )
    unread_count: int = Field(description="Customer messages after the business's last one.")
    last_referral: ReferralRead | None = Field(
        description="The latest ig.me link or ad that opened this existing conversation."
    )


def conversation_json(row: Columns, *, last: Columns | None, unread: int) -> JsonObject:
    """A ConversationRead: an inbox row's columns (the conversation's and its customer's,
    see repositories.conversations.page) and its last shown message's."""
    inbound_at = row["last_inbound_at"]
    preview = None
    if last is not None:
        preview = {
            "mid": last["mid"],
            "direction": last["direction"],
            "text": display_text(last),
            "sent_at": last["sent_at"],
        }
    return {
        "account_id": row["account_id"],
        "customer": {
            "id": row["customer_id"],
            "username": row["customer_username"],
            "name": row["customer_name"],
            "profile_pic": row["customer_profile_pic"],
        },
        "last_message": preview,
        "last_message_at": row["last_message_at"],
        "last_inbound_at": inbound_at,
        "can_reply_until": window.can_reply_until(inbound_at),
        "human_agent_until": window.human_agent_until(inbound_at),
        "customer_read_at": row["customer_read_at"],
        "unread_count": unread,
        "last_referral": _referral_json(row["last_referral"], at=row["last_referral_at"]),
    }


def _referral_json(referral: Any, *, at: datetime | None) -> JsonObject | None:
    if not isinstance(referral, dict) or at is None:
        return None

    def text(key: str) -> str | None:
        value = referral.get(key)
        return None if value is None else str(value)

    return {
        "ref": text("ref"),
        "source": text("source"),
        "type": text("type"),
        "ad_id": text("ad_id"),
        "at": at,
    }


class ConversationPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": ConversationRead.model_config["json_schema_extra"]["examples"],  # type: ignore[index]
                    "next_cursor": "MjAyNS0wNC0yOVQxMDo1MDoxMiswMDowMHw0Mg",
                }
            ]
        }
    )

    data: list[ConversationRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class ReactionRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "17841400123456789",
                    "reaction": "love",
                    "emoji": None,
                    "reacted_at": "2025-04-29T10:51:00Z",
                }
            ]
        }
    )

    user_id: str
    reaction: str
    emoji: str | None
    reacted_at: datetime


def reaction_json(reaction: Columns) -> JsonObject:
    """A ReactionRead: a reactions row's columns (a standing reaction: one with a name)."""
    return {
        "user_id": reaction["user_id"],
        "reaction": reaction["reaction"] or "",
        "emoji": reaction["emoji"],
        "reacted_at": reaction["reacted_at"],
    }


class AttachmentRead(BaseModel):
    """An attachment as Instagram sent it (`type`, `payload`, and any other key verbatim),
    with its media: a stable id and where to get it."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "image",
                    "payload": {"url": SAMPLE_CDN_URL},
                    "id": "7",
                    "url": "/api/v1/media/7",
                    "source_url": SAMPLE_CDN_URL,
                    "state": "remote",
                }
            ]
        },
    )

    type: str | None = Field(default=None, description="Verbatim from Instagram.")
    payload: Any = Field(default=None, description="Verbatim from Instagram.")
    id: str | None = Field(
        description="The media id (null only for a send's own attachment "
        "stored before media existed)."
    )
    url: str | None = Field(
        description="Path of `GET /api/v1/media/{id}` on this service: redirects to the live "
        "CDN URL, or serves the archived bytes."
    )
    source_url: str | None = Field(description="The CDN URL Meta gave (the latest one).")
    state: MediaState | None = Field(
        description="`remote` (URL only), `pending` (being archived), `stored`, or why it "
        "was not archived: `too_large`, `unsupported`, `expired`, `failed`."
    )


class MessageRead(BaseModel):
    """A message as stored, with its reactions and (outbound) delivery state."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "mid": SAMPLE_MID,
                    "direction": "outbound",
                    "sender_id": "17841400123456789",
                    "recipient_id": SAMPLE_CUSTOMER_ID,
                    "text": "Yes, we ship to Germany.",
                    "attachments": None,
                    "reply_to": None,
                    "quick_reply_payload": None,
                    "postback_payload": None,
                    "referral": None,
                    "reactions": [
                        {
                            "user_id": SAMPLE_CUSTOMER_ID,
                            "reaction": "love",
                            "emoji": "\u2764\ufe0f",
                            "reacted_at": "2025-04-29T10:51:00Z",
                        }
                    ],
                    "is_deleted": False,
                    "is_unsupported": False,
                    "edit_count": 0,
                    "edited_at": None,
                    "sent_at": "2025-04-29T10:50:24Z",
                    "status": "sent",
                    "error": None,
                    "read": True,
                    "content_available": True,
                }
            ]
        }
    )

    id: str = Field(description="The service's id (a pending send has no `mid` yet).")
    mid: str | None
    direction: Literal["inbound", "outbound"]
    sender_id: str
    recipient_id: str
    text: str | None
    attachments: list[AttachmentRead] | None = Field(
        description="Verbatim from Instagram: `type` (image, video, audio, file, share, "
        "ig_post, ig_reel, story_mention, template, ...) and `payload`; beside them the "
        "attachment's media: `id`, `url`, `source_url`, `state`."
    )
    reply_to: dict[str, Any] | None = Field(description="`{mid}`, or `{story: {url, id}}`.")
    quick_reply_payload: str | None
    postback_payload: str | None
    referral: dict[str, Any] | None
    reactions: list[ReactionRead]
    is_deleted: bool = Field(description="Unsent by its author: text and attachments cleared.")
    is_unsupported: bool
    edit_count: int
    edited_at: datetime | None
    sent_at: datetime
    status: Literal["pending", "sent", "failed"] | None = Field(
        description="Outbound only: a send through this API is `pending` until Meta answers."
    )
    error: dict[str, Any] | None = Field(description="Outbound `failed` only: Meta's error.")
    read: bool | None = Field(description="Outbound only: the customer has seen it.")
    content_available: bool = Field(
        description="False for a message imported by a backfill that Meta keeps no content "
        "of (older than its thread's 20 newest): only its id, time and sides are known."
    )


MEDIA_PATH = "/api/v1/media/{id}"


def attachments_json(attachments: Any, media: Mapping[int, Columns]) -> list[JsonObject] | None:
    """The verbatim attachments, each with its media beside `type` and `payload`: `id`,
    `url` (the path of `/api/v1/media/{id}`), `source_url` (the CDN URL) and `state`."""
    if not isinstance(attachments, list):
        return None
    shown = []
    for position, attachment in enumerate(attachments):
        verbatim = attachment if isinstance(attachment, dict) else {"payload": attachment}
        found = media.get(position)
        shown.append(
            {
                **verbatim,
                "id": str(found["id"]) if found else None,
                "url": MEDIA_PATH.format(id=found["id"]) if found else None,
                "source_url": found["source_url"] if found else None,
                "state": found["state"] if found else None,
            }
        )
    return shown


def message_json(
    message: Columns,
    *,
    reactions: list[Columns],
    read_until: datetime | None = None,
    media: Mapping[int, Columns] | None = None,
) -> JsonObject:
    """A MessageRead: a messages row's columns, its standing reactions' rows, how far the
    customer has read (`read_until`, the conversation's `customer_read_at`), and the media
    rows of its attachments by position."""
    outbound = message["direction"] == "outbound"
    read = None
    if outbound:
        read = (
            message["status"] == "sent"
            and read_until is not None
            and read_until >= message["sent_at"]
        )
    return {
        "id": str(message["id"]),
        "mid": message["mid"],
        "direction": message["direction"],
        "sender_id": message["sender_id"],
        "recipient_id": message["recipient_id"],
        "text": message["text"],
        "attachments": attachments_json(message["attachments"], media or {}),
        "reply_to": message["reply_to"],
        "quick_reply_payload": message["quick_reply_payload"],
        "postback_payload": message["postback_payload"],
        "referral": message["referral"],
        "reactions": [reaction_json(reaction) for reaction in reactions],
        "is_deleted": message["is_deleted"],
        "is_unsupported": message["is_unsupported"],
        "edit_count": message["edit_count"],
        "edited_at": message["edited_at"],
        "sent_at": message["sent_at"],
        "status": message["status"] if outbound else None,
        "error": message["error"] if outbound else None,
        "read": read,
        "content_available": content_available(message),
    }


def columns_of(row: Message | Reaction) -> JsonObject:
    """A stored object's columns by name, as message_json and reaction_json take them."""
    return {column.key: getattr(row, column.key) for column in type(row).__table__.columns}


class MessagePage(BaseModel):
    """Newest first. `before` pages to older messages, `after` to newer ones."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": MessageRead.model_config["json_schema_extra"]["examples"],  # type: ignore[index]
                    "before": "MjAyNS0wNC0yOVQxMDo1MDoyNCswMDowMHw0Mg",
                    "after": "MjAyNS0wNC0yOVQxMDo1MDoyNCswMDowMHw0Mg",
                    "has_older": True,
                    "has_newer": False,
                }
            ]
        }
    )

    data: list[MessageRead]
    before: str | None = Field(description="Cursor of the oldest message here (pass as `before`).")
    after: str | None = Field(description="Cursor of the newest message here (pass as `after`).")
    has_older: bool
    has_newer: bool


class UserRead(SeedUserRead):
    """A cached Instagram profile and where it stands: the original `/user` fields, and more."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": SAMPLE_CUSTOMER_ID,
                    "username": "peter_chang_live",
                    "name": "Peter Chang",
                    "profile_pic": "https://scontent.cdninstagram.com/peter.jpg",
                    "follower_count": 1234,
                    "is_user_follow_business": False,
                    "is_business_follow_user": True,
                    "is_verified_user": False,
                    "profile_status": "ok",
                    "fetched_at": "2025-04-29T10:50:13Z",
                }
            ]
        },
    )

    is_verified_user: bool | None
    profile_status: Literal["pending", "ok", "consent_required", "unavailable"] = Field(
        description="`consent_required`: Instagram shares it once the user writes to the business."
    )
    fetched_at: datetime | None
