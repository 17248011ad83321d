"""Delivery to webhook endpoints, at least once, by the Standard Webhooks specification.

Every process runs a `DeliveryWorker`. A round:
1. fans new events out to the enabled endpoints that want them (one `event_deliveries` row
   per event and endpoint), up to the safe horizon, each endpoint locked by one process;
2. claims due deliveries with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so among
   several replicas one makes each attempt; of one endpoint and one conversation only the
   oldest pending delivery is ever due (strict `seq` order), others flow freely;
3. POSTs each from a small thread pool through one `requests.Session`, and records the
   outcome: 2xx succeeded; 410 disables the endpoint; anything else (a timeout, a refused
   connection, a host that resolves to a non-public address now: no POST is made) is retried
   on EVENTS_RETRY_SCHEDULE with jitter (a longer `Retry-After` wins), then given up.
   An endpoint failing for EVENTS_DISABLE_AFTER_HOURS is disabled.

A process that dies mid-attempt leaves its lease to expire: the attempt is made again (the
`webhook-id` is the same, so the consumer can tell).
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from sqlalchemy.orm import Session

from app import metrics
from app.config import Settings
from app.models import utcnow
from app.repositories import endpoints, event_deliveries
from app.schemas.v1.events import event_json
from app.services.background import BackgroundWorker
from app.services.events.horizon import Horizon
from app.services.events.sealed_secrets import UnreadableSecretError, signing_secrets
from app.services.events.signing import signed_delivery
from app.services.events.transport import delivery_session
from app.services.events.urls import NonPublicAddressError
from app.services.tokens.cipher import cipher_for

logger = logging.getLogger(__name__)

FAN_OUT_BATCH = 1000
# Longest Retry-After honoured (a day): an endpoint cannot park its events for longer.
MAX_RETRY_AFTER = 24 * 3600.0
JITTER = 0.1
# How often a worker fans new events out while it is busy delivering.
DISPATCH_SECONDS = 0.2
MAX_ERROR_TEXT = 300


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claimed delivery: what to POST where, signed with which secrets."""

    delivery_id: int
    endpoint_id: str
    url: str
    secrets: list[str]
    event: dict[str, Any]
    created_at: datetime
    attempts: int  # made before this one
    # Why no POST can be made (the secret cannot be opened): recorded as a failed attempt.
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Deliverer:
    """Fan-out, claims and attempts (used by the worker, and by tests round by round)."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        settings: Settings,
        horizon: Horizon,
        http: requests.Session | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.horizon = horizon
        self.http = http or delivery_session(allow_private=settings.events_allow_private_urls)
        self.clock = clock
        self.cipher = cipher_for(settings)
        self.lease = timedelta(seconds=settings.events_timeout_seconds + 30)

    def dispatch(self) -> bool:
        """Fan the events up to the safe horizon out to the endpoints that want them; False
        when no endpoint is enabled (nothing to deliver: one SELECT was the whole round)."""
        with self.session_factory() as session:
            enabled = endpoints.claim_for_dispatch(session)
            if not enabled:
                session.rollback()
                return False
            ids = [endpoint.id for endpoint in enabled]
            up_to = self.horizon.advance(session)  # ends the transaction: lock them again
            enabled = endpoints.claim_for_dispatch(session, ids=ids)
            now = self.clock()
            for endpoint in enabled:
                if endpoint.dispatched_seq >= up_to:
                    continue
                reached = event_deliveries.fan_out(
                    session,
                    endpoint,
                    after=endpoint.dispatched_seq,
                    up_to=up_to,
                    now=now,
                    limit=FAN_OUT_BATCH,
                )
                endpoints.set_dispatched(session, endpoint_id=endpoint.id, seq=reached)
            session.commit()
        return True

    def claim(self, limit: int) -> list[Attempt]:
        """Lease up to `limit` due deliveries."""
        if limit <= 0:
            return []
        now = self.clock()
        with self.session_factory() as session:
            ids = event_deliveries.claim(
                session, now=now, lease_until=now + self.lease, limit=limit
            )
            rows = event_deliveries.to_send(session, ids)
            session.commit()
        return [self._attempt(row._mapping, now=now) for row in rows]

    def _attempt(self, row: Any, *, now: datetime) -> Attempt:
        refused = None
        try:
            signing = signing_secrets(
                self.cipher,
                endpoint_id=row["endpoint_id"],
                secret=row["secret"],
                previous=row["previous_secret"],
                previous_until=row["previous_secret_until"],
                now=now,
            )
        except UnreadableSecretError as exc:
            signing, refused = [], str(exc)
        return Attempt(
            delivery_id=row["delivery_id"],
            endpoint_id=row["endpoint_id"],
            url=row["url"],
            secrets=signing,
            event=event_json(row),
            created_at=row["created_at"],
            attempts=row["attempts"],
            refused=refused,
        )

    def send(self, attempt: Attempt) -> None:
        """POST one attempt and record what came of it."""
        outcome = self.post(attempt)
        self.record(attempt, outcome)

    def post(self, attempt: Attempt) -> Outcome:
        if attempt.refused is not None:
            return Outcome(None, attempt.refused, 0)
        body, signed = signed_delivery(attempt.event, signing_secrets=attempt.secrets)
        started = time.monotonic()
        try:
            response = self.http.post(
                attempt.url,
                data=body,
                headers={**signed, "user-agent": "insta-service-webhooks/1"},
                timeout=(
                    min(5.0, self.settings.events_timeout_seconds),
                    self.settings.events_timeout_seconds,
                ),
                allow_redirects=False,
            )
            response.close()
        except NonPublicAddressError as exc:
            return Outcome(None, str(exc), _elapsed_ms(started))
        except requests.Timeout:
            waited = f"no answer within {self.settings.events_timeout_seconds:g} s"
            return Outcome(None, waited, _elapsed_ms(started))
        except requests.RequestException as exc:
            return Outcome(None, _describe(exc), _elapsed_ms(started))
        duration = _elapsed_ms(started)
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Outcome(response.status_code, error, duration, _retry_after(response))

    def record(self, attempt: Attempt, outcome: Outcome) -> None:
        now = self.clock()
        with self.session_factory() as session:
            next_at: datetime | None = None
            if outcome.succeeded:
                status, label = "succeeded", "succeeded"
                endpoints.mark_succeeded(session, endpoint_id=attempt.endpoint_id)
            elif outcome.status_code == 410:
                status, label = "failed", "gone"
                self._disable(session, attempt.endpoint_id, reason="HTTP 410 Gone", now=now)
            else:
                next_at = self._next_attempt(attempt.attempts + 1, outcome.retry_after, now=now)
                status = "pending" if next_at is not None else "failed"
                label = "retry" if next_at is not None else "given_up"
                since = endpoints.mark_failing(session, endpoint_id=attempt.endpoint_id, now=now)
                limit = timedelta(hours=self.settings.events_disable_after_hours)
                if now - since >= limit:
                    reason = f"failing for {self.settings.events_disable_after_hours:g} hours"
                    self._disable(session, attempt.endpoint_id, reason=reason, now=now)
            event_deliveries.record_attempt(
                session,
                delivery_id=attempt.delivery_id,
                status=status,
                next_attempt_at=next_at,
                attempted_at=now,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
            )
            session.commit()
        metrics.EVENT_DELIVERIES.labels(endpoint=attempt.endpoint_id, outcome=label).inc()
        if outcome.succeeded:
            lag = (now - attempt.created_at).total_seconds()
            metrics.EVENT_DELIVERY_LAG.observe(max(lag, 0))

    def _next_attempt(
        self, attempts: int, retry_after: float | None, *, now: datetime
    ) -> datetime | None:
        """When to try again after `attempts` failed ones; None: the schedule is spent."""
        delays = self.settings.events_retry_delays
        if attempts > len(delays):
            return None
        delay = delays[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (jitter, not a secret)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return now + timedelta(seconds=delay)

    def _disable(self, session: Session, endpoint_id: str, *, reason: str, now: datetime) -> None:
        if endpoints.disable(session, endpoint_id=endpoint_id, reason=reason, now=now):
            logger.warning("endpoint.disabled endpoint=%s reason=%s", endpoint_id, reason)

    def run_once(self, limit: int = 100) -> int:
        """One round done here and now, attempts one after another; how many were made."""
        if not self.dispatch():
            return 0
        attempts = self.claim(limit)
        for attempt in attempts:
            self.send(attempt)
        return len(attempts)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: Exception) -> str:
    # The exception's class says enough (connection refused, reset, TLS); its text may hold
    # the URL, which may hold a consumer's own token.
    name = type(exc).__name__
    return {"ConnectionError": "connection failed (refused, reset or unreachable)"}.get(name, name)[
        :MAX_ERROR_TEXT
    ]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - utcnow()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


class DeliveryWorker(BackgroundWorker):
    """The thread of a process that runs delivery rounds; attempts run in `slots` threads
    of their own, so a slow endpoint holds one slot, not the round.

    A finished attempt wakes the thread (the conversation's next event may be due), but a
    round claims only once half the slots are free, and fans new events out at most every
    DISPATCH_SECONDS: deliveries are claimed in batches, not one statement per event."""

    def __init__(self, deliverer: Deliverer, *, slots: int = 16, idle_seconds: float = 0.25):
        self.deliverer = deliverer
        self.slots = slots
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="event-delivery")
        self._in_flight = 0
        self._flight = threading.Condition()
        self._dispatched_at = float("-inf")
        self._endpoints = False
        super().__init__(self._round, name="event-delivery", idle_seconds=idle_seconds)

    def _round(self) -> bool:
        with self._flight:
            free = self.slots - self._in_flight
        if free < max(1, self.slots // 2):
            return False  # a finishing attempt wakes the thread again
        if time.monotonic() - self._dispatched_at >= DISPATCH_SECONDS:
            self._endpoints = self.deliverer.dispatch()
            self._dispatched_at = time.monotonic()
        if not self._endpoints:
            return False  # no endpoint: no delivery can be pending
        attempts = self.deliverer.claim(free)
        for attempt in attempts:
            with self._flight:
                self._in_flight += 1
            self._pool.submit(self._send, attempt)
        if not attempts:
            self._dispatched_at = float("-inf")  # nothing due: look for new events next time
        return False

    def _send(self, attempt: Attempt) -> None:
        try:
            self.deliverer.send(attempt)
        except Exception:
            logger.exception("event delivery %s: attempt not recorded", attempt.delivery_id)
        finally:
            with self._flight:
                self._in_flight -= 1
                self._flight.notify_all()
            # The conversation's next event (and a free slot) may be due now: no idle wait.
            self.wake()

    def pause(self) -> None:
        """As BackgroundWorker.pause, and once the attempts in flight are recorded."""
        super().pause()
        with self._flight:
            self._flight.wait_for(lambda: self._in_flight == 0)

    def stop(self, timeout: float = 10) -> None:
        super().stop(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.deliverer.http.close()
