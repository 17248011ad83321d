"""Raw deliveries: a delivery Meta sends again byte for byte is stored once, and deliveries
are deleted after RAW_DELIVERY_RETENTION_DAYS (failed ones only once replayed)."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Message, WebhookDelivery, utcnow
from app.services.housekeeping import Housekeeper
from tests.helpers import ServiceClient, encode, text_message


def test_a_delivery_sent_again_byte_for_byte_is_stored_once(
    api: ServiceClient, db: Session
) -> None:
    body = encode(text_message(mid="m.once", text="hello"))

    answers = [api.deliver(body) for _ in range(3)]
    other = api.deliver(encode(text_message(mid="m.other", text="hello")))

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert other.status_code == 200
    stored = db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert [delivery.body_sha256 for delivery in stored] == [
        hashlib.sha256(body).hexdigest(),
        hashlib.sha256(encode(text_message(mid="m.other", text="hello"))).hexdigest(),
    ]
    assert sorted(db.scalars(select(Message.mid))) == ["m.once", "m.other"]


def test_identical_deliveries_at_the_same_moment_are_stored_once(
    api: ServiceClient, db: Session
) -> None:
    body = encode(text_message(mid="m.race", text="hello"))

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: api.deliver(body).status_code, range(6)))

    assert statuses == [200] * 6
    assert len(db.scalars(select(WebhookDelivery)).all()) == 1
    assert db.scalars(select(Message.mid)).all() == ["m.race"]


def test_old_deliveries_are_deleted_but_failed_ones_are_kept(database_url: str) -> None:
    engine = create_engine(database_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    now = utcnow()
    rows = [
        ("old-applied", now - timedelta(days=31), "applied"),
        ("old-failed", now - timedelta(days=90), "failed"),
        ("recent", now - timedelta(days=29), "applied"),
    ]
    with factory() as session:
        for name, received_at, status in rows:
            session.add(
                WebhookDelivery(
                    body=name.encode(),
                    body_sha256=hashlib.sha256(name.encode()).hexdigest(),
                    received_at=received_at,
                    signature_valid=True,
                    status=status,
                )
            )
        session.commit()
    settings = Settings(_env_file=None, raw_delivery_retention_days=30)

    deleted = Housekeeper(session_factory=factory, settings=settings, clock=lambda: now).run_once()

    with factory() as session:
        kept = sorted(
            bytes(body).decode() for body in session.scalars(select(WebhookDelivery.body))
        )
    engine.dispose()
    assert deleted == 1
    assert kept == ["old-failed", "recent"]
