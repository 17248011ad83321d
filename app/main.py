"""The ASGI application: `app.main:app` (or `create_app(settings)` for tests)."""

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio
from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import require_api_key
from app.api.middleware import ApiKeyMiddleware, BodySizeLimitMiddleware, HostCheckMiddleware
from app.api.observability import RequestObservabilityMiddleware
from app.api.routes import health, messages, metrics, send, users, v1, webhook
from app.clients.cdn import CdnClient
from app.clients.instagram import InstagramClient
from app.config import Settings, get_settings
from app.db import create_db_engine, create_session_factory
from app.errors import install_error_handlers
from app.logs import configure_logging
from app.safety import UnsafeConfigurationError, check_safe_to_serve
from app.services.background import BackgroundWorker
from app.services.events.delivery import Deliverer, DeliveryWorker
from app.services.events.horizon import Horizon
from app.services.events.stream import Broadcaster, StreamPoller
from app.services.health import StatusReporter
from app.services.housekeeping import Housekeeper, HousekeepingWorker
from app.services.intake.accounts import IntakeAccounts
from app.services.intake.pending import PendingWorker, apply_pending
from app.services.media.downloads import MediaDownloader, MediaWorker
from app.services.media.storage import MediaStore, build_store
from app.services.profiles import ProfileFetcher, ProfileWorker
from app.services.routing import EnvironmentAccount, served_account_ids
from app.services.sending import UnrecordedSends, UnrecordedSendsWorker
from app.services.sync.runner import HistorySync, SyncWorker
from app.services.tokens import TokenRefresher, TokenStore, TokenWorker
from app.services.tokens.cipher import UNSET_COST

logger = logging.getLogger("app")

DESCRIPTION = """
Instagram Direct Messages over Meta's official Instagram Messaging API: receives DM webhooks,
stores every conversation, serves history and profiles, and sends messages for the business.

Every endpoint except `/webhook`, `/health`, `/ready` and the docs needs
`Authorization: Bearer <API_KEY>`. Every error is JSON: `{"detail": ..., "code": ...}`.
"""


