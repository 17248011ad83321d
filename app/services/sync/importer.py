"""Importing one conversation's messages from the Conversations API, idempotent with webhook
intake by `mid`: a message stored from a webhook is never overwritten, a backfilled one gives
way to its webhook when that comes, and a message Meta gives no content of (older than the
thread's 20 newest) is stored as a placeholder with its id, time and sides."""

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from app.models import utcnow
from app.repositories import messages
from app.repositories import sync as sync_rows
from app.repositories.rows import ConversationClocks, MessageRow
from app.services.events.outbox import record_backfilled
from app.services.intake.batch import Batch
from app.services.sync.reader import ConversationsReader, ListedConversation, ListedMessage


@dataclass
class Imported:
    """What one conversation's import stored; `gaps_*`: messages Meta lists that the service
    did not have before (found), and of those, the ones stored with their content (filled)."""

    messages: int = 0
    placeholders: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0

    def add(self, other: "Imported") -> None:
        self.messages += other.messages
        self.placeholders += other.placeholders
        self.gaps_found += other.gaps_found
        self.gaps_filled += other.gaps_filled


def import_conversation(
    session: Session,
    reader: ConversationsReader,
    conversation: ListedConversation,
    *,
    until_known: bool,
) -> Imported:
    """Walk the thread's messages newest first, storing what is missing; one commit per page.

    `until_known`: stop at the first page the service already has every message of (a sweep
    or a check); otherwise walk the whole thread (a backfill).
    """
    imported = Imported()
    after: str | None = None
    while True:
        end_transaction(session)
        page = reader.messages(conversation.graph_id, after=after)
        stored = _store_page(session, reader.account_id, conversation, page.items)
        session.commit()
        imported.add(stored)
        if page.after is None or (until_known and not stored.gaps_found):
            return imported
        after = page.after


def end_transaction(session: Session) -> None:
    """Commit before a call to Meta: no transaction stays open while Meta answers (on SQLite
    every transaction holds the write lock, so webhooks would wait; on PostgreSQL it would sit
    idle in transaction)."""
    session.commit()


def _store_page(
    session: Session,
    account_id: str,
    conversation: ListedConversation,
    listed: list[ListedMessage],
) -> Imported:
    customer_id = conversation.customer_id or _customer_of(listed, account_id)
    if customer_id is None:
        return Imported()
    known = messages.known_mids(session, [message.mid for message in listed])
    now = utcnow()
    batch = Batch()
    key = batch.conversation(ConversationClocks(account_id=account_id, customer_id=customer_id))
    with_content = [message for message in listed if message.has_content]
    for message in with_content:
        outbound = message.sender_id == account_id
        # They move the clocks as their webhooks would (each only forward): a missed newest
        # inbound message opens the window; an older one changes nothing.
        batch.conversation(
            ConversationClocks(
                account_id=account_id,
                customer_id=customer_id,
                last_message_at=message.sent_at,
                last_inbound_at=None if outbound else message.sent_at,
            )
        )
        batch.note(batch.message(_row(message, account_id, customer_id, now), conversation=key))
    outcomes = batch.write(session)
    stored = {
        message.mid
        for message, outcome in zip(with_content, outcomes, strict=True)
        if outcome == "applied"
    }
    thread = sync_rows.conversation_of(session, account_id=account_id, customer_id=customer_id)
    assert thread is not None, "the batch has written it"
    if thread.graph_conversation_id is None:
        thread.graph_conversation_id = conversation.graph_id
    placeholders = messages.store_placeholders(
        session,
        [
            replace(_row(message, account_id, customer_id, now), conversation_id=thread.id)
            for message in listed
            if not message.has_content
        ],
    )
    # The messages with content came through the batch (its events: message.backfilled).
    record_backfilled(session, placeholders)
    new = (stored | placeholders) - known
    return Imported(
        messages=len(stored),
        placeholders=len(placeholders),
        gaps_found=len(new),
        gaps_filled=len(new & stored),
    )


def _row(message: ListedMessage, account_id: str, customer_id: str, now: datetime) -> MessageRow:
    outbound = message.sender_id == account_id
    return MessageRow(
        mid=message.mid,
        direction="outbound" if outbound else "inbound",
        sender_id=message.sender_id or (account_id if outbound else customer_id),
        recipient_id=message.recipient_id or (customer_id if outbound else account_id),
        sent_at=message.sent_at,
        created_at=now,
        source="backfill",
        status="sent" if outbound else None,
        text=message.text,
        attachments=message.attachments,
        reply_to=message.reply_to,
        quick_reply_payload=None,
        postback_payload=None,
        referral=None,
        is_unsupported=message.is_unsupported,
    )


def _customer_of(listed: list[ListedMessage], account_id: str) -> str | None:
    for message in listed:
        for side in (message.sender_id, message.recipient_id):
            if side and side != account_id:
                return side
    return None
