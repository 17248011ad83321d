"""SQL for `users`: the profile cache."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from app.models import Conversation, User, utcnow
from app.repositories.base import rows_upsert

PROFILE_COLUMNS = (
    "username",
    "name",
    "profile_pic",
    "follower_count",
    "is_user_follow_business",
    "is_business_follow_user",
    "is_verified_user",
)


def get(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def get_many(session: Session, user_ids: Iterable[str]) -> dict[str, User]:
    ids = set(user_ids)
    if not ids:
        return {}
    return {user.id: user for user in session.scalars(select(User).where(User.id.in_(ids)))}


def usernames(session: Session, user_ids: Iterable[str]) -> dict[str, str | None]:
    """The cached usernames of these users (those with a row)."""
    rows = session.connection().execute(_USERNAMES, {"user_ids": list(set(user_ids))})
    return dict(rows.tuples().all())


_USERNAMES = select(User.id, User.username).where(
    User.id.in_(bindparam("user_ids", expanding=True))
)


def ensure(session: Session, *, user_ids: Iterable[str]) -> None:
    """Make sure rows exist for these users; new ones join the profile fetch queue.

    ON CONFLICT DO NOTHING takes no lock on an existing row, so concurrent writers do not
    queue behind the business account's row.
    """
    now = utcnow()
    users = User.__table__
    rows_upsert(
        session,
        key="users.ensure",
        table=users,
        rows=[
            {
                "id": user_id,
                "profile_status": "pending",
                "profile_due_at": now,
                "profile_attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for user_id in sorted(set(user_ids))
        ],
        finish=lambda insert: insert.on_conflict_do_nothing(index_elements=[users.c.id]),
    )


def ask_again_after_consent(session: Session, *, now: datetime) -> int:
    """Profiles refused for lack of consent whose customer has written since: due again.

    Instagram shares a profile once the person writes to the business; checking here, once per
    fetch round, keeps this out of the webhook path. How many became due.
    """
    users = cast(Table, User.__table__)
    wrote_since = (
        select(Conversation.id)
        .where(
            Conversation.customer_id == users.c.id,
            Conversation.last_inbound_at > users.c.fetched_at,
        )
        .exists()
    )
    result = session.execute(
        update(users)
        .where(users.c.profile_status == "consent_required", wrote_since)
        .values(profile_status="pending", profile_due_at=now, profile_attempts=0, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def save_profile(
    session: Session,
    *,
    user_id: str,
    status: str,
    fetched_at: datetime,
    due_at: datetime | None,
    attempts: int = 0,
    profile: dict[str, Any] | None = None,
) -> User:
    """Store the outcome of a profile fetch (the profile, or why there is none), when to
    fetch it next, and release the fetcher's claim."""
    values: dict[str, Any] = {
        "profile_status": status,
        "fetched_at": fetched_at,
        "profile_due_at": due_at,
        "profile_attempts": attempts,
        "profile_claimed_until": None,
        "updated_at": fetched_at,
    }
    if profile is not None:
        values.update({column: profile.get(column) for column in PROFILE_COLUMNS})
    table = User.__table__

    def finish(insert: Any) -> Any:
        return insert.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={column: insert.excluded[column] for column in values},
        )

    rows_upsert(
        session,
        key="users.save_profile",
        table=table,
        rows=[{"id": user_id, "created_at": fetched_at, **values}],
        finish=finish,
    )
    user = session.get(User, user_id, populate_existing=True)
    assert user is not None
    return user


def claim_due(session: Session, *, now: datetime, lease_until: datetime, limit: int) -> list[str]:
    """Claim up to `limit` profiles due for a fetch; return their ids.

    The claim is a lease written to the row, so another process skips it until it expires
    (a fetcher that dies mid-fetch loses its claim). On PostgreSQL, FOR UPDATE SKIP LOCKED
    keeps two claimers from even waiting on each other; SQLite serialises writers anyway.
    """
    claimable = (User.profile_due_at <= now) & (
        User.profile_claimed_until.is_(None) | (User.profile_claimed_until < now)
    )
    due = select(User.id).where(claimable).order_by(User.profile_due_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = session.scalars(
        update(User)
        .where(User.id.in_(due.scalar_subquery()), claimable)
        .values(profile_claimed_until=lease_until)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    )
    return list(claimed)


def backlog(session: Session, *, now: datetime) -> int:
    """How many profiles are due for a fetch."""
    query = select(func.count()).select_from(User).where(User.profile_due_at <= now)
    return session.scalar(query) or 0


def stop_fetching(session: Session, *, user_id: str) -> None:
    """No account may read this profile now: not due again (until the customer writes), the
    claim released."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(profile_due_at=None, profile_claimed_until=None)
        .execution_options(synchronize_session=False)
    )
