"""SQL for `webhook_deliveries`: raw deliveries kept for inspection and replay."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import WebhookDelivery
from app.repositories.base import rows_upsert


def add(
    session: Session,
    *,
    body: bytes,
    received_at: datetime,
    event_count: int,
    status: str,
    error: str | None,
) -> None:
    """Store a raw delivery (an INSERT compiled once: this runs for every webhook)."""
    rows_upsert(
        session,
        key="deliveries.add",
        table=WebhookDelivery.__table__,
        rows=[
            {
                "body": body,
                "received_at": received_at,
                "signature_valid": True,
                "event_count": event_count,
                "status": status,
                "error": error,
                "applied_at": received_at if status == "applied" else None,
                "replay_count": 0,
            }
        ],
        finish=lambda insert: insert,
    )


def last_received_at(session: Session) -> datetime | None:
    """When the newest delivery was received (the primary key's end: no scan)."""
    query = select(WebhookDelivery.received_at).order_by(WebhookDelivery.id.desc()).limit(1)
    return session.scalar(query)


def count_failed(session: Session) -> int:
    """Deliveries with a webhook event that failed, waiting for `fab replay`."""
    query = select(func.count()).select_from(WebhookDelivery)
    return session.scalar(query.where(WebhookDelivery.status == "failed")) or 0


def failed_ids(session: Session, *, limit: int | None = None) -> list[int]:
    """Deliveries with a webhook event that failed, oldest first: their ids (`fab replay`)."""
    query = select(WebhookDelivery.id).where(WebhookDelivery.status == "failed")
    return list(session.scalars(query.order_by(WebhookDelivery.id).limit(limit)))


def get(session: Session, delivery_id: int) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id)


def record_replay(
    delivery: WebhookDelivery, *, status: str, error: str | None, now: datetime
) -> None:
    """A replay of `delivery` ended with `status` (`applied`: every webhook event applies)."""
    delivery.replay_count += 1
    delivery.status = status
    delivery.error = error
    if status == "applied":
        delivery.applied_at = now
