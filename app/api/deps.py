"""FastAPI dependencies: the session, the settings, the clients and one alias per service.

They are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in the
thread pool, and a thread hop per dependency costs more than building the thing itself.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.api.middleware import API_KEY_VALID
from app.clients.cdn import CdnClient
from app.clients.instagram import InstagramClient
from app.config import Settings
from app.errors import UnauthorizedError
from app.services.accounts import AccountService
from app.services.conversations import ConversationService
from app.services.events.endpoints import EndpointService
from app.services.events.feed import EventFeed
from app.services.events.horizon import Horizon
from app.services.health import StatusReporter
from app.services.intake.accounts import IntakeAccounts
from app.services.media.serving import MediaService
from app.services.media.storage import MediaStore
from app.services.messages import HistoryService
from app.services.routing import EnvironmentAccount
from app.services.sending import ReactionService, SenderActionService, SendService
from app.services.sync.jobs import SyncService
from app.services.tokens import TokenStore
from app.services.users import UserService
from app.services.webhooks import WebhookService


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@asynccontextmanager
async def _request_session(request: Request) -> AsyncIterator[Session]:
    """A session per request. It never commits: services end their use cases with commit().

    Opening one does no I/O; closing does only while a transaction is open (the rollback),
    and then it goes to the thread pool, off the event loop.
    """
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        await _close(session)


async def get_session(request: Request) -> AsyncIterator[Session]:
    async with _request_session(request) as session:
        yield session


async def _close(session: Session) -> None:
    try:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()
    except sa_exc.DBAPIError:
        # The connection died under the request, whose error has been answered (503): its
        # rollback cannot reach the server either. Drop the connection instead of failing
        # an answer already on its way (the client would see the connection cut).
        session.invalidate()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_instagram(request: Request) -> InstagramClient:
    instagram: InstagramClient = request.app.state.instagram
    return instagram


InstagramDep = Annotated[InstagramClient, Depends(get_instagram)]


async def get_environment_account(request: Request) -> EnvironmentAccount:
    account: EnvironmentAccount = request.app.state.environment_account
    return account


EnvironmentAccountDep = Annotated[EnvironmentAccount, Depends(get_environment_account)]


async def get_tokens(request: Request) -> TokenStore:
    tokens: TokenStore = request.app.state.tokens
    return tokens


TokenStoreDep = Annotated[TokenStore, Depends(get_tokens)]


class DeclaredBearer(HTTPBearer):
    """`Authorization: Bearer <API_KEY>` as OpenAPI declares it (the Authorize button of
    /docs). ApiKeyMiddleware has checked the header before any route runs, so resolving
    this reads nothing: the request's headers are not parsed, nor the key compared, twice."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


bearer_scheme = DeclaredBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer <API_KEY>` (required when API_KEY is set).",
)


async def require_api_key(
    request: Request, _declared: Annotated[None, Depends(bearer_scheme)]
) -> None:
    """With API_KEY set, refuse a request ApiKeyMiddleware did not find carrying it (the
    middleware refuses those first; this guards the protected routes themselves)."""
    if request.app.state.settings.api_key is None:
        return
    if not request.scope.get("state", {}).get(API_KEY_VALID, False):
        raise UnauthorizedError(
            "Missing or invalid API key: send `Authorization: Bearer <API_KEY>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def get_webhook_service(
    request: Request, session: SessionDep, settings: SettingsDep
) -> WebhookService:
    accounts_seen: IntakeAccounts = request.app.state.intake_accounts
    return WebhookService(session=session, settings=settings, accounts_seen=accounts_seen)


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """What `POST /webhook` works with: the service, the raw body (the signature covers the
    exact bytes Meta sent) and the `X-Hub-Signature-256` header."""

    service: WebhookService
    body: bytes
    signature: str | None


async def get_webhook_call(request: Request) -> AsyncIterator[WebhookCall]:
    """One dependency for the hottest route (a delivery every few milliseconds): the body,
    the header and the service with its session, resolved together (each dependency FastAPI
    resolves costs a little; five of them were a few percent of a delivery)."""
    state = request.app.state
    body = await request.body()
    async with _request_session(request) as session:
        service = WebhookService(
            session=session, settings=state.settings, accounts_seen=state.intake_accounts
        )
        yield WebhookCall(service, body, request.headers.get("x-hub-signature-256"))


