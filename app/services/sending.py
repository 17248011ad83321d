"""Sending: check the window we know of, store the message, call the Send API once."""

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.clients.instagram import InstagramClient, InstagramError
from app.db import DATABASE_UNAVAILABLE
from app.errors import AppError, ConflictError, InvalidInputError, NotFoundError
from app.models import Message, Reaction, utcnow
from app.repositories import conversations, messages, reactions, users
from app.services.accounts import BusinessAccount
from app.services.background import BackgroundWorker

logger = logging.getLogger(__name__)

STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"
SENT_ATTEMPTS = 3


@dataclass(frozen=True)
class DeliveredSend:
    """A message Meta accepted whose `message_id` is not recorded yet."""

    message_id: int
    account_id: str
    recipient_id: str
    sent_at: datetime
    mid: str


class UnrecordedSends:
    """Sends Meta accepted while the database could not record them; a background worker
    records them once it can (see `record_unrecorded`). Kept in memory: a process that dies
    before then leaves the row `pending` (the echo webhook still stores the message)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sends: list[DeliveredSend] = []

    def add(self, send: DeliveredSend) -> None:
        with self._lock:
            self._sends.append(send)

    def take(self) -> list[DeliveredSend]:
        with self._lock:
            sends, self._sends = self._sends, []
        return sends

    def __len__(self) -> int:
        with self._lock:
            return len(self._sends)


def record_unrecorded(session_factory: Callable[[], Session], pending: UnrecordedSends) -> bool:
    """Record the sends waiting in `pending`; those that still fail go back. True when all
    were recorded (or there were none)."""
    failed: list[DeliveredSend] = []
    for send in pending.take():
        try:
            with session_factory() as session:
                record_sent(session, send)
        except DATABASE_UNAVAILABLE as exc:
            logger.warning(
                "message %s still not marked sent: %s", send.message_id, type(exc).__name__
            )
            failed.append(send)
        except Exception:
            # Not the database being away: retrying will not help. The echo keeps the message.
            logger.exception("message %s could not be marked sent as %s", send.message_id, send.mid)
        else:
            logger.info("message %s marked sent as %s (late)", send.message_id, send.mid)
    for send in failed:
        pending.add(send)
    return not failed


def record_sent(session: Session, send: DeliveredSend) -> datetime:
    """Mark the row sent with Meta's message_id, merging its echo if that was stored first;
    committed. Returns the message's sent_at (the echo's time when there was one)."""
    for attempt in range(SENT_ATTEMPTS):
        try:
            # Conversation first, then message: the order the echo webhook takes its locks
            # in, so an echo racing this transaction waits instead of deadlocking.
            conversations.upsert(
                session,
                account_id=send.account_id,
                customer_id=send.recipient_id,
                message_at=send.sent_at,
            )
            sent_at = messages.attach_mid(session, message_id=send.message_id, mid=send.mid)
            session.commit()
            return sent_at
        except IntegrityError:
            # The echo was stored between our DELETE and UPDATE: it is committed now.
            session.rollback()
            if attempt == SENT_ATTEMPTS - 1:
                raise
        except sa_exc.TimeoutError:
            # No free connection (a burst): worth a short wait, the message was delivered.
            session.rollback()
            if attempt == SENT_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class UnrecordedSendsWorker(BackgroundWorker):
    """The thread that records late what `SendService` could not (every `idle_seconds`)."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        pending: UnrecordedSends,
        *,
        idle_seconds: float = 1.0,
    ) -> None:
        self.session_factory = session_factory
        self.pending = pending
        super().__init__(self._round, name="sent-recorder", idle_seconds=idle_seconds)

    def _round(self) -> bool:
        if len(self.pending):
            record_unrecorded(self.session_factory, self.pending)
        return False  # wait idle_seconds before looking again

    def stop(self, timeout: float = 10) -> None:
        """Stop, after a last try; what is still unrecorded is logged (its rows stay pending)."""
        super().stop(timeout)
        if len(self.pending) and not record_unrecorded(self.session_factory, self.pending):
            for send in self.pending.take():
                logger.error(
                    "message %s was delivered as %s but stays pending: the database is down",
                    send.message_id,
                    send.mid,
                )


