"""Webhook events: find them in a delivery, and apply each one to the data model.

A delivery holds entries (one per business account), each with `messaging[]` (or `standby[]`)
items; each item carries exactly one event (`message`, `reaction`, `read`, ...). Every write
here is idempotent (keyed by Meta's ids), so duplicates and retries change nothing.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.db import DATABASE_UNAVAILABLE
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

    The common case (everything applies) writes all the events together: one statement per
    table, whatever their number. Only when that fails is the transaction rolled back and each
    event applied again in a savepoint of its own, so one bad event cannot take the others
    down with it. A failure of the database itself is raised: the whole delivery must fail
    (503, and Meta retries) rather than be recorded as a bad event.
    """
    events = list(extract_events(payload))
    failures = [str(event) for event in events if isinstance(event, EventShapeError)]
    results = [EventResult("malformed", "failed", None) for _ in failures]
    batch = Batch()
    collected: list[WebhookEvent] = []
    for event in (event for event in events if isinstance(event, WebhookEvent)):
        try:
            batch.collect(event)
            collected.append(event)
        except Exception as exc:  # a shape the models refuse: recorded, the rest goes on
            failures.append(f"{event.path}: {_describe(exc)}")
            results.append(_result(event, "failed"))
    try:
        outcomes = batch.write(session)
    except DATABASE_UNAVAILABLE:
        raise
    except Exception:
        logger.debug("delivery did not apply in one piece; isolating events", exc_info=True)
        session.rollback()
        outcomes = []
        for event in collected:
            alone = Batch()
            alone.collect(event)
            try:
                with session.begin_nested():
                    outcomes.extend(alone.write(session))
            except DATABASE_UNAVAILABLE:
                raise
            except Exception as exc:
                failures.append(f"{event.path}: {_describe(exc)}")
                outcomes.append("failed")
    results.extend(
        _result(event, outcome) for event, outcome in zip(collected, outcomes, strict=True)
    )
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
    for key in COLLECTORS:
        if key in item:
            return key
    return "unknown"


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


ConversationKey = tuple[str, str]  # (account_id, customer_id)


class Batch:
    """What a set of events writes, merged so that each table takes one statement.

    Events are collected in any order: what they write converges (later clocks win, a
    tombstone stays a tombstone, a higher edit count wins, the latest reaction wins), so
    merging them first and writing once gives the state of applying them one by one.
    """

    def __init__(self) -> None:
        self.clocks: dict[ConversationKey, conversations.ConversationClocks] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.unsends: dict[str, dict[str, Any]] = {}
        self.edits: dict[str, dict[str, Any]] = {}
        self.reactions: dict[tuple[str, str], dict[str, Any]] = {}
        # Per collected event: which row decides whether it changed anything (None: applied).
        self._claims: list[tuple[str, Any, int] | None] = []

    def collect(self, event: WebhookEvent) -> None:
        """Parse one event and merge what it writes (raises if it has no known shape)."""
        kind = event_kind(event.item)
        collector = COLLECTORS.get(kind)
        claim = None if collector is None else collector(self, event.account_id, event.item)
        # optin, handover and other kinds nobody documents for Instagram: kept raw only.
        self._claims.append(("ignored", None, 0) if collector is None else claim)

    def conversation(self, account_id: str, customer_id: str, **clocks: Any) -> ConversationKey:
        key = (account_id, customer_id)
        change = conversations.ConversationClocks(account_id, customer_id, **clocks)
        if key in self.clocks:
            self.clocks[key].merge(change)
        else:
            self.clocks[key] = change
        return key

    def claim(
        self, table: str, key: Any, row: dict[str, Any], *, wins: Callable[[dict, dict], bool]
    ) -> tuple[str, Any, int]:
        """Put `row` in `table` under `key` unless a row there wins over it; the claim."""
        rows: dict[Any, dict[str, Any]] = getattr(self, table)
        token = len(self._claims)
        current = rows.get(key)
        if current is None or wins(row, current):
            rows[key] = {**row, "_token": token}
        return (table, key, token)

    def write(self, session: Session) -> list[str]:
        """Write everything; per collected event `applied`, `duplicate` (it changed nothing,
        or another event in the batch wrote its row) or `ignored`."""
        # A conversation's users exist once it does (conversations.customer_id is checked at
        # commit): their rows, which queue their profiles, are written with new ones only.
        upserted = conversations.upsert_many(session, self.clocks.values())
        users.ensure(
            session, user_ids={id for key, row in upserted.items() if row.created for id in key}
        )
        ids = {key: row.id for key, row in upserted.items()}
        changed = {
            "messages": messages.store_messages(session, self._rows(self.messages, ids)),
            "unsends": messages.store_unsends(session, self._rows(self.unsends, ids)),
            "edits": messages.store_edits(session, self._rows(self.edits, ids)),
            "reactions": reactions.store_many(session, self._rows(self.reactions, ids)),
        }
        outcomes = []
        for token, claim in enumerate(self._claims):
            if claim is None:
                outcomes.append("applied")  # a conversation clock: it only moves forward
                continue
            table, key, _ = claim
            if table == "ignored":
                outcomes.append("ignored")
                continue
            owner = getattr(self, table)[key]["_token"] == token
            outcomes.append("applied" if owner and key in changed[table] else "duplicate")
        return outcomes

    @staticmethod
    def _rows(
        rows: dict[Any, dict[str, Any]], ids: dict[ConversationKey, int]
    ) -> list[dict[str, Any]]:
        written = []
        for row in rows.values():
            values = {name: value for name, value in row.items() if not name.startswith("_")}
            if "conversation" in values:
                values["conversation_id"] = ids[values.pop("conversation")]
            written.append(values)
        return written