WebhookCallDep = Annotated[WebhookCall, Depends(get_webhook_call)]


async def get_user_service(
    session: SessionDep, instagram: InstagramDep, settings: SettingsDep
) -> UserService:
    return UserService(session=session, instagram=instagram, settings=settings)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


async def get_history_service(request: Request) -> AsyncIterator[HistoryService]:
    """One dependency for a history page (the session, the settings and the clients of the
    chain of services it needs, resolved together, as `get_webhook_call` does: each
    dependency FastAPI resolves costs a little on a route read hundreds of times a second)."""
    state = request.app.state
    async with _request_session(request) as session:
        users = UserService(session=session, instagram=state.instagram, settings=state.settings)
        yield HistoryService(session=session, users=users)


HistoryServiceDep = Annotated[HistoryService, Depends(get_history_service)]


async def get_send_service(
    request: Request,
    session: SessionDep,
    instagram: InstagramDep,
    environment: EnvironmentAccountDep,
) -> SendService:
    return SendService(
        session=session,
        instagram=instagram,
        environment=environment,
        unrecorded=request.app.state.unrecorded_sends,
    )


SendServiceDep = Annotated[SendService, Depends(get_send_service)]


async def get_sender_action_service(
    session: SessionDep, instagram: InstagramDep, environment: EnvironmentAccountDep
) -> SenderActionService:
    return SenderActionService(session=session, instagram=instagram, environment=environment)


SenderActionServiceDep = Annotated[SenderActionService, Depends(get_sender_action_service)]


async def get_reaction_service(
    session: SessionDep, actions: SenderActionServiceDep, environment: EnvironmentAccountDep
) -> ReactionService:
    return ReactionService(session=session, actions=actions, environment=environment)


ReactionServiceDep = Annotated[ReactionService, Depends(get_reaction_service)]


async def get_conversation_service(request: Request) -> AsyncIterator[ConversationService]:
    """With its own session: one dependency for the /api/v1 history pages."""
    async with _request_session(request) as session:
        yield ConversationService(session=session)


ConversationServiceDep = Annotated[ConversationService, Depends(get_conversation_service)]


async def get_account_service(
    request: Request, session: SessionDep, instagram: InstagramDep, tokens: TokenStoreDep
) -> AccountService:
    return AccountService(
        session=session,
        instagram=instagram,
        tokens=tokens,
        intake_accounts=request.app.state.intake_accounts,
    )


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_event_feed(request: Request, session: SessionDep) -> EventFeed:
    horizon: Horizon = request.app.state.events_horizon
    return EventFeed(session=session, horizon=horizon)


EventFeedDep = Annotated[EventFeed, Depends(get_event_feed)]


async def get_endpoint_service(session: SessionDep, settings: SettingsDep) -> EndpointService:
    return EndpointService(session=session, settings=settings)


EndpointServiceDep = Annotated[EndpointService, Depends(get_endpoint_service)]


async def get_status_reporter(request: Request) -> StatusReporter:
    reporter: StatusReporter = request.app.state.status_reporter
    return reporter


StatusReporterDep = Annotated[StatusReporter, Depends(get_status_reporter)]


async def carries_api_key(request: Request) -> bool:
    """Whether the request carried the API key (always true when the API is open on purpose);
    ApiKeyMiddleware checked it before anything else ran."""
    return bool(request.scope.get("state", {}).get(API_KEY_VALID, False))


CarriesApiKeyDep = Annotated[bool, Depends(carries_api_key)]


async def get_sync_service(request: Request, session: SessionDep) -> SyncService:
    state = request.app.state
    return SyncService(session=session, sync=state.history_sync, accounts=state.sync_accounts)


SyncServiceDep = Annotated[SyncService, Depends(get_sync_service)]


async def get_media_service(
    request: Request, session: SessionDep, instagram: InstagramDep
) -> MediaService:
    cdn: CdnClient = request.app.state.cdn
    store: MediaStore | None = request.app.state.media_store
    return MediaService(session=session, cdn=cdn, instagram=instagram, store=store)


MediaServiceDep = Annotated[MediaService, Depends(get_media_service)]
