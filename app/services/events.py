"""Webhook events: find them in a delivery, and apply each one to the data model.

A delivery holds entries (one per business account), each with `messaging[]` (or `standby[]`)
items; each item carries exactly one event (`message`, `reaction`, `read`, ...). Every write
here is idempotent (keyed by Meta's ids), so duplicates and retries change nothing.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.models import utcnow
from app.repositories import conversations, messages, reactions, users
from app.schemas.webhook import (
    MessageEditItem,
    MessageItem,
    MessagingItem,
    PostbackItem,
    ReactionItem,
    ReadItem,
    ReferralItem,
)

logger = logging.getLogger(__name__)

ITEM_LISTS = ("messaging", "standby")
# The database itself failed (not the event): see apply_delivery.
DATABASE_FAILURES = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
MAX_ERROR_TEXT = 500
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


@dataclass(frozen=True)
class EventResult:
    """How one event went (for the metrics)."""

    kind: str  # message, reaction, ...; "unknown" (kept raw), "malformed" (no known shape)
    outcome: str  # applied | duplicate (already stored: nothing changed) | ignored | failed
    timestamp_ms: int | None  # Meta's event time


@dataclass(frozen=True)
class DeliveryOutcome:
    event_count: int
    failures: list[str]  # one line per event that could not be applied: where, and why
    results: list[EventResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "failed" if self.failures else "applied"

    @property
    def error(self) -> str | None:
        return "\n".join(self.failures) or None


def apply_delivery(session: Session, payload: Any) -> DeliveryOutcome:
    """Apply every event of a delivery; an event that fails is recorded, not fatal.

    The common case (everything applies) costs one savepoint. Only when something fails is
    each event retried in a savepoint of its own, so one bad event cannot take the others
    down with it. A failure of the database itself is raised: the whole delivery must fail
    (503, and Meta retries) rather than be recorded as a bad event.
    """
    events = list(extract_events(payload))
    shape_errors = [str(event) for event in events if isinstance(event, EventShapeError)]
    valid = [event for event in events if isinstance(event, WebhookEvent)]
    malformed = [EventResult("malformed", "failed", None) for _ in shape_errors]
    try:
        with session.begin_nested():
            results = [_result(event, apply_event(session, event)) for event in valid]
        return DeliveryOutcome(
            event_count=len(events), failures=shape_errors, results=malformed + results
        )
    except DATABASE_FAILURES:
        raise
    except Exception:
        logger.debug("delivery did not apply in one piece; isolating events", exc_info=True)
    failures = shape_errors
    results = malformed
    for event in valid:
        try:
            with session.begin_nested():
                results.append(_result(event, apply_event(session, event)))
        except DATABASE_FAILURES:
            raise
        except Exception as exc:
            failures.append(f"{event.path}: {_describe(exc)}")
            results.append(_result(event, "failed"))
    return DeliveryOutcome(event_count=len(events), failures=failures, results=results)


def _result(event: WebhookEvent, outcome: str) -> EventResult:
    item = event.item
    if not isinstance(item, dict):
        return EventResult("malformed", outcome, None)
    timestamp = item.get("timestamp")
    known = isinstance(timestamp, int) and not isinstance(timestamp, bool)
    return EventResult(event_kind(item), outcome, timestamp if known else None)


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "")
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


def event_kind(item: Any) -> str:
    """Which event a messaging item carries (`message`, `reaction`, ...)."""
    if not isinstance(item, dict):
        raise EventShapeError("messaging item is not an object")
    for key in HANDLERS:
        if key in item:
            return key
    return "unknown"


def apply_event(session: Session, event: WebhookEvent) -> str:
    """Apply one event: `applied`; `duplicate` when it was stored already (nothing changed);
    `ignored` when it is of a kind the service only keeps raw."""
    kind = event_kind(event.item)
    handler = HANDLERS.get(kind)
    if handler is None:
        # optin, handover and other kinds nobody documents for Instagram: kept raw.
        return "ignored"
    changed = handler(session, account_id=event.account_id, item=event.item)
    return "duplicate" if changed is False else "applied"


@dataclass(frozen=True)
class _Sides:
    """Who is who in an event (DESIGN.md decision 4)."""

    customer_id: str
    outbound: bool  # written by the business


def _sides(item: MessagingItem, *, account_id: str, is_echo: bool = False) -> _Sides:
    # The business is the sender on echoes (and on anything else it does itself).
    if is_echo or item.sender.id == account_id:
        return _Sides(customer_id=item.recipient.id, outbound=True)
    return _Sides(customer_id=item.sender.id, outbound=False)


def _conversation(session: Session, *, account_id: str, sides: _Sides, **clocks: Any) -> int:
    """The conversation's id, its users known (new ones queued for a profile fetch)."""
    users.ensure(session, user_ids=[sides.customer_id, account_id])
    return conversations.upsert(session, account_id=account_id, user_id=sides.customer_id, **clocks)


