"""The rows webhook intake writes, typed: what crosses from the intake batch into the
repositories' upserts. Each field is named after the column it fills."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageHead:
    """What any webhook event about a message knows of it: enough for a placeholder row."""

    mid: str
    # None until the batch has stored the conversation (it writes conversations first).
    conversation_id: int | None = None
    direction: str  # inbound | outbound
    sender_id: str
    recipient_id: str
    sent_at: datetime
    created_at: datetime
    source: str  # webhook | echo
    status: str | None  # "sent" on echoes


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRow(MessageHead):
    """A message (or a postback, stored as the customer's message): stored once by mid."""

    text: str | None
    attachments: list[dict[str, Any]] | None
    reply_to: dict[str, Any] | None
    quick_reply_payload: str | None
    postback_payload: str | None
    referral: dict[str, Any] | None
    is_unsupported: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsendRow(MessageHead):
    """An unsend: the message becomes a tombstone. `sent_at` is the unsend's time too."""

    deleted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EditRow(MessageHead):
    """An edit: the message's new full text, and how many times it was edited."""

    text: str | None
    edit_count: int
    edited_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionRow:
    """One user's reaction to a message; `reaction` None is an unreact."""

    mid: str
    user_id: str
    reaction: str | None
    emoji: str | None
    reacted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationClocks:
    """What webhook events tell about one conversation: each clock only ever moves forward,
    and the read mid and the referral travel with their clocks."""

    account_id: str
    customer_id: str
    last_message_at: datetime | None = None
    last_inbound_at: datetime | None = None  # the customer's last message: the window
    customer_read_at: datetime | None = None
    customer_read_mid: str | None = None
    last_referral: dict[str, Any] | None = None
    last_referral_at: datetime | None = None
