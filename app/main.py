"""The ASGI application: `app.main:app` (or `create_app(settings)` for tests)."""

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

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
from app.services.accounts import AccountUnresolvedError, BusinessAccount
from app.services.events.delivery import Deliverer, DeliveryWorker
from app.services.events.horizon import Horizon
from app.services.events.stream import Broadcaster, StreamPoller
from app.services.health import StatusReporter
from app.services.housekeeping import Housekeeper, HousekeepingWorker
from app.services.media.downloads import MediaDownloader, MediaWorker
from app.services.media.storage import build_store
from app.services.profiles import ProfileFetcher, ProfileWorker
from app.services.sending import UnrecordedSends, UnrecordedSendsWorker
from app.services.sync.runner import HistorySync, SyncWorker
from app.services.tokens import TokenRefresher, TokenStore, TokenWorker

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
        logger.warning("INSTAGRAM_USER_TOKEN is not set: profiles and sending are unavailable")
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application and its collaborators (engine, Graph API client).

    Raises UnsafeConfigurationError, before anything starts, when the settings would serve an
    open API nobody asked for, example values or short secrets (see app/safety.py)."""
    settings = settings or get_settings()
    check_safe_to_serve(settings)
    engine = create_db_engine(settings)
    session_factory = create_session_factory(engine)
    tokens = TokenStore(settings=settings, session_factory=session_factory)
    instagram = InstagramClient(settings, token=tokens)
    token_worker = TokenWorker(
        TokenRefresher(store=tokens, instagram=instagram, settings=settings),
        interval_seconds=settings.token_refresh_check_seconds,
    )
    unrecorded_sends = UnrecordedSends()
    sent_recorder = UnrecordedSendsWorker(session_factory, unrecorded_sends)
    business_account = BusinessAccount(settings=settings, instagram=instagram)
    cdn = CdnClient(settings)
    media_store = build_store(settings)
    media_worker = (
        MediaWorker(
            MediaDownloader(
                session_factory=session_factory, store=media_store, cdn=cdn, settings=settings
            ),
            idle_seconds=settings.media_worker_idle_seconds,
        )
        if media_store is not None
        else None
    )
    housekeeping = HousekeepingWorker(
        Housekeeper(session_factory=session_factory, settings=settings, store=media_store)
    )

    def sync_accounts() -> list[str]:
        """The accounts whose history is kept complete (none while the IG_ID is unknown)."""
        try:
            return [business_account.id()]
        except AccountUnresolvedError:
            return []

    history_sync = HistorySync(
        session_factory=session_factory,
        instagram=instagram,
        settings=settings,
        accounts=sync_accounts,
    )
    sync_worker = SyncWorker(history_sync)
    history_sync.on_queued = sync_worker.wake
    events_horizon = Horizon()
    delivery_worker = DeliveryWorker(
        Deliverer(session_factory=session_factory, settings=settings, horizon=events_horizon)
    )
    broadcaster = Broadcaster(session_factory=session_factory, horizon=events_horizon)
    stream_poller = StreamPoller(broadcaster)
    profile_worker = ProfileWorker(
        ProfileFetcher(session_factory=session_factory, instagram=instagram, settings=settings),
        idle_seconds=settings.profile_worker_idle_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Synchronous endpoints run in this many threads; Graph calls may hold at most
        # INSTAGRAM_MAX_CONCURRENCY of them, so the rest always serve webhooks and reads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        configure_logging(settings.log_level, log_format=settings.log_format)
        _warn_about_configuration(settings)
        tokens.adopt_at_start()
        business_account.start()
        sent_recorder.start()
        housekeeping.start()
        delivery_worker.start()
        stream_poller.start()
        if settings.profile_worker_enabled:
            profile_worker.start()
        if settings.token_refresh_enabled:
            token_worker.start()
        if media_worker is not None:
            media_worker.start()
        if settings.sync_worker_enabled:
            sync_worker.start()
        yield
        if settings.sync_worker_enabled:
            sync_worker.stop()
        if media_worker is not None:
            media_worker.stop()
        if settings.token_refresh_enabled:
            token_worker.stop()
        if settings.profile_worker_enabled:
            profile_worker.stop()
        stream_poller.stop()
        delivery_worker.stop()
        housekeeping.stop()
        business_account.stop()
        sent_recorder.stop()
        instagram.close()
        cdn.close()
        engine.dispose()

    # The documentation pages load Swagger UI and ReDoc from the service itself, not from a
    # CDN: /docs works where the service has no internet access.
    app = FastAPIOffline(
        title="insta-service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.instagram = instagram
    app.state.business_account = business_account
    app.state.tokens = tokens
    app.state.unrecorded_sends = unrecorded_sends
    app.state.events_horizon = events_horizon
    app.state.events_broadcaster = broadcaster
    # The background threads (each started by the lifespan when enabled); tests pause them.
    app.state.workers = (
        sent_recorder,
        profile_worker,
        token_worker,
        housekeeping,
        delivery_worker,
        stream_poller,
        sync_worker,
    ) + ((media_worker,) if media_worker is not None else ())
    app.state.history_sync = history_sync
    app.state.sync_accounts = sync_accounts
    app.state.cdn = cdn
    app.state.media_store = media_store
    app.state.status_reporter = StatusReporter(
        engine=engine,
        session_factory=session_factory,
        tokens=tokens,
        graph_api_version=settings.instagram_api_version,
        media_store=media_store,
    )

    install_error_handlers(app)
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
    return app


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
