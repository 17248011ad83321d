"""Conversation history, as the original `/messages` endpoint shows it."""

from sqlalchemy.orm import Session

from app.errors import NotFoundError
from app.repositories import conversations, messages
from app.schemas.messages import seed_message_json
from app.services.users import UserService


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
        return [seed_message_json(row._mapping, usernames=names) for row in reversed(newest_first)]
