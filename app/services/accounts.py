"""The accounts API's use cases: add an account by its token (or give it a new one), list,
read and remove accounts (`/api/v1/accounts`, `fab accounts|account-add|account-remove`)."""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError, TokenInvalidError
from app.errors import InvalidInputError
from app.models import Account, utcnow
from app.repositories import accounts
from app.schemas.common import IG_ID
from app.schemas.v1.accounts import account_json
from app.services.account_changes import account_updated, on_account_removed
from app.services.intake.accounts import IntakeAccounts
from app.services.intake.pending import apply_pending
from app.services.routing import AccountNotFoundError
from app.services.subscription import subscribe
from app.services.tokens import TokenStore

logger = logging.getLogger(__name__)


class AccountService:
    """Business accounts as data: each with its own token, status and subscription."""

    def __init__(
        self,
        *,
        session: Session,
        instagram: InstagramClient,
        tokens: TokenStore,
        intake_accounts: IntakeAccounts | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.instagram = instagram
        self.tokens = tokens
        # This process's intake, told of a removal at once (others see it within a second).
        self.intake_accounts = intake_accounts
        self.clock = clock

    def add(self, *, access_token: str) -> tuple[dict[str, Any], bool]:
        """Ask `/me` who the token belongs to, store the account (or its new token: never a
        second row), apply its pending entries and subscribe it to the webhook fields the
        service handles. The account's JSON, and whether it is new.

        422 `instagram_token_invalid` when Meta refuses the token; Meta's other errors as
        everywhere (502/503/504). The subscription comes last: when it fails the account is
        stored, and posting the token again (or `fab subscribe`) finishes the job.
        """
        self.session.commit()  # no transaction held while Meta answers
        client = self.instagram.with_token(access_token)
        account_id, username = _whose(client)
        created = self._store(account_id=account_id, username=username, token=access_token)
        apply_pending(self.tokens.session_factory, account_id=account_id)
        subscription = subscribe(self.instagram.for_account(account_id))
        now = self.clock()
        accounts.update_fields(
            self.session,
            account_id=account_id,
            values={
                "subscribed_fields": subscription.fields,
                "subscribed_at": now,
                "updated_at": now,
            },
        )
        self.session.commit()
        return self.get(account_id), created

    def _store(self, *, account_id: str, username: str | None, token: str) -> bool:
        now = self.clock()
        values = {"username": username, **self.tokens.token_values(token, now=now)}
        created = accounts.insert_new(
            self.session, values={"id": account_id, "created_at": now, **values}
        )
        if created:
            account_updated(self.session, account_id=account_id, change="added")
        else:
            accounts.replace_token(self.session, account_id=account_id, values=values)
            account_updated(self.session, account_id=account_id, change="token_replaced")
        self.session.commit()
        self.tokens.forget(account_id)
        if self.intake_accounts is not None:
            self.intake_accounts.forget(account_id)
        logger.info(
            "account %s (%s) %s", account_id, username, "added" if created else "has a new token"
        )
        return created

    def listed(self) -> list[dict[str, Any]]:
        """Every account (removed ones too, with their status), oldest first."""
        rows = accounts.listed(self.session, include_removed=True)
        return self._describe(rows)

    def get(self, account_id: str) -> dict[str, Any]:
        """One account; 404 `account_not_found`."""
        return self._describe([self._row(account_id)])[0]

    def remove(self, *, account_id: str) -> None:
        """Stop using the account: no sends, profile fetches or refreshes; its token is
        dropped, its conversations stay readable. Removing a removed account changes nothing."""
        self._row(account_id)
        if accounts.mark_removed(self.session, account_id=account_id, now=self.clock()):
            on_account_removed(self.session, account_id=account_id)
        self.session.commit()
        self.tokens.forget(account_id)
        if self.intake_accounts is not None:
            self.intake_accounts.forget(account_id)

    def _row(self, account_id: str) -> Account:
        row = accounts.get(self.session, account_id)
        if row is None:
            raise AccountNotFoundError(f"No business account {account_id}.")
        return row

    def _describe(self, rows: list[Account]) -> list[dict[str, Any]]:
        counts = accounts.conversation_counts(self.session, [row.id for row in rows])
        described = [
            account_json(
                row, token=self.tokens.status_of(row), conversation_count=counts.get(row.id, 0)
            )
            for row in rows
        ]
        self.session.commit()
        return described


def _whose(client: InstagramClient) -> tuple[str, str | None]:
    """The IG_ID and username a token belongs to (`/me`)."""
    try:
        me = client.get_me()
    except TokenInvalidError:
        raise InvalidInputError(
            "Instagram refused this access token (invalid, expired or revoked): generate a "
            "new one for the account.",
            code="instagram_token_invalid",
        ) from None
    account_id = str(me.get("user_id") or "")
    if not IG_ID.fullmatch(account_id):
        raise InstagramError("The Instagram API answered /me without the account's user_id.")
    username = me.get("username")
    return account_id, str(username) if username else None
