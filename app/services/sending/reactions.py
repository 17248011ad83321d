"""Reactions as the business: react to a customer's message, or take the reaction back."""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from app.errors import InvalidInputError, NotFoundError
from app.models import Reaction, utcnow
from app.repositories import messages, reactions
from app.repositories.rows import ReactionRow
from app.services import window
from app.services.events import outbox
from app.services.routing import EnvironmentAccount, route_customer
from app.services.sending.actions import SenderActionService


class ReactionService:
    """React to customers' messages on the business's behalf."""

    def __init__(
        self,
        *,
        session: Session,
        actions: SenderActionService,
        environment: EnvironmentAccount,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.actions = actions
        self.environment = environment
        self.clock = clock

    def react(self, *, customer_id: str, mid: str, reaction: str | None) -> Reaction:
        """React to a customer's message as the business (`reaction` None: unreact)."""
        route = route_customer(self.session, customer_id=customer_id, environment=self.environment)
        account_id, conversation = route.account_id, route.conversation
        target = messages.get_by_mid(self.session, mid)
        if target is None or conversation is None or target.conversation_id != conversation.id:
            raise NotFoundError(
                f"No message {mid} in the conversation with {customer_id}.",
                code="message_not_found",
            )
        if target.direction != "inbound":
            raise InvalidInputError(
                "Only a customer's message can be reacted to.", code="not_a_customer_message"
            )
        now = self.clock()
        window.check(conversation.last_inbound_at, tag=None, now=now)
        self.session.commit()  # no transaction (nor SQLite lock) held while Meta answers
        if reaction is None:
            self.actions.send(
                customer_id=customer_id,
                action="unreact",
                payload={"message_id": mid},
                account_id=account_id,
            )
        else:
            self.actions.send(
                customer_id=customer_id,
                action="react",
                payload={"message_id": mid, "reaction": reaction},
                account_id=account_id,
            )
        row = ReactionRow(
            mid=mid,
            user_id=account_id,
            reaction=reaction,
            # Meta takes a reaction name ("love") or the emoji itself.
            emoji=reaction if reaction and not reaction.isascii() else None,
            reacted_at=now,
        )
        if reactions.store_many(self.session, [row]):
            outbox.record_reaction(self.session, row)
        self.session.commit()
        stored = reactions.get(self.session, mid=mid, user_id=account_id)
        assert stored is not None
        return stored
