"""Sending: check the window we know of, store the message, call the Send API once."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.clients.instagram import InstagramClient, InstagramError
from app.errors import ConflictError
from app.models import Message, utcnow
from app.repositories import conversations, messages, users
from app.services.accounts import BusinessAccount

logger = logging.getLogger(__name__)

STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"


class SendService:
    """Send messages to customers on the business's behalf."""

    def __init__(
        self,
        *,
        session: Session,
        instagram: InstagramClient,
        account: BusinessAccount,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.instagram = instagram
        self.account = account
        self.clock = clock

    def send(self, *, user_id: str, content: dict[str, Any], tag: str | None = None) -> Message:
        """Send one message (`content` is the Send API's `message` object); return the row.

        The row is committed as `pending` before Meta is called, then marked `sent` with
        Meta's message_id, or `failed` with Meta's error (which is then raised).
        """
        account_id = self.account.id()
        now = self.clock()
        self._check_window(account_id=account_id, user_id=user_id, tag=tag, now=now)
        users.ensure(self.session, user_ids=[user_id, account_id])
        conversation_id = conversations.upsert(self.session, account_id=account_id, user_id=user_id)
        message = messages.add(
            self.session,
            conversation_id=conversation_id,
            direction="outbound",
            sender_id=account_id,
            recipient_id=user_id,
            text=content.get("text"),
            attachments=_attachments_of(content),
            sent_at=now,
            created_at=now,
            source="api",
            status="pending",
        )
        self.session.commit()  # the pending row survives whatever happens next

        try:
            answer = self.instagram.send_message(recipient_id=user_id, message=content, tag=tag)
        except InstagramError as exc:
            messages.mark_failed(self.session, message_id=message.id, error=exc.as_record())
            self.session.commit()
            raise
        mid = str(answer.get("message_id") or "")
        if not mid:
            logger.error("Send API answered without a message_id for message %s", message.id)
            messages.mark_failed(
                self.session,
                message_id=message.id,
                error={"code": "instagram_error", "detail": "no message_id in the answer"},
            )
            self.session.commit()
            raise InstagramError("The Instagram API answered without a message_id.")
        # Conversation first, then message: the order the echo webhook takes its locks in, so
        # an echo racing this transaction waits instead of deadlocking.
        conversations.upsert(
            self.session, account_id=account_id, user_id=user_id, message_at=message.sent_at
        )
        messages.attach_mid(self.session, message_id=message.id, mid=mid)
        self.session.commit()
        self.session.refresh(message)  # sent_at is Meta's if the echo came first
        return message

    def _check_window(
        self, *, account_id: str, user_id: str, tag: str | None, now: datetime
    ) -> None:
        """Refuse early when our own records show the window is closed.

        With no inbound message stored we know nothing, and Meta's answer decides.
        """
        conversation = conversations.get(self.session, account_id=account_id, user_id=user_id)
        if conversation is None or conversation.last_inbound_at is None:
            return
        window = HUMAN_AGENT_WINDOW if tag == HUMAN_AGENT_TAG else STANDARD_WINDOW
        if now - conversation.last_inbound_at > window:
            raise ConflictError(
                f"The customer last wrote at {conversation.last_inbound_at.isoformat()}; "
                f"Instagram allows replies for {_describe(window)} after that"
                + ("" if tag else " (7 days for a human agent with the HUMAN_AGENT tag)")
                + ".",
                code="outside_window",
            )


def _describe(window: timedelta) -> str:
    return f"{window.days} days" if window.days else f"{window.seconds // 3600} hours"


def _attachments_of(content: dict[str, Any]) -> list[dict[str, Any]] | None:
    if "attachments" in content:
        return list(content["attachments"])
    if "attachment" in content:
        return [content["attachment"]]
    return None