class SendService:
    """Send messages to customers on the business's behalf."""

    def __init__(
        self,
        *,
        session: Session,
        instagram: InstagramClient,
        account: BusinessAccount,
        clock: Callable[[], datetime] = utcnow,
        unrecorded: UnrecordedSends | None = None,
    ) -> None:
        self.session = session
        self.instagram = instagram
        self.account = account
        self.clock = clock
        self.unrecorded = unrecorded if unrecorded is not None else UnrecordedSends()

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
        Meta's message_id, or `failed` with Meta's error (which is then raised).

        With an `idempotency_key`, a repeat of the same request returns (or raises) what the
        first one did without calling Meta again; the same key with another request is 422.
        """
        fingerprint = _fingerprint(customer_id=customer_id, content=content, tag=tag)
        if idempotency_key is not None:
            earlier = messages.get_by_idempotency_key(self.session, idempotency_key)
            if earlier is not None:
                return _repeat(earlier, fingerprint=fingerprint)
        account_id = self.account.id()
        now = self.clock()
        known = conversations.window_of(
            self.session, account_id=account_id, customer_id=customer_id
        )
        _check_window(known, tag=tag, now=now)
        if known is not None:
            conversation_id = known.id
        else:
            users.ensure(self.session, user_ids=[customer_id, account_id])
            conversation_id = conversations.upsert(
                self.session, account_id=account_id, customer_id=customer_id
            )
        try:
            message = messages.add(
                self.session,
                conversation_id=conversation_id,
                direction="outbound",
                sender_id=account_id,
                recipient_id=customer_id,
                text=content.get("text"),
                attachments=_attachments_of(content),
                sent_at=now,
                created_at=now,
                source="api",
                status="pending",
                idempotency_key=idempotency_key,
                idempotency_fingerprint=fingerprint if idempotency_key else None,
            )
            self.session.commit()  # the pending row survives whatever happens next
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

        try:
            answer = self.instagram.send_message(recipient_id=customer_id, message=content, tag=tag)
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
        delivered = DeliveredSend(
            message_id=message.id,
            account_id=account_id,
            recipient_id=message.recipient_id,
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
        return message

    def react(self, *, customer_id: str, mid: str, reaction: str | None) -> Reaction:
        """React to a customer's message as the business (`reaction` None: unreact)."""
        account_id = self.account.id()
        target = messages.get_by_mid(self.session, mid)
        conversation = conversations.window_of(
            self.session, account_id=account_id, customer_id=customer_id
        )
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
        _check_window(conversation, tag=None, now=now)
        self.session.commit()  # no transaction (nor SQLite lock) held while Meta answers
        if reaction is None:
            self.send_action(customer_id=customer_id, action="unreact", payload={"message_id": mid})
        else:
            self.send_action(
                customer_id=customer_id,
                action="react",
                payload={"message_id": mid, "reaction": reaction},
            )
        reactions.store(
            self.session,
            mid=mid,
            user_id=account_id,
            reaction=reaction,
            # Meta takes a reaction name ("love") or the emoji itself.
            emoji=reaction if reaction and not reaction.isascii() else None,
            reacted_at=now,
        )
        self.session.commit()
        stored = reactions.get(self.session, mid=mid, user_id=account_id)
        assert stored is not None
        return stored

    def send_action(
        self, *, customer_id: str, action: str, payload: dict[str, Any] | None = None
    ) -> None:
        """A sender action (typing indicator, seen, react): one call to Meta, nothing stored."""
        self.instagram.send_sender_action(recipient_id=customer_id, action=action, payload=payload)


def _check_window(conversation: Row[Any] | None, *, tag: str | None, now: datetime) -> None:
    """Refuse early when our own records (the conversation's `last_inbound_at`) show the
    window is closed. With no inbound message stored we know nothing, and Meta's answer
    decides."""
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


def _describe(window: timedelta) -> str:
    return f"{window.days} days" if window.days else f"{window.seconds // 3600} hours"


def _attachments_of(content: dict[str, Any]) -> list[dict[str, Any]] | None:
    if "attachments" in content:
        return list(content["attachments"])
    if "attachment" in content:
        return [content["attachment"]]
    return None
