"""Delivery to webhook endpoints, at least once, by the Standard Webhooks specification.

Every process runs a `DeliveryWorker`. A round:
1. fans new events out to the enabled endpoints that want them (one `event_deliveries` row
   per event and endpoint), up to the safe horizon, each endpoint locked by one process;
2. claims due deliveries with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so among
   several replicas one makes each attempt; of one endpoint and one conversation only the
   oldest pending delivery is ever due (strict `seq` order), others flow freely;
3. POSTs each from a small thread pool through one `DeliveryTransport` (urllib3's pools),
   and records the outcomes (those that finish together in one transaction): 2xx succeeded;
   410 disables the endpoint; anything else (a timeout, a refused connection, a host that
   resolves to a non-public address now: no POST is made) is retried
   on EVENTS_RETRY_SCHEDULE with jitter (a longer `Retry-After` wins), then given up.
   An endpoint failing for EVENTS_DISABLE_AFTER_HOURS is disabled.

A process that dies mid-attempt leaves its lease to expire: the attempt is made again (the
`webhook-id` is the same, so the consumer can tell).
"""

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy.orm import Session
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError, TimeoutError

from app import metrics
from app.config import Settings
from app.models import utcnow
from app.repositories import endpoints, event_deliveries
from app.schemas.v1.events import event_json
from app.services.background import BackgroundWorker
from app.services.events.horizon import Horizon
from app.services.events.sealed_secrets import UnreadableSecretError, signing_secrets
from app.services.events.signing import signed_delivery
from app.services.events.transport import DeliveryTransport
from app.services.events.urls import NonPublicAddressError
from app.services.tokens.cipher import cipher_for

logger = logging.getLogger(__name__)

FAN_OUT_BATCH = 1000
# Longest Retry-After honoured (a day): an endpoint cannot park its events for longer.
MAX_RETRY_AFTER = 24 * 3600.0
JITTER = 0.1
# At most how often a worker fans new events out (and only while its due deliveries run low).
DISPATCH_SECONDS = 0.2
MAX_ERROR_TEXT = 300
CONNECTION_FAILED = "connection failed (refused, reset or unreachable)"


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
    # The endpoint had failed without a success since (when claimed): a 2xx clears that.
    endpoint_failing: bool = False
    # The lease the attempt is made under: its outcome changes the delivery only while the
    # delivery is still under it (not replayed meanwhile, nor claimed again elsewhere).
    lease_until: datetime | None = None
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
        http: DeliveryTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.horizon = horizon
        self.http = http or DeliveryTransport(allow_private=settings.events_allow_private_urls)
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
            endpoint_failing=row["failing_since"] is not None,
            lease_until=row["claimed_until"],
            refused=refused,
        )

    def send(self, attempt: Attempt) -> None:
        """POST one attempt and record what came of it."""
        self.record([(attempt, self.post(attempt))])

    def post(self, attempt: Attempt) -> Outcome:
        if attempt.refused is not None:
            return Outcome(None, attempt.refused, 0)
        body, signed = signed_delivery(attempt.event, signing_secrets=attempt.secrets)
        timeout = self.settings.events_timeout_seconds
        started = time.monotonic()
        try:
            answer = self.http.post(
                attempt.url,
                body=body,
                headers={**signed, "user-agent": "insta-service-webhooks/1"},
                connect=min(5.0, timeout),
                read=timeout,
            )
        except NonPublicAddressError as exc:
            return Outcome(None, str(exc), _elapsed_ms(started))
        except (NewConnectionError, ProtocolError):  # before TimeoutError: a subclass of it
            return Outcome(None, CONNECTION_FAILED, _elapsed_ms(started))
        except TimeoutError:
            return Outcome(None, f"no answer within {timeout:g} s", _elapsed_ms(started))
        except (HTTPError, OSError) as exc:
            # The class says enough (TLS, a proxy's refusal); the text may hold the URL,
            # which may hold a consumer's own token.
            return Outcome(None, type(exc).__name__[:MAX_ERROR_TEXT], _elapsed_ms(started))
        duration = _elapsed_ms(started)
        error = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
        return Outcome(answer.status, error, duration, _retry_after(answer.headers))

    def record(self, finished: Sequence[tuple[Attempt, Outcome]]) -> None:
        """Record what came of finished attempts, in one transaction: the deliveries' new
        states and attempt rows, and their endpoints' health. An endpoint's health follows
        its last attempt here: a 2xx clears `failing_since`, a failure sets it (once) and
        disables the endpoint once it has failed for EVENTS_DISABLE_AFTER_HOURS; a 410
        disables it at once."""
        if not finished:
            return
        now = self.clock()
        records, labels = [], []
        with self.session_factory() as session:
            last: dict[str, Outcome] = {}
            failing = {attempt.endpoint_id for attempt, _ in finished if attempt.endpoint_failing}
            for attempt, outcome in finished:
                next_at: datetime | None = None
                if outcome.succeeded:
                    status, label = "succeeded", "succeeded"
                elif outcome.status_code == 410:
                    status, label = "failed", "gone"
                    self._disable(session, attempt.endpoint_id, reason="HTTP 410 Gone", now=now)
                else:
                    next_at = self._next_attempt(attempt.attempts + 1, outcome.retry_after, now=now)
                    status = "pending" if next_at is not None else "failed"
                    label = "retry" if next_at is not None else "given_up"
                last[attempt.endpoint_id] = outcome
                labels.append(label)
                records.append(
                    event_deliveries.AttemptRecord(
                        delivery_id=attempt.delivery_id,
                        endpoint_id=attempt.endpoint_id,
                        number=attempt.attempts + 1,
                        lease_until=attempt.lease_until,
                        status=status,
                        next_attempt_at=next_at,
                        status_code=outcome.status_code,
                        duration_ms=outcome.duration_ms,
                        error=outcome.error,
                    )
                )
            for endpoint_id in sorted(last):  # one order in every process: no deadlock
                outcome = last[endpoint_id]
                if outcome.succeeded and endpoint_id not in failing:
                    continue  # nothing to clear (as of the claim: a later failure the next)
                self._note_health(session, endpoint_id, outcome, now=now)
            event_deliveries.record_attempts(session, records, attempted_at=now)
            session.commit()
        for (attempt, outcome), label in zip(finished, labels, strict=True):
            metrics.EVENT_DELIVERIES.labels(endpoint=attempt.endpoint_id, outcome=label).inc()
            if outcome.succeeded:
                lag = (now - attempt.created_at).total_seconds()
                metrics.EVENT_DELIVERY_LAG.observe(max(lag, 0))

    def _note_health(
        self, session: Session, endpoint_id: str, outcome: Outcome, *, now: datetime
    ) -> None:
        if outcome.succeeded:
            endpoints.mark_succeeded(session, endpoint_id=endpoint_id)
            return
        since = endpoints.mark_failing(session, endpoint_id=endpoint_id, now=now)
        if now - since >= timedelta(hours=self.settings.events_disable_after_hours):
            reason = f"failing for {self.settings.events_disable_after_hours:g} hours"
            self._disable(session, endpoint_id, reason=reason, now=now)

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


