"""Conversation history, as the original `/messages` endpoint shows it."""

from sqlalchemy.orm import Session

from app.errors import NotFoundError
from app.models import Message
from app.repositories import conversations, messages
from app.schemas.messages import SeedMessageRead
from app.services.users import UserService


def display_text(message: Message) -> str:
    """The text, or a short placeholder for what has none (media, unsent, unsupported)."""
    if message.is_deleted:
        return "[deleted]"
    if message.text:
        return message.text
    if message.attachments:
        kinds = ", ".join(
            str(attachment.get("type", "attachment")) if isinstance(attachment, dict) else "?"
            for attachment in message.attachments
        )
        return f"[{kinds}]"
    if message.is_unsupported:
        return "[unsupported message]"
    return "[empty message]"


class HistoryService:
    """Read stored conversations."""

    def __init__(self, *, session: Session, users: UserService) -> None:
        self.session = session
        self.users = users

    def recent(self, *, user_id: str, count: int) -> list[SeedMessageRead]:
        """The last `count` messages with a customer, oldest first."""
        conversation = conversations.latest_for_user(self.session, user_id=user_id)
        if conversation is None:
            raise NotFoundError(f"No messages with user {user_id}.", code="messages_not_found")
        newest_first = messages.latest_visible(
            self.session, conversation_id=conversation.id, limit=count
        )
        if not newest_first:
            raise NotFoundError(f"No messages with user {user_id}.", code="messages_not_found")
        names = self.users.usernames(customer_id=user_id, business_id=conversation.account_id)
        return [
            SeedMessageRead(
                sender_username=names.get(message.sender_id, message.sender_id),
                recipient_username=names.get(message.recipient_id, message.recipient_id),
                text=display_text(message),
            )
            for message in reversed(newest_first)
        ]
