"""Schemas of the RESTful API at /api/v1: ids are strings, times ISO 8601 UTC."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.schemas.send import MessageText
from app.schemas.users import SeedUserRead

SAMPLE_USER_ID = "1187429836452190"
SAMPLE_MID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMTIzNDU2Nzg5OjM0MDI4MjM2Njg0MTcx...ZDZD"


def _https(url: str) -> str:
    # Meta fetches media and opens buttons itself: it needs a public https URL.
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise ValueError("must be an https:// URL")
    return url


HttpsUrl = Annotated[str, Field(max_length=2048), AfterValidator(_https)]


# --- reading -----------------------------------------------------------------------------------


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


class ConversationRead(BaseModel):
    """A conversation with one customer, and what an inbox needs to show it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "17841400123456789",
                    "customer": {
                        "id": SAMPLE_USER_ID,
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
                    "recipient_id": SAMPLE_USER_ID,
                    "text": "Yes, we ship to Germany.",
                    "attachments": None,
                    "reply_to": None,
                    "quick_reply_payload": None,
                    "postback_payload": None,
                    "referral": None,
                    "reactions": [
                        {
                            "user_id": SAMPLE_USER_ID,
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
    attachments: list[dict[str, Any]] | None = Field(
        description="Verbatim from Instagram: `type` (image, video, audio, file, share, "
        "ig_post, ig_reel, story_mention, template, ...) and `payload`."
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
                    "id": SAMPLE_USER_ID,
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


# --- sending -----------------------------------------------------------------------------------

MAX_QUICK_REPLIES = 13
MAX_IMAGES = 10
MAX_BUTTONS = 3
MAX_ELEMENTS = 10


class QuickReplyCreate(BaseModel):
    title: str = Field(min_length=1, max_length=20)
    payload: str = Field(min_length=1, max_length=1000)


class UrlButton(BaseModel):
    type: Literal["web_url"]
    title: str = Field(min_length=1, max_length=20)
    url: HttpsUrl


class PostbackButton(BaseModel):
    type: Literal["postback"]
    title: str = Field(min_length=1, max_length=20)
    payload: str = Field(min_length=1, max_length=1000)


Button = Annotated[UrlButton | PostbackButton, Field(discriminator="type")]


class DefaultAction(BaseModel):
    type: Literal["web_url"] = "web_url"
    url: HttpsUrl


class GenericElement(BaseModel):
    title: str = Field(min_length=1, max_length=80)
    subtitle: str | None = Field(default=None, max_length=80)
    image_url: HttpsUrl | None = None
    default_action: DefaultAction | None = None
    buttons: list[Button] | None = Field(default=None, min_length=1, max_length=MAX_BUTTONS)


class GenericTemplate(BaseModel):
    template_type: Literal["generic"]
    elements: list[GenericElement] = Field(min_length=1, max_length=MAX_ELEMENTS)


class ButtonTemplate(BaseModel):
    template_type: Literal["button"]
    text: str = Field(min_length=1, max_length=640)
    buttons: list[Button] = Field(min_length=1, max_length=MAX_BUTTONS)


Template = Annotated[GenericTemplate | ButtonTemplate, Field(discriminator="template_type")]


class AttachmentCreate(BaseModel):
    """A media file Meta fetches from `url`, or the heart sticker (no url)."""

    type: Literal["image", "video", "audio", "file", "like_heart"]
    url: HttpsUrl | None = None

    @model_validator(mode="after")
    def _url_matches_type(self) -> "AttachmentCreate":
        if self.type == "like_heart" and self.url is not None:
            raise ValueError("like_heart takes no url")
        if self.type != "like_heart" and self.url is None:
            raise ValueError(f"a {self.type} attachment needs a url")
        return self


class MessageCreate(BaseModel):
    """Exactly one of `text`, `attachment`, `images`, `template`; `quick_replies` go with text."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Which size?", "quick_replies": [{"title": "M", "payload": "SIZE_M"}]},
                {"attachment": {"type": "image", "url": "https://example.com/jacket.jpg"}},
                {"text": "Sorry for the wait!", "tag": "HUMAN_AGENT"},
            ]
        },
    )

    text: MessageText | None = Field(default=None, description="Up to 1000 UTF-8 bytes.")
    attachment: AttachmentCreate | None = None
    images: list[HttpsUrl] | None = Field(
        default=None, min_length=2, max_length=MAX_IMAGES, description="2 to 10 image URLs."
    )
    template: Template | None = None
    quick_replies: list[QuickReplyCreate] | None = Field(
        default=None, min_length=1, max_length=MAX_QUICK_REPLIES
    )
    tag: Literal["HUMAN_AGENT"] | None = Field(
        default=None,
        description="A human agent's reply 24 hours to 7 days after the customer's last message.",
    )

    @model_validator(mode="after")
    def _one_kind_of_content(self) -> "MessageCreate":
        given = [
            name
            for name in ("text", "attachment", "images", "template")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of text, attachment, images, template"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.quick_replies is not None and self.text is None:
            raise ValueError("quick_replies go with a text message")
        return self

    def to_graph(self) -> dict[str, Any]:
        """The Send API's `message` object."""
        if self.text is not None:
            message: dict[str, Any] = {"text": self.text}
            if self.quick_replies:
                message["quick_replies"] = [
                    {"content_type": "text", "title": reply.title, "payload": reply.payload}
                    for reply in self.quick_replies
                ]
            return message
        if self.attachment is not None:
            attachment: dict[str, Any] = {"type": self.attachment.type}
            if self.attachment.url is not None:
                attachment["payload"] = {"url": self.attachment.url}
            return {"attachment": attachment}
        if self.images is not None:
            return {"attachments": [{"type": "image", "payload": {"url": u}} for u in self.images]}
        assert self.template is not None
        payload = self.template.model_dump(exclude_none=True)
        return {"attachment": {"type": "template", "payload": payload}}


class ReactionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"mid": SAMPLE_MID, "reaction": "love"}]}
    )

    mid: str = Field(min_length=1, max_length=1024, description="The customer's message.")
    reaction: str = Field(
        default="love",
        min_length=1,
        max_length=16,
        description="`love` (Instagram's heart), another reaction name, or an emoji.",
    )


class SenderActionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"action": "typing_on"}]}
    )

    action: Literal["typing_on", "typing_off", "mark_seen"]
