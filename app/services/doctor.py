"""`fab doctor`: check the configuration against the database and the Graph API, one line per
check, with a fix for each failure."""

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.clients.graph_versions import version_status
from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError, TokenInvalidError
from app.config import Settings
from app.models import Account
from app.repositories import accounts
from app.safety import refusals
from app.services.health import readiness
from app.services.media.storage import build_store
from app.services.subscription import read_subscription
from app.services.sync.status import history_status
from app.services.tokens import RE_AUTHENTICATE, TokenStore
from app.services.tokens.cipher import UNSET_COST


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip (not checked: an earlier check failed)
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        text = f"{self.status.upper():<4}  {self.name}: {self.detail}"
        shows_fix = self.status in ("fail", "warn") and self.fix
        return f"{text}\n      fix: {self.fix}" if shows_fix else text


def run_checks(
    *,
    settings: Settings,
    engine: Engine,
    tokens: TokenStore,
    instagram: InstagramClient,
    account: str | None = None,
) -> list[Check]:
    """Every check, in the order an operator fixes things: the settings, the database, the
    environment's account, then every stored account (or only `account`)."""
    checks = [
        _configuration(settings),
        _setting(
            "app secret",
            settings.instagram_app_secret,
            fix="set INSTAGRAM_APP_SECRET to the Instagram app secret (App Dashboard → Instagram "
            "→ API setup with Instagram login); without it every webhook is refused",
        ),
        _setting(
            "verify token",
            settings.instagram_webhook_token,
            fix="set INSTAGRAM_WEBHOOK_TOKEN to the Verify Token typed in the App Dashboard's "
            "webhook settings; without it Meta cannot verify the callback URL",
        ),
    ]
    checks.append(_encryption_key(settings))
    database = _database(engine)
    checks.append(database)
    stored = _stored_accounts(tokens, database_ok=not database.failed)
    if account is None or account == settings.account_id:
        checks += _environment_checks(
            settings, tokens, instagram, stored=stored, database_ok=not database.failed
        )
    for row in stored:
        if tokens.is_environments(row) or account not in (None, row.id):
            continue
        checks += _account_checks(row, tokens, instagram.for_account(row.id))
    known = {row.id for row in stored} | {settings.account_id}
    if account is not None and account not in known:
        checks.append(Check(f"account {account}", "fail", "not stored", "`fab account-add`"))
    checks.append(_graph_version(settings.instagram_api_version, today=date.today()))
    checks.append(_history(engine, database_ok=not database.failed))
    checks.append(_media_archive(settings))
    return checks


def _environment_checks(
    settings: Settings,
    tokens: TokenStore,
    instagram: InstagramClient,
    *,
    stored: list[Account],
    database_ok: bool,
) -> list[Check]:
    """The account INSTAGRAM_USER_TOKEN configures (the only one before accounts were data)."""
    if settings.instagram_user_token is None and any(
        row.status != "removed" and row.access_token for row in stored
    ):
        return [Check("token", "ok", "INSTAGRAM_USER_TOKEN is not set: accounts are stored")]
    if settings.account_id is not None:
        instagram = instagram.for_account(settings.account_id)  # the stored token, as served
    token, me = _token_valid(settings, instagram)
    checks = [token]
    if me is None:
        checks.append(Check("account id", "skip", "not checked: needs a valid token"))
        checks.append(Check("webhook subscription", "skip", "not checked: needs a valid token"))
    else:
        checks.append(_account_id(settings, me))
        checks.append(_subscription(instagram))
    # Read after the /me call: Meta's 190 has marked it.
    row = next(
        (
            row
            for row in _stored_accounts(tokens, database_ok=database_ok)
            if tokens.is_environments(row)
        ),
        None,
    )
    checks.append(_expiry(tokens, row, database_ok=database_ok))
    return checks


