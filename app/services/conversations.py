"""Reading conversations and their messages for the RESTful API (keyset-paginated)."""

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.errors import InvalidInputError, NotFoundError
from app.models import Conversation, Message
from app.repositories import conversations, messages, reactions
from app.repositories.base import Position
from app.services.messages import display_text
from app.services.pagination import decode_cursor, encode_cursor
from app.services.sending import HUMAN_AGENT_WINDOW, STANDARD_WINDOW

JsonObject = dict[str, Any]


class ConversationService:
    """Conversations, newest activity first, and each one's messages, newest first.

    Every read is a fixed number of statements (no N+1), each an index range scan, so a
    page costs the same whatever the length of the history. Answers are plain dicts shaped
    like the schemas in app/schemas/v1.py (see app/api/responses.py for why).
    """

    def __init__(self, *, session: Session) -> None:
        self.session = session

    def page(self, *, limit: int, cursor: str | None) -> JsonObject:
        """A ConversationPage."""
        after = decode_cursor(cursor, parameter="cursor") if cursor else None
        rows = conversations.page(self.session, limit=limit + 1, after=after)
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if has_more and rows:
            last = rows[-1]
            next_cursor = encode_cursor(Position(at=last.last_message_at, id=last.id))
        return {"data": self._read(rows), "next_cursor": next_cursor}

    def get(self, customer_id: str) -> JsonObject:
        """A ConversationRead."""
        found = conversations.with_customer(self.session, customer_id=customer_id)
        if found is None:
            raise NotFoundError(
                f"No conversation with user {customer_id}.", code="conversation_not_found"
            )
        return self._read([found])[0]

    def messages(
        self, *, customer_id: str, limit: int, before: str | None, after: str | None
    ) -> JsonObject:
        """A MessagePage."""
        if before and after:
            raise InvalidInputError(
                "Give `before` or `after`, not both.", code="conflicting_cursors"
            )
        older_than = decode_cursor(before, parameter="before") if before else None
        newer_than = decode_cursor(after, parameter="after") if after else None
        conversation = conversations.latest_for_customer(self.session, customer_id=customer_id)
        if conversation is None:
            raise NotFoundError(
                f"No conversation with user {customer_id}.", code="conversation_not_found"
            )
        rows = messages.page(
            self.session,
            conversation_id=conversation._mapping["id"],
            limit=limit + 1,
            before=older_than,
            after=newer_than,
        )
        more = len(rows) > limit
        if newer_than is not None:
            rows = rows[-limit:] if more else rows  # the `limit` just after the cursor
            has_newer, has_older = more, True
        else:
            rows = rows[:limit]
            has_older, has_newer = more, older_than is not None
        standing = (
            reactions.current_in_page(
                self.session,
                conversation_id=conversation._mapping["id"],
                oldest=_position_of(rows[-1]),
                newest=_position_of(rows[0]),
            )
            if rows
            else []
        )
        return {
            "data": self._messages(
                rows, read_until=conversation._mapping["customer_read_at"], standing=standing
            ),
            "before": _cursor_of(rows[-1]) if rows else None,
            "after": _cursor_of(rows[0]) if rows else None,
            "has_older": has_older,
            "has_newer": has_newer,
        }

    def message(self, mid: str) -> JsonObject:
        """A MessageRead."""
        message = messages.row_by_mid(self.session, mid)
        if message is None:
            raise NotFoundError(f"No message {mid}.", code="message_not_found")
        conversation = self.session.get(Conversation, message.conversation_id)
        read_until = conversation.customer_read_at if conversation else None
        return self._messages([message], read_until=read_until)[0]

    def _read(self, rows: list[Row[Any]]) -> list[JsonObject]:
        ids = [row.id for row in rows]
        last = messages.last_visible_of(self.session, ids)
        unread = messages.unread_counts(self.session, ids)
        return [
            conversation_json(row, last=last.get(row.id), unread=unread.get(row.id, 0))
            for row in rows
        ]

    def _messages(
        self,
        rows: list[Row[Any]],
        *,
        read_until: datetime | None,
        standing: list[Row[Any]] | None = None,
    ) -> list[JsonObject]:
        """MessageReads; `standing`: their reactions when already read (else looked up)."""
        found = [row._mapping for row in rows]
        if standing is None:
            standing = reactions.current_for(self.session, [m["mid"] for m in found if m["mid"]])
        by_mid: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for reaction in standing:
            by_mid[reaction._mapping["mid"]].append(reaction._mapping)
        return [
            message_json(m, reactions=by_mid.get(m["mid"] or "", []), read_until=read_until)
            for m in found
        ]


def _position_of(message: Row[Any]) -> Position:
    columns = message._mapping
    return Position(at=columns["sent_at"], id=columns["id"])


def _cursor_of(message: Row[Any]) -> str:
    return encode_cursor(_position_of(message))


def conversation_json(row: Row[Any], *, last: Row[Any] | None, unread: int) -> JsonObject:
    """A ConversationRead: an inbox row (conversation and customer columns) and its last
    message."""
    c = row._mapping
    inbound_at = c["last_inbound_at"]
    preview = None
    if last is not None:
        m = last._mapping
        preview = {
            "mid": m["mid"],
            "direction": m["direction"],
            "text": display_text(m),
            "sent_at": m["sent_at"],
        }
    return {
        "account_id": c["account_id"],
        "customer": {
            "id": c["customer_id"],
            "username": c["customer_username"],
            "name": c["customer_name"],
            "profile_pic": c["customer_profile_pic"],
        },
        "last_message": preview,
        "last_message_at": c["last_message_at"],
        "last_inbound_at": inbound_at,
        "can_reply_until": inbound_at + STANDARD_WINDOW if inbound_at else None,
        "human_agent_until": inbound_at + HUMAN_AGENT_WINDOW if inbound_at else None,
        "customer_read_at": c["customer_read_at"],
        "unread_count": unread,
    }


def message_json(
    m: Mapping[str, Any],
    *,
    reactions: list[Mapping[str, Any]],
    read_until: datetime | None = None,
) -> JsonObject:
    """A MessageRead, from a messages row's columns (`row._mapping`, or `columns_of(...)`)."""
    outbound = m["direction"] == "outbound"
    read = None
    if outbound:
        read = m["status"] == "sent" and read_until is not None and read_until >= m["sent_at"]
    return {
        "id": str(m["id"]),
        "mid": m["mid"],
        "direction": m["direction"],
        "sender_id": m["sender_id"],
        "recipient_id": m["recipient_id"],
        "text": m["text"],
        "attachments": m["attachments"],
        "reply_to": m["reply_to"],
        "quick_reply_payload": m["quick_reply_payload"],
        "postback_payload": m["postback_payload"],
        "referral": m["referral"],
        "reactions": [
            {
                "user_id": r["user_id"],
                "reaction": r["reaction"] or "",
                "emoji": r["emoji"],
                "reacted_at": r["reacted_at"],
            }
            for r in reactions
        ],
        "is_deleted": m["is_deleted"],
        "is_unsupported": m["is_unsupported"],
        "edit_count": m["edit_count"],
        "edited_at": m["edited_at"],
        "sent_at": m["sent_at"],
        "status": m["status"] if outbound else None,
        "error": m["error"] if outbound else None,
        "read": read,
    }


def columns_of(message: Message) -> dict[str, Any]:
    """A Message's columns by name, as message_json takes them."""
    return {column.key: getattr(message, column.key) for column in Message.__table__.columns}
