"""Late recording of sends Meta accepted while the database could not record them."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import DATABASE_UNAVAILABLE
from app.repositories import conversations, messages
from app.services.background import BackgroundWorker
from app.services.events import outbox

logger = logging.getLogger(__name__)

SENT_ATTEMPTS = 3


@dataclass(frozen=True)
class DeliveredSend:
    """A message Meta accepted whose `mid` is not recorded yet."""

    row_id: int
    account_id: str
    customer_id: str
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
            logger.warning("message %s still not marked sent: %s", send.row_id, type(exc).__name__)
            failed.append(send)
        except Exception:
            # Not the database being away: retrying will not help. The echo keeps the message.
            logger.exception("message %s could not be marked sent as %s", send.row_id, send.mid)
        else:
            logger.info("message %s marked sent as %s (late)", send.row_id, send.mid)
    for send in failed:
        pending.add(send)
    return not failed


def record_sent(session: Session, send: DeliveredSend) -> datetime:
    """Mark the row sent with Meta's mid, merging its echo if that was stored first;
    committed. Returns the message's sent_at (the echo's time when there was one)."""
    for attempt in range(SENT_ATTEMPTS):
        try:
            # Conversation first, then message: the order the echo webhook takes its locks
            # in, so an echo racing this transaction waits instead of deadlocking.
            conversations.upsert(
                session,
                account_id=send.account_id,
                customer_id=send.customer_id,
                message_at=send.sent_at,
            )
            row = messages.attach_mid(session, row_id=send.row_id, mid=send.mid)
            outbox.record_message(
                session, "message.sent", row_id=send.row_id, row=row, origin="api"
            )
            session.commit()
            sent_at: datetime = row._mapping["sent_at"]
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
                    send.row_id,
                    send.mid,
                )
