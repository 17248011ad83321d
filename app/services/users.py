"""Profiles: a cache of the Graph API's user profiles, refreshed after a TTL."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.clients.instagram import INVALID_PARAMETER, InstagramClient, InstagramError
from app.config import Settings
from app.errors import NotFoundError
from app.models import User, utcnow
from app.repositories import users

logger = logging.getLogger(__name__)

# Meta refuses profile reads of people who never messaged the business: 230, or 100 on reads.
CONSENT_CODES = frozenset({230, INVALID_PARAMETER})


class UserService:
    """Read profiles from the cache, fetching from Instagram when missing or stale."""

    def __init__(
        self,
        *,
        session: Session,
        instagram: InstagramClient,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.instagram = instagram
        self.settings = settings
        self.clock = clock

    def get_profile(self, user_id: str) -> User:
        """The user's profile; 404 when Instagram has none for us (unknown id, no consent)."""
        cached = users.get(self.session, user_id)
        if cached is not None and cached.profile_status == "ok" and self._is_fresh(cached):
            return cached
        self._release_connection()
        try:
            profile = self._fetch(user_id)
        except InstagramError as exc:
            if exc.graph_code in CONSENT_CODES:
                if cached is not None:
                    self._store(user_id, status="consent_required")
                raise NotFoundError(
                    f"Instagram has no profile of user {user_id} for this account: the id is "
                    "unknown, or the user has not messaged the business yet (Instagram shares "
                    "a profile only after the user has written to the business).",
                    code="user_not_found",
                ) from None
            if cached is not None and cached.profile_status == "ok":
                logger.warning("serving a stale profile of %s: %s", user_id, exc.code)
                return cached
            raise
        if profile is None:
            raise NotFoundError(f"User {user_id} is not known to Instagram.", code="user_not_found")
        return self._store(user_id, status="ok", profile=profile)

    def usernames(self, *, customer_id: str, business_id: str) -> dict[str, str]:
        """Usernames of a conversation's two sides: cached, else fetched, else the id itself.

        Never fails: a profile Instagram will not give is remembered (and retried later),
        and the reader sees the id instead of a name.
        """
        user_ids = {customer_id, business_id}
        cached = users.get_many(self.session, user_ids)
        stale = [uid for uid in user_ids if uid not in cached or not self._is_fresh(cached[uid])]
        if stale:
            self._release_connection()
            for user_id in stale:
                cached[user_id] = self._refresh_quietly(user_id, is_business=user_id == business_id)
        return {uid: cached[uid].username or uid for uid in user_ids}

    def _refresh_quietly(self, user_id: str, *, is_business: bool) -> User:
        try:
            profile = self._fetch(user_id, is_business=is_business)
        except InstagramError as exc:
            status = "consent_required" if exc.graph_code in CONSENT_CODES else "unavailable"
            logger.info("profile of %s not fetched (%s): %s", user_id, status, exc.code)
            return self._store(user_id, status=status)
        if profile is None:
            return self._store(user_id, status="unavailable")
        return self._store(user_id, status="ok", profile=profile)

    def _release_connection(self) -> None:
        # End the read-only transaction so no connection (nor SQLite's lock) is held while
        # Instagram answers. Commit, not rollback: a rollback would expire every loaded object
        # and make the caller reload them one query at a time.
        self.session.commit()

    def _is_fresh(self, user: User) -> bool:
        if user.fetched_at is None or user.profile_status == "pending":
            return False
        ttl = (
            self.settings.profile_retry_seconds
            if user.profile_status == "unavailable"
            else self.settings.profile_cache_ttl_seconds
        )
        return self.clock() - user.fetched_at < timedelta(seconds=ttl)

    def _fetch(self, user_id: str, *, is_business: bool = False) -> dict[str, Any] | None:
        """The profile from Instagram; the business account itself is read through `/me`."""
        if is_business or user_id == self.settings.account_id:
            me = self.instagram.get_me()
            if str(me.get("user_id")) != user_id:
                return None
            return {
                "username": me.get("username"),
                "name": me.get("name"),
                "profile_pic": me.get("profile_picture_url"),
            }
        return self.instagram.get_user_profile(user_id)

    def _store(self, user_id: str, *, status: str, profile: dict[str, Any] | None = None) -> User:
        user = users.save_profile(
            self.session, user_id=user_id, status=status, fetched_at=self.clock(), profile=profile
        )
        self.session.commit()
        return user
