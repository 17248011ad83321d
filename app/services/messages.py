"""Conversation history, as the original `/messages` endpoint shows it."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from app.errors import NotFoundError
from app.repositories import conversations, messages
from app.services.users import UserService


def display_text(message: Mapping[str, Any]) -> str:
    """The text, or a short placeholder for what has none (media, unsent, unsupported);
    from a messages row's columns (`row._mapping`)."""
    if message["is_deleted"]:
        return "[deleted]"
    if message["text"]:
        return message["text"]
    attachments = message["attachments"]
    if attachments:
        kinds = ", ".join(
            str(attachment.get("type", "attachment")) if isinstance(attachment, dict) else "?"
            for attachment in attachments
        )
        return f"[{kinds}]"
    if message["is_unsupported"]:
        return "[unsupported message]"
    return "[empty message]"


class HistoryService:
    """Read stored conversations."""

    def __init__(self, *, session: Session, users: UserService) -> None:
        self.session = session
        self.users = users

    def recent(self, *, customer_id: str, count: int) -> list[dict[str, str]]:
        """The last `count` messages with a customer, oldest first (SeedMessageRead dicts)."""
        conversation = conversations.latest_for_customer(self.session, customer_id=customer_id)
        if conversation is None:
            raise NotFoundError(f"No messages with user {customer_id}.", code="messages_not_found")
        thread = conversation._mapping
        newest_first = messages.latest_visible(
            self.session, conversation_id=thread["id"], limit=count
        )
        if not newest_first:
            raise NotFoundError(f"No messages with user {customer_id}.", code="messages_not_found")
        names = self.users.usernames(customer_id=customer_id, account_id=thread["account_id"])
        shown = []
        for row in reversed(newest_first):
            message = row._mapping
            sender, recipient = message["sender_id"], message["recipient_id"]
            shown.append(
                {
                    "sender_username": names.get(sender, sender),
                    "recipient_username": names.get(recipient, recipient),
                    "text": display_text(message),
                }
            )
        return shown