def _placeholder(
    item: MessagingItem, *, mid: str, conversation: ConversationKey, sides: _Sides
) -> dict[str, Any]:
    """What an event knows of the message it is about: a row of its own if it comes first."""
    return {
        "mid": mid,
        "conversation": conversation,
        "direction": "outbound" if sides.outbound else "inbound",
        "sender_id": item.sender.id,
        "recipient_id": item.recipient.id,
        "sent_at": item.timestamp,
        "created_at": utcnow(),
        "source": "echo" if sides.outbound else "webhook",
        "status": "sent" if sides.outbound else None,
    }


def _first(new: dict[str, Any], current: dict[str, Any]) -> bool:
    return False  # the same message twice: the first one stands


def _later_unsend(new: dict[str, Any], current: dict[str, Any]) -> bool:
    return new["sent_at"] > current["sent_at"]


def _later_edit(new: dict[str, Any], current: dict[str, Any]) -> bool:
    return new["edit_count"] > current["edit_count"]


def _later_reaction(new: dict[str, Any], current: dict[str, Any]) -> bool:
    # The rule reactions.store_many applies in the database, applied within the batch.
    if new["reacted_at"] != current["reacted_at"]:
        return new["reacted_at"] > current["reacted_at"]
    if (new["reaction"] is None) != (current["reaction"] is None):
        return new["reaction"] is None
    return new["reaction"] is not None and new["reaction"] > current["reaction"]


def collect_message(batch: Batch, account_id: str, item: dict[str, Any]) -> tuple[str, Any, int]:
    """A message (inbound, or the echo of one the business sent), stored once by `mid`.

    `is_deleted` (unsend) turns it into a tombstone, whenever it arrives.
    """
    parsed = MessageItem.model_validate(item)
    message = parsed.message
    sides = _sides(parsed, account_id=account_id, is_echo=message.is_echo)
    if message.is_deleted:
        conversation = batch.conversation(account_id, sides.customer_id)
        row = _placeholder(parsed, mid=message.mid, conversation=conversation, sides=sides)
        return batch.claim("unsends", message.mid, row, wins=_later_unsend)
    conversation = batch.conversation(
        account_id,
        sides.customer_id,
        message_at=parsed.timestamp,
        inbound_at=None if sides.outbound else parsed.timestamp,
    )
    row = _placeholder(parsed, mid=message.mid, conversation=conversation, sides=sides)
    row.update(
        text=message.text,
        attachments=item["message"].get("attachments"),  # verbatim, unknown keys included
        reply_to=message.reply_to,
        quick_reply_payload=message.quick_reply.payload if message.quick_reply else None,
        postback_payload=None,
        referral=message.referral,
        is_unsupported=message.is_unsupported,
    )
    return batch.claim("messages", message.mid, row, wins=_first)


