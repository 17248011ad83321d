"""One collector per webhook event type: each parses its event and puts what it writes into
the batch. A collector validates its event before it offers the batch anything."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.models import utcnow
from app.repositories.rows import (
    ConversationClocks,
    EditRow,
    MessageRow,
    ReactionRow,
    UnsendRow,
)
from app.schemas.webhook import (
    MessageEditItem,
    MessageItem,
    MessagingItem,
    PostbackItem,
    ReactionItem,
    ReadItem,
    ReferralItem,
)
from app.services.intake.batch import IGNORED, Batch, Ticket
from app.services.intake.envelope import EventShapeError, WebhookEvent


def collect(batch: Batch, event: WebhookEvent) -> None:
    """Parse one webhook event into the batch (raises if it has no known shape)."""
    collector = COLLECTORS.get(event_kind(event.item))
    if collector is None:
        # optin, handover and other kinds nobody documents for Instagram: kept raw only.
        batch.note(IGNORED)
    else:
        batch.note(collector(batch, event.account_id, event.item))


def event_kind(item: Any) -> str:
    """Which webhook event a messaging item carries (`message`, `reaction`, ...)."""
    if not isinstance(item, dict):
        raise EventShapeError("messaging item is not an object")
    for key in COLLECTORS:
        if key in item:
            return key
    return "unknown"


@dataclass(frozen=True)
class _Sides:
    """Who is who in a webhook event (DESIGN.md decision 4)."""

    customer_id: str
    outbound: bool  # written by the business


def _sides(item: MessagingItem, *, account_id: str, is_echo: bool = False) -> _Sides:
    # The business is the sender on echoes (and on anything else it does itself).
    if is_echo or item.sender.id == account_id:
        return _Sides(customer_id=item.recipient.id, outbound=True)
    return _Sides(customer_id=item.sender.id, outbound=False)


def _head(item: MessagingItem, *, mid: str, sides: _Sides) -> dict[str, Any]:
    """What an event knows of the message it is about (MessageHead): a row of its own if it
    comes first."""
    return {
        "mid": mid,
        "direction": "outbound" if sides.outbound else "inbound",
        "sender_id": item.sender.id,
        "recipient_id": item.recipient.id,
        "sent_at": item.timestamp,
        "created_at": utcnow(),
        "source": "echo" if sides.outbound else "webhook",
        "status": "sent" if sides.outbound else None,
    }


def collect_message(batch: Batch, account_id: str, item: dict[str, Any]) -> Ticket:
    """A message (inbound, or the echo of one the business sent), stored once by `mid`.

    `is_deleted` (unsend) turns it into a tombstone, whenever it arrives.
    """
    parsed = MessageItem.model_validate(item)
    message = parsed.message
    sides = _sides(parsed, account_id=account_id, is_echo=message.is_echo)
    head = _head(parsed, mid=message.mid, sides=sides)
    if message.is_deleted:
        conversation = batch.conversation(
            ConversationClocks(account_id=account_id, customer_id=sides.customer_id)
        )
        batch.reference(message.mid, conversation=conversation)
        unsend = UnsendRow(**head, deleted_at=parsed.timestamp)
        return batch.unsend(unsend, conversation=conversation)
    conversation = batch.conversation(
        ConversationClocks(
            account_id=account_id,
            customer_id=sides.customer_id,
            last_message_at=parsed.timestamp,
            last_inbound_at=None if sides.outbound else parsed.timestamp,
        )
    )
    row = MessageRow(
        **head,
        text=message.text,
        attachments=item["message"].get("attachments"),  # verbatim, unknown keys included
        reply_to=message.reply_to,
        quick_reply_payload=message.quick_reply.payload if message.quick_reply else None,
        postback_payload=None,
        referral=message.referral,
        is_unsupported=message.is_unsupported,
    )
    replied_to = message.reply_to.get("mid") if message.reply_to else None
    if isinstance(replied_to, str) and replied_to:
        batch.reference(replied_to, conversation=conversation)
    return batch.message(row, conversation=conversation)


def collect_edit(batch: Batch, account_id: str, item: dict[str, Any]) -> Ticket:
    """`message_edit`: the new text, unless a later edit is stored (`num_edit` orders them)."""
    parsed = MessageEditItem.model_validate(item)
    edit = parsed.message_edit
    sides = _sides(parsed, account_id=account_id)
    conversation = batch.conversation(
        ConversationClocks(account_id=account_id, customer_id=sides.customer_id)
    )
    row = EditRow(
        **_head(parsed, mid=edit.mid, sides=sides),
        text=edit.text,
        edit_count=edit.num_edit,
        edited_at=parsed.timestamp,
    )
    batch.reference(edit.mid, conversation=conversation)
    return batch.edit(row, conversation=conversation)


def collect_reaction(batch: Batch, account_id: str, item: dict[str, Any]) -> Ticket:
    """React / unreact: one reaction per user per message, the latest event wins."""
    parsed = ReactionItem.model_validate(item)
    reaction = parsed.reaction
    reacting = reaction.action == "react"
    sides = _sides(parsed, account_id=account_id)
    conversation = batch.conversation(
        ConversationClocks(account_id=account_id, customer_id=sides.customer_id)
    )
    batch.reference(reaction.mid, conversation=conversation)
    row = ReactionRow(
        mid=reaction.mid,
        user_id=parsed.sender.id,
        reaction=(reaction.reaction or "other") if reacting else None,
        emoji=reaction.emoji if reacting else None,
        reacted_at=parsed.timestamp,
    )
    return batch.reaction(row, conversation=conversation)


def collect_read(batch: Batch, account_id: str, item: dict[str, Any]) -> None:
    """The customer has seen the business's messages up to the watermark (or now, for a mid)."""
    parsed = ReadItem.model_validate(item)
    read = parsed.read
    if read.mid is None and read.watermark is None:
        raise EventShapeError("read has neither mid nor watermark")
    sides = _sides(parsed, account_id=account_id)
    conversation = batch.conversation(
        ConversationClocks(
            account_id=account_id,
            customer_id=sides.customer_id,
            customer_read_at=read.watermark or parsed.timestamp,
            customer_read_mid=read.mid,
        )
    )
    if read.mid:
        batch.reference(read.mid, conversation=conversation)