def _warn_about_configuration(settings: Settings) -> None:
    if settings.api_key is None:
        logger.warning(
            "API_KEY is not set and ALLOW_OPEN_API=true: the API is open to anyone who can reach it"
        )
    if settings.instagram_app_secret is None:
        logger.warning("INSTAGRAM_APP_SECRET is not set: every webhook delivery will be refused")
    if settings.instagram_webhook_token is None:
        logger.warning("INSTAGRAM_WEBHOOK_TOKEN is not set: Meta cannot verify the webhook")
    if settings.instagram_user_token is None:
        logger.info(
            "INSTAGRAM_USER_TOKEN is not set: the service serves the accounts added through "
            "POST /api/v1/accounts (`fab account-add`)"
        )
    if settings.token_encryption_key is None:
        logger.warning(UNSET_COST)
    if settings.is_sqlite:
        logger.info("using the embedded SQLite database %s", settings.sqlalchemy_url)
    if settings.instagram_pool_size < settings.instagram_max_concurrency:
        logger.warning(
            "INSTAGRAM_POOL_SIZE (%d) is below INSTAGRAM_MAX_CONCURRENCY (%d): calls beyond the "
            "pool open and close a connection each",
            settings.instagram_pool_size,
            settings.instagram_max_concurrency,
        )
    if settings.worker_threads <= settings.instagram_max_concurrency:
        logger.warning(
            "WORKER_THREADS (%d) is not above INSTAGRAM_MAX_CONCURRENCY (%d): a hanging "
            "Instagram API can hold every thread and stop webhook intake",
            settings.worker_threads,
            settings.instagram_max_concurrency,
        )


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Components:
    """What one process of the service is made of: built once by `create_app`, shared by
    its requests and background threads."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    tokens: TokenStore
    instagram: InstagramClient
    cdn: CdnClient
    media_store: MediaStore | None
    unrecorded_sends: UnrecordedSends
    environment_account: EnvironmentAccount
    history_sync: HistorySync
    sync_accounts: Callable[[], list[str]]
    events_horizon: Horizon
    broadcaster: Broadcaster
    intake_accounts: IntakeAccounts
    # Every background thread, enabled or not (tests pause them all); the media worker last.
    workers: tuple[BackgroundWorker, ...]
    # What the lifespan starts, in order (and stops in reverse).
    running: tuple[Startable, ...]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application and its collaborators (engine, Graph API client, workers).

    Raises UnsafeConfigurationError, before anything starts, when the settings would serve an
    open API nobody asked for, example values or short secrets (see app/safety.py)."""
    settings = settings or get_settings()
    check_safe_to_serve(settings)
    components = build_components(settings)
    # The documentation pages load Swagger UI and ReDoc from the service itself, not from a
    # CDN: /docs works where the service has no internet access.
    app = FastAPIOffline(
        title="insta-service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan(components),
        # FastAPI's native OpenTelemetry asks on every request whether a provider is set up
        # (environment lookups: a few percent of a webhook delivery); the service reports
        # through /metrics and its logs instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    _publish(app, components)
    install_error_handlers(app)
    _install_middleware(app, settings)
    _include_routers(app)
    return app


def build_components(settings: Settings) -> Components:
    """The engine, the clients, the services and the background workers of one process."""
    engine = create_db_engine(settings)
    session_factory = create_session_factory(engine)
    tokens = TokenStore(settings=settings, session_factory=session_factory)
    instagram = InstagramClient(settings, accounts=tokens)

    def adopt_resolved(account_id: str) -> None:
        # The environment's IG_ID came from /me: store the account, apply what waited for it.
        tokens.adopt(account_id)
        apply_pending(session_factory, account_id=account_id)

    def sync_accounts() -> list[str]:
        """Every served account's history is kept complete (the environment's once stored)."""
        return served_account_ids(session_factory)

    media_store = build_store(settings)
    events_horizon = Horizon()
    parts = Components(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        tokens=tokens,
        instagram=instagram,
        cdn=CdnClient(settings),
        media_store=media_store,
        unrecorded_sends=UnrecordedSends(),
        environment_account=EnvironmentAccount(
            settings=settings, instagram=instagram, on_resolved=adopt_resolved
        ),
        history_sync=HistorySync(
            session_factory=session_factory,
            instagram=instagram,
            settings=settings,
            accounts=sync_accounts,
        ),
        sync_accounts=sync_accounts,
        events_horizon=events_horizon,
        broadcaster=Broadcaster(session_factory=session_factory, horizon=events_horizon),
        intake_accounts=IntakeAccounts(),
        workers=(),
        running=(),
    )
    return _with_workers(parts)


def _with_workers(parts: Components) -> Components:
    """The components with their background workers, and which of them this process runs."""
    settings, sessions = parts.settings, parts.session_factory
    sent_recorder = UnrecordedSendsWorker(sessions, parts.unrecorded_sends)
    profile_worker = ProfileWorker(
        ProfileFetcher(session_factory=sessions, instagram=parts.instagram, settings=settings),
        idle_seconds=settings.profile_worker_idle_seconds,
    )
    token_worker = TokenWorker(
        TokenRefresher(store=parts.tokens, instagram=parts.instagram, settings=settings),
        interval_seconds=settings.token_refresh_check_seconds,
    )
    housekeeping = HousekeepingWorker(
        Housekeeper(session_factory=sessions, settings=settings, store=parts.media_store)
    )
    pending_worker = PendingWorker(sessions)
    delivery_worker = DeliveryWorker(
        Deliverer(session_factory=sessions, settings=settings, horizon=parts.events_horizon),
        nice=settings.events_delivery_nice,
    )
    stream_poller = StreamPoller(parts.broadcaster)
    sync_worker = SyncWorker(parts.history_sync)
    parts.history_sync.on_queued = sync_worker.wake
    media_worker = None
    if parts.media_store is not None:
        media_worker = MediaWorker(
            MediaDownloader(
                session_factory=sessions, store=parts.media_store, cdn=parts.cdn, settings=settings
            ),
            idle_seconds=settings.media_worker_idle_seconds,
        )
    always: tuple[Startable, ...] = (
        parts.environment_account,
        sent_recorder,
        pending_worker,
        housekeeping,
        delivery_worker,
        stream_poller,
    )
    optional = (
        (profile_worker, settings.profile_worker_enabled),
        (token_worker, settings.token_refresh_enabled),
        (media_worker, media_worker is not None),
        (sync_worker, settings.sync_worker_enabled),
    )
    running = always + tuple(worker for worker, enabled in optional if worker and enabled)
    workers: tuple[BackgroundWorker, ...] = (
        sent_recorder,
        profile_worker,
        token_worker,
        housekeeping,
        pending_worker,
        delivery_worker,
        stream_poller,
        sync_worker,
    ) + ((media_worker,) if media_worker is not None else ())
    return replace(parts, workers=workers, running=running)


def _lifespan(
    parts: Components,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings = parts.settings
        # Synchronous endpoints run in this many threads; Graph calls may hold at most
        # INSTAGRAM_MAX_CONCURRENCY of them, so the rest always serve webhooks and reads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        configure_logging(settings.log_level, log_format=settings.log_format)
        _warn_about_configuration(settings)
        parts.tokens.adopt_at_start()
        for part in parts.running:
            part.start()
        yield
        for part in reversed(parts.running):
            part.stop()
        parts.instagram.close()
        parts.cdn.close()
        parts.engine.dispose()

    return lifespan


def _publish(app: FastAPI, parts: Components) -> None:
    """What requests and tests reach through `app.state` (app/api/deps.py reads it)."""
    state = app.state
    state.settings = parts.settings
    state.engine = parts.engine
    state.session_factory = parts.session_factory
    state.instagram = parts.instagram
    state.environment_account = parts.environment_account
    state.tokens = parts.tokens
    state.unrecorded_sends = parts.unrecorded_sends
    state.events_horizon = parts.events_horizon
    state.events_broadcaster = parts.broadcaster
    state.intake_accounts = parts.intake_accounts
    state.workers = parts.workers
    state.history_sync = parts.history_sync
    state.sync_accounts = parts.sync_accounts
    state.cdn = parts.cdn
    state.media_store = parts.media_store
    state.status_reporter = StatusReporter(
        engine=parts.engine,
        session_factory=parts.session_factory,
        tokens=parts.tokens,
        graph_api_version=parts.settings.instagram_api_version,
        media_store=parts.media_store,
    )


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    # Added innermost first. A request meets: observability, the Host check, the API key,
    # then the body limit: nothing reads a body before the key is checked.
    app.add_middleware(
        BodySizeLimitMiddleware,
        webhook_bytes=settings.max_body_bytes,
        api_bytes=settings.max_api_body_bytes,
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    app.add_middleware(HostCheckMiddleware, allowed_hosts=settings.allowed_host_list)
    # Outermost: it sees every answer, the refusals above included.
    app.add_middleware(RequestObservabilityMiddleware)


def _include_routers(app: FastAPI) -> None:
    # ApiKeyMiddleware enforces the key; the dependency also declares it in OpenAPI (the
    # Authorize button of /docs).
    protected = [Depends(require_api_key)]
    app.include_router(webhook.router)
    app.include_router(messages.router, dependencies=protected)
    app.include_router(users.router, dependencies=protected)
    app.include_router(send.router, dependencies=protected)
    app.include_router(v1.router, dependencies=protected)
    app.include_router(health.router)
    app.include_router(metrics.router, dependencies=protected)


def __getattr__(name: str) -> Any:
    """`app.main:app` for uvicorn, built on first access (importing this module builds
    nothing); an unsafe configuration stops the process with one line saying why."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        application = create_app()
    except UnsafeConfigurationError as error:
        sys.exit(f"insta-service will not start: {error}")
    globals()["app"] = application
    return application
