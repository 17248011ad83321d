"""The live stream: one poller thread per process reads new events (every 250 ms, up to the
safe horizon) and fans them out to the open streams' asyncio queues, so an open stream costs
a queue, not a thread: 500 streams leave the worker threads to webhooks and reads.

A stream subscribes first (learning how far the poller has read, P), then catches up from
the database to P, then follows its queue: nothing between the two is lost or repeated.
"""

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.repositories import events
from app.schemas.v1.events import JsonObject, event_json
from app.services.background import BackgroundWorker
from app.services.events.horizon import Horizon

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
BATCH = 500
# A stream that falls this many events behind is closed (the client resumes with
# Last-Event-ID): a stalled reader must not hold the process's memory.
MAX_QUEUED = 10_000


@dataclass(eq=False)
class Subscription:
    """One open stream: where the poller puts events for it."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[list[JsonObject] | None] = field(default_factory=asyncio.Queue)
    queued: int = 0

    def put(self, batch: list[JsonObject]) -> bool:
        """Queue a batch (from the poller thread); False when the stream fell too far behind."""
        self.queued += len(batch)
        if self.queued > MAX_QUEUED:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, None)  # None: closed
            return False
        self.loop.call_soon_threadsafe(self.queue.put_nowait, batch)
        return True

    def taken(self, count: int) -> None:
        self.queued -= count


class Broadcaster:
    """The process's poller and its subscribers (thread-safe)."""

    def __init__(self, *, session_factory: Callable[[], Session], horizon: Horizon) -> None:
        self.session_factory = session_factory
        self.horizon = horizon
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._cursor = 0

    def subscribe(self, subscription: Subscription) -> int:
        """Register a stream; the seq up to which it must catch up from the database (the
        poller publishes what comes after). Blocking: call it from a thread."""
        with self._lock:
            if not self._subscribers:
                # Nobody was following: the poller's cursor is stale (or the database new).
                with self.session_factory() as session:
                    self._cursor = self.horizon.advance(session)
            self._subscribers.add(subscription)
            return self._cursor

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def poll(self) -> bool:
        """Publish what is new; True when there may be more right away."""
        with self._lock:
            if not self._subscribers:
                return False
            with self.session_factory() as session:
                up_to = self.horizon.advance(session)
                rows = events.page(session, after=self._cursor, up_to=up_to, limit=BATCH)
                session.rollback()
            if not rows:
                return False
            batch = [event_json(row._mapping) for row in rows]
            self._cursor = rows[-1].seq
            for subscription in list(self._subscribers):
                if not subscription.put(batch):
                    self._subscribers.discard(subscription)
            return len(rows) == BATCH


def catch_up(
    session_factory: Callable[[], Session], *, after: int, up_to: int, limit: int = BATCH
) -> Sequence[JsonObject]:
    """Events after `after` up to `up_to` (a page of at most `limit`), from the database."""
    with session_factory() as session:
        rows = events.page(session, after=after, up_to=up_to, limit=limit)
        session.rollback()
    return [event_json(row._mapping) for row in rows]


def oldest_kept(session_factory: Callable[[], Session]) -> int | None:
    with session_factory() as session:
        oldest = events.oldest_seq(session)
        session.rollback()
    return oldest


class StreamPoller(BackgroundWorker):
    """The thread running the broadcaster's polls."""

    def __init__(self, broadcaster: Broadcaster, *, idle_seconds: float = POLL_SECONDS) -> None:
        self.broadcaster = broadcaster
        super().__init__(broadcaster.poll, name="event-stream", idle_seconds=idle_seconds)


def wanted(event: dict[str, Any], *, types: set[str] | None, account_id: str | None) -> bool:
    """Whether a stream with these filters shows the event."""
    if types is not None and event["type"] not in types:
        return False
    return account_id is None or event["account_id"] == account_id