def collect_postback(batch: Batch, account_id: str, item: dict[str, Any]) -> Ticket:
    """An icebreaker / button / menu tap: stored as the customer's message (its title), and
    like a message it opens the messaging window."""
    parsed = PostbackItem.model_validate(item)
    postback = parsed.postback
    sides = _sides(parsed, account_id=account_id)
    conversation = batch.conversation(
        ConversationClocks(
            account_id=account_id,
            customer_id=sides.customer_id,
            last_message_at=parsed.timestamp,
            last_inbound_at=parsed.timestamp,
        )
    )
    row = MessageRow(
        **_head(parsed, mid=postback.mid, sides=sides),
        text=postback.title,
        attachments=None,
        reply_to=None,
        quick_reply_payload=None,
        postback_payload=postback.payload,
        referral=postback.referral,
        is_unsupported=False,
    )
    return batch.message(row, conversation=conversation)


def collect_referral(batch: Batch, account_id: str, item: dict[str, Any]) -> None:
    """An ig.me link or ad opened the existing thread: remembered on the conversation. Meta
    counts it as the customer's action, so it refreshes the messaging window."""
    parsed = ReferralItem.model_validate(item)
    sides = _sides(parsed, account_id=account_id)
    batch.conversation(
        ConversationClocks(
            account_id=account_id,
            customer_id=sides.customer_id,
            last_inbound_at=parsed.timestamp,
            last_referral=parsed.referral,
            last_referral_at=parsed.timestamp,
        )
    )


# A collector parses one webhook event into the batch; it returns the ticket of the row it
# offered (None: the event only moves conversation clocks).
Collector = Callable[[Batch, str, dict[str, Any]], Ticket | None]

COLLECTORS: dict[str, Collector] = {
    "message": collect_message,
    "message_edit": collect_edit,
    "reaction": collect_reaction,
    "read": collect_read,
    "postback": collect_postback,
    "referral": collect_referral,
}
