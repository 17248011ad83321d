"""SQL for `accounts`: the business accounts, their sealed tokens, refresh leases, 190 marks
and statuses; and for `pending_entries`, deliveries waiting for an account to be added."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.models import Account, Conversation, PendingEntry
from app.repositories.base import upsert_insert

# last_webhook_at moves at most this often: the UPDATE that moves it locks the account's row
# until the delivery commits, so concurrent deliveries would otherwise queue on it.
WEBHOOK_CLOCK_STEP = timedelta(minutes=1)


def get(session: Session, account_id: str) -> Account | None:
    return session.get(Account, account_id, populate_existing=True)


def listed(session: Session, *, include_removed: bool = False) -> list[Account]:
    """Every account, oldest first (removed ones only when asked)."""
    query = select(Account).order_by(Account.created_at, Account.id)
    if not include_removed:
        query = query.where(Account.status != "removed")
    return list(session.scalars(query.execution_options(populate_existing=True)))


def served_among(session: Session, account_ids: Iterable[str]) -> set[str]:
    """Which of these accounts the service serves (any status but removed)."""
    wanted = set(account_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Account.id).where(Account.id.in_(wanted), Account.status != "removed")
        )
    )


def conversation_counts(session: Session, account_ids: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(Conversation.account_id, func.count())
        .where(Conversation.account_id.in_(account_ids))
        .group_by(Conversation.account_id)
    )
    return {account_id: count for account_id, count in rows}


def insert_new(session: Session, *, values: dict[str, Any]) -> bool:
    """Insert an account unless its IG_ID is there already; True when inserted."""
    table = Account.__table__
    inserted = session.scalar(
        upsert_insert(session, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[table.c.id])
        .returning(table.c.id)
    )
    return inserted is not None


def replace_token(session: Session, *, account_id: str, values: dict[str, Any]) -> None:
    """A new token for an account (and whatever else `values` names): active again, refresh
    state and 190 mark cleared."""
    session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(
            status="active",
            removed_at=None,
            refreshed_at=None,
            refresh_claimed_until=None,
            refresh_error=None,
            invalid_since=None,
            invalid_reason=None,
            **values,
        )
        .execution_options(synchronize_session=False)
    )


def update_fields(session: Session, *, account_id: str, values: dict[str, Any]) -> None:
    session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def claim_refreshes(
    session: Session,
    *,
    now: datetime,
    issued_before: datetime,
    expires_before: datetime,
    lease_until: datetime,
) -> list[str]:
    """Claim every account whose token is due for a refresh; their ids.

    Due: not removed, a token issued before `issued_before` (Meta refreshes only tokens a
    day old), expiring before `expires_before` or with an expiry that was only assumed, and
    no other process holding the claim. One UPDATE … WHERE, so of several processes exactly
    one gets each claim (PostgreSQL re-checks the condition after the row lock; SQLite
    serialises writers).
    """
    claimed = session.scalars(
        update(Account)
        .where(
            Account.status != "removed",
            Account.access_token.is_not(None),
            Account.issued_at <= issued_before,
            Account.expiry_assumed | (Account.expires_at <= expires_before),
            Account.refresh_claimed_until.is_(None) | (Account.refresh_claimed_until < now),
        )
        .values(refresh_claimed_until=lease_until)
        .returning(Account.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed)


def save_refreshed(
    session: Session,
    *,
    account_id: str,
    access_token: str,
    now: datetime,
    expires_at: datetime,
    expiry_assumed: bool,
) -> None:
    """The refresh worked: the new token and its expiry; claim and error cleared."""
    update_fields(
        session,
        account_id=account_id,
        values={
            "access_token": access_token,
            "issued_at": now,
            "expires_at": expires_at,
            "expiry_assumed": expiry_assumed,
            "refreshed_at": now,
            "refresh_claimed_until": None,
            "refresh_error": None,
            "updated_at": now,
        },
    )


def save_refresh_failure(
    session: Session, *, account_id: str, error: str, retry_at: datetime, now: datetime
) -> None:
    """The refresh failed: say why, and keep the claim until `retry_at` (the backoff)."""
    update_fields(
        session,
        account_id=account_id,
        values={"refresh_error": error, "refresh_claimed_until": retry_at, "updated_at": now},
    )


def mark_needs_reauth(session: Session, *, account_id: str, reason: str, now: datetime) -> bool:
    """Meta rejected the account's token (190): active → `needs_reauth`, since now. True when
    the status changed (a marked or removed account keeps its first mark)."""
    changed = session.scalar(
        update(Account)
        .where(Account.id == account_id, Account.status == "active")
        .values(status="needs_reauth", invalid_since=now, invalid_reason=reason, updated_at=now)
        .returning(Account.id)
        .execution_options(synchronize_session=False)
    )
    return changed is not None


def clear_needs_reauth(session: Session, *, account_id: str, now: datetime) -> bool:
    """Meta accepted the account's token again: active. True when there was a mark."""
    cleared = session.scalar(
        update(Account)
        .where(Account.id == account_id, Account.status == "needs_reauth")
        .values(status="active", invalid_since=None, invalid_reason=None, updated_at=now)
        .returning(Account.id)
        .execution_options(synchronize_session=False)
    )
    return cleared is not None


