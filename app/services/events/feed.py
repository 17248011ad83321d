"""The feed: `GET /api/v1/events` pages through the outbox, up to the safe horizon."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.errors import GoneError, InvalidInputError
from app.repositories import events
from app.schemas.v1.events import JsonObject, event_json
from app.services.events.horizon import Horizon
from app.services.events.outbox import EVENT_TYPES


def check_types(types: Sequence[str] | None) -> list[str] | None:
    """The event types a consumer asked for (None: all); 422 for an unknown one."""
    if not types:
        return None
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInputError(
            f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}.",
            code="invalid_event_type",
        )
    return list(dict.fromkeys(types))


def check_not_expired(session: Session, after: int) -> None:
    """410 events_expired when events just after `after` were deleted by retention: the
    consumer missed them and must start again (from `after=0`, or from now)."""
    if after <= 0:
        return
    oldest = events.oldest_seq(session)
    if oldest is not None and after < oldest - 1:
        raise GoneError(
            f"Events after seq {after} are past EVENTS_RETENTION_DAYS and deleted; the oldest "
            f"kept is {oldest}. Start again from after=0.",
            code="events_expired",
        )


def read_after(
    session: Session,
    horizon: Horizon,
    *,
    after: int,
    limit: int,
    types: Sequence[str] | None = None,
    account_id: str | None = None,
) -> tuple[Sequence[Row[Any]], int]:
    """Up to `limit` events after `after` (and up to the safe horizon), and the horizon."""
    up_to = horizon.catch_up(session)
    rows = events.page(
        session, after=after, up_to=up_to, limit=limit, types=types, account_id=account_id
    )
    return rows, up_to


class EventFeed:
    """Pages of the outbox for consumers that poll or catch up."""

    def __init__(self, *, session: Session, horizon: Horizon) -> None:
        self.session = session
        self.horizon = horizon

    def page(
        self, *, after: int, limit: int, types: Sequence[str] | None, account_id: str | None
    ) -> JsonObject:
        """An EventPage."""
        wanted = check_types(types)
        check_not_expired(self.session, after)
        rows, up_to = read_after(
            self.session,
            self.horizon,
            after=after,
            limit=limit + 1,
            types=wanted,
            account_id=account_id,
        )
        shown = rows[:limit]
        has_more = len(rows) > limit
        # Without more, everything up to the horizon was read (what the filters left out too).
        next_after = shown[-1].seq if has_more else max(after, up_to)
        return {
            "data": [event_json(row._mapping) for row in shown],
            "next_after": next_after,
            "has_more": has_more,
        }
