"""SQL for `instagram_tokens`: the access token in use, its refresh lease and its 190 mark."""

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.models import InstagramToken
from app.repositories.base import upsert_insert


def get(session: Session, fingerprint: str) -> InstagramToken | None:
    return session.get(InstagramToken, fingerprint, populate_existing=True)


def adopt(
    session: Session, *, fingerprint: str, access_token: str, now: datetime, expires_at: datetime
) -> None:
    """Store a configured token the first time it is seen (with an assumed expiry); a row
    already there (refreshed since) is kept. Rows of other tokens that have expired go."""
    table = InstagramToken.__table__
    session.execute(
        upsert_insert(session, table)
        .values(
            source_fingerprint=fingerprint,
            access_token=access_token,
            issued_at=now,
            expires_at=expires_at,
            expiry_assumed=True,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.source_fingerprint])
    )
    session.execute(
        delete(InstagramToken).where(
            InstagramToken.source_fingerprint != fingerprint, InstagramToken.expires_at < now
        )
    )


def claim_refresh(
    session: Session,
    *,
    fingerprint: str,
    now: datetime,
    issued_before: datetime,
    expires_before: datetime,
    lease_until: datetime,
) -> bool:
    """Claim the token for a refresh when one is due; False when it is not, or another
    process holds the claim.

    Due: issued before `issued_before` (Meta refreshes only tokens a day old), and expiring
    before `expires_before` or with an expiry that was only assumed. One UPDATE … WHERE, so
    of several processes exactly one gets the claim (PostgreSQL re-checks the condition
    after the row lock; SQLite serialises writers).
    """
    claimed = session.scalar(
        update(InstagramToken)
        .where(
            InstagramToken.source_fingerprint == fingerprint,
            InstagramToken.issued_at <= issued_before,
            InstagramToken.expiry_assumed | (InstagramToken.expires_at <= expires_before),
            InstagramToken.refresh_claimed_until.is_(None)
            | (InstagramToken.refresh_claimed_until < now),
        )
        .values(refresh_claimed_until=lease_until)
        .returning(InstagramToken.source_fingerprint)
        .execution_options(synchronize_session=False)
    )
    return claimed is not None


def save_refreshed(
    session: Session,
    *,
    fingerprint: str,
    access_token: str,
    now: datetime,
    expires_at: datetime,
    expiry_assumed: bool,
) -> None:
    """The refresh worked: the new token, its expiry; claim, error and 190 mark cleared."""
    session.execute(
        update(InstagramToken)
        .where(InstagramToken.source_fingerprint == fingerprint)
        .values(
            access_token=access_token,
            issued_at=now,
            expires_at=expires_at,
            expiry_assumed=expiry_assumed,
            refreshed_at=now,
            refresh_claimed_until=None,
            refresh_error=None,
            invalid_since=None,
            invalid_reason=None,
            updated_at=now,
        )
    )


def save_refresh_failure(
    session: Session, *, fingerprint: str, error: str, retry_at: datetime, now: datetime
) -> None:
    """The refresh failed: say why, and keep the claim until `retry_at` (the backoff)."""
    session.execute(
        update(InstagramToken)
        .where(InstagramToken.source_fingerprint == fingerprint)
        .values(refresh_error=error, refresh_claimed_until=retry_at, updated_at=now)
    )


def mark_invalid(session: Session, *, fingerprint: str, reason: str, now: datetime) -> bool:
    """Meta rejected the token (190); `invalid_since` keeps the first time. True when the
    token was not marked yet (its state changed)."""
    newly = session.scalar(
        update(InstagramToken)
        .where(
            InstagramToken.source_fingerprint == fingerprint,
            InstagramToken.invalid_since.is_(None),
        )
        .values(invalid_since=now, invalid_reason=reason, updated_at=now)
        .returning(InstagramToken.source_fingerprint)
    )
    if newly is None:
        session.execute(
            update(InstagramToken)
            .where(InstagramToken.source_fingerprint == fingerprint)
            .values(invalid_reason=reason, updated_at=now)
        )
    return newly is not None


def clear_invalid(session: Session, *, fingerprint: str, now: datetime) -> bool:
    """Meta accepted the token again; True when there was a mark to clear."""
    cleared = session.scalar(
        update(InstagramToken)
        .where(
            InstagramToken.source_fingerprint == fingerprint,
            InstagramToken.invalid_since.is_not(None),
        )
        .values(invalid_since=None, invalid_reason=None, updated_at=now)
        .returning(InstagramToken.source_fingerprint)
    )
    return cleared is not None
