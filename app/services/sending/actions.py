"""Sender actions: the typing indicator and "seen", shown to the customer, nothing stored."""

from typing import Any

from sqlalchemy.orm import Session

from app.clients.instagram import InstagramClient
from app.services.routing import EnvironmentAccount, account_for_customer


class SenderActionService:
    """Show the customer what the business is doing."""

    def __init__(
        self, *, session: Session, instagram: InstagramClient, environment: EnvironmentAccount
    ) -> None:
        self.session = session
        self.instagram = instagram
        self.environment = environment

    def send(
        self,
        *,
        customer_id: str,
        action: str,
        payload: dict[str, Any] | None = None,
        account_id: str | None = None,
    ) -> None:
        """A sender action (typing indicator, seen, react): one call to Meta with the token of
        the customer's account (`account_id` when the caller knows it), nothing stored."""
        if account_id is None:
            account_id = account_for_customer(
                self.session, customer_id=customer_id, environment=self.environment
            )
            self.session.commit()  # no transaction held while Meta answers
        self.instagram.for_account(account_id).send_sender_action(
            recipient_id=customer_id, action=action, payload=payload
        )
