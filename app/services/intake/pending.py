"""Entries of accounts the service did not serve when they came: kept with their delivery
(`pending_entries`) and applied through the normal intake when the account is added, so
exactly-once and the merge rules hold as for any delivery.

Adding an account applies its pending entries at once; a sweep (`PendingWorker`) catches the
entries an intake stored while the account was being added (its transaction could not see
the new row yet).
"""

import json
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.repositories import accounts, deliveries
from app.services.background import BackgroundWorker
from app.services.intake.delivery import apply_delivery

logger = logging.getLogger(__name__)

BATCH = 100
SWEEP_SECONDS = 10.0


def apply_pending(session_factory: Callable[[], Session], *, account_id: str) -> int:
    """Apply every pending entry of a served account, oldest delivery first, each delivery
    in its own transaction; how many deliveries were applied."""
    applied = 0
    while True:
        with session_factory() as session:
            waiting = accounts.pending_deliveries(session, account_id=account_id, limit=BATCH)
            session.commit()
        for delivery_id in waiting:
            applied += _apply_one(session_factory, account_id=account_id, delivery_id=delivery_id)
        if len(waiting) < BATCH:
            break
    if applied:
        logger.info(
            "applied the pending entries of %d deliveries to account %s", applied, account_id
        )
    return applied


def _apply_one(session_factory: Callable[[], Session], *, account_id: str, delivery_id: int) -> int:
    with session_factory() as session:
        if not accounts.drop_pending(session, account_id=account_id, delivery_id=delivery_id):
            session.rollback()
            return 0  # another process took it
        delivery = deliveries.get(session, delivery_id)
        if delivery is None:
            session.commit()
            return 0
        outcome = apply_delivery(session, json.loads(delivery.body), only_account=account_id)
        if outcome.failures:
            deliveries.record_failures(delivery, error=outcome.error or "")
            logger.error(
                "pending entries of delivery %s failed for account %s, kept for `fab replay`: %s",
                delivery_id,
                account_id,
                outcome.failures[0],
            )
        session.commit()
    return 1


def apply_all_pending(session_factory: Callable[[], Session]) -> int:
    """Apply the pending entries of every served account that has some."""
    with session_factory() as session:
        waiting = accounts.accounts_with_pending(session)
        session.commit()
    return sum(apply_pending(session_factory, account_id=account_id) for account_id in waiting)


class PendingWorker(BackgroundWorker):
    """The thread sweeping pending entries of served accounts every `interval_seconds`."""

    def __init__(
        self, session_factory: Callable[[], Session], *, interval_seconds: float = SWEEP_SECONDS
    ) -> None:
        self.session_factory = session_factory

        def step() -> bool:
            apply_all_pending(session_factory)
            return False  # one round per interval

        super().__init__(step, name="pending-entries", idle_seconds=interval_seconds)