def _placeholder(
    item: MessagingItem, *, mid: str, conversation_id: int, sides: _Sides
) -> dict[str, Any]:
    """The row an edit or unsend makes when its message is not stored yet."""
    return {
        "mid": mid,
        "conversation_id": conversation_id,
        "direction": "outbound" if sides.outbound else "inbound",
        "sender_id": item.sender.id,
        "recipient_id": item.recipient.id,
        "sent_at": item.timestamp,
        "created_at": utcnow(),
        "source": "echo" if sides.outbound else "webhook",
        "status": "sent" if sides.outbound else None,
    }


def apply_message(session: Session, *, account_id: str, item: dict[str, Any]) -> bool | None:
    """A message (inbound, or the echo of one the business sent), stored once by `mid`.

    `is_deleted` (unsend) turns it into a tombstone, whenever it arrives.
    """
    parsed = MessageItem.model_validate(item)
    message = parsed.message
    sides = _sides(parsed, account_id=account_id, is_echo=message.is_echo)
    if message.is_deleted:
        conversation_id = _conversation(session, account_id=account_id, sides=sides)
        placeholder = _placeholder(
            parsed, mid=message.mid, conversation_id=conversation_id, sides=sides
        )
        messages.store_unsend(session, placeholder=placeholder)
        return None
    if not sides.outbound:
        users.wrote_to_us(session, user_id=sides.customer_id)
    conversation_id = _conversation(
        session,
        account_id=account_id,
        sides=sides,
        message_at=parsed.timestamp,
        inbound_at=None if sides.outbound else parsed.timestamp,
    )
    values = _placeholder(parsed, mid=message.mid, conversation_id=conversation_id, sides=sides)
    values.update(
        text=message.text,
        attachments=item["message"].get("attachments"),  # verbatim, unknown keys included
        reply_to=message.reply_to,
        quick_reply_payload=message.quick_reply.payload if message.quick_reply else None,
        referral=message.referral,
        is_unsupported=message.is_unsupported,
    )
    return messages.store_message(session, values)


def apply_edit(session: Session, *, account_id: str, item: dict[str, Any]) -> bool:
    """`message_edit`: the new text, unless a later edit is stored (`num_edit` orders them)."""
    parsed = MessageEditItem.model_validate(item)
    edit = parsed.message_edit
    sides = _sides(parsed, account_id=account_id)
    conversation_id = _conversation(session, account_id=account_id, sides=sides)
    placeholder = _placeholder(parsed, mid=edit.mid, conversation_id=conversation_id, sides=sides)
    return messages.store_edit(
        session, placeholder=placeholder, text=edit.text, num_edit=edit.num_edit
    )


def apply_reaction(session: Session, *, account_id: str, item: dict[str, Any]) -> bool:
    """React / unreact: one reaction per user per message, the latest event wins."""
    parsed = ReactionItem.model_validate(item)
    reaction = parsed.reaction
    reacting = reaction.action == "react"
    return reactions.store(
        session,
        mid=reaction.mid,
        user_id=parsed.sender.id,
        reaction=(reaction.reaction or "other") if reacting else None,
        emoji=reaction.emoji if reacting else None,
        reacted_at=parsed.timestamp,
    )


def apply_read(session: Session, *, account_id: str, item: dict[str, Any]) -> None:
    """The customer has seen the business's messages up to the watermark (or now, for a mid)."""
    parsed = ReadItem.model_validate(item)
    read = parsed.read
    if read.mid is None and read.watermark is None:
        raise EventShapeError("read has neither mid nor watermark")
    sides = _sides(parsed, account_id=account_id)
    _conversation(
        session,
        account_id=account_id,
        sides=sides,
        read_at=read.watermark or parsed.timestamp,
        read_mid=read.mid,
    )


def apply_postback(session: Session, *, account_id: str, item: dict[str, Any]) -> bool:
    """An icebreaker / button / menu tap: stored as the customer's message (its title), and
    like a message it opens the messaging window."""
    parsed = PostbackItem.model_validate(item)
    postback = parsed.postback
    sides = _sides(parsed, account_id=account_id)
    users.wrote_to_us(session, user_id=sides.customer_id)
    conversation_id = _conversation(
        session,
        account_id=account_id,
        sides=sides,
        message_at=parsed.timestamp,
        inbound_at=parsed.timestamp,
    )
    values = _placeholder(parsed, mid=postback.mid, conversation_id=conversation_id, sides=sides)
    values.update(
        text=postback.title, postback_payload=postback.payload, referral=postback.referral
    )
    return messages.store_message(session, values)


def apply_referral(session: Session, *, account_id: str, item: dict[str, Any]) -> None:
    """An ig.me link or ad opened the existing thread: remembered on the conversation. Meta
    counts it as the customer's action, so it refreshes the messaging window."""
    parsed = ReferralItem.model_validate(item)
    sides = _sides(parsed, account_id=account_id)
    _conversation(
        session,
        account_id=account_id,
        sides=sides,
        inbound_at=parsed.timestamp,
        referral=parsed.referral,
        referral_at=parsed.timestamp,
    )


# A handler returns False when the event was stored already (a duplicate), else True or None.
Handler = Callable[..., bool | None]

HANDLERS: dict[str, Handler] = {
    "message": apply_message,
    "message_edit": apply_edit,
    "reaction": apply_reaction,
    "read": apply_read,
    "postback": apply_postback,
    "referral": apply_referral,
}
