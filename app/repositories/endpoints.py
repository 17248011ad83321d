"""SQL for `webhook_endpoints`: consumers' URLs, their filters, secrets and state."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Event, WebhookEndpoint


def add(session: Session, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    session.add(endpoint)
    session.flush()
    return endpoint


def get(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id)


def all_(session: Session) -> Sequence[WebhookEndpoint]:
    return session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at)).all()


def delete(session: Session, endpoint: WebhookEndpoint) -> None:
    session.delete(endpoint)
    session.flush()


def newest_seq_for_new_endpoint(session: Session) -> int:
    """Where a new endpoint starts: after the newest event (it gets what happens from now)."""
    return int(session.execute(select(func.coalesce(func.max(Event.seq), 0))).scalar_one())


def claim_for_dispatch(
    session: Session, *, ids: Sequence[str] | None = None
) -> Sequence[WebhookEndpoint]:
    """The enabled endpoints (of `ids`, if given), each locked for this transaction; on
    PostgreSQL one another process is dispatching is skipped (SKIP LOCKED), so two never fan
    out the same events. The lock is FOR NO KEY UPDATE: the foreign keys of the attempts
    recorded meanwhile (a KEY SHARE lock on their endpoint) do not wait for the fan-out."""
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
        .with_for_update(skip_locked=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    if ids is not None:
        query = query.where(WebhookEndpoint.id.in_(list(ids)))
    return session.scalars(query).all()


def set_dispatched(session: Session, *, endpoint_id: str, seq: int) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.dispatched_seq < seq)
        .values(dispatched_seq=seq)
    )


def mark_succeeded(session: Session, *, endpoint_id: str) -> None:
    """A 2xx: the endpoint is not failing (any more)."""
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
    )


def mark_failing(session: Session, *, endpoint_id: str, now: datetime) -> datetime:
    """A failed attempt; since when the endpoint has failed without a success in between."""
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=now)
    )
    since = session.execute(
        select(WebhookEndpoint.failing_since).where(WebhookEndpoint.id == endpoint_id)
    ).scalar()
    return since or now


def disable(session: Session, *, endpoint_id: str, reason: str, now: datetime) -> bool:
    """Disable the endpoint (once); True when this call did."""
    result: Any = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=now)
    )
    return bool(result.rowcount)


def disabled(session: Session) -> Sequence[Any]:
    """(id, url, disabled_reason, disabled_at) of every disabled endpoint."""
    query = select(
        WebhookEndpoint.id,
        WebhookEndpoint.url,
        WebhookEndpoint.disabled_reason,
        WebhookEndpoint.disabled_at,
    ).where(WebhookEndpoint.enabled.is_(False))
    return session.execute(query).all()
