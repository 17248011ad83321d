"""SQL for `webhook_deliveries`: raw deliveries kept for inspection and replay."""

from datetime import datetime

from sqlalchemy.orm import Session

from app.models import WebhookDelivery


def add(
    session: Session,
    *,
    body: bytes,
    received_at: datetime,
    event_count: int,
    status: str,
    error: str | None,
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        body=body,
        received_at=received_at,
        signature_valid=True,
        event_count=event_count,
        status=status,
        error=error,
        applied_at=received_at if status == "applied" else None,
    )
    session.add(delivery)
    return delivery
