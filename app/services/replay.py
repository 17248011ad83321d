"""Re-apply webhook deliveries whose webhook events failed, once the cause is fixed
(`fab replay`)."""

import json
import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from app.models import utcnow
from app.repositories import deliveries
from app.services.intake import apply_delivery

logger = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    replayed: int = 0
    fixed: int = 0
    still_failing: list[int] = field(default_factory=list)  # delivery ids


def replay_failed(
    session_factory: sessionmaker[Session],
    *,
    limit: int | None = None,
    archive_media: bool = False,
) -> ReplayReport:
    """Apply every failed delivery again, oldest first, each in its own transaction.

    Applying is idempotent, so webhook events that had already been applied change nothing;
    the delivery is marked applied when all of its webhook events now apply.
    """
    report = ReplayReport()
    with session_factory() as session:
        ids = deliveries.failed_ids(session, limit=limit)
        session.commit()
    for delivery_id in ids:
        with session_factory() as session:
            delivery = deliveries.get(session, delivery_id)
            if delivery is None or delivery.status != "failed":
                continue  # another replay got there first
            outcome = apply_delivery(
                session, json.loads(delivery.body), archive_media=archive_media
            )
            deliveries.record_replay(
                delivery, status=outcome.status, error=outcome.error, now=utcnow()
            )
            session.commit()
        report.replayed += 1
        if outcome.failures:
            report.still_failing.append(delivery_id)
            logger.warning("delivery %s still fails: %s", delivery_id, outcome.failures[0])
        else:
            report.fixed += 1
    return report
