"""The one place an account's state changes are announced, inside the transaction that makes
them: added, status (active → needs_reauth → active, removed), token replaced or refreshed.

Features that follow accounts hook in here rather than into each use case: `account_updated`
writes the outbox's `account.updated` event; a feature that keeps data per account (media)
has its hook in `ON_ACCOUNT_REMOVED`.
"""

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.services.events import outbox
from app.services.media.downloads import delete_media_of_account

logger = logging.getLogger(__name__)

# Called with (session, account_id) inside the transaction that removes the account.
AccountRemovedHook = Callable[[Session, str], object]
ON_ACCOUNT_REMOVED: list[AccountRemovedHook] = [
    delete_media_of_account,  # its media never served again, their bytes purged
]


def account_updated(session: Session, *, account_id: str, change: str) -> None:
    """An account changed (`change`: added, token_replaced, token_refreshed, needs_reauth,
    reauthenticated, removed); called before the caller commits."""
    logger.info("account %s: %s", account_id, change.replace("_", " "))
    outbox.record_account(session, account_id=account_id, change=change)


def on_account_removed(session: Session, *, account_id: str) -> None:
    """Run every removal hook; called before the removal commits."""
    account_updated(session, account_id=account_id, change="removed")
    for hook in ON_ACCOUNT_REMOVED:
        hook(session, account_id)