def collect_edit(batch: Batch, account_id: str, item: dict[str, Any]) -> tuple[str, Any, int]:
    """`message_edit`: the new text, unless a later edit is stored (`num_edit` orders them)."""
    parsed = MessageEditItem.model_validate(item)
    edit = parsed.message_edit
    sides = _sides(parsed, account_id=account_id)
    conversation = batch.conversation(account_id, sides.customer_id)
    row = _placeholder(parsed, mid=edit.mid, conversation=conversation, sides=sides)
    row.update(text=edit.text, edit_count=edit.num_edit)
    return batch.claim("edits", edit.mid, row, wins=_later_edit)


def collect_reaction(batch: Batch, account_id: str, item: dict[str, Any]) -> tuple[str, Any, int]:
    """React / unreact: one reaction per user per message, the latest event wins."""
    parsed = ReactionItem.model_validate(item)
    reaction = parsed.reaction
    reacting = reaction.action == "react"
    row = {
        "mid": reaction.mid,
        "user_id": parsed.sender.id,
        "reaction": (reaction.reaction or "other") if reacting else None,
        "emoji": reaction.emoji if reacting else None,
        "reacted_at": parsed.timestamp,
    }
    return batch.claim("reactions", (reaction.mid, parsed.sender.id), row, wins=_later_reaction)


def collect_read(batch: Batch, account_id: str, item: dict[str, Any]) -> None:
    """The customer has seen the business's messages up to the watermark (or now, for a mid)."""
    parsed = ReadItem.model_validate(item)
    read = parsed.read
    if read.mid is None and read.watermark is None:
        raise EventShapeError("read has neither mid nor watermark")
    sides = _sides(parsed, account_id=account_id)
    batch.conversation(
        account_id,
        sides.customer_id,
        read_at=read.watermark or parsed.timestamp,
        read_mid=read.mid,
    )


def collect_postback(batch: Batch, account_id: str, item: dict[str, Any]) -> tuple[str, Any, int]:
    """An icebreaker / button / menu tap: stored as the customer's message (its title), and
    like a message it opens the messaging window."""
    parsed = PostbackItem.model_validate(item)
    postback = parsed.postback
    sides = _sides(parsed, account_id=account_id)
    conversation = batch.conversation(
        account_id,
        sides.customer_id,
        message_at=parsed.timestamp,
        inbound_at=parsed.timestamp,
    )
    row = _placeholder(parsed, mid=postback.mid, conversation=conversation, sides=sides)
    row.update(
        text=postback.title,
        attachments=None,
        reply_to=None,
        quick_reply_payload=None,
        postback_payload=postback.payload,
        referral=postback.referral,
        is_unsupported=False,
    )
    return batch.claim("messages", postback.mid, row, wins=_first)


def collect_referral(batch: Batch, account_id: str, item: dict[str, Any]) -> None:
    """An ig.me link or ad opened the existing thread: remembered on the conversation. Meta
    counts it as the customer's action, so it refreshes the messaging window."""
    parsed = ReferralItem.model_validate(item)
    sides = _sides(parsed, account_id=account_id)
    batch.conversation(
        account_id,
        sides.customer_id,
        inbound_at=parsed.timestamp,
        referral=parsed.referral,
        referral_at=parsed.timestamp,
    )


# A collector parses one event into the batch; it returns its claim on a row (None: the
# event only moves conversation clocks).
Collector = Callable[[Batch, str, dict[str, Any]], tuple[str, Any, int] | None]

COLLECTORS: dict[str, Collector] = {
    "message": collect_message,
    "message_edit": collect_edit,
    "reaction": collect_reaction,
    "read": collect_read,
    "postback": collect_postback,
    "referral": collect_referral,
}
