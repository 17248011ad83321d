"""Sender actions: the typing indicator and "seen", shown to the customer, nothing stored."""

from typing import Any

from app.clients.instagram import InstagramClient


class SenderActionService:
    """Show the customer what the business is doing."""

    def __init__(self, *, instagram: InstagramClient) -> None:
        self.instagram = instagram

    def send(self, *, customer_id: str, action: str, payload: dict[str, Any] | None = None) -> None:
        """A sender action (typing indicator, seen, react): one call to Meta, nothing stored."""
        self.instagram.send_sender_action(recipient_id=customer_id, action=action, payload=payload)
