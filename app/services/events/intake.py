"""The events of a webhook delivery: written by the intake batch in its own transaction,
one per row that actually changed (a duplicate or a Meta retry changes nothing: no event)."""

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.repositories import conversations
from app.repositories.rows import ConversationClocks
from app.repositories.rules import Latest, NoneFirst
from app.services.conversations import ConversationService
from app.services.events.outbox import (
    EventDraft,
    message_draft,
    message_snapshots,
    reaction_draft,
    record,
)

if TYPE_CHECKING:
    from app.services.intake.batch import Batch, ConversationKey

# A conversation's read watermark moves when the new one is later (CONVERSATION_CLOCKS).
_LATER_READ = Latest(order=(NoneFirst("customer_read_at"),))


def reads_before(
    session: Session, clocks: Mapping["ConversationKey", ConversationClocks]
) -> dict["ConversationKey", datetime | None]:
    """Where the read watermarks stand before the batch writes (only when it has reads)."""
    return conversations.read_marks(
        session, (key for key, change in clocks.items() if change.customer_read_at is not None)
    )


def record_changes(
    session: Session,
    *,
    batch: "Batch",
    changed: Mapping[str, Collection[Any]],
    stored: Mapping[str, Row[Any]],
    reads: Mapping["ConversationKey", datetime | None],
) -> None:
    """Write the events of what the batch changed (see Batch.write); `stored` holds the rows
    of the changed messages as their write returned them."""
    touched_later = {*changed["edits"], *changed["unsends"]}
    touched_later |= {mid for mid, _ in changed["reactions"]}
    # A message row stands as its write returned it unless a later write of the batch moved it.
    known = {mid: row for mid, row in stored.items() if mid not in touched_later}
    mids = {*changed["messages"], *touched_later}
    snapshots = message_snapshots(session, mids, known=known) if mids else {}
    drafts: list[EventDraft] = []
    for mid in sorted(changed["messages"]):
        if mid in snapshots:
            drafts.extend(_message_stored(*snapshots[mid]))
    for kind, type_ in (("edits", "message.updated"), ("unsends", "message.deleted")):
        drafts.extend(
            message_draft(type_, *snapshots[mid])
            for mid in sorted(changed[kind])
            if mid in snapshots
        )
    for key in sorted(changed["reactions"]):
        row = batch.reactions.merged[key].row
        conversation = batch.reaction_conversations.get(key)
        drafts.append(reaction_draft(row, snapshots.get(key[0]), conversation=conversation))
    drafts.extend(_reads(session, batch.clocks, reads))
    if drafts:
        record(session, drafts)


def _message_stored(row: Any, snapshot: dict[str, Any]) -> Iterable[EventDraft]:
    columns = row._mapping
    if columns["source"] == "backfill":
        # Imported from the Conversations API (app/services/sync/): history, not news.
        yield message_draft("message.backfilled", row, snapshot)
    elif columns["direction"] == "inbound":
        yield message_draft("message.received", row, snapshot)
    elif columns["source"] == "echo":
        # Sent from the Instagram app or another tool: the echo is all we learn of it.
        yield message_draft("message.sent", row, snapshot, origin="echo")
    # source "api": the echo of our own send, announced when Meta accepted it.


def _reads(
    session: Session,
    clocks: Mapping["ConversationKey", ConversationClocks],
    before: Mapping["ConversationKey", datetime | None],
) -> Iterable[EventDraft]:
    reader = ConversationService(session=session)
    for key, change in sorted(clocks.items()):
        if change.customer_read_at is None:
            continue
        stored = ConversationClocks(
            account_id=key[0], customer_id=key[1], customer_read_at=before.get(key)
        )
        if not _LATER_READ.wins(change, stored):
            continue
        yield EventDraft(
            type="conversation.read",
            account_id=key[0],
            conversation=key[1],
            payload={
                "conversation": reader.get(key[1]),
                "read": {"mid": change.customer_read_mid, "at": change.customer_read_at},
            },
        )
