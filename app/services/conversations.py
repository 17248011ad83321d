"""Reading conversations and their messages for the RESTful API (keyset-paginated)."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.errors import InvalidInputError, NotFoundError
from app.repositories import conversations, messages, reactions
from app.repositories.base import Position
from app.schemas.v1.read import Columns, JsonObject, conversation_json, message_json
from app.services.media.attachments import media_by_message
from app.services.pagination import decode_cursor, encode_cursor


class ConversationService:
    """Conversations, newest activity first, and each one's messages, newest first.

    Every read is a fixed number of statements (no N+1), each an index range scan, so a
    page costs the same whatever the length of the history. Answers are plain dicts built by
    app/schemas/v1/read.py (see app/api/responses.py for why).
    """

    def __init__(self, *, session: Session) -> None:
        self.session = session

    def page(self, *, limit: int, cursor: str | None, account_id: str | None = None) -> JsonObject:
        """A ConversationPage (of one business account's conversations when `account_id`)."""
        after = decode_cursor(cursor, parameter="cursor") if cursor else None
        rows = conversations.page(self.session, limit=limit + 1, after=after, account_id=account_id)
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if has_more and rows:
            last = rows[-1]
            next_cursor = encode_cursor(Position(at=last.last_message_at, id=last.id))
        return {"data": self._conversations(rows), "next_cursor": next_cursor}

    def get(self, customer_id: str) -> JsonObject:
        """A ConversationRead."""
        found = conversations.with_customer(self.session, customer_id=customer_id)
        if found is None:
            raise _no_conversation(customer_id)
        return self._conversations([found])[0]

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
        found = conversations.latest_for_customer(self.session, customer_id=customer_id)
        if found is None:
            raise _no_conversation(customer_id)
        conversation = found._mapping
        rows = messages.page(
            self.session,
            conversation_id=conversation["id"],
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
        # (Read only when a message of the page has one: most pages have none.)
        standing = (
            reactions.current_in_page(
                self.session,
                conversation_id=conversation["id"],
                oldest=_position_of(rows[-1]),
                newest=_position_of(rows[0]),
            )
            if any(row._mapping["has_reactions"] for row in rows)
            else []
        )
        return {
            "data": self._messages(
                rows, read_until=conversation["customer_read_at"], standing=standing
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
        read_until = conversations.customer_read_at(
            self.session, conversation_id=message._mapping["conversation_id"]
        )
        standing = reactions.current_for(self.session, [mid])
        return self._messages([message], read_until=read_until, standing=standing)[0]

    def _messages(
        self,
        rows: Sequence[Row[Any]],
        *,
        read_until: datetime | None,
        standing: Sequence[Row[Any]],
    ) -> list[JsonObject]:
        """MessageReads of these rows, with their `standing` reactions and their media."""
        by_mid: dict[str, list[Columns]] = defaultdict(list)
        for reaction in standing:
            by_mid[reaction._mapping["mid"]].append(reaction._mapping)
        media = media_by_message(
            self.session, (row.id for row in rows if row._mapping["attachments"])
        )
        return [
            message_json(
                m,
                reactions=by_mid.get(m["mid"] or "", []),
                read_until=read_until,
                media=media.get(m["id"]),
            )
            for m in (row._mapping for row in rows)
        ]

    def _conversations(self, rows: Sequence[Row[Any]]) -> list[JsonObject]:
        ids = [row.id for row in rows]
        last = messages.last_visible_of(self.session, ids)
        unread = messages.unread_counts(self.session, ids)
        return [
            conversation_json(
                row._mapping,
                last=last[row.id]._mapping if row.id in last else None,
                unread=unread.get(row.id, 0),
            )
            for row in rows
        ]


def _no_conversation(customer_id: str) -> NotFoundError:
    return NotFoundError(f"No conversation with user {customer_id}.", code="conversation_not_found")


def _position_of(message: Row[Any]) -> Position:
    columns = message._mapping
    return Position(at=columns["sent_at"], id=columns["id"])


def _cursor_of(message: Row[Any]) -> str:
    return encode_cursor(_position_of(message))
