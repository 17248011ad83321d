"""`fab doctor`: check the configuration against the database and the Graph API, one line per
check, with a fix for each failure."""

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
from app.safety import refusals
from app.services.health import readiness
from app.services.media.storage import build_store
from app.services.subscription import read_subscription
from app.services.sync.status import history_status
from app.services.tokens import RE_AUTHENTICATE, TokenStore


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
    *, settings: Settings, engine: Engine, tokens: TokenStore, instagram: InstagramClient
) -> list[Check]:
    """Every check, in the order an operator fixes things."""
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
    database = _database(engine)
    checks.append(database)
    token, me = _token_valid(settings, instagram)
    checks.append(token)
    if me is None:
        checks.append(Check("account id", "skip", "not checked: needs a valid token"))
        checks.append(Check("webhook subscription", "skip", "not checked: needs a valid token"))
    else:
        checks.append(_account_id(settings, me))
        checks.append(_subscription(instagram))
    checks.append(_expiry(tokens, database_ok=not database.failed))
    checks.append(_graph_version(settings.instagram_api_version, today=date.today()))
    checks.append(_history(engine, database_ok=not database.failed))
    checks.append(_media_archive(settings))
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


def _expiry(tokens: TokenStore, *, database_ok: bool) -> Check:
    if tokens.configured is None:
        return Check("token expiry", "skip", "not checked: no token configured")
    if not database_ok:
        return Check("token expiry", "skip", "not checked: needs the database")
    try:
        tokens.adopt()
        status = tokens.status()
    except sa_exc.SQLAlchemyError as exc:
        # Any database error: the database answered (checked above), so most likely a schema
        # behind the code's (the token table missing or changed).
        return Check(
            "token expiry", "fail", f"database error: {type(exc).__name__}", "run `fab migrate`"
        )
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
