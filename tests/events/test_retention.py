"""Events older than EVENTS_RETENTION_DAYS, and their deliveries and attempts, are deleted by the
housekeeping job; readers asking for them are told (410 events_expired)."""

from datetime import timedelta

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.models import Event, EventDelivery, EventDeliveryAttempt, WebhookEndpoint, utcnow
from app.services.housekeeping import Housekeeper


def test_old_events_and_their_deliveries_and_attempts_are_deleted(database_url: str) -> None:
    engine = create_engine(database_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    now = utcnow()
    with factory() as session:
        session.add(WebhookEndpoint(id="we_1", url="https://example.com", secret="whsec_x"))
        for name, age in (("old", 8), ("recent", 6)):
            session.add(
                Event(
                    id=f"evt_{name}",
                    type="message.received",
                    payload={},
                    created_at=now - timedelta(days=age),
                )
            )
        session.flush()
        for seq in session.scalars(select(Event.seq)):
            session.add(
                EventDelivery(
                    endpoint_id="we_1", event_seq=seq, conversation="", next_attempt_at=now
                )
            )
        session.flush()
        for delivery_id in session.scalars(select(EventDelivery.id)):
            session.add(
                EventDeliveryAttempt(
                    delivery_id=delivery_id,
                    endpoint_id="we_1",
                    number=1,
                    attempted_at=now,
                    status_code=500,
                    duration_ms=3,
                    error="HTTP 500",
                )
            )
        session.commit()
    settings = Settings(_env_file=None, events_retention_days=7)

    deleted = Housekeeper(session_factory=factory, settings=settings, clock=lambda: now).run_once()

    with factory() as session:
        kept = list(session.scalars(select(Event.id)))
        deliveries = list(session.scalars(select(EventDelivery.event_seq)))
        recent = session.scalars(select(Event.seq)).one()
        attempted = list(
            session.scalars(
                select(EventDelivery.event_seq).join(
                    EventDeliveryAttempt, EventDeliveryAttempt.delivery_id == EventDelivery.id
                )
            )
        )
        attempts = session.scalar(select(func.count()).select_from(EventDeliveryAttempt))
    engine.dispose()
    assert deleted == 1
    assert kept == ["evt_recent"]
    assert deliveries == [recent]
    assert (attempted, attempts) == ([recent], 1)