def mark_removed(session: Session, *, account_id: str, now: datetime) -> bool:
    """The account is no longer served; True when it was (its row and token are kept until
    replaced: conversations stay readable, and adding it again needs a new token)."""
    removed = session.scalar(
        update(Account)
        .where(Account.id == account_id, Account.status != "removed")
        .values(
            status="removed",
            removed_at=now,
            access_token=None,
            refresh_claimed_until=None,
            updated_at=now,
        )
        .returning(Account.id)
        .execution_options(synchronize_session=False)
    )
    return removed is not None


def touch_webhook_clock(session: Session, *, account_ids: Iterable[str], now: datetime) -> None:
    """Move last_webhook_at to `now` where it is older than WEBHOOK_CLOCK_STEP."""
    ids = list(account_ids)
    if not ids:
        return
    session.execute(
        update(Account)
        .where(
            Account.id.in_(ids),
            Account.last_webhook_at.is_(None)
            | (Account.last_webhook_at < now - WEBHOOK_CLOCK_STEP),
        )
        .values(last_webhook_at=now)
        .execution_options(synchronize_session=False)
    )


# --- pending entries ---------------------------------------------------------------------


def add_pending(session: Session, *, delivery_id: int, account_ids: Iterable[str]) -> None:
    table = PendingEntry.__table__
    rows = [{"account_id": account_id, "delivery_id": delivery_id} for account_id in account_ids]
    if rows:
        session.execute(
            upsert_insert(session, table)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[table.c.account_id, table.c.delivery_id])
        )


def pending_deliveries(session: Session, *, account_id: str, limit: int) -> list[int]:
    """Ids of deliveries holding entries of this account, oldest first."""
    return list(
        session.scalars(
            select(PendingEntry.delivery_id)
            .where(PendingEntry.account_id == account_id)
            .order_by(PendingEntry.delivery_id)
            .limit(limit)
        )
    )


def accounts_with_pending(session: Session) -> list[str]:
    """Served accounts that have pending entries (added while an intake was storing some)."""
    return list(
        session.scalars(
            select(Account.id)
            .where(
                Account.status != "removed",
                select(PendingEntry.delivery_id)
                .where(PendingEntry.account_id == Account.id)
                .exists(),
            )
            .order_by(Account.id)
        )
    )


def drop_pending(session: Session, *, account_id: str, delivery_id: int) -> bool:
    """Take a pending entry (True when this caller got it: several may drain at once)."""
    result = session.execute(
        delete(PendingEntry).where(
            PendingEntry.account_id == account_id, PendingEntry.delivery_id == delivery_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def count_pending(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(PendingEntry.account_id, func.count()).group_by(PendingEntry.account_id)
    )
    return {account_id: count for account_id, count in rows}
