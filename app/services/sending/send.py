"""Sending: check the window we know of, store the message, call the Send API once."""

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.db import DATABASE_UNAVAILABLE
from app.errors import AppError, ConflictError, InvalidInputError
from app.models import Message, utcnow
from app.repositories import conversations, messages, users
from app.schemas.v1.read import JsonObject, columns_of, message_json
from app.services import window
from app.services.events import outbox
from app.services.media import attachments
from app.services.routing import CustomerRoute, EnvironmentAccount, route_customer
from app.services.sending.payload import stored_attachments
from app.services.sending.recording import DeliveredSend, UnrecordedSends, record_sent

logger = logging.getLogger(__name__)


class SendService:
    """Send messages to customers on the business's behalf."""

    def __init__(
        self,
        *,
        session: Session,
        instagram: InstagramClient,
        environment: EnvironmentAccount,
        clock: Callable[[], datetime] = utcnow,
        unrecorded: UnrecordedSends | None = None,
    ) -> None:
        self.session = session
        self.instagram = instagram
        self.environment = environment
        self.clock = clock
        self.unrecorded = unrecorded if unrecorded is not None else UnrecordedSends()

    def read(self, message: Message) -> JsonObject:
        """The MessageRead of a message just sent (or repeated), with its media."""
        media = (
            attachments.media_by_message(self.session, [message.id]).get(message.id)
            if message.attachments
            else None
        )
        return message_json(columns_of(message), reactions=[], media=media)

    def send(
        self,
        *,
        customer_id: str,
        content: dict[str, Any],
        tag: str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Send one message (`content` is the Send API's `message` object); return the row.

        The row is committed as `pending` before Meta is called, then marked `sent` with
        Meta's mid, or `failed` with Meta's error (which is then raised).

        With an `idempotency_key`, a repeat of the same request returns (or raises) what the
        first one did without calling Meta again; the same key with another request is 422.
        """
        fingerprint = _fingerprint(customer_id=customer_id, content=content, tag=tag)
        if idempotency_key is not None:
            earlier = messages.get_by_idempotency_key(self.session, idempotency_key)
            if earlier is not None:
                return _repeat(earlier, fingerprint=fingerprint)
        route = route_customer(self.session, customer_id=customer_id, environment=self.environment)
        account_id = route.account_id
        now = self.clock()
        conversation_id = self._open_conversation(route, customer_id=customer_id, tag=tag, now=now)
        try:
            message = self._add_pending(
                conversation_id=conversation_id,
                account_id=account_id,
                customer_id=customer_id,
                content=content,
                now=now,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
        except IntegrityError:
            # The same key raced in from another request, which stored its row first.
            self.session.rollback()
            earlier = (
                messages.get_by_idempotency_key(self.session, idempotency_key)
                if idempotency_key is not None
                else None
            )
            if earlier is None:
                raise
            return _repeat(earlier, fingerprint=fingerprint)
        mid = self._call_meta(message, account_id=account_id, content=content, tag=tag)
        self._record(message, account_id=account_id, mid=mid)
        return message

    def _add_pending(
        self,
        *,
        conversation_id: int,
        account_id: str,
        customer_id: str,
        content: dict[str, Any],
        now: datetime,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Message:
        """The `pending` row (and its attachments' media rows), committed before Meta is
        called: it survives whatever happens next."""
        message = messages.add(
            self.session,
            conversation_id=conversation_id,
            direction="outbound",
            sender_id=account_id,
            recipient_id=customer_id,
            text=content.get("text"),
            attachments=stored_attachments(content),
            sent_at=now,
            created_at=now,
            source="api",
            status="pending",
            idempotency_key=idempotency_key,
            idempotency_fingerprint=fingerprint if idempotency_key else None,
        )
        if message.attachments:
            attachments.create_for_message(
                self.session, message_id=message.id, attachments=message.attachments
            )
        self.session.commit()
        return message

    def _open_conversation(
        self, route: CustomerRoute, *, customer_id: str, tag: str | None, now: datetime
    ) -> int:
        """The conversation's id (created when new); 409 when our records show the window
        is closed."""
        known = route.conversation
        if known is not None:
            window.check(known.last_inbound_at, tag=tag, now=now)
            return int(known.id)
        users.ensure(self.session, user_ids=[customer_id, route.account_id])
        return conversations.upsert(
            self.session, account_id=route.account_id, customer_id=customer_id
        )

    def _call_meta(
        self, message: Message, *, account_id: str, content: dict[str, Any], tag: str | None
    ) -> str:
        """Meta's mid for the message (sent with the account's token); when Meta refuses it,
        the row is marked failed (and committed) and Meta's error raised."""
        try:
            answer = self.instagram.for_account(account_id).send_message(
                recipient_id=message.recipient_id, message=content, tag=tag
            )
        except InstagramError as exc:
            messages.mark_failed(self.session, row_id=message.id, error=exc.as_record())
            outbox.record_message(self.session, "message.failed", row_id=message.id)
            self.session.commit()
            raise
        mid = str(answer.get("message_id") or "")
        if not mid:
            logger.error("Send API answered without a message_id for message %s", message.id)
            messages.mark_failed(
                self.session,
                row_id=message.id,
                error={"code": "instagram_error", "detail": "no message_id in the answer"},
            )
            outbox.record_message(self.session, "message.failed", row_id=message.id)
            self.session.commit()
            raise InstagramError("The Instagram API answered without a message_id.")
        return mid

    def _record(self, message: Message, *, account_id: str, mid: str) -> None:
        """Mark the row sent with `mid`; `message` then shows what the row holds (or will)."""
        delivered = DeliveredSend(
            row_id=message.id,
            account_id=account_id,
            customer_id=message.recipient_id,
            sent_at=message.sent_at,
            mid=mid,
        )
        try:
            sent_at = record_sent(self.session, delivered)
        except DATABASE_UNAVAILABLE as exc:
            # Instagram has delivered it: an error answer would make the client send it again.
            # The row stays pending for now; a background worker records the mid later.
            self.session.rollback()
            logger.error(
                "message %s was delivered as %s but could not be marked sent (will retry): %s",
                message.id,
                mid,
                type(exc).__name__,
            )
            self.unrecorded.add(delivered)
            sent_at = message.sent_at
        # What the UPDATE wrote (or will write), without reading the row back.
        set_committed_value(message, "mid", mid)
        set_committed_value(message, "status", "sent")
        set_committed_value(message, "sent_at", sent_at)


def _fingerprint(*, customer_id: str, content: dict[str, Any], tag: str | None) -> str:
    canonical = json.dumps(
        # "user_id": the key fingerprints were first stored with (a repeat must still match).
        {"user_id": customer_id, "message": content, "tag": tag},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _repeat(earlier: Message, *, fingerprint: str) -> Message:
    """What a request repeated with the same Idempotency-Key gets: the first one's result."""
    if earlier.idempotency_fingerprint != fingerprint:
        raise InvalidInputError(
            "This Idempotency-Key was used for another request; use a new key.",
            code="idempotency_key_reused",
        )
    if earlier.status == "pending":
        raise ConflictError(
            "The request with this Idempotency-Key is still being sent; retry shortly.",
            code="idempotency_key_in_progress",
            headers={"Retry-After": "1"},
        )
    if earlier.status == "failed":
        error = earlier.error or {}
        raise AppError(
            str(error.get("detail", "The message could not be sent.")),
            status_code=int(error.get("status", 502)),
            code=str(error.get("code", "instagram_error")),
        )
    return earlier
