"""Reading conversations and their messages for the RESTful API (keyset-paginated)."""

from collections import defaultdict
from datetime import datetime

from sqlalchemy.orm import Session

from app.errors import InvalidInputError, NotFoundError
from app.models import Conversation, Message, Reaction, User
from app.repositories import conversations, messages, reactions
from app.repositories.base import Position
from app.schemas.v1 import (
    ConversationPage,
    ConversationRead,
    CustomerRead,
    MessagePage,
    MessagePreview,
    MessageRead,
    ReactionRead,
)
from app.services.messages import display_text
from app.services.pagination import decode_cursor, encode_cursor
from app.services.sending import HUMAN_AGENT_WINDOW, STANDARD_WINDOW


class ConversationService:
    """Conversations, newest activity first, and each one's messages, newest first.

    Every read is a fixed number of statements (no N+1), each an index range scan, so a
    page costs the same whatever the length of the history.
    """

    def __init__(self, *, session: Session) -> None:
        self.session = session

    def page(self, *, limit: int, cursor: str | None) -> ConversationPage:
        after = decode_cursor(cursor, parameter="cursor") if cursor else None
        rows = conversations.page(self.session, limit=limit + 1, after=after)
        has_more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1][0] if rows else None
        next_cursor = None
        if has_more and last is not None and last.last_message_at is not None:
            next_cursor = encode_cursor(Position(at=last.last_message_at, id=last.id))
        return ConversationPage(data=self._read(rows), next_cursor=next_cursor)

    def get(self, user_id: str) -> ConversationRead:
        found = conversations.with_customer(self.session, user_id=user_id)
        if found is None:
            raise NotFoundError(
                f"No conversation with user {user_id}.", code="conversation_not_found"
            )
        return self._read([found])[0]

    def messages(
        self, *, user_id: str, limit: int, before: str | None, after: str | None
    ) -> MessagePage:
        if before and after:
            raise InvalidInputError(
                "Give `before` or `after`, not both.", code="conflicting_cursors"
            )
        older_than = decode_cursor(before, parameter="before") if before else None
        newer_than = decode_cursor(after, parameter="after") if after else None
        conversation = conversations.latest_for_user(self.session, user_id=user_id)
        if conversation is None:
            raise NotFoundError(
                f"No conversation with user {user_id}.", code="conversation_not_found"
            )
        rows = messages.page(
            self.session,
            conversation_id=conversation.id,
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
        return MessagePage(
            data=self._messages(rows, conversation=conversation),
            before=_cursor_of(rows[-1]) if rows else None,
            after=_cursor_of(rows[0]) if rows else None,
            has_older=has_older,
            has_newer=has_newer,
        )

    def message(self, mid: str) -> MessageRead:
        message = messages.get_by_mid(self.session, mid)
        if message is None:
            raise NotFoundError(f"No message {mid}.", code="message_not_found")
        conversation = self.session.get(Conversation, message.conversation_id)
        return self._messages([message], conversation=conversation)[0]

    def _read(self, rows: list[tuple[Conversation, User | None]]) -> list[ConversationRead]:
        ids = [conversation.id for conversation, _ in rows]
        last = messages.last_visible_of(self.session, ids)
        unread = messages.unread_counts(self.session, ids)
        return [
            conversation_read(
                conversation,
                customer,
                last=last.get(conversation.id),
                unread=unread.get(conversation.id, 0),
            )
            for conversation, customer in rows
        ]

    def _messages(
        self, rows: list[Message], *, conversation: Conversation | None
    ) -> list[MessageRead]:
        by_mid: dict[str, list[Reaction]] = defaultdict(list)
        for reaction in reactions.current_for(self.session, [m.mid for m in rows if m.mid]):
            by_mid[reaction.mid].append(reaction)
        read_until = conversation.customer_read_at if conversation else None
        return [
            message_read(m, reactions=by_mid.get(m.mid or "", []), read_until=read_until)
            for m in rows
        ]


def _cursor_of(message: Message) -> str:
    return encode_cursor(Position(at=message.sent_at, id=message.id))


def conversation_read(
    conversation: Conversation, customer: User | None, *, last: Message | None, unread: int
) -> ConversationRead:
    inbound_at = conversation.last_inbound_at
    return ConversationRead(
        account_id=conversation.account_id,
        customer=CustomerRead(
            id=conversation.user_id,
            username=customer.username if customer else None,
            name=customer.name if customer else None,
            profile_pic=customer.profile_pic if customer else None,
        ),
        last_message=MessagePreview(
            mid=last.mid, direction=last.direction, text=display_text(last), sent_at=last.sent_at
        )
        if last
        else None,
        last_message_at=conversation.last_message_at,
        last_inbound_at=inbound_at,
        can_reply_until=inbound_at + STANDARD_WINDOW if inbound_at else None,
        human_agent_until=inbound_at + HUMAN_AGENT_WINDOW if inbound_at else None,
        customer_read_at=conversation.customer_read_at,
        unread_count=unread,
    )


def message_read(
    message: Message, *, reactions: list[Reaction], read_until: datetime | None = None
) -> MessageRead:
    outbound = message.direction == "outbound"
    read = None
    if outbound:
        read = message.status == "sent" and read_until is not None and read_until >= message.sent_at
    return MessageRead(
        id=str(message.id),
        mid=message.mid,
        direction=message.direction,  # type: ignore[arg-type]
        sender_id=message.sender_id,
        recipient_id=message.recipient_id,
        text=message.text,
        attachments=message.attachments,
        reply_to=message.reply_to,
        quick_reply_payload=message.quick_reply_payload,
        postback_payload=message.postback_payload,
        referral=message.referral,
        reactions=[
            ReactionRead(
                user_id=r.user_id, reaction=r.reaction or "", emoji=r.emoji, reacted_at=r.reacted_at
            )
            for r in reactions
        ],
        is_deleted=message.is_deleted,
        is_unsupported=message.is_unsupported,
        edit_count=message.edit_count,
        edited_at=message.edited_at,
        sent_at=message.sent_at,
        status=message.status if outbound else None,  # type: ignore[arg-type]
        error=message.error if outbound else None,
        read=read,
    )