def _history(engine: Engine, *, database_ok: bool) -> Check:
    """Gaps the history sync found (messages whose webhooks never came) and filled."""
    if not database_ok:
        return Check("history", "skip", "not checked: needs the database")
    with Session(engine) as session:
        accounts = history_status(session)
    if not accounts:
        return Check("history", "ok", "no sweep has run yet")
    detail = "; ".join(account.line() for account in accounts)
    if any(account.last_error for account in accounts):
        return Check(
            "history",
            "warn",
            detail,
            "check the token's instagram_business_manage_messages permission; the next sweep "
            "retries by itself",
        )
    return Check("history", "ok", detail)


def _account_checks(row: Account, tokens: TokenStore, instagram: InstagramClient) -> list[Check]:
    """A stored account: its token (Meta answers /me with its IG_ID), its subscription, its
    expiry."""
    name = f"account {row.id}"
    if row.status == "removed":
        return [Check(name, "ok", "removed: not used")]
    try:
        me = instagram.get_me()
    except TokenInvalidError as exc:
        return [Check(f"{name} token", "fail", f"GET /me: {exc.message}", RE_AUTHENTICATE)]
    except InstagramError as exc:
        return [Check(f"{name} token", "fail", f"GET /me could not be checked: {exc.message}")]
    if str(me.get("user_id")) != row.id:
        return [
            Check(
                f"{name} token",
                "fail",
                f"the stored token belongs to account {me.get('user_id')}",
                "add the right token: `fab account-add --token …`",
            )
        ]
    checks = [Check(f"{name} token", "ok", f"valid: GET /me answers for @{me.get('username')}")]
    subscription = _subscription(instagram)
    checks.append(dataclasses.replace(subscription, name=f"{name} webhook subscription"))
    expiry = _expiry(tokens, row, database_ok=True)
    checks.append(dataclasses.replace(expiry, name=f"{name} token expiry"))
    return checks


def _stored_accounts(tokens: TokenStore, *, database_ok: bool) -> list[Account]:
    """The stored accounts (the environment's adopted first); none without a database."""
    if not database_ok:
        return []
    try:
        tokens.adopt()
        with tokens.session_factory() as session:
            return accounts.listed(session, include_removed=True)
    except sa_exc.SQLAlchemyError:
        return []  # the database check says why


def _encryption_key(settings: Settings) -> Check:
    if settings.token_encryption_key is None:
        return Check("token encryption key", "warn", UNSET_COST, "`fab token-key` prints a key")
    return Check("token encryption key", "ok", "set (TOKEN_ENCRYPTION_KEY)")


def _configuration(settings: Settings) -> Check:
    """What would stop the service at start (app/safety.py)."""
    reasons = refusals(settings)
    if reasons:
        return Check(
            "configuration",
            "fail",
            "; ".join(reasons),
            "fix the settings named above: the service refuses to start with them",
        )
    open_api = " (ALLOW_OPEN_API: the API is open)" if settings.api_key is None else ""
    return Check("configuration", "ok", f"safe to serve{open_api}")


def _graph_version(version: str, *, today: date) -> Check:
    status = version_status(version, today=today)
    fix = "set INSTAGRAM_API_VERSION to a current version (the default is v25.0)"
    if status.state == "ok":
        return Check("graph api version", "ok", status.detail)
    if status.state == "ended":
        return Check("graph api version", "fail", status.detail, fix)
    return Check("graph api version", "warn", status.detail, fix)


def _media_archive(settings: Settings) -> Check:
    """Where archived attachments go, and whether that store can be used (docs/media.md)."""
    if settings.media_archive == "off":
        return Check("media archive", "ok", "off: only Meta's CDN URLs are kept (Meta's policy)")
    store = build_store(settings)
    assert store is not None
    problem = store.problem()
    if problem is not None:
        fix = (
            "make MEDIA_DIR a directory the service can write"
            if settings.media_archive == "local"
            else "check S3_BUCKET, S3_ENDPOINT_URL, S3_REGION and the AWS credentials"
        )
        return Check("media archive", "fail", problem, fix)
    return Check("media archive", "ok", f"{store.name}: writable")


def _setting(name: str, value: SecretStr | None, *, fix: str) -> Check:
    if value is None:
        return Check(name, "fail", "not set", fix)
    return Check(name, "ok", "set")


