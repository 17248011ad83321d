"""Webhook payload models: tolerant of fields Meta adds, strict about the ones we use."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.schemas.common import IG_ID_PATTERN, int_id_to_str

MILLISECONDS_THRESHOLD = 10**12  # below this an event time is in seconds (dashboard test events)
EARLIEST_EVENT = datetime(2010, 1, 1, tzinfo=UTC)
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)


def event_time(value: object) -> datetime:
    """Meta's event time (ms, sometimes seconds, sometimes a string) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("timestamp must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("timestamp must be a number") from None
    milliseconds = number if number >= MILLISECONDS_THRESHOLD else number * 1000
    try:
        moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp out of range") from None
    if not EARLIEST_EVENT <= moment < LATEST_EVENT:
        raise ValueError("timestamp out of range")
    return moment


# A person's or an account's Instagram id: digits only (an event naming anything else is
# refused and recorded on its delivery).
WebhookId = Annotated[str, BeforeValidator(int_id_to_str), Field(pattern=IG_ID_PATTERN)]
EventTime = Annotated[datetime, BeforeValidator(event_time)]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class Party(_Tolerant):
    id: WebhookId


class Attachment(_Tolerant):
    type: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] | None = None


class QuickReply(_Tolerant):
    payload: str


class WebhookMessage(_Tolerant):
    """The `message` of a messaging item (graph-api.md §3.1)."""

    mid: str = Field(min_length=1, max_length=1024)
    text: str | None = None
    attachments: list[Attachment] | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False
    reply_to: dict[str, Any] | None = None
    quick_reply: QuickReply | None = None
    referral: dict[str, Any] | None = None


class MessageEdit(_Tolerant):
    """`message_edit`: the new full text and how many times the message was edited."""

    mid: str = Field(min_length=1, max_length=1024)
    text: str | None = None
    num_edit: int = Field(ge=0)  # Meta's IG example shows a string: lax mode coerces it


class ReactionEvent(_Tolerant):
    mid: str = Field(min_length=1, max_length=1024)
    action: str = Field(pattern="^(react|unreact)$")
    reaction: str | None = Field(default=None, max_length=64)
    emoji: str | None = Field(default=None, max_length=64)


class ReadEvent(_Tolerant):
    """`read`: seen up to `mid` (Instagram) or up to a time `watermark` (Messenger style)."""

    mid: str | None = Field(default=None, min_length=1, max_length=1024)
    watermark: EventTime | None = None


class PostbackEvent(_Tolerant):
    """An icebreaker, template button or persistent-menu tap."""

    mid: str = Field(min_length=1, max_length=1024)
    title: str | None = None
    payload: str | None = None  # absent on standby postbacks
    referral: dict[str, Any] | None = None


class MessagingItem(_Tolerant):
    """What every item of `entry[].messaging[]` (or `standby[]`) has."""

    sender: Party
    recipient: Party
    timestamp: EventTime


class MessageItem(MessagingItem):
    message: WebhookMessage


class MessageEditItem(MessagingItem):
    message_edit: MessageEdit


class ReactionItem(MessagingItem):
    reaction: ReactionEvent


class ReadItem(MessagingItem):
    read: ReadEvent


class PostbackItem(MessagingItem):
    postback: PostbackEvent


class ReferralItem(MessagingItem):
    referral: dict[str, Any]
