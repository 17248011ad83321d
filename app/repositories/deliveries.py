"""SQL for `webhook_deliveries`: raw deliveries kept for inspection and replay."""

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import PendingEntry, WebhookDelivery
from app.repositories.base import rows_upsert


def add(
    session: Session,
    *,
    body: bytes,
    body_sha256: str,
    received_at: datetime,
    event_count: int,
    status: str,
    error: str | None,
) -> int | None:
    """Store a raw delivery (an INSERT compiled once: this runs for every webhook); its id,
    or None when the same body is stored already (Meta sent it again): nothing was stored."""
    table = WebhookDelivery.__table__
    stored = rows_upsert(
        session,
        key="deliveries.add",
        table=table,
        rows=[
            {
                "body": body,
                "body_sha256": body_sha256,
                "received_at": received_at,
                "signature_valid": True,
                "event_count": event_count,
                "status": status,
                "error": error,
                "applied_at": received_at if status == "applied" else None,
                "replay_count": 0,
            }
        ],
        finish=lambda insert: insert.on_conflict_do_nothing(
            index_elements=[table.c.body_sha256]
        ).returning(table.c.id),
    )
    return int(stored[0][0]) if stored else None


def delete_older(session: Session, *, received_before: datetime, limit: int) -> int:
    """Delete up to `limit` deliveries received before then, except failed ones (kept until
    `fab replay` applies them); how many went."""
    doomed = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.received_at < received_before,
            WebhookDelivery.status != "failed",
            # Entries waiting for their account to be added are kept until it is.
            ~select(PendingEntry.delivery_id)
            .where(PendingEntry.delivery_id == WebhookDelivery.id)
            .exists(),
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    result = session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.id.in_(doomed.scalar_subquery()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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


def record_failures(delivery: WebhookDelivery, *, error: str) -> None:
    """Webhook events of `delivery` applied later (pending entries) failed: kept for
    `fab replay` with the others' reasons."""
    delivery.status = "failed"
    delivery.error = f"{delivery.error}\n{error}" if delivery.error else error


def record_replay(
    delivery: WebhookDelivery, *, status: str, error: str | None, now: datetime
) -> None:
    """A replay of `delivery` ended with `status` (`applied`: every webhook event applies)."""
    delivery.replay_count += 1
    delivery.status = status
    delivery.error = error
    if status == "applied":
        delivery.applied_at = now