def lower_thread_priority(nice: int) -> None:
    """Give the calling thread (only it) the CPU priority `nice` (0-19; on Linux a thread is
    a task with a nice value of its own). Elsewhere, or where it is refused, nothing changes."""
    if nice <= 0 or sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        logger.warning("delivery threads keep their CPU priority: %s", exc)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
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
    DISPATCH_SECONDS, and only once the due deliveries run low: deliveries are claimed in
    batches, not one statement per event.
    Outcomes are recorded by group commit: a finished attempt joins the outcomes waiting to
    be recorded, and whichever slot thread finds no recording under way records them all
    in one transaction (then those that finished meanwhile), so a busy worker commits once
    per batch, not once per attempt, and an idle one records each at once.

    Its threads run at CPU priority `nice` (EVENTS_DELIVERY_NICE): with the core saturated,
    the process's webhooks and reads go first and delivery takes what they leave."""

    def __init__(
        self,
        deliverer: Deliverer,
        *,
        slots: int = 16,
        idle_seconds: float = 0.25,
        nice: int = 0,
    ):
        self.deliverer = deliverer
        self.slots = slots
        self.nice = nice
        self._pool = ThreadPoolExecutor(
            max_workers=slots,
            thread_name_prefix="event-delivery",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
        self._in_flight = 0  # claimed and not yet recorded
        self._flight = threading.Condition()
        self._finished: list[tuple[Attempt, Outcome]] = []
        self._recording = False
        self._dispatched_at = float("-inf")
        self._running_low = True
        self._endpoints = False
        self._niced = False
        super().__init__(self._round, name="event-delivery", idle_seconds=idle_seconds)

    def _round(self) -> bool:
        if not self._niced:
            lower_thread_priority(self.nice)
            self._niced = True
        with self._flight:
            free = self.slots - self._in_flight
        if free < max(1, self.slots // 2):
            return False  # a finishing attempt wakes the thread again
        # New events are fanned out once the due deliveries run low (the last claim did not
        # fill its slots): while a backlog is worked through, they would only queue behind it,
        # and their fan-out (a row per event and endpoint) waits until the process has time.
        if self._running_low and time.monotonic() - self._dispatched_at >= DISPATCH_SECONDS:
            self._endpoints = self.deliverer.dispatch()
            self._dispatched_at = time.monotonic()
        if not self._endpoints:
            return False  # no endpoint: no delivery can be pending
        attempts = self.deliverer.claim(free)
        self._running_low = len(attempts) < free
        for attempt in attempts:
            with self._flight:
                self._in_flight += 1
            self._pool.submit(self._send, attempt)
        if not attempts:
            self._dispatched_at = float("-inf")  # nothing due: look for new events next time
        return False

    def _send(self, attempt: Attempt) -> None:
        try:
            outcome = self.deliverer.post(attempt)
        except Exception:
            # Not recorded: the lease expires and the attempt is made again.
            logger.exception("event delivery %s: attempt failed", attempt.delivery_id)
            self._done(1)
            return
        with self._flight:
            self._finished.append((attempt, outcome))
            if self._recording:
                return  # the recording under way takes this one too
            self._recording = True
        self._record_finished()

    def _record_finished(self) -> None:
        while True:
            with self._flight:
                batch, self._finished = self._finished, []
                if not batch:
                    self._recording = False
                    return
            try:
                self.deliverer.record(batch)
            except Exception:
                # Not recorded: the leases expire and the attempts are made again.
                ids = ", ".join(str(attempt.delivery_id) for attempt, _ in batch)
                logger.exception("event deliveries %s: attempts not recorded", ids)
            finally:
                self._done(len(batch))

    def _done(self, count: int) -> None:
        with self._flight:
            self._in_flight -= count
            self._flight.notify_all()
        # The conversation's next event (and free slots) may be due now: no idle wait.
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
