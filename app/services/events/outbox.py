"""Writing the outbox: event rows added in the caller's transaction, so the change and its
event commit (or roll back) together. Payloads are snapshots of the object as /api/v1 shows
it at that moment, built by the same functions as the API's answers (app/schemas/v1/)."""

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app import jsonio
from app.config import Settings
from app.models import utcnow
from app.repositories import accounts, events, messages, reactions
from app.repositories.rows import ReactionRow
from app.schemas.v1.accounts import account_json
from app.schemas.v1.read import JsonObject, message_json
from app.services.media.attachments import media_by_message
from app.services.token_status import NOT_STORED, status_of

# The types a consumer can subscribe to (`ping` is sent only by `POST .../test`).
EVENT_TYPES = (
    "message.received",
    "message.backfilled",
    "message.sent",
    "message.failed",
    "message.updated",
    "message.deleted",
    "reaction.updated",
    "conversation.read",
    "profile.updated",
    "account.updated",
)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event about to be written: its payload is final (a snapshot)."""

    type: str
    account_id: str | None
    conversation: str | None
    payload: JsonObject


def new_event_id() -> str:
    """`evt_` and 24 random characters: stable forever, the `webhook-id` of every attempt."""
    return f"evt_{secrets.token_urlsafe(18)}"


def record(session: Session, drafts: Sequence[EventDraft]) -> None:
    """Add the events to the session's transaction (not committed here)."""
    now = utcnow()
    events.add_many(
        session,
        [
            {
                "id": new_event_id(),
                "type": draft.type,
                "account_id": draft.account_id,
                "conversation": draft.conversation,
                "payload": plain(draft.payload),
                "created_at": now,
            }
            for draft in drafts
        ],
    )


def plain(value: Any) -> Any:
    """A snapshot as JSON values: datetimes as ISO 8601 UTC ("…Z"), as the API writes them."""
    return jsonio.plain(value)


def message_snapshots(
    session: Session, mids: Iterable[str], *, known: Mapping[str, Row[Any]] | None = None
) -> dict[str, tuple[Row[Any], JsonObject]]:
    """By mid: the stored row (with its conversation's `conversation_*` columns) and the
    MessageRead of each message, reactions and media included. One statement (none for the
    rows `known` gives, as they stand now), and one more for the reactions, or the media, of
    those that have some."""
    rows = dict(known or {})
    unread = sorted(set(mids) - rows.keys())
    if unread:
        rows.update(messages.with_conversation(session, unread))
    return _snapshots(session, rows)


def _snapshots(
    session: Session, rows: Mapping[str, Row[Any]]
) -> dict[str, tuple[Row[Any], JsonObject]]:
    """The MessageRead of each of these rows (of messages.with_conversation), by mid."""
    standing: dict[str, list[Mapping[Any, Any]]] = {}
    reacted = [mid for mid, row in rows.items() if row._mapping["has_reactions"]]
    for reaction in reactions.current_for(session, reacted):
        standing.setdefault(reaction._mapping["mid"], []).append(reaction._mapping)
    media = media_by_message(
        session, (row._mapping["id"] for row in rows.values() if row._mapping["attachments"])
    )
    return {
        mid: (
            row,
            message_json(
                row._mapping,
                reactions=standing.get(mid, []),
                read_until=row._mapping["conversation_read_at"],
                media=media.get(row._mapping["id"]),
            ),
        )
        for mid, row in rows.items()
    }


def message_draft(type_: str, row: Row[Any], snapshot: JsonObject, **extra: Any) -> EventDraft:
    """A message.* event about `row` (see message_snapshots)."""
    columns = row._mapping
    return EventDraft(
        type=type_,
        account_id=columns["conversation_account_id"],
        conversation=columns["conversation_customer_id"],
        payload={"message": snapshot, **extra},
    )


def record_message(
    session: Session, type_: str, *, row_id: int, row: Row[Any] | None = None, **extra: Any
) -> None:
    """One message.* event about the message `row_id`, as it stands in this transaction
    (`row`: as `messages.with_conversation` reads it, when the caller's write returned it)."""
    if row is None:
        row = messages.with_conversation_by_id(session, row_id)
    if row is None:
        return
    # Keyed by mid for _snapshots; a message not sent yet has none (nor reactions).
    [(_, snapshot)] = _snapshots(session, {row._mapping["mid"] or "": row}).values()
    record(session, [message_draft(type_, row, snapshot, **extra)])


def reaction_draft(
    row: ReactionRow,
    message: tuple[Row[Any], JsonObject] | None,
    *,
    conversation: tuple[str, str] | None,
) -> EventDraft:
    """A reaction.updated event: the reaction as stored (`reaction` null: withdrawn) and its
    message's snapshot (null when the message is not stored yet; then `conversation`, the
    (account_id, customer_id) the webhook event named, places it)."""
    if message is not None:
        columns = message[0]._mapping
        account_id = columns["conversation_account_id"]
        customer_id: str | None = columns["conversation_customer_id"]
    else:
        account_id, customer_id = conversation if conversation else (None, None)
    return EventDraft(
        type="reaction.updated",
        account_id=account_id,
        conversation=customer_id,
        payload={
            "reaction": {
                "mid": row.mid,
                "user_id": row.user_id,
                "reaction": row.reaction,
                "emoji": row.emoji,
                "reacted_at": row.reacted_at,
            },
            "message": message[1] if message is not None else None,
        },
    )


def record_backfilled(session: Session, mids: Iterable[str]) -> None:
    """message.backfilled events: messages a history backfill or gap check imported (never
    message.received: consumers' bots must not answer old messages)."""
    snapshots = message_snapshots(session, mids)
    drafts = [message_draft("message.backfilled", *snapshots[mid]) for mid in sorted(snapshots)]
    if drafts:
        record(session, drafts)


def record_reaction(session: Session, row: ReactionRow) -> None:
    """One reaction.updated event (the business reacted through the API)."""
    snapshot = message_snapshots(session, [row.mid]).get(row.mid)
    record(session, [reaction_draft(row, snapshot, conversation=None)])


def record_account(session: Session, *, account_id: str, change: str) -> None:
    """One account.updated event: the account as `GET /api/v1/accounts/{ig_id}` shows it in
    this transaction, and what changed."""
    row = accounts.get(session, account_id)
    if row is None:
        return
    window = timedelta(days=Settings.model_fields["token_refresh_days_before_expiry"].default)
    token = (
        status_of(row, now=utcnow(), refresh_window=window)
        if row.access_token is not None and row.expires_at is not None
        else NOT_STORED
    )
    count = accounts.conversation_counts(session, [account_id]).get(account_id, 0)
    snapshot = account_json(row, token=token, conversation_count=count)
    record(
        session,
        [
            EventDraft(
                type="account.updated",
                account_id=account_id,
                conversation=None,
                payload={"account": snapshot, "change": change},
            )
        ],
    )
