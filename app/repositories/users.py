"""SQL for `users`: the profile cache."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User, utcnow
from app.repositories.base import upsert_insert

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


def ensure(session: Session, *, user_id: str, wrote_to_us: bool = False) -> None:
    """Make sure a row exists for this user (the profile comes later).

    When the customer writes to us, a profile refused for lack of consent becomes fetchable
    again, so it goes back to `pending`.
    """
    table = User.__table__
    now = utcnow()
    stmt = upsert_insert(session, table).values(
        id=user_id, profile_status="pending", created_at=now, updated_at=now
    )
    if wrote_to_us:
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={"profile_status": "pending", "updated_at": now},
            where=table.c.profile_status == "consent_required",
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[table.c.id])
    session.execute(stmt)


def save_profile(
    session: Session,
    *,
    user_id: str,
    status: str,
    fetched_at: datetime,
    profile: dict[str, Any] | None = None,
) -> User:
    """Store the outcome of a profile fetch: the profile itself, or why there is none."""
    table = User.__table__
    values: dict[str, Any] = {"profile_status": status, "fetched_at": fetched_at}
    if profile is not None:
        values.update({column: profile.get(column) for column in PROFILE_COLUMNS})
    stmt = upsert_insert(session, table).values(
        id=user_id, created_at=fetched_at, updated_at=fetched_at, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.id], set_={**values, "updated_at": fetched_at}
    )
    session.execute(stmt)
    user = session.get(User, user_id, populate_existing=True)
    assert user is not None
    return user
