"""The ASGI application: `app.main:app` (or `create_app(settings)` for tests)."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI

from app.api.deps import require_api_key
from app.api.middleware import BodySizeLimitMiddleware
from app.api.observability import RequestObservabilityMiddleware
from app.api.routes import health, messages, metrics, send, users, v1, webhook
from app.clients.instagram import InstagramClient
from app.config import Settings, get_settings
from app.db import create_db_engine, create_session_factory
from app.errors import install_error_handlers
from app.logs import configure_logging
from app.services.accounts import BusinessAccount
from app.services.health import StatusReporter
from app.services.profiles import ProfileFetcher, ProfileWorker
from app.services.sending import UnrecordedSends, UnrecordedSendsWorker
from app.services.tokens import TokenRefresher, TokenStore, TokenWorker

logger = logging.getLogger("app")

DESCRIPTION = """
Instagram Direct Messages over Meta's official Instagram Messaging API: receives DM webhooks,
stores every conversation, serves history and profiles, and sends messages for the business.

With `API_KEY` set, every endpoint except `/webhook`, `/health`, `/ready` and the docs needs
`Authorization: Bearer <API_KEY>`. Every error is JSON: `{"detail": ..., "code": ...}`.
"""


def _warn_about_configuration(settings: Settings) -> None:
    if settings.api_key is None:
        logger.warning("API_KEY is not set: the API is open to anyone who can reach it")
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
    """Build the application and its collaborators (engine, Graph API client)."""
    settings = settings or get_settings()
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
        sent_recorder.start()
        if settings.profile_worker_enabled:
            profile_worker.start()
        if settings.token_refresh_enabled:
            token_worker.start()
        yield
        if settings.token_refresh_enabled:
            token_worker.stop()
        if settings.profile_worker_enabled:
            profile_worker.stop()
        sent_recorder.stop()
        instagram.close()
        engine.dispose()

    app = FastAPI(
        title="insta-service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.instagram = instagram
    app.state.business_account = BusinessAccount(settings=settings, instagram=instagram)
    app.state.tokens = tokens
    app.state.unrecorded_sends = unrecorded_sends
    # The background threads (each started by the lifespan when enabled); tests pause them.
    app.state.workers = (sent_recorder, profile_worker, token_worker)
    app.state.status_reporter = StatusReporter(
        engine=engine, session_factory=session_factory, tokens=tokens
    )

    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outermost: it sees every answer, the body limit's 413 included.
    app.add_middleware(RequestObservabilityMiddleware)

    api_key = [Depends(require_api_key)]
    app.include_router(webhook.router)
    app.include_router(messages.router, dependencies=api_key)
    app.include_router(users.router, dependencies=api_key)
    app.include_router(send.router, dependencies=api_key)
    app.include_router(v1.router, dependencies=api_key)
    app.include_router(health.router)
    app.include_router(metrics.router, dependencies=api_key)
    return app


app = create_app()
