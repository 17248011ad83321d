"""Profiles: a cache of the Graph API's user profiles, refreshed after a TTL.

New customers' profiles are fetched in the background (app/services/profiles.py), never on
the webhook path; `/user` fetches on demand when its cache entry is missing or stale.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import ConsentRequiredError, InstagramError
from app.config import Settings
from app.errors import NotFoundError
from app.models import User, utcnow
from app.repositories import accounts, conversations, users
from app.schemas.v1.read import UserRead
from app.services.events import outbox
from app.services.routing import AccountRemovedError, require_served

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY = timedelta(hours=24)


class UserService:
    """Read profiles from the cache; fetch them from Instagram and remember the outcome."""

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
        """The user's profile, fresh (fetched again after the TTL; a stale one is served if
        Instagram fails); 404 when Instagram has none for us (unknown id, no consent)."""
        cached = users.get(self.session, user_id)
        if cached is not None and cached.profile_status == "ok" and self._is_fresh(cached):
            return cached
        return self._fetch_now(user_id, cached=cached, stale_ok=True)

    def profile(self, user_id: str, *, refresh: bool) -> User:
        """The cached profile as it stands (fetched if never seen), or fetched now."""
        cached = users.get(self.session, user_id)
        if cached is not None and not refresh:
            return cached
        return self._fetch_now(user_id, cached=cached, stale_ok=False)

    def _fetch_now(self, user_id: str, *, cached: User | None, stale_ok: bool) -> User:
        self._release_connection()
        user, error = self.refresh(user_id, current=cached)
        if error is None and user is not None:
            return user
        if error is not None and not isinstance(error, ConsentRequiredError):
            if stale_ok and cached is not None and cached.profile_status == "ok":
                logger.warning("serving a stale profile of %s: %s", user_id, error.code)
                return cached
            raise error
        raise NotFoundError(
            f"Instagram has no profile of user {user_id} for this account: the id is unknown, "
            "or the user has not messaged the business yet (Instagram shares a profile only "
            "after the user has written to the business).",
            code="user_not_found",
        )

    def usernames(self, *, customer_id: str, account_id: str) -> dict[str, str]:
        """Usernames of a conversation's two sides from the cache, else the ids themselves.

        Never calls Instagram: profiles are fetched in the background.
        """
        cached = users.usernames(self.session, {customer_id, account_id})
        return {user_id: cached.get(user_id) or user_id for user_id in (customer_id, account_id)}

    def refresh(
        self, user_id: str, *, current: User | None
    ) -> tuple[User | None, InstagramError | None]:
        """Fetch a profile from Instagram; store the outcome and when to fetch it next.

        A consent refusal waits for the customer's next message; other failures back off
        exponentially and keep a profile we already have. Nothing is stored for an id we have
        no row for unless Instagram knows it. Returns the stored row (if any) and the error.
        """
        now = self.clock()
        try:
            profile = self._fetch(user_id)
        except (AccountRemovedError, NotFoundError):
            # No account may read it (removed, or none to tell): not fetched again until
            # the customer writes.
            if current is not None:
                users.stop_fetching(self.session, user_id=user_id)
            self.session.commit()
            raise
        except InstagramError as exc:
            logger.info("profile of %s not fetched: %s", user_id, exc.code)
            if current is None:
                self.session.commit()
                return None, exc
            if isinstance(exc, ConsentRequiredError):
                return self._store(
                    user_id, fetched_at=now, status="consent_required", due_at=None
                ), exc
            attempts = current.profile_attempts + 1
            delay = timedelta(seconds=self.settings.profile_retry_seconds) * 2 ** (attempts - 1)
            kept = "ok" if current.profile_status == "ok" else "unavailable"
            user = self._store(
                user_id,
                fetched_at=(current.fetched_at or now) if kept == "ok" else now,
                status=kept,
                due_at=now + min(delay, MAX_RETRY_DELAY),
                attempts=attempts,
            )
            return user, exc
        ttl = timedelta(seconds=self.settings.profile_cache_ttl_seconds)
        user = self._store(user_id, fetched_at=now, status="ok", due_at=now + ttl, profile=profile)
        return user, None

    def _release_connection(self) -> None:
        # End the read-only transaction so no connection (nor SQLite's lock) is held while
        # Instagram answers. Commit, not rollback: a rollback would expire every loaded object
        # and make the caller reload them one query at a time.
        self.session.commit()

    def _is_fresh(self, user: User) -> bool:
        if user.fetched_at is None:
            return False
        age = self.clock() - user.fetched_at
        return age < timedelta(seconds=self.settings.profile_cache_ttl_seconds)

    def _account_of(self, user_id: str) -> tuple[str, bool]:
        """Whose token reads this profile, and whether the user is that business account
        itself: the account, else the customer's conversation's, else the only account."""
        account = accounts.get(self.session, user_id)
        if account is not None or user_id == self.settings.account_id:
            require_served(self.session, account_id=user_id)
            return user_id, True
        known = conversations.latest_for_customer(self.session, customer_id=user_id)
        if known is not None:
            require_served(self.session, account_id=str(known.account_id))
            return str(known.account_id), False
        if conversations.has_account(self.session, user_id):
            return user_id, True  # an account whose conversations predate its row
        served = accounts.listed(self.session)
        if len(served) == 1:
            return served[0].id, False
        if not served and self.settings.account_id:
            # The environment's (not stored yet, or removed: then 409).
            require_served(self.session, account_id=self.settings.account_id)
            return self.settings.account_id, False
        raise NotFoundError(
            f"User {user_id} has no conversation with any business account: the service "
            "cannot tell whose token may read the profile.",
            code="user_not_found",
        )

    def _fetch(self, user_id: str) -> dict[str, Any]:
        """The profile from Instagram with the token of the customer's account; a business
        account's own through `/me`."""
        account_id, is_account = self._account_of(user_id)
        self._release_connection()
        instagram = self.instagram.for_account(account_id)
        if not is_account:
            return instagram.get_user_profile(user_id)
        me = instagram.get_own_profile()
        if str(me.get("user_id")) != user_id:
            raise InstagramError(
                f"The token belongs to account {me.get('user_id')}, not {user_id}.",
                status_code=404,
                code="user_not_found",
            )
        return {
            "username": me.get("username"),
            "name": me.get("name"),
            "profile_pic": me.get("profile_picture_url"),
        }

    def _store(
        self,
        user_id: str,
        *,
        fetched_at: datetime,
        status: str,
        due_at: datetime | None,
        attempts: int = 0,
        profile: dict[str, Any] | None = None,
    ) -> User:
        before = profile_json(users.get(self.session, user_id))
        user = users.save_profile(
            self.session,
            user_id=user_id,
            status=status,
            fetched_at=fetched_at,
            due_at=due_at,
            attempts=attempts,
            profile=profile,
        )
        after = profile_json(user)
        if _news(after) != _news(before):
            self._announce(user_id, after)
        self.session.commit()
        return user

    def _announce(self, user_id: str, profile: dict[str, Any] | None) -> None:
        """A profile.updated event: the profile as /api/v1/users shows it now, under the
        account the user is (a business's own profile) or writes to."""
        is_account = accounts.get(self.session, user_id) is not None
        known = (
            None
            if is_account
            else conversations.latest_for_customer(self.session, customer_id=user_id)
        )
        account_id = (
            user_id
            if is_account or user_id == self.settings.account_id
            else str(known.account_id)
            if known is not None
            else self.settings.account_id
        )
        outbox.record(
            self.session,
            [
                outbox.EventDraft(
                    type="profile.updated",
                    account_id=account_id,
                    conversation=None if user_id == account_id else user_id,
                    payload={"user": profile},
                )
            ],
        )


def profile_json(user: User | None) -> dict[str, Any] | None:
    """A UserRead as JSON values."""
    return None if user is None else UserRead.model_validate(user).model_dump(mode="json")


def _news(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a consumer is told about: a new fetch of the same profile is no news."""
    return None if profile is None else {k: v for k, v in profile.items() if k != "fetched_at"}
