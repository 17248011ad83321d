"""Applying a delivery: every webhook event in it, together when they all apply, one by one
when one of them does not."""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.db import DATABASE_UNAVAILABLE
from app.repositories import accounts
from app.services.intake.batch import Batch
from app.services.intake.collectors import collect, event_kind
from app.services.intake.envelope import EventShapeError, WebhookEvent, extract_events

logger = logging.getLogger(__name__)

MAX_ERROR_TEXT = 500
# Which of these accounts the service serves (any status but removed).
ServedLookup = Callable[[Session, Iterable[str]], set[str]]

# The metrics label of events whose account is not served (any entry.id would otherwise make
# a label of its own).
UNSERVED = "unserved"


@dataclass(frozen=True)
class EventResult:
    """How one webhook event went (for the metrics)."""

    kind: str  # message, reaction, ...; "unknown" (kept raw), "malformed" (no known shape)
    # applied | duplicate (already stored: nothing changed) | ignored | failed | pending (its
    # account is not served: applied when it is added)
    outcome: str
    timestamp_ms: int | None  # Meta's event time
    # The served account (entry.id); UNSERVED for an account the service does not serve.
    account: str = ""


@dataclass(frozen=True)
class DeliveryOutcome:
    event_count: int
    failures: list[str]  # one line per event that could not be applied: where, and why
    results: list[EventResult] = field(default_factory=list)
    served: set[str] = field(default_factory=set)  # accounts whose events were applied
    pending: set[str] = field(default_factory=set)  # accounts not served: kept for later

    @property
    def status(self) -> str:
        return "failed" if self.failures else "applied"

    @property
    def error(self) -> str | None:
        return "\n".join(self.failures) or None


def apply_delivery(
    session: Session,
    payload: Any,
    *,
    only_account: str | None = None,
    archive_media: bool = False,
    served_among: ServedLookup = accounts.served_among,
) -> DeliveryOutcome:
    """Apply every webhook event of a delivery to the account its entry names; an event that
    fails is recorded, not fatal.

    Events of an account the service does not serve (unknown, or removed) are not applied:
    the outcome names their accounts (`pending`), and they are applied when that account is
    added (`only_account`: only that account's events, the rest of the delivery having been
    applied already).

    The common case (everything applies) writes all the events together: one statement per
    table, whatever their number. Only when that fails is the transaction rolled back and each
    event applied again in a savepoint of its own, so one bad event cannot take the others
    down with it. A failure of the database itself is raised: the whole delivery must fail
    (503, and Meta retries) rather than be recorded as a bad event. With `archive_media`,
    new attachments are queued for the download worker. `served_among` answers which
    accounts are served (intake's answers remembered per process: IntakeAccounts).
    """
    events = list(extract_events(payload))
    if only_account is None:
        failures = [str(event) for event in events if isinstance(event, EventShapeError)]
    else:
        failures = []  # recorded when the delivery was received
    results = [EventResult("malformed", "failed", None, UNSERVED) for _ in failures]
    found, served, pending = _route(
        session, events, only_account=only_account, served_among=served_among
    )
    results.extend(
        _result(event, "pending", account=UNSERVED)
        for event in found
        if event.account_id in pending
    )
    batch = Batch(archive_media=archive_media)
    collected: list[WebhookEvent] = []
    for event in (event for event in found if event.account_id in served):
        try:
            collect(batch, event)
            collected.append(event)
        except Exception as exc:  # a shape the models refuse: recorded, the rest goes on
            failures.append(f"{event.path}: {_describe(exc)}")
            results.append(_result(event, "failed"))
    outcomes = _write(session, batch, collected, failures, archive_media=archive_media)
    results.extend(
        _result(event, outcome) for event, outcome in zip(collected, outcomes, strict=True)
    )
    return DeliveryOutcome(
        event_count=len(events),
        failures=failures,
        results=results,
        served={event.account_id for event in found} & served,
        pending=pending,
    )


def _route(
    session: Session, events: list[Any], *, only_account: str | None, served_among: ServedLookup
) -> tuple[list[WebhookEvent], set[str], set[str]]:
    """The delivery's webhook events (of `only_account`, when given), the accounts among
    theirs the service serves, and those it does not (their events wait: `pending`)."""
    found = [event for event in events if isinstance(event, WebhookEvent)]
    if only_account is not None:
        found = [event for event in found if event.account_id == only_account]
    served = (
        {only_account}
        if only_account is not None
        else served_among(session, {event.account_id for event in found})
    )
    pending = {event.account_id for event in found if event.account_id not in served}
    return found, served, pending


def _write(
    session: Session,
    batch: Batch,
    collected: list[WebhookEvent],
    failures: list[str],
    *,
    archive_media: bool,
) -> list[str]:
    """The batch written in one piece; if that fails (not the database itself), each event
    in a savepoint of its own. Each collected event's outcome."""
    try:
        return batch.write(session)
    except DATABASE_UNAVAILABLE:
        raise
    except Exception:
        logger.debug("delivery did not apply in one piece; isolating events", exc_info=True)
        session.rollback()
        return _apply_one_by_one(session, collected, failures, archive_media=archive_media)


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


def _result(event: WebhookEvent, outcome: str, *, account: str | None = None) -> EventResult:
    account = event.account_id if account is None else account
    item = event.item
    if not isinstance(item, dict):
        return EventResult("malformed", outcome, None, account)
    timestamp = item.get("timestamp")
    known = isinstance(timestamp, int) and not isinstance(timestamp, bool)
    return EventResult(event_kind(item), outcome, timestamp if known else None, account)


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "")
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."