def _database(engine: Engine) -> Check:
    ready = readiness(engine)
    if ready.database != "ok":
        return Check(
            "database",
            "fail",
            ready.database,
            "check DATABASE_URL (or the DB_* settings) and that the database server runs",
        )
    if not ready.ready:
        return Check("database", "fail", f"reachable, schema {ready.schema}", "run `fab migrate`")
    return Check("database", "ok", f"reachable, schema at head ({ready.schema_version})")


def _token_valid(
    settings: Settings, instagram: InstagramClient
) -> tuple[Check, dict[str, Any] | None]:
    if settings.instagram_user_token is None:
        return Check("token", "fail", "INSTAGRAM_USER_TOKEN is not set", RE_AUTHENTICATE), None
    try:
        me = instagram.get_me()
    except TokenInvalidError as exc:
        return Check("token", "fail", f"GET /me: {exc.message}", RE_AUTHENTICATE), None
    except InstagramError as exc:
        return Check(
            "token",
            "fail",
            f"GET /me could not be checked: {exc.message}",
            "check INSTAGRAM_GRAPH_URL and the network, then run `fab doctor` again",
        ), None
    who = f"@{me.get('username')} (user_id {me.get('user_id')})"
    return Check("token", "ok", f"valid: GET /me answers for {who}"), me


def _account_id(settings: Settings, me: dict[str, Any]) -> Check:
    account_id, app_scoped_id = str(me.get("user_id")), str(me.get("id"))
    configured = settings.account_id
    variable = (
        "INSTAGRAM_ACCOUNT_ID" if settings.instagram_account_id else "INSTAGRAM_ACCOUNT_SCOPED_ID"
    )
    if configured is None:
        return Check(
            "account id",
            "ok",
            f"INSTAGRAM_ACCOUNT_ID not set: the service asks /me (user_id {account_id}); setting "
            f"INSTAGRAM_ACCOUNT_ID={account_id} saves the call",
        )
    if configured == account_id:
        return Check("account id", "ok", f"{variable} = /me user_id {account_id}")
    if configured == app_scoped_id:
        return Check(
            "account id",
            "fail",
            f"{variable} = {configured} is /me's app-scoped `id`, not the IG_ID webhooks carry "
            "as entry.id",
            f"set INSTAGRAM_ACCOUNT_ID={account_id} (/me's user_id)",
        )
    return Check(
        "account id",
        "fail",
        f"{variable} = {configured}, but the token belongs to account {account_id}",
        f"set INSTAGRAM_ACCOUNT_ID={account_id}, or configure the token of account {configured}",
    )


def _subscription(instagram: InstagramClient) -> Check:
    try:
        subscription = read_subscription(instagram)
    except InstagramError as exc:
        return Check(
            "webhook subscription",
            "fail",
            f"GET /me/subscribed_apps: {exc.message}",
            "run `fab subscribe` (the token needs instagram_business_manage_messages)",
        )
    if subscription.missing:
        subscribed = ", ".join(subscription.fields) or "nothing"
        return Check(
            "webhook subscription",
            "fail",
            f"not subscribed to {', '.join(subscription.missing)} (subscribed: {subscribed}); "
            "Meta delivers no webhook of a field the account is not subscribed to",
            "run `fab subscribe`",
        )
    return Check("webhook subscription", "ok", f"subscribed to {', '.join(subscription.fields)}")


def _expiry(tokens: TokenStore, row: Account | None, *, database_ok: bool) -> Check:
    if tokens.configured is None and row is None:
        return Check("token expiry", "skip", "not checked: no token configured")
    if not database_ok:
        return Check("token expiry", "skip", "not checked: needs the database")
    status = tokens.status_of(row)
    if status.state in ("invalid", "expired"):
        return Check("token expiry", "fail", status.detail, RE_AUTHENTICATE)
    if status.state == "expiring" and status.refresh_error:
        return Check(
            "token expiry",
            "fail",
            status.detail,
            f"see the service's log for the refresh errors; if they go on, {RE_AUTHENTICATE}",
        )
    return Check("token expiry", "ok", status.detail)
