"""Applying a delivery: every webhook event in it, together when they all apply, one by one
when one of them does not."""

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.db import DATABASE_UNAVAILABLE
from app.services.intake.batch import Batch
from app.services.intake.collectors import collect, event_kind
from app.services.intake.envelope import EventShapeError, WebhookEvent, extract_events

logger = logging.getLogger(__name__)

MAX_ERROR_TEXT = 500


@dataclass(frozen=True)
class EventResult:
    """How one webhook event went (for the metrics)."""

    kind: str  # message, reaction, ...; "unknown" (kept raw), "malformed" (no known shape)
    outcome: str  # applied | duplicate (already stored: nothing changed) | ignored | failed
    timestamp_ms: int | None  # Meta's event time


@dataclass(frozen=True)
class DeliveryOutcome:
    event_count: int
    failures: list[str]  # one line per event that could not be applied: where, and why
    results: list[EventResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "failed" if self.failures else "applied"

    @property
    def error(self) -> str | None:
        return "\n".join(self.failures) or None


def apply_delivery(
    session: Session, payload: Any, *, archive_media: bool = False
) -> DeliveryOutcome:
    """Apply every webhook event of a delivery; an event that fails is recorded, not fatal.

    The common case (everything applies) writes all the events together: one statement per
    table, whatever their number. Only when that fails is the transaction rolled back and each
    event applied again in a savepoint of its own, so one bad event cannot take the others
    down with it. A failure of the database itself is raised: the whole delivery must fail
    (503, and Meta retries) rather than be recorded as a bad event. With `archive_media`,
    new attachments are queued for the download worker.
    """
    events = list(extract_events(payload))
    failures = [str(event) for event in events if isinstance(event, EventShapeError)]
    results = [EventResult("malformed", "failed", None) for _ in failures]
    batch = Batch(archive_media=archive_media)
    collected: list[WebhookEvent] = []
    for event in (event for event in events if isinstance(event, WebhookEvent)):
        try:
            collect(batch, event)
            collected.append(event)
        except Exception as exc:  # a shape the models refuse: recorded, the rest goes on
            failures.append(f"{event.path}: {_describe(exc)}")
            results.append(_result(event, "failed"))
    try:
        outcomes = batch.write(session)
    except DATABASE_UNAVAILABLE:
        raise
    except Exception:
        logger.debug("delivery did not apply in one piece; isolating events", exc_info=True)
        session.rollback()
        outcomes = _apply_one_by_one(session, collected, failures, archive_media=archive_media)
    results.extend(
        _result(event, outcome) for event, outcome in zip(collected, outcomes, strict=True)
    )
    return DeliveryOutcome(event_count=len(events), failures=failures, results=results)


def _apply_one_by_one(
    session: Session, events: list[WebhookEvent], failures: list[str], *, archive_media: bool
) -> list[str]:
    """Each event in a savepoint of its own; a failure is added to `failures`."""
    outcomes = []
    for event in events:
        alone = Batch(archive_media=archive_media)
        collect(alone, event)
        try:
            with session.begin_nested():
                outcomes.extend(alone.write(session))
        except DATABASE_UNAVAILABLE:
            raise
        except Exception as exc:
            failures.append(f"{event.path}: {_describe(exc)}")
            outcomes.append("failed")
    return outcomes


def _result(event: WebhookEvent, outcome: str) -> EventResult:
    item = event.item
    if not isinstance(item, dict):
        return EventResult("malformed", outcome, None)
    timestamp = item.get("timestamp")
    known = isinstance(timestamp, int) and not isinstance(timestamp, bool)
    return EventResult(event_kind(item), outcome, timestamp if known else None)


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "")
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."
