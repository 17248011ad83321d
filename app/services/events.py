"""Webhook events: find them in a delivery, and apply each one to the data model.

A delivery holds entries (one per business account), each with `messaging[]` (or `standby[]`)
items; each item carries exactly one event (`message`, `reaction`, `read`, ...). Every write
here is idempotent (keyed by Meta's ids), so duplicates and retries change nothing.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.models import utcnow
from app.repositories import conversations, messages, users
from app.schemas.webhook import MessagingItem

ITEM_LISTS = ("messaging", "standby")
DASHBOARD_TEST_ENTRY_ID = "0"


class EventShapeError(ValueError):
    """A part of a delivery that is not shaped like anything Meta documents."""


@dataclass(frozen=True)
class WebhookEvent:
    path: str  # where it sits in the delivery, e.g. "entry[0].messaging[1]"
    account_id: str  # entry.id: the business account (IG_ID)
    item: Any


def extract_events(payload: Any) -> Iterator[WebhookEvent | EventShapeError]:
    """Every messaging item of every entry, or an error for each part that has no known shape.

    Test entries from the App Dashboard (`id == "0"`, `changes[]`) and non-Instagram objects
    are kept in the raw delivery only.
    """
    # Some of Meta's doc snippets wrap the body in a list; real deliveries are one object.
    bodies = payload if isinstance(payload, list) else [payload]
    for body_index, body in enumerate(bodies):
        prefix = f"[{body_index}]." if isinstance(payload, list) else ""
        if not isinstance(body, dict) or not isinstance(body.get("entry", []), list):
            yield EventShapeError(f"{prefix or 'body'}: not a webhook envelope")
            continue
        if body.get("object", "instagram") != "instagram":
            continue
        for entry_index, entry in enumerate(body.get("entry", [])):
            path = f"{prefix}entry[{entry_index}]"
            if not isinstance(entry, dict):
                yield EventShapeError(f"{path}: not an object")
                continue
            account_id = entry.get("id")
            if isinstance(account_id, int) and not isinstance(account_id, bool):
                account_id = str(account_id)
            if account_id == DASHBOARD_TEST_ENTRY_ID:
                continue
            for list_name in ITEM_LISTS:
                items = entry.get(list_name)
                if items is None:
                    continue
                if not isinstance(items, list):
                    yield EventShapeError(f"{path}.{list_name}: not a list")
                    continue
                if not isinstance(account_id, str) or not account_id:
                    yield EventShapeError(f"{path}.id: missing account id")
                    break
                for item_index, item in enumerate(items):
                    yield WebhookEvent(
                        path=f"{path}.{list_name}[{item_index}]", account_id=account_id, item=item
                    )


def event_kind(item: Any) -> str:
    """Which event a messaging item carries (`message`, `reaction`, ...)."""
    if not isinstance(item, dict):
        raise EventShapeError("messaging item is not an object")
    for key in ("message", "message_edit", "reaction", "read", "postback", "referral"):
        if key in item:
            return key
    return "unknown"


def apply_event(session: Session, event: WebhookEvent) -> bool:
    """Apply one event; False when it is of a kind the service only keeps raw."""
    kind = event_kind(event.item)
    if kind == "message":
        apply_message(session, account_id=event.account_id, item=event.item)
        return True
    # Reactions, reads, edits, postbacks and referrals stay in the raw delivery for now.
    return False


def apply_message(session: Session, *, account_id: str, item: dict[str, Any]) -> None:
    """Store a message (inbound, or the echo of one the business sent) once, by `mid`."""
    parsed = MessagingItem.model_validate(item)
    message = parsed.message
    outbound = message.is_echo
    customer_id = parsed.recipient.id if outbound else parsed.sender.id
    users.ensure(session, user_id=customer_id, wrote_to_us=not outbound)
    is_content = not message.is_deleted
    conversation_id = conversations.upsert(
        session,
        account_id=account_id,
        user_id=customer_id,
        message_at=parsed.timestamp if is_content else None,
        inbound_at=parsed.timestamp if is_content and not outbound else None,
    )
    values: dict[str, Any] = {
        "mid": message.mid,
        "conversation_id": conversation_id,
        "direction": "outbound" if outbound else "inbound",
        "sender_id": parsed.sender.id,
        "recipient_id": parsed.recipient.id,
        "sent_at": parsed.timestamp,
        "created_at": utcnow(),
        "source": "echo" if outbound else "webhook",
        # An echo is proof Meta delivered it; inbound messages have no send status.
        "status": "sent" if outbound else None,
    }
    if message.is_deleted:
        messages.mark_deleted(session, mid=message.mid, tombstone=values)
        return
    raw = item["message"]
    values.update(
        text=message.text,
        attachments=raw.get("attachments"),
        reply_to=message.reply_to,
        quick_reply_payload=message.quick_reply.payload if message.quick_reply else None,
        referral=message.referral,
        is_unsupported=message.is_unsupported,
    )
    if outbound:
        messages.insert_echo(session, values)
    else:
        messages.insert_if_new(session, values)
